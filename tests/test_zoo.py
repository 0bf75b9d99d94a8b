"""The model zoo: every shipped model loads, matches its card (config, parameter count,
checksum) and lifts the shipped examples deterministically; the CLI takes zoo names; export
and checksum verification work on a tiny run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from diffupose.inference import zoo
from diffupose.inference.lifter import Lifter
from diffupose.model.checkpoint import load_model
from diffupose.cli import main as cli_main
from diffupose.config import Config, preset
from diffupose.errors import CheckpointError, ConfigError
from diffupose.lifting import lift
from diffupose.model import count_parameters
from diffupose.training import train
from diffupose.evaluation.metrics import AVERAGE

from conftest import require_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHIPPED = zoo.available()


def test_zoo_lists_shipped_models():
    assert SHIPPED == sorted(SHIPPED)
    for name in SHIPPED:
        assert (zoo.ZOO_DIR / name / "README.md").is_file()


@pytest.mark.parametrize("name", SHIPPED or [pytest.param("none", marks=pytest.mark.skip(reason="no zoo model shipped"))])
def test_shipped_model_matches_its_card_and_lifts_deterministically(name, tmp_path):
    card = zoo.card(name)
    folder = zoo.model_dir(name)                       # verifies the sha256
    denoiser, cfg, skeleton = load_model(folder, which="ema", select="latest")
    assert cfg.to_dict() == Config.from_dict(card["config"]).to_dict()
    assert count_parameters(denoiser) == card["parameters"] == sum(p.numel() for p in denoiser.parameters())
    assert skeleton.name == card["skeleton"]
    assert (folder / "README.md").read_text() == zoo.card_markdown(card)      # the card for people says the same
    assert (folder / "ema.safetensors").stat().st_size < 8 * 2 ** 20      # a few MB
    assert all("command" in r and np.isfinite(r["mpjpe"]) for r in card["val_results"])
    example = EXAMPLES / "coco17_S8_walking.json"
    runs = [lift(example, str(folder), image_size=(1000, 1002), num_hypotheses=3, checkpoint="ema", seed=0,
                 num_steps=2, out=tmp_path / f"walk{i}", outputs=["npz"], device="cpu", progress=False)
            for i in range(2)]
    np.testing.assert_array_equal(runs[0].hypotheses, runs[1].hypotheses)
    assert np.isfinite(runs[0].aggregate).all()
    # a plausible human: root-relative, metres, within 1.2 m of the root
    assert np.abs(runs[0].aggregate).max() < 1.2


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory, synthetic_npz):
    root = tmp_path_factory.mktemp("zoo")
    run = root / "run"
    train(preset("tiny", {"data.path": str(synthetic_npz), "train.max_steps": 5}), run, progress=False)
    zoo.export_model(run, "tiny-test", {"summary": "a tiny test model",
                                        "val_results": [{"input_2d": "GT", "num_hypotheses": 10, "mpjpe": 1.0,
                                                         "p_mpjpe": 1.0, "command": "none"}]}, root=root / "models",
                     allow_dirty=True)                  # a developer's tree may have changes; CI's is clean
    return root / "models"


def test_export_writes_card_with_checksum_and_refuses_to_overwrite(tiny_zoo):
    card = zoo.card("tiny-test", root=tiny_zoo)
    assert card["weights_sha256"] == zoo.sha256(tiny_zoo / "tiny-test" / "ema.safetensors")
    assert card["parameters"] > 0 and card["skeleton"] == "h36m17"
    assert "Validation numbers" in (tiny_zoo / "tiny-test" / "README.md").read_text()
    with pytest.raises(ConfigError, match="exists"):
        zoo.export_model(tiny_zoo / ".." / "run", "tiny-test", {}, root=tiny_zoo, allow_dirty=True)
    assert card["exported_at_commit"]


def test_export_refuses_a_dirty_tree_unless_told(tiny_zoo, monkeypatch):
    monkeypatch.setattr(zoo, "git_commit", lambda: "abc123-dirty")
    with pytest.raises(ConfigError, match="uncommitted changes"):
        zoo.export_model(tiny_zoo / ".." / "run", "tiny-dirty", {}, root=tiny_zoo)
    assert not (tiny_zoo / "tiny-dirty").exists()
    zoo.export_model(tiny_zoo / ".." / "run", "tiny-dirty", {}, root=tiny_zoo, allow_dirty=True)
    assert zoo.card("tiny-dirty", root=tiny_zoo)["exported_at_commit"] == "abc123-dirty"


def test_model_path_takes_a_zoo_name_or_a_path(tiny_zoo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert zoo.model_path("tiny-test", root=tiny_zoo) == tiny_zoo / "tiny-test"
    assert zoo.model_path("runs/mine", root=tiny_zoo) == Path("runs/mine")     # not a name: as given
    (tmp_path / "tiny-test" / "checkpoint" / "latest").mkdir(parents=True)    # a local run wins over the name
    assert zoo.model_path("tiny-test", root=tiny_zoo) == Path("tiny-test")


def test_damaged_weights_fail_the_checksum(tiny_zoo, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(tiny_zoo, copy)
    weights = copy / "tiny-test" / "ema.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        zoo.model_dir("tiny-test", root=copy)
    with pytest.raises(ConfigError, match="unknown zoo model 'nope'"):
        zoo.model_dir("nope", root=copy)


def test_cli_models_and_model_flag(capsys, monkeypatch, tiny_zoo, tmp_path, synthetic_npz):
    monkeypatch.setattr(zoo, "ZOO_DIR", tiny_zoo)
    assert cli_main(["models"]) == 0
    assert "tiny-test" in capsys.readouterr().out
    assert cli_main(["models", "tiny-test"]) == 0
    assert "Model card: `tiny-test`" in capsys.readouterr().out
    kp = tmp_path / "kp.npy"
    np.save(kp, np.random.default_rng(0).normal(scale=0.2, size=(3, 17, 2)).astype(np.float32))
    out = tmp_path / "hyps.npz"
    assert cli_main(["sample", "--model", "tiny-test", "--keypoints", str(kp), "--out", str(out),
                     "--hypotheses", "2", "--steps", "2", "--device", "cpu"]) == 0
    assert np.load(out)["hypotheses"].shape == (3, 2, 17, 3)
    ev_json = tmp_path / "ev.json"     # the card's own command form: evaluate --model NAME
    assert cli_main(["evaluate", "--model", "tiny-test", "--data", str(synthetic_npz), "--split", "val",
                     "--hypotheses", "2", "--steps", "2", "--max-samples", "16", "--json", str(ev_json)]) == 0
    assert json.loads(ev_json.read_text())["card"]["checkpoint"]["checkpoint"] == "ema"
    assert cli_main(["sample", "--model", "tiny-test", "--keypoints", str(kp), "--out", str(tmp_path / "b.npz"),
                     "--checkpoint", "best"]) == 2
    assert "ships only its final EMA weights" in capsys.readouterr().err
    assert json.loads((tiny_zoo / "tiny-test" / "card.json").read_text())["name"] == "tiny-test"


@pytest.mark.parametrize("name", SHIPPED or [pytest.param("none", marks=pytest.mark.skip(reason="no zoo model shipped"))])
def test_card_recipe_rebuilds_the_training_config(name):
    """benchmarks/zoo.py retrains from the card: its preset, overrides and seed give the shipped config."""
    from diffupose.config import apply_overrides
    from diffupose.inference.recipes import recipe_for

    recipe = recipe_for(name)
    rebuilt = apply_overrides(preset(recipe["preset"], {"train.seed": recipe["seed"]}), recipe["overrides"]).to_dict()
    shipped = Config.from_dict(zoo.card(name)["config"]).to_dict()   # fields added since: their defaults
    rebuilt["data"]["path"] = shipped["data"]["path"]
    assert rebuilt == shipped


@pytest.mark.parametrize("name", SHIPPED or [pytest.param("none", marks=pytest.mark.skip(reason="no zoo model shipped"))])
def test_shipped_card_matches_the_recipe_table(name):
    """A recipe changed in the package's table (diffupose/resources/zoo_recipes.json) without
    re-exporting the model is caught here: the shipped card's preset, seed and overrides are the
    table's."""
    from diffupose.inference.recipes import recipe_for

    table, card = recipe_for(name, from_table=True), recipe_for(name)
    for key in ("preset", "seed", "prepare"):
        assert table[key] == card[key], key
    assert {k: str(v) for k, v in table["overrides"].items()} == card["overrides"]   # the card writes k=v text


