"""Report runner: profile parameters, --set overrides, HTML helpers, index.html, failures.

The runner tests execute two tiny hand-made notebooks (not the real ones: tests/test_notebooks.py
does that) through papermill, so they need the `python3` Jupyter kernel."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from diffupose.errors import ConfigError, DataError, DiffuPoseError
from diffupose.workbench.profiles import (NOTEBOOKS, PROFILES, check_inputs, get_profile, parse_set, repo_root,
                                          resolve_parameters)
from diffupose.workbench.reports import (ReportError, card_html, check_kernel, evaluation_checkpoint,
                                         paper_comparison_hypotheses, remote_code_references, resolve_inputs,
                                         resolve_split, run_report, strip_remote_scripts, table_card, table_html)


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
    assert he["allow_pickle"] is False and he["preset"] == "humaneva_cpu"
    assert Path(he["data_dir"]) == (repo_root().parent / "shared" / "data" / "humaneva").resolve()
    h36m = resolve_parameters("h36m", tmp_path)["03_evaluate"]
    assert h36m["val_subjects"] == ["S8"] and h36m["keypoints"] == "gt" and h36m["preset"] == "h36m_cpu"
    assert h36m["split"] == "auto"


def test_no_profile_reads_pickles_unless_told(tmp_path):
    for name in PROFILES:
        assert resolve_parameters(name, tmp_path)["01_data_prep"]["allow_pickle"] is False, name
    he = resolve_parameters("humaneva", tmp_path, ["allow_pickle=true"])["01_data_prep"]
    assert he["allow_pickle"] is True


def test_one_name_for_the_hypothesis_counts(tmp_path):
    for name in PROFILES:
        p = resolve_parameters(name, tmp_path)["03_evaluate"]
        assert "hypotheses" not in p, name                        # the old, ambiguous name
        assert isinstance(p["hypothesis_counts"], list) and all(isinstance(n, int) for n in p["hypothesis_counts"])
        assert isinstance(p["num_hypotheses"], int)
    import papermill

    from diffupose.workbench.reports import notebook_dir
    assert "hypothesis_counts" in papermill.inspect_notebook(str(notebook_dir() / "03_evaluate.ipynb"))
    assert "num_hypotheses" in papermill.inspect_notebook(str(notebook_dir() / "05_hypotheses.ipynb"))


def test_set_overrides_are_typed_and_config_keys_go_to_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = resolve_parameters("tiny", tmp_path, ["train.lr=0.01", "hypothesis_counts=1,3,7", "flip=false",
                                                   "ablation_steps=12", "data_dir=some/where",
                                                   "val_subjects=[\"S1\"]", "model.dim=48"])
    p = params["02_train"]
    assert p["overrides"]["train.lr"] == "0.01" and p["overrides"]["model.dim"] == "48"
    assert p["overrides"]["train.max_steps"] == 40          # the profile's own overrides are kept
    assert p["hypothesis_counts"] == [1, 3, 7]
    assert p["flip"] is False
    assert p["ablation_steps"] == 12
    assert p["val_subjects"] == ["S1"]
    # a relative --set path is taken from the current directory, not the repository
    assert Path(p["data_dir"]) == (tmp_path / "some" / "where").resolve()
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


def test_missing_data_dir_names_the_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = resolve_parameters("humaneva", tmp_path / "r", ["data_dir=not/there"])["01_data_prep"]
    with pytest.raises(ConfigError) as err:
        check_inputs(p, ["01_data_prep", "02_train"])
    message = str(err.value)
    assert str((tmp_path / "not" / "there").resolve()) in message and "current directory" in message
    check_inputs(p, ["03_evaluate"])                            # 01 does not run: the folder is not read
    check_inputs(resolve_parameters("tiny", tmp_path / "t")["01_data_prep"], ["01_data_prep"])   # synthetic


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


def test_evaluation_checkpoint_never_reports_on_its_selection_split():
    assert evaluation_checkpoint("auto", "test") == ("best", "val (lowest validation MPJPE)")
    assert evaluation_checkpoint("auto", "val") == ("ema", "none (final EMA weights)")
    assert evaluation_checkpoint("model", "val")[0] == "model"
    with pytest.raises(ConfigError, match="chosen on split 'val'"):
        evaluation_checkpoint("best", "val")
    with pytest.raises(ConfigError):
        evaluation_checkpoint("latest", "test")
    card = table_card({"dataset": "h36m", "split": "val", "checkpoint": {"path": "/r/run", "checkpoint": "ema"},
                       "num_nan_samples": 3}, "none (final EMA weights)")
    assert card["checkpoint"] == "ema @ run" and card["checkpoint_selected_on"] == "none (final EMA weights)"
    assert card["num_nan_samples"] == 3


def test_paper_comparison_uses_our_n_10():
    assert paper_comparison_hypotheses([1, 5, 10, 30]) == 10       # not the largest N
    assert paper_comparison_hypotheses([1, 5, 10, 20]) == 10
    assert paper_comparison_hypotheses([1, 2, 4]) == 4             # nearest when 10 is missing
    assert paper_comparison_hypotheses([20, 5]) == 5


def test_resolve_inputs_falls_back_to_the_demo_report(tmp_path, monkeypatch, capsys):
    from diffupose.workbench import notebook

    monkeypatch.setattr(notebook, "repo_root", lambda: tmp_path)
    own_data = tmp_path / "runs" / "notebooks" / "data" / "prepared.npz"
    own_run = tmp_path / "runs" / "notebooks" / "run"
    with pytest.raises(DataError) as err:                           # nothing anywhere: what to run first
        resolve_inputs(data_path=own_data, run_dir=own_run)
    assert "01_data_prep" in str(err.value) and "make demo" in str(err.value)
    demo = tmp_path / "reports" / "demo"
    (demo / "data").mkdir(parents=True)
    (demo / "data" / "prepared.npz").write_bytes(b"x")
    (demo / "run").mkdir()
    (demo / "run" / "config.json").write_text("{}")
    data_path, run_dir = resolve_inputs(data_path=own_data, run_dir=own_run)
    assert (data_path, run_dir) == (str(demo / "data" / "prepared.npz"), str(demo / "run"))
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "demo report" in out[0]
    own_run.mkdir(parents=True)                                     # the notebook's own run wins
    (own_run / "config.json").write_text("{}")
    assert resolve_inputs(run_dir=own_run) == (None, str(own_run))
    elsewhere = tmp_path / "my" / "run"                             # a path given on purpose is never replaced
    with pytest.raises(DataError, match="check the run_dir parameter"):
        resolve_inputs(run_dir=elsewhere)


def test_remote_code_references_finds_escaped_and_plain_loaders():
    assert remote_code_references('<script src="https://cdn.x/a.js"></script>')
    assert remote_code_references('{"t": "<script src=\\"https://cdnjs.cloudflare.com/m.js\\"><\\/script>"}')
    assert remote_code_references("<link rel=stylesheet href='//fonts.example/f.css'>")
    assert not remote_code_references('<script src="plotly.min.js"></script><a href="https://arxiv.org">paper</a>')


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
        ("code", "import json\nimport plotly.graph_objects as go\nfrom diffupose import viz\n"
                 "from diffupose.workbench import reports\n"
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
    _notebook(d / "04_progress.ipynb", [
        ("code", "import logging\nfrom diffupose.workbench import reports\nfrom diffupose.config import preset\n"
                 "reports.setup_notebook()"),
        ("params", "seed = 0"),
        ("code", "live = reports.TrainingCurveDisplay(every=10, cfg=preset('tiny'))\n"
                 "for step in range(5, 205, 5):\n"
                 "    logging.getLogger('diffupose.train').info('step %d loss %.4f', step, 1 / step)\n"
                 "    live({'step': step, 'epoch': step / 12, 'loss': 1 / step,\n"
                 "          'val_mpjpe': 50.0 if step % 100 == 0 else None})"),
    ])
    _notebook(d / "05_pickle.ipynb", [
        ("params", "allow_pickle = False"),
        ("code", "from diffupose.errors import DataError\nif not allow_pickle:\n"
                 "    raise DataError('data_3d.npz: key positions_3d holds pickled objects; pass --allow-pickle "
                 "(allow_pickle=True) if you trust this file')"),
    ])
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
    # offline and small: the page loads the report's one plotly.js, embeds none, fetches nothing
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in page
    assert not re.search(r"plotly\.js v\d", page) and len(page) < 1_000_000
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    assert remote_code_references(page) == [], "the page loads code from the network"
    executed = (out / "01_ok.ipynb").read_text()
    assert not re.search(r"plotly\.js v\d", executed) and "cdnjs" not in executed
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok" and report["seed"] == 3
    assert report["notebooks"][0]["wall_time_s"] > 0
    assert "Static figures" in index


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


@pytest.mark.parametrize("override, match", [
    ("train.bogus=1", "unknown config key 'train.bogus'"),
    ("train.lr=fast", "train.lr"),
    ("model.dim=1.5", "model.dim"),
    ("num_examples=3", "no notebook"),                     # a profile parameter no notebook declares
])
def test_bad_overrides_fail_before_any_notebook_runs(fake_notebooks, tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        run_report("tiny", name="bad", overrides=[override], out_root=tmp_path, notebooks_dir=fake_notebooks)
    assert not (tmp_path / "bad").exists()                 # nothing ran, nothing written


def test_pickle_error_says_how_to_opt_in_and_the_opt_in_is_announced(fake_notebooks, tmp_path, caplog):
    with pytest.raises(ReportError) as err:
        run_report("tiny", name="nopickle", out_root=tmp_path, notebooks=["05_pickle"], notebooks_dir=fake_notebooks)
    assert "diffupose report --profile tiny --allow-pickle" in str(err.value)
    assert "--set allow_pickle=true" in str(err.value)
    caplog.set_level("WARNING", logger="diffupose.reports")
    run_report("tiny", name="pickle", overrides=["allow_pickle=true"], out_root=tmp_path,
               notebooks=["05_pickle"], notebooks_dir=fake_notebooks)
    assert any("allow_pickle is on" in r.getMessage() for r in caplog.records)


def test_cli_report_allow_pickle_flag(monkeypatch, capsys):
    from diffupose import cli
    from diffupose.workbench import reports

    seen = {}
    monkeypatch.setattr(reports, "run_report", lambda profile, **kw: seen.update(kw) or Path("/x"))
    assert cli.main(["report", "--profile", "humaneva", "--allow-pickle", "--set", "seed=1"]) == 0
    assert seen["overrides"] == ["seed=1", "allow_pickle=true"]
    assert cli.main(["report", "--profile", "humaneva"]) == 0
    assert seen["overrides"] == []


def test_terminal_shows_cells_and_training_progress_not_the_notebook(fake_notebooks, tmp_path, caplog):
    caplog.set_level("INFO", logger="diffupose.reports")
    out = run_report("tiny", name="progress", out_root=tmp_path, notebooks=["04_progress"],
                     notebooks_dir=fake_notebooks, progress_interval_s=3600)
    lines = [r.getMessage() for r in caplog.records if r.name == "diffupose.reports"]
    assert any("[04_progress 1/1] cell 3/4" in line for line in lines), lines
    training = [line for line in lines if "training: step" in line]
    # throttled: the first row, the validation rows (100, 200) and nothing in between
    assert any("step 100/200 (50%)" in line and "val MPJPE 50.0 mm" in line and "ETA" in line for line in training)
    assert any("step 200/200" in line for line in training) and len(training) <= 4, training
    assert not any("step 55 " in line for line in lines)
    nb = nbformat.read(str(out / "04_progress.ipynb"), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = json.dumps(outputs)
    assert text.count("loss 0.") <= 2, "the training log went into the notebook"
    assert len(outputs) <= 4                                   # one status line + one curve (+ injected cell)
    assert "dp-progress" in text and "step 200/200" in text
    assert not (out / ".progress.jsonl").exists()


def test_unknown_notebook_is_a_report_error(fake_notebooks, tmp_path):
    with pytest.raises(ReportError, match="no notebook"):
        run_report("tiny", out_root=tmp_path, notebooks=["99_missing"], notebooks_dir=fake_notebooks)


# ------------------------------------------------------------------------------- ablations

def test_ablation_variants_share_the_base_model_and_rows_carry_paper_numbers():
    from diffupose.workbench import ablations

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


def test_compare_runs_are_taken_from_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = resolve_parameters("tiny", tmp_path / "r", overrides=["compare_runs=runs/masked,/abs/other"])
    assert params["09_robustness"]["compare_runs"] == [str(tmp_path / "runs" / "masked"), "/abs/other"]
    assert resolve_parameters("tiny", tmp_path / "r")["09_robustness"]["compare_runs"] == []


def test_report_kernels_import_the_reports_own_diffupose(tmp_path, monkeypatch):
    """A kernel starts in notebooks/, so without help it imports whatever `diffupose` the
    environment puts first (another checkout's editable install, a decoy on PYTHONPATH)."""
    import diffupose
    from diffupose.workbench.reports import kernel_pythonpath

    decoy = tmp_path / "decoy" / "diffupose"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the decoy diffupose was imported')\n")
    monkeypatch.setenv("PYTHONPATH", str(decoy.parent))
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_where.ipynb", [
        ("params", "out_dir = '.'"),
        ("code", "import diffupose\nfrom diffupose import viz\n"
                 "viz.record_metrics(out_dir, 'where', {'file': diffupose.__file__})"),
    ])
    out = run_report("tiny", name="where", out_root=tmp_path / "reports", notebooks=["01"], notebooks_dir=nbs)
    metrics = json.loads((out / "metrics.json").read_text())
    assert Path(metrics["where"]["file"]).resolve() == Path(diffupose.__file__).resolve()
    assert os.environ["PYTHONPATH"] == str(decoy.parent)      # the caller's environment is restored
    root = str(Path(diffupose.__file__).resolve().parent.parent)
    assert kernel_pythonpath(None) == root
    assert kernel_pythonpath(f"/a{os.pathsep}{root}{os.pathsep}/b") == os.pathsep.join([root, "/a", "/b"])


