"""Every notebook, 01 -> 09, executed by papermill with the `tiny` profile through run_report.

One report (module fixture, about 2-3 minutes on 2 CPU cores) then one test per notebook reads
back the section its last cell recorded in metrics.json, and the HTML checks make sure every
page uses the report's one local plotly.js and loads nothing from the network."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import nbformat
import pytest

from diffupose.workbench.profiles import NOTEBOOKS
from diffupose.workbench.reports import notebook_dir, remote_code_references, run_report

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return run_report("tiny", name="tiny", out_root=tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def metrics(report) -> dict:
    return json.loads((report / "metrics.json").read_text())


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_notebooks_follow_the_style_rules():
    for name in NOTEBOOKS:
        nb = nbformat.read(str(notebook_dir() / f"{name}.ipynb"), as_version=4)
        assert nb.metadata["kernelspec"] == {"name": "python3", "display_name": "Python 3", "language": "python"}
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{name}: needs exactly one parameters cell"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.get("outputs"), f"{name}: outputs committed"
                assert not re.search(r"^\s*(def|class) ", cell.source, re.M), f"{name}: def/class in a notebook"
        assert "record_metrics" in [c for c in nb.cells if c.cell_type == "code"][-1].source


def test_report_ran_every_notebook(report):
    info = json.loads((report / "report.json").read_text())
    assert info["status"] == "ok"
    assert [nb["name"] for nb in info["notebooks"]] == list(NOTEBOOKS)
    assert all(nb["status"] == "ok" and nb["wall_time_s"] > 0 for nb in info["notebooks"])
    for name in NOTEBOOKS:
        assert (report / f"{name}.ipynb").exists()


def test_data_section(metrics):
    data = metrics["data"]
    assert data["num_samples"] == sum(data["splits"].values()) > 0
    assert data["splits"]["train"] > 0
    assert 150 < data["mean_bone_length_mm"] < 400        # metres in, millimetres out
    assert data["num_cameras"] == 4 and data["num_actions"] >= 3
    assert data["evaluation_split"] in ("test", "val") and data["card"]["dataset"] == "synthetic"


def test_train_section(metrics):
    train = metrics["train"]
    assert train["steps"] == 40                           # tiny profile: train.max_steps=40
    assert _finite_positive(train["best_val_mpjpe_mm"])
    assert _finite_positive(train["samples_per_s"]) and _finite_positive(train["training_time_s"])
    assert train["parameters"] > 1000
    assert train["card"]["preset"] == "tiny" and train["config"]["train"]["max_steps"] == 40


def test_evaluate_section(metrics):
    ev = metrics["evaluate"]
    assert set(ev["mpjpe_mm"]) == {"1", "2", "4"}
    for n in ("1", "2", "4"):
        assert _finite_positive(ev["mpjpe_mm"][n]) and _finite_positive(ev["p_mpjpe_mm"][n])
        assert _finite_positive(ev["poses_per_s"][n])
        # the ORACLE best of N hypotheses is never worse than a single hypothesis
        assert ev["oracle_best_of_n_mm"][n] <= ev["oracle_best_of_n_mm"]["1"] + 1e-6
    card = ev["card"]
    for key in ("dataset", "split", "keypoints_2d_source", "num_hypotheses", "aggregation", "flip",
                "sampler", "num_steps", "oracle", "checkpoint", "seed"):
        assert key in card, key
    assert card["oracle"] is False and card["split"] == ev["split"]
    assert "Average" in ev["per_action"]["MPJPE"]
    # never a number of the checkpoint on the split that selected it
    if ev["split"] == "val":
        assert ev["checkpoint"] == "ema" and ev["checkpoint_selected_on"] == "none (final EMA weights)"
    else:
        assert ev["checkpoint"] == "best" and ev["checkpoint_selected_on"].startswith("val")
    # like with like: the paper's N=10 rows beside our N nearest to 10 (tiny profile: 4)
    assert ev["paper_comparison_num_hypotheses"] == 4


def test_affinity_and_hypotheses_sections(metrics):
    assert metrics["affinity"]["num_layers"] > 0 and "card" in metrics["affinity"]
    assert "card" in metrics["hypotheses"]


def test_paper_figures_section(metrics):
    pf = metrics["paper_figures"]
    assert [r["num_steps"] for r in pf["ddim_speed"]] == [2, 5]
    assert all(_finite_positive(r["poses_per_s"]) and _finite_positive(r["mpjpe_n1"]) for r in pf["ddim_speed"])
    assert pf["ddim_speed"][0]["paper_fps"] == 8927
    assert [r["schedule"] for r in pf["ablations"]["schedule"]] == ["linear", "cosine"]
    assert [r["dim"] for r in pf["ablations"]["dim"]] == [32, 48]
    assert {r["denoiser"] for r in pf["ablations"]["denoiser"]} == {"GCN", "U-Net"}
    assert pf["card"]["steps"] == 30 and pf["card"]["models_trained"] == 4


def test_samplers_section(metrics):
    """11_samplers: the run's DDIM curve (deterministic and stochastic) and, in the tiny profile,
    a flow-matching twin's Euler/Heun/midpoint curves, each point with finite numbers."""
    sec = metrics["samplers"]
    assert sec["split"] == "val" and sec["flow_twin"] is True
    seen = {(r["model"], r["objective"], r["sampler"], r["eta"]) for r in sec["rows"]}
    assert {("report run", "ddpm", "ddim", 0.0), ("report run", "ddpm", "ddim", 1.0), ("flow twin", "flow", "euler", 0.0),
            ("flow twin", "flow", "euler", 1.0), ("flow twin", "flow", "heun", 0.0)} <= seen
    for r in sec["rows"]:
        assert r["nfe"] in (1, 2) and r["nfe"] == r["num_steps"]
        assert all(_finite_positive(r[k]) for k in ("mpjpe_n1", "mpjpe_n2", "oracle", "poses_per_second"))
        assert 0.0 <= r["calibration_error"] <= 1.0 and r["oracle"] <= r["mpjpe_n1"] + 1e-6