def test_lift_card_records_the_model_layouts_and_warns_when_uncovered(tiny_zoo, tmp_path, caplog):
    """A model without train.input_layouts says so in one line for COCO input; the card records
    the model's layouts; a layout-aware model lifts a COCO file without any flag or warning."""
    from diffupose.lifting import layout_covered, model_layouts

    folder = tiny_zoo / "tiny-test"
    example = EXAMPLES / "coco17_S8_walking.json"
    with caplog.at_level("WARNING"):
        result = lift(example, str(folder), image_size=(1000, 1002), num_hypotheses=2, num_steps=2,
                      checkpoint="ema", device="cpu", progress=False)
    assert result.card["model_layouts"] == ["h36m17"] and result.card["layout_covered_by_model"] is False
    assert any("not trained on coco17 input" in r.getMessage() for r in caplog.records)
    assert layout_covered("coco_wholebody", ("h36m17", "coco17")) and layout_covered("h36m17", ("h36m17",))
    humaneva = Lifter.from_pretrained("humaneva")
    assert model_layouts(humaneva.config, humaneva.skeleton.name) == ("humaneva15",)     # its own 2D, not h36m17
    covered = {}
    for name in SHIPPED:
        if zoo.card(name)["skeleton"] != "h36m17":
            continue                     # COCO keypoints map to H36M-17 only
        cfg = load_model(zoo.model_dir(name), which="ema", select="latest")[1]
        covered[name] = "coco17" in model_layouts(cfg)
        caplog.clear()
        with caplog.at_level("WARNING"):
            res = lift(example, str(zoo.model_dir(name)), image_size=(1000, 1002), num_hypotheses=2, num_steps=2,
                       checkpoint="ema", device="cpu", progress=False)
        assert res.card["layout_covered_by_model"] is covered[name]
        assert any("not trained on" in r.getMessage() for r in caplog.records) is not covered[name]
    if "h36m-det" in covered:
        assert covered["h36m-det"]       # the in-the-wild model covers what most detectors write


