"""Report runner: profile parameters, --set overrides, HTML helpers, index.html, failures.

The runner tests execute two tiny hand-made notebooks (not the real ones: tests/test_notebooks.py
does that) through papermill, so they need the `python3` Jupyter kernel."""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from diffupose.errors import ConfigError, DiffuPoseError
from diffupose.profiles import NOTEBOOKS, PROFILES, get_profile, parse_set, repo_root, resolve_parameters
from diffupose.reports import (ReportError, card_html, check_kernel, resolve_split, run_report,
                               strip_remote_scripts, table_html)


# ------------------------------------------------------------------------------------ profiles

def test_every_profile_resolves_for_every_notebook(tmp_path):
    for name in PROFILES:
        params = resolve_parameters(name, tmp_path / name)
        assert set(params) == set(NOTEBOOKS)
        p = params["02_train"]
        assert Path(p["data_path"]) == (tmp_path / name / "data" / "prepared.npz").resolve()
        assert Path(p["run_dir"]).parent == (tmp_path / name).resolve()
        assert Path(p["out_dir"]) == (tmp_path / name).resolve()
        assert p["profile"] == name
        assert isinstance(p["overrides"], dict)
        assert p["dataset"] in ("synthetic", "humaneva", "h36m")


def test_profile_choices_match_the_brief(tmp_path):
    tiny = resolve_parameters("tiny", tmp_path)["01_data_prep"]
    assert tiny["dataset"] == "synthetic" and tiny["preset"] == "tiny"
    assert tiny["ablation_steps"] <= 50
    assert get_profile("demo")["params"]["preset"] == "demo"
    he = resolve_parameters("humaneva", tmp_path)["01_data_prep"]
    assert he["allow_pickle"] is True and he["preset"] == "humaneva_cpu"
    assert Path(he["data_dir"]) == (repo_root().parent / "shared" / "data" / "humaneva").resolve()
    h36m = resolve_parameters("h36m", tmp_path)["03_evaluate"]
    assert h36m["val_subjects"] == ["S8"] and h36m["keypoints"] == "gt" and h36m["preset"] == "h36m_cpu"
    assert h36m["split"] == "auto"


def test_set_overrides_are_typed_and_config_keys_go_to_overrides(tmp_path):
    params = resolve_parameters("tiny", tmp_path, ["train.lr=0.01", "hypotheses=1,3,7", "flip=false",
                                                   "ablation_steps=12", "data_dir=some/where",
                                                   "val_subjects=[\"S1\"]", "model.dim=48"])
    p = params["02_train"]
    assert p["overrides"]["train.lr"] == "0.01" and p["overrides"]["model.dim"] == "48"
    assert p["overrides"]["train.max_steps"] == 40          # the profile's own overrides are kept
    assert p["hypotheses"] == [1, 3, 7]
    assert p["flip"] is False
    assert p["ablation_steps"] == 12
    assert p["val_subjects"] == ["S1"]
    assert Path(p["data_dir"]) == (repo_root() / "some" / "where").resolve()
    # the notebook applies the overrides with the config's own parser: types come out right
    from diffupose.config import apply_overrides, preset
    cfg = apply_overrides(preset(p["preset"]), p["overrides"])
    assert cfg.train.lr == pytest.approx(0.01) and cfg.model.dim == 48 and cfg.train.max_steps == 40


def test_set_rejects_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="not a parameter"):
        resolve_parameters("tiny", tmp_path, ["no_such_thing=1"])
    with pytest.raises(ConfigError, match="expected a number"):
        resolve_parameters("tiny", tmp_path, ["ablation_steps=many"])
    with pytest.raises(ConfigError, match="boolean"):
        resolve_parameters("tiny", tmp_path, ["flip=maybe"])
    with pytest.raises(ConfigError, match="unknown report profile"):
        resolve_parameters("nope", tmp_path)
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["novalue"])