def test_kernel_pythonpath_leaves_an_installed_package_to_the_interpreter(monkeypatch):
    import diffupose.workbench.execute as execute_module
    from diffupose.workbench.reports import kernel_pythonpath

    monkeypatch.setattr(execute_module, "__file__", "/usr/lib/python3/site-packages/diffupose/workbench/execute.py")
    assert kernel_pythonpath(f"/a{os.pathsep}/b") == f"/a{os.pathsep}/b"
    monkeypatch.setattr(execute_module, "__file__", "/home/me/DiffuPose/diffupose/workbench/execute.py")
    assert kernel_pythonpath("/a") == os.pathsep.join([str(Path("/home/me/DiffuPose").resolve()), "/a"])


# ------------------------------------------------------------------ an existing report folder

def _hand_made_report(folder: Path, **info) -> Path:
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"profile": "tiny", "status": "ok", "overrides": [], **info}))
    (folder / "my_notes.txt").write_text("the user's own file")
    return folder


def test_running_the_same_report_again_resumes_it_and_keeps_the_other_pages(fake_notebooks, tmp_path, caplog):
    caplog.set_level("INFO", logger="diffupose.reports")
    out = run_report("tiny", name="again", overrides=["seed=3"], out_root=tmp_path, notebooks=["01"],
                     notebooks_dir=fake_notebooks)
    (out / "figures" / "kept.png").write_bytes(b"png")
    run_report("tiny", name="again", overrides=["seed=3", "allow_pickle=true"], out_root=tmp_path,
               notebooks=["03"], notebooks_dir=fake_notebooks)          # allow_pickle is no other report
    assert any("resuming the report" in r.getMessage() for r in caplog.records)
    report = json.loads((out / "report.json").read_text())
    assert [(nb["name"], nb["status"]) for nb in report["notebooks"]] == [("01_ok", "ok"), ("03_after", "ok")]
    assert report["status"] == "ok" and (out / "01_ok.html").exists() and (out / "figures" / "kept.png").exists()
    index = (out / "index.html").read_text()
    assert "01_ok.html" in index and "03_after.html" in index