def test_html_pages_use_one_local_plotly_js_and_load_nothing_remote(report):
    index = (report / "index.html").read_text()
    assert (report / "plotly.min.js").stat().st_size > 1_000_000
    assert [p.name for p in report.rglob("plotly*.js")] == ["plotly.min.js"]    # one copy per report
    for name in NOTEBOOKS:
        page = (report / f"{name}.html").read_text()
        assert f"{name}.html" in index
        if name != "04_affinity":                       # 04 shows seaborn heatmaps only
            assert "plotly-graph-div" in page, f"{name}.html has no plotly figure"
        assert '<script charset="utf-8" src="plotly.min.js"></script>' in page
        assert not re.search(r"plotly\.js v\d", page), f"{name}.html embeds plotly.js"
        assert not re.search(r"plotly\.js v\d", (report / f"{name}.ipynb").read_text())
    # no code from the network anywhere: pages, figure HTML, executed notebooks (widget state too)
    for path in [*report.rglob("*.html"), *report.glob("*.ipynb")]:
        text = path.read_text()
        assert remote_code_references(text) == [], f"{path.name}: {remote_code_references(text)[:2]}"
        assert "cdnjs.cloudflare.com" not in text and "cdn.plot.ly" not in text, path.name
    assert "Traceback" not in index and "class='status-failed'" not in index
    info = json.loads((report / "report.json").read_text())
    assert info["static_export"] and info["static_export"][0]["renderer"] in ("kaleido", "matplotlib")
    assert "Static figures" in index


def test_explorer_says_how_to_get_it_live(report):
    page = (report / "05_hypotheses.html").read_text()
    assert "re-run this cell for the live explorer" in page
    nb = nbformat.read(str(report / "05_hypotheses.ipynb"), as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and "HypothesisExplorer(" in c.source]
    assert "re-run this cell for the live explorer" in json.dumps(cell.outputs[0])    # a plain, saved output


def test_report_is_small(report):
    """One plotly.js per report instead of one per page and notebook: pages, executed notebooks
    and figures were 70 MB for six notebooks (6 x 2 x 4.8 MB of plotly.js), the data and trained
    runs aside. No page, notebook or figure carries a plotly.js bundle (each < 2 MB)."""
    documents = [p for p in report.rglob("*") if p.is_file()
                 and not p.relative_to(report).parts[0] in ("data", "run", "ablations")]
    large = [f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in documents
             if p.name != "plotly.min.js" and p.stat().st_size > 2_000_000]
    assert not large, large
    total = sum(p.stat().st_size for p in documents)
    assert total < 20_000_000, f"tiny report pages, notebooks and figures: {total / 1e6:.1f} MB"


def test_figures_written(report):
    figures = report / "figures"
    for stem in ("01_bone_lengths", "02_training_curves", "03_error_vs_hypotheses", "06_ddim_speed"):
        assert (figures / f"{stem}.png").stat().st_size > 1000, stem
        assert (figures / f"{stem}.svg").exists(), stem
    assert "figures/02_training_curves.png" in (report / "index.html").read_text()