def test_run_dir_override_reuses_an_existing_run(tmp_path):
    p = resolve_parameters("demo", tmp_path / "r", [f"run_dir={tmp_path / 'runs' / 'x'}"])["03_evaluate"]
    assert p["run_dir"] == str(tmp_path / "runs" / "x")


# ---------------------------------------------------------------------------------- HTML bits

def test_table_html_formats_escapes_and_appends_the_card():
    rows = [{"method": "Ours <N=1>", "Walking": 41.234, "Average": None, "source": "ours"},
            {"method": "Paper", "Walking": 39.0, "Average": float("nan"), "source": "paper"}]
    out = table_html(rows, ["method", ("Walking", "Walk"), "Average"], caption="Table I",
                     card={"dataset": "h36m", "split": "test", "flip": True, "num_hypotheses": 10})
    assert "<caption>Table I</caption>" in out
    assert "Ours &lt;N=1&gt;" in out and "<N=1>" not in out
    assert "<td>41.2</td>" in out and "<td>39.0</td>" in out
    assert out.count("<td>–</td>") == 2                      # None and NaN
    assert '<tr class="dp-ours">' in out and '<tr class="dp-paper">' in out
    assert "<th>Walk</th>" in out and "<th>source</th>" not in out
    assert "dp-card" in out and "<b>flip</b>: yes" in out
    assert card_html(None) == ""


def test_resolve_split_prefers_test_then_val():
    assert resolve_split({"train": 10, "val": 3, "test": 4})[0] == "test"
    split, reason = resolve_split({"train": 10, "val": 3, "test": 0})
    assert split == "val" and "not the paper" in reason
    assert resolve_split({"train": 10, "val": 3}, "train")[0] == "train"
    with pytest.raises(ConfigError):
        resolve_split({"train": 10, "val": 3}, "test")
    with pytest.raises(ConfigError):
        resolve_split({"train": 10})


def test_strip_remote_scripts_keeps_inline_code():
    page = ('<script src="https://cdn.plot.ly/plotly-2.js"></script><script>var a=1;</script>'
            "<script src='//cdnjs.cloudflare.com/mathjax.js' async></script><script src=\"local.js\"></script>")
    out = strip_remote_scripts(page)
    assert "cdn.plot.ly" not in out and "cdnjs" not in out
    assert "<script>var a=1;</script>" in out and 'src="local.js"' in out


def test_check_kernel_names_the_fix():
    with pytest.raises(ReportError, match="ipykernel install"):
        check_kernel("no-such-kernel-diffupose")
    assert issubclass(ReportError, DiffuPoseError)


# ------------------------------------------------------------------------------- the runner