def test_a_report_of_another_profile_or_other_settings_is_never_replaced(fake_notebooks, tmp_path):
    other = _hand_made_report(tmp_path / "other", profile="demo")
    with pytest.raises(ReportError, match="profile 'demo'.*--overwrite"):
        run_report("tiny", name="other", out_root=tmp_path, notebooks=["03"], notebooks_dir=fake_notebooks)
    finished = _hand_made_report(tmp_path / "finished", overrides=["seed=1"])
    with pytest.raises(ReportError, match=r"other --set values \(seed: 1 then, 2 now\)"):
        run_report("tiny", name="finished", overrides=["seed=2"], out_root=tmp_path, notebooks=["03"],
                   notebooks_dir=fake_notebooks)
    with pytest.raises(ReportError, match=r"seed: 1 then, \(profile value\) now"):
        run_report("tiny", name="finished", out_root=tmp_path, notebooks=["03"], notebooks_dir=fake_notebooks)
    for folder in (other, finished):                                  # untouched
        assert sorted(p.name for p in folder.iterdir()) == ["my_notes.txt", "report.json"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("not a report")
    for overwrite in (False, True):                                   # not a report: never touched
        with pytest.raises(ReportError, match="holds no report"):
            run_report("tiny", name="mine", out_root=tmp_path, notebooks=["03"], notebooks_dir=fake_notebooks,
                       overwrite=overwrite)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]