def test_seed_spread_sits_beside_the_shipped_seed_on_the_card(benchmark_script, tiny_zoo):
    """benchmarks/zoo.py --seeds: per input, the shipped seed's card number first, then each
    extra seed's, their mean and sample sd; the card's README gets a Seeds section and the
    chooser's JSON the mean and sd."""
    bench = benchmark_script("zoo")
    shipped = {"seed": 0, "val_results": [
        {"input_2d": "detections", "num_hypotheses": 1, "mpjpe": 70.0},
        {"input_2d": "detections", "num_hypotheses": 10, "mpjpe": 66.0},
        {"input_2d": "GT", "num_hypotheses": 10, "mpjpe": 50.0}]}
    extra = {2: [{"input_2d": "detections", "num_hypotheses": 10, "mpjpe": 68.0},
                 {"input_2d": "GT", "num_hypotheses": 10, "mpjpe": 51.0}],
             1: [{"input_2d": "detections", "num_hypotheses": 10, "mpjpe": 67.0},
                 {"input_2d": "GT", "num_hypotheses": 10, "mpjpe": 52.0}]}
    entry = bench.seed_entry("m", shipped, extra, "cmd")
    assert entry["seeds"] == [0, 1, 2] and entry["shipped_seed"] == 0
    det = entry["per_input"]["detections"]
    assert det["mpjpe"] == [66.0, 67.0, 68.0] and det["mean"] == 67.0 and det["sd"] == 1.0
    assert entry["per_input"]["GT"]["mean"] == 51.0
    assert "p_mpjpe" not in det                                    # only when every row has it
    with_p = bench.seed_entry("m", {"seed": 0, "val_results": [{"input_2d": "GT", "num_hypotheses": 10, "mpjpe": 18.0,
                                                                 "p_mpjpe": 14.0}]},
                              {1: [{"input_2d": "GT", "num_hypotheses": 10, "mpjpe": 19.0, "p_mpjpe": 15.0}]}, "cmd")
    assert with_p["per_input"]["GT"]["p_mpjpe"] == [14.0, 15.0] and with_p["per_input"]["GT"]["p_mean"] == 14.5
    boundary = {"seed": 0, "val_results": [{"input_2d": "GT", "num_hypotheses": 10, "mpjpe": 50.84579}]}
    kept = bench.seed_entry("m", boundary, {1: [{"input_2d": "GT", "num_hypotheses": 10, "mpjpe": 51.0}]}, "cmd")
    assert f"{kept['per_input']['GT']['mpjpe'][0]:.1f}" == "50.8"    # as the card's validation table prints it
    with pytest.raises(SystemExit, match="seed 1 has no N = 10 row on GT"):
        bench.seed_entry("m", shipped, {1: extra[1][:1]}, "cmd")
    zoo.set_card_entry("tiny-test", "seeds", {**entry, "per_input": {"GT": entry["per_input"]["GT"]}}, root=tiny_zoo)
    readme = (tiny_zoo / "tiny-test" / "README.md").read_text()
    assert "## Seeds" in readme and "| GT | 50.0 | 50.0 / 52.0 / 51.0 | 51.0 ± 1.0 |" in readme
    assert "P-MPJPE |" not in readme
    assert zoo.model_summary("tiny-test", root=tiny_zoo)["seeds"] == {"GT": {"mean": 51.0, "sd": 1.0}}
    zoo.set_card_entry("tiny-test", "seeds", with_p, root=tiny_zoo)
    assert "| GT, P-MPJPE | 14.0 | 14.0 / 15.0 | 14.5 ± 0.7 |" in (tiny_zoo / "tiny-test" / "README.md").read_text()