def _notebook(path: Path, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    for kind, source in cells:
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        elif kind == "params":
            nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]}))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def fake_notebooks(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("notebooks")
    _notebook(d / "01_ok.ipynb", [
        ("md", "# OK\nA notebook that works."),
        ("code", "import json\nimport plotly.graph_objects as go\nfrom diffupose import reports, viz\n"
                 "reports.setup_notebook()"),
        ("params", "seed = 0\nout_dir = '.'\nprofile = ''\nstride = 1"),
        ("code", "go.Figure(go.Scatter(x=[0, 1], y=[1, seed]))"),
        ("code", "viz.record_metrics(out_dir, 'fake', {'seed': seed, 'stride': stride, 'names': "
                 "sorted(k for k in ('hypotheses', 'dataset') if k in globals()), 'card': {'split': 'val'}})"),
    ])
    _notebook(d / "02_fail.ipynb", [
        ("params", "seed = 0"),
        ("code", "first = 'this cell ran'\nprint(first)"),
        ("code", "raise ValueError('deliberate failure 42')"),
        ("code", "print('never')"),
    ])
    _notebook(d / "03_after.ipynb", [("params", "seed = 0"), ("code", "print('after')")])
    return d


def test_run_report_writes_index_html_and_metrics(fake_notebooks, tmp_path):
    out = run_report("tiny", name="ok", overrides=["seed=3", "stride=2"], out_root=tmp_path,
                     notebooks=["01"], notebooks_dir=fake_notebooks)
    assert out == (tmp_path / "ok").resolve()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fake"]["seed"] == 3 and metrics["fake"]["stride"] == 2
    assert metrics["fake"]["names"] == []          # undeclared profile parameters are not injected
    assert metrics["report"]["profile"] == "tiny" and metrics["report"]["total_wall_time_s"] > 0
    index = (out / "index.html").read_text()
    from diffupose.utils import environment_info
    env = environment_info()
    assert env["git_commit"] in index
    assert f"<td>torch</td><td>{env['versions']['torch']}</td>" in index
    assert "01_ok.html" in index and "status-ok" in index
    page = (out / "01_ok.html").read_text()
    assert "js-plotly-plot" in page or "plotly-graph-div" in page
    assert re.search(r"plotly\.js v\d", page), "plotly.js is not embedded"
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", page), "the page loads a remote script"
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok" and report["seed"] == 3
    assert report["notebooks"][0]["wall_time_s"] > 0


def test_failing_notebook_raises_keeps_partial_and_marks_index(fake_notebooks, tmp_path):
    with pytest.raises(ReportError) as err:
        run_report("tiny", name="bad", out_root=tmp_path, notebooks=["02_fail", "03"],
                   notebooks_dir=fake_notebooks)
    message = str(err.value)
    assert "02_fail" in message and "ValueError" in message and "deliberate failure 42" in message
    out = tmp_path / "bad"
    partial = nbformat.read(str(out / "02_fail.ipynb"), as_version=4)
    ran = [c for c in partial.cells if c.cell_type == "code" and "first =" in c.source][0]
    assert any("this cell ran" in o.get("text", "") for o in ran.outputs)
    assert (out / "02_fail.html").exists()
    assert not (out / "03_after.ipynb").exists()
    assert not list(out.glob(".*.running.ipynb"))
    index = (out / "index.html").read_text()
    assert "status-failed" in index and "deliberate failure 42" in index and "skipped" in index
    assert json.loads((out / "report.json").read_text())["status"] == "failed"


def test_unknown_notebook_is_a_report_error(fake_notebooks, tmp_path):
    with pytest.raises(ReportError, match="no notebook"):
        run_report("tiny", out_root=tmp_path, notebooks=["99_missing"], notebooks_dir=fake_notebooks)


# ------------------------------------------------------------------------------- ablations

def test_ablation_variants_share_the_base_model_and_rows_carry_paper_numbers():
    from diffupose import ablations

    v = ablations.ablation_variants(["schedule", "dim", "denoiser"], [96, 32, 64])
    assert list(v["dim"]) == ["32", "64", "96"]
    assert v["schedule"]["cosine"]["model.dim"] == 64 == v["denoiser"]["GCN"]["model.dim"]
    base = ablations.ablation_base_config("tiny", "x.npz", steps=30, batch_size=16)
    assert base.train.max_steps == 30 and base.train.warmup_steps == 3 and base.train.val_every == 30
    keys = {ablations.variant_key(base, o) for t in v.values() for o in t.values()}
    assert len(keys) == 5                     # linear, cosine=GCN=dim 64, dim 32, dim 96, U-Net
    fake = {d: {"parameters": 1e6, "mpjpe": {1: 60.0, 5: 55.0}} for d in ("32", "64", "96")}
    rows = ablations.dim_rows(fake)
    assert [r["paper dim"] for r in rows] == [128, 256, 384] and rows[1]["paper N=1"] == 50.7
    sched = ablations.schedule_rows({"linear": {"mpjpe": {1: 70.0}}, "cosine": {"mpjpe": {1: 60.0}}})
    assert [r["paper MPJPE (N=1, d=256)"] for r in sched] == [54.9, 50.7]
    with pytest.raises(ConfigError):
        ablations.ablation_variants(["nope"], [32])