def test_overwrite_replaces_a_report_and_an_unfinished_one_may_change_settings(fake_notebooks, tmp_path):
    old = _hand_made_report(tmp_path / "old", profile="demo")
    out = run_report("tiny", name="old", out_root=tmp_path, notebooks=["03"], notebooks_dir=fake_notebooks,
                     overwrite=True)
    assert out == old.resolve() and not (old / "my_notes.txt").exists()
    assert json.loads((old / "report.json").read_text())["profile"] == "tiny"
    failed = _hand_made_report(tmp_path / "failed", status="failed", overrides=["seed=1"],
                               notebooks=[{"name": "01_ok", "status": "running"}])
    run_report("tiny", name="failed", overrides=["seed=2"], out_root=tmp_path, notebooks=["03"],
               notebooks_dir=fake_notebooks)
    report = json.loads((failed / "report.json").read_text())
    assert [(nb["name"], nb["status"]) for nb in report["notebooks"]] == [("01_ok", "skipped"), ("03_after", "ok")]
    assert report["status"] == "incomplete" and (failed / "my_notes.txt").exists()


def test_cli_report_overwrite_flag_and_help(monkeypatch, capsys):
    from diffupose import cli
    from diffupose.workbench import reports

    seen = {}
    monkeypatch.setattr(reports, "run_report", lambda profile, **kw: seen.update(kw) or Path("/x"))
    assert cli.main(["report", "--profile", "tiny"]) == 0 and seen["overwrite"] is False
    assert cli.main(["report", "--profile", "tiny", "--overwrite"]) == 0 and seen["overwrite"] is True
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "running the same report again resumes it" in help_text and "is refused" in help_text