def _cheapest_h36m_row():
    """(model, row) of the shipped Human3.6M model whose N = 1 card row costs least (fewest network
    evaluations per chain), or None."""
    best = None
    for name in SHIPPED:
        info = zoo.card(name)
        if info.get("prepare", {}).get("dataset") != "h36m":
            continue
        rows = [r for r in info.get("val_results", []) if r["num_hypotheses"] == 1]
        nfe = zoo.model_summary(name)["nfe"]
        if rows and (best is None or nfe < best[0]):
            best = (nfe, name, rows[0])
    return None if best is None else best[1:]


def test_a_cards_evaluate_command_reproduces_its_number(shared_data, tmp_path):
    """The card's own commands, run as a user would (its prepare command on ../shared/data, then
    its evaluate command through the CLI), give the card's number (the cheapest shipped
    Human3.6M model's N = 1 row; the others were checked by hand, benchmarks/record/zoo.md)."""
    import shlex

    pick = _cheapest_h36m_row()
    if pick is None:
        pytest.skip("no Human3.6M zoo model with an N = 1 row is shipped")
    name, row = pick
    info = zoo.card(name)
    prep = shlex.split(info["prepare_command"])
    data_dir = Path(prep[prep.index("--data-dir") + 1])
    data_dir = shared_data / data_dir.name if not data_dir.is_absolute() else data_dir
    require_file(data_dir)
    prep[prep.index("--data-dir") + 1] = str(data_dir)
    data = tmp_path / "data.npz"
    prep[prep.index("--out") + 1] = str(data)
    assert cli_main(prep[1:]) in (0, None)
    cmd = shlex.split(row["command"])
    cmd[cmd.index("--data") + 1] = str(data)
    out = tmp_path / "eval.json"
    assert cli_main(cmd[1:] + ["--json", str(out)]) in (0, None)
    got = json.loads(out.read_text())["per_action"]["MPJPE"][AVERAGE]
    assert got == pytest.approx(row["mpjpe"], abs=0.05), (name, row["command"])


def test_a_folder_named_like_a_model_does_not_hide_it_but_a_run_does(tmp_path, monkeypatch, caplog):
    import logging

    monkeypatch.chdir(tmp_path)
    (tmp_path / "h36m").mkdir()                                   # e.g. the user's dataset folder
    assert zoo.is_zoo_name("h36m") and zoo.model_path("h36m") == zoo.ZOO_DIR / "h36m"
    (tmp_path / "h36m" / "checkpoint" / "latest").mkdir(parents=True)      # now a run folder
    with caplog.at_level(logging.WARNING, logger="diffupose.zoo"):
        assert not zoo.is_zoo_name("h36m")
    assert "is used, not the shipped model h36m" in caplog.text
    assert not zoo.is_zoo_name("./h36m")


def test_the_card_protocol_says_every_row_when_the_split_is_small(benchmark_script, synthetic_npz):
    from diffupose.data.prepared import load_prepared

    bench = benchmark_script("zoo")
    rows = len(load_prepared(synthetic_npz).select("val"))
    assert bench.protocol_rows(synthetic_npz, 10000) == f"all {rows:,} rows"
    assert bench.protocol_rows(synthetic_npz, rows - 1) == f"a seeded {rows - 1:,}-sample subset"