def test_in_the_wild_section(report, metrics):
    section = metrics["in_the_wild"]                    # the shipped COCO-17 example, tiny sizes
    assert section["format"] == "coco17" and section["num_samples"] == 12
    assert section["missing_joints"] > 0 and section["missing_joint_handling"].startswith("masked")   # h36m-det masks them
    assert section["mean_spread_mm"] > 0 and section["spread_missing_mm"] is not None
    assert section["root_relative"] is False              # the notebook passes the H36M focal length
    assert set(section["files"]) == {"npz", "json", "bvh", "html", "plotly_js"}   # every file the viewer needs is listed
    for path in section["files"].values():
        assert Path(path).is_file() and Path(path).is_relative_to(report)
    assert "synthetic" in section["card"]["input_note"]
    viewer = Path(section["files"]["html"]).read_text()
    assert 'src="../plotly.min.js"' in viewer               # the report's one copy


def test_uncertainty_section(report, metrics):
    from diffupose.workbench.profiles import get_profile

    unc = metrics["uncertainty"]
    params = get_profile("tiny")["params"]
    h = params["cache_hypotheses"]
    prefixes = {n for n in params["hypothesis_prefixes"] if n <= h} | {h}
    assert unc["num_hypotheses"] == h and set(unc["mpjpe_mm"]["mean"]) == {f"N={n}" for n in prefixes}
    assert set(unc["oracle_aggregators"]) == {"oracle_pose", "oracle_joint", "reproject_gt_root"}
    for name, row in unc["mpjpe_mm"].items():
        assert all(math.isfinite(v) and v > 0 for v in row.values()), name
        assert row["N=1"] == pytest.approx(unc["mpjpe_mm"]["mean"]["N=1"])   # N = 1: the single hypothesis
    # the ORACLE bounds: joint-wise <= pose-wise <= a single hypothesis
    assert unc["mpjpe_mm"]["oracle_joint"][f"N={h}"] <= unc["mpjpe_mm"]["oracle_pose"][f"N={h}"] + 1e-9
    assert unc["mpjpe_mm"]["oracle_pose"][f"N={h}"] <= unc["mpjpe_mm"]["oracle_pose"]["N=1"] + 1e-9
    assert 0 <= unc["calibration_error"] <= 1 and len(unc["calibration"]["fraction"]) == 19
    assert 0 <= unc["pck_150_mean"] <= 100 and 0 <= unc["cps_mm_mean"] <= 300
    assert -1 <= unc["spearman_per_sample"] <= 1
    assert unc["most_ambiguous_joints"] and unc["most_ambiguous_actions"]
    for row in unc["table"]:
        assert row["oracle"] == (row["aggregator"] in unc["oracle_aggregators"])
    assert unc["card"]["oracle"] is False and unc["calibration"]["card"]["oracle"] is False
    assert unc["card"]["dataset"] == "synthetic" and unc["cache_reused"] is False
    calibrated = unc["calibrated"]              # raw vs calibrated (fitted on val, measured on the cached split)
    assert calibrated["card"]["calibration"]["fitted_on"]["split"] == "val" and calibrated["card"]["split"] == "test"
    for key in ("raw", "calibrated"):
        assert 0 <= calibrated[key]["calibration_error"] <= 1 and len(calibrated[key]["reliability"]["fraction"]) == 19
    for stem in ("08_error_vs_n_per_aggregator", "08_reliability", "08_spread_vs_error", "08_ambiguity",
                 "08_reliability_calibrated"):
        assert (report / "figures" / f"{stem}.png").stat().st_size > 1000, stem


def test_robustness_section(report, metrics):
    from diffupose.workbench.profiles import get_profile

    rob = metrics["robustness"]
    params = get_profile("tiny")["params"]
    masks = 1 + len(params["robustness_modes"]) * len([k for k in params["robustness_missing"] if k > 0])
    cells = rob["cells"]
    assert len(cells) == masks * len(params["robustness_noise_px"])          # one model: this run
    assert {c["model"] for c in cells} == {"this run"} and {c["input"] for c in cells} == {"neighbour-fill"}
    for c in cells:
        assert c["num_samples"] == params["robustness_max_samples"]
        assert all(math.isfinite(c[k]) and c[k] > 0 for k in ("mpjpe_n1", "mpjpe_aggregate", "oracle_best_of_h"))
        assert c["oracle_best_of_h"] <= c["mpjpe_n1"] + 1e-6
        assert (c["mpjpe_missing_joints"] is None) == (c["missing"] == 0)
    assert rob["card"]["split"] == rob["split"] and rob["card"]["num_hypotheses"] == params["num_hypotheses"]
    for stem in ("09_robustness_mean", "09_robustness_oracle", "09_missing_spread"):
        assert (report / "figures" / f"{stem}.png").stat().st_size > 1000, stem