# --------------------------------------------------------------------- the workbench extra

def test_a_missing_workbench_extra_is_one_line_before_anything_is_written(monkeypatch, tmp_path, capsys):
    from diffupose import cli
    from diffupose.workbench import assets

    monkeypatch.setattr(assets, "missing_workbench_modules", lambda: ["papermill"])
    assert cli.main(["report", "--profile", "tiny", "--out-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["diffupose report: error: the report needs the workbench extra (papermill not installed): "
                   "pip install 'diffupose[workbench]'"]
    assert not list(tmp_path.iterdir())


def test_any_command_missing_a_workbench_module_says_what_to_install(monkeypatch, capsys):
    from diffupose import cli

    def needs_matplotlib(args):
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setitem(cli.COMMANDS, "models", needs_matplotlib)
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err.strip() == ("diffupose models: error: this needs the workbench extra (matplotlib "
                                               "is not installed): pip install 'diffupose[workbench]'")

    def needs_something_else(args):
        raise ModuleNotFoundError("No module named 'nope'", name="nope")

    monkeypatch.setitem(cli.COMMANDS, "models", needs_something_else)
    with pytest.raises(ModuleNotFoundError):                        # not ours to explain: a real bug
        cli.main(["models"])


def test_an_installed_package_uses_its_packaged_notebooks_and_examples(monkeypatch, tmp_path):
    from diffupose.workbench import assets

    assert assets.notebook_dir() == repo_root() / "notebooks"          # a checkout: its own folders
    assert assets.asset_dir("examples") == repo_root() / "examples"
    example = str(repo_root() / "examples" / "coco17_S8_walking.json")
    assert assets.installed_path(example) == example
    site = tmp_path / "site-packages"                                   # a wheel: no pyproject.toml beside it
    site.mkdir()
    monkeypatch.setattr(assets, "repo_root", lambda: site)
    assert assets.notebook_dir() == assets.PACKAGE_DIR / "_notebooks"
    params = {"keypoints_path": str(site / "examples" / "coco17_S8_walking.json"), "run_dir": str(tmp_path / "r"),
              "seed": 0}
    moved = assets.with_installed_paths(params)
    assert moved["keypoints_path"] == str(assets.PACKAGE_DIR / "_examples" / "coco17_S8_walking.json")
    assert moved["run_dir"] == params["run_dir"] and moved["seed"] == 0


# ---------------------------------------------------------------------- time cap on the index

def test_index_says_when_training_stopped_at_its_time_cap(tmp_path):
    from diffupose.workbench.reports import time_cap_text, write_index

    run = tmp_path / "run"
    run.mkdir()
    info = {"name": "capped", "profile": "h36m", "status": "ok", "parameters": {"run_dir": str(run)},
            "notebooks": [], "environment": {}}
    write_index(tmp_path, info)
    assert "time cap" not in (tmp_path / "index.html").read_text()         # no run card: nothing said
    card = {"steps": 21400, "max_steps": 30000, "stopped_by_time_cap": True, "max_minutes": 45.0,
            "training_minutes": 45.1}
    (run / "run_card.json").write_text(json.dumps(card))
    write_index(tmp_path, info)
    index = (tmp_path / "index.html").read_text()
    sentence = "Training stopped by the time cap at step 21,400 of 30,000 (45 min): the model is undertrained."
    assert sentence in index
    assert index.index(sentence) < index.index("<h2>Notebooks</h2>")       # near the top
    assert json.loads((tmp_path / "report.json").read_text())["run_card"]["steps"] == 21400
    (run / "run_card.json").write_text(json.dumps({**card, "stopped_by_time_cap": False}))
    write_index(tmp_path, info)
    assert "time cap" not in (tmp_path / "index.html").read_text()
    assert time_cap_text({"stopped_by_time_cap": True, "steps": 900, "max_steps": 6000, "max_minutes": 3.5}) == (
        "Training stopped by the time cap at step 900 of 6,000 (3.5 min): the model is undertrained.")
    assert time_cap_text(None) is None and time_cap_text({"steps": 5}) is None
