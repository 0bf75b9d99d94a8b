"""End to end: a tiny untrained denoiser evaluated on tiny prepared files."""
import csv
import json

import numpy as np
import pytest
import torch

from diffupose.inference.aggregate import project_perspective
from diffupose.config import Config, EvalConfig, ModelConfig
from diffupose.data.prepared import save_prepared
from diffupose.errors import ConfigError, DataError
from diffupose.evaluation.protocols import EvalResult, compare_with_paper, evaluate, official_oracle_pose
from diffupose.model import build_denoiser
from diffupose.evaluation.reference import H36M_ACTIONS
from diffupose.geometry.skeleton import H36M17, HUMANEVA15

EVAL = EvalConfig(sampler="ddim", num_steps=2, num_hypotheses=2, flip=True, batch_size=16, seed=0)


def _arrays(skeleton, actions, subjects, per_cell, intrinsics, seed=0, split="test"):
    rng = np.random.default_rng(seed)
    rows = [(a, s) for a in actions for s in subjects for _ in range(per_cell)]
    n, j = len(rows), skeleton.num_joints
    poses = (rng.normal(size=(n, j, 3)) * 0.2).astype(np.float32)
    poses[:, 0] = 0.0
    root = np.column_stack([rng.uniform(-0.5, 0.5, n), rng.uniform(-0.5, 0.5, n), rng.uniform(4, 6, n)])
    k = np.tile(np.asarray(intrinsics, dtype=np.float64), (n, 1))
    if np.isfinite(k).all():
        kp = project_perspective(poses + root[:, None], k)
    else:
        kp = 0.4 * poses[..., :2]
    return {
        "poses_3d": poses, "keypoints_2d": kp.astype(np.float32),
        "subject": np.array([s for _, s in rows]), "action": np.array([a for a, _ in rows]),
        "camera": np.array(["c1"] * n), "sequence": np.array([f"{s}/{a}" for a, s in rows]),
        "frame": np.arange(n, dtype=np.int32), "split": np.array([split] * n),
        "intrinsics": k.astype(np.float32), "root_position": root.astype(np.float32),
        "skeleton": skeleton.name, "meta": {"keypoints": "gt", "keypoints_source": "projection"},
    }


@pytest.fixture(scope="module")
def h36m_file(tmp_path_factory):
    # Three actions with unequal frame counts (2, 3 and 5 frames per subject) over two subjects.
    path = tmp_path_factory.mktemp("data") / "tiny_h36m.npz"
    parts = [_arrays(H36M17, [a], ["S9", "S11"], count, [2.3, 2.3, 0.0, 0.0], seed=i)
             for i, (a, count) in enumerate([("Walking", 2), ("Directions", 3), ("Eating", 5)])]
    train = _arrays(H36M17, ["Walking"], ["S1"], 2, [2.3, 2.3, 0.0, 0.0], seed=9, split="train")
    merged = {k: (np.concatenate([p[k] for p in parts + [train]]) if isinstance(parts[0][k], np.ndarray) else parts[0][k])
              for k in parts[0]}
    merged["dataset"] = "h36m"
    save_prepared(path, merged)
    return path


@pytest.fixture(scope="module")
def humaneva_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny_humaneva.npz"
    arrays = _arrays(HUMANEVA15, ["Walking", "Jog", "Box"], ["S1", "S2", "S3"], 1, [np.nan] * 4)
    arrays["split"] = np.array(["test"] * len(arrays["split"]))
    arrays["dataset"] = "humaneva"
    save_prepared(path, arrays)
    return path


def _model(skeleton):
    torch.manual_seed(0)
    cfg = Config(model=ModelConfig(dim=32, num_blocks=1))  # the smallest width the time embedding allows
    return build_denoiser(cfg.model, skeleton), cfg


@pytest.fixture(scope="module")
def h36m_result(h36m_file):
    denoiser, cfg = _model(H36M17)
    return evaluate((denoiser, cfg), h36m_file, eval_cfg=EVAL, device="cpu", progress=False)


def test_table_layout_and_average(h36m_result):
    res = h36m_result
    assert set(res.per_action) >= {"MPJPE", "P-MPJPE"}
    table = res.per_action["MPJPE"]
    # Columns in the paper's order, then Average.
    assert list(table) == [a for a in H36M_ACTIONS if a in table] + ["Average"]
    assert list(table)[:3] == ["Directions", "Eating", "Walking"]
    for metric in ("MPJPE", "P-MPJPE"):
        t = res.per_action[metric]
        values = [v for k, v in t.items() if k != "Average"]
        assert t["Average"] == pytest.approx(np.mean(values))
        # Per action = frame mean over subjects.
        errs, acts = res.per_sample[metric], res.per_sample["action"]
        for action in ["Walking", "Directions", "Eating"]:
            assert t[action] == pytest.approx(errs[acts == action].mean())
    # The headline is not the frame-weighted mean (counts are unequal).
    assert res.per_action["MPJPE"]["Average"] != pytest.approx(res.per_sample["MPJPE"].mean(), rel=1e-9)
    assert set(res.per_subject["MPJPE"]) == {"S9", "S11", "Average"}
    assert res.per_action["P-MPJPE"]["Average"] <= res.per_action["MPJPE"]["Average"]
    assert res.subject_action["MPJPE"]["Walking"].keys() >= {"S9", "S11"}
    assert len(res.per_joint["MPJPE"]) == 17 and "left_wrist" in res.per_joint["MPJPE"]


def test_hypotheses_and_card(h36m_result):
    res = h36m_result
    hyp = res.hypotheses
    assert hyp["num_hypotheses"] == 2 and hyp["samples_per_hypothesis"] == 2
    assert "oracle_best_of_h" in hyp["oracle_keys"] and "ground truth" in hyp["oracle_note"]
    # Aggregation is the mean, so the error of the mean of hypotheses is the MPJPE.
    assert hyp["mean_of_hypotheses"]["Average"] == pytest.approx(res.per_action["MPJPE"]["Average"])
    assert hyp["spread"]["Average"] > 0 and len(hyp["per_joint_spread"]) == 17
    card = res.card
    for key in ("dataset", "data_file", "split", "keypoints_2d_source", "num_hypotheses", "aggregation", "flip",
                "sampler", "num_steps", "eta", "protocol", "oracle", "checkpoint", "seed", "num_samples",
                "git_commit", "device", "poses_per_second"):
        assert key in card, key
    assert card["dataset"] == "h36m" and card["split"] == "test" and card["num_samples"] == 20
    assert card["sampler"] == "ddim" and card["num_steps"] == 2 and card["flip"] is True
    assert card["oracle"] is False and card["uses_ground_truth"] is False
    assert card["keypoints_2d_source"] == "gt" and card["checkpoint"]["checkpoint"] == "in-memory"
    assert res.poses_per_second > 0


def test_seeded_and_deterministic(h36m_file, h36m_result):
    denoiser, cfg = _model(H36M17)
    again = evaluate((denoiser, cfg), h36m_file, eval_cfg=EVAL, device="cpu", progress=False)
    assert again.per_action == h36m_result.per_action


def test_json_csv_round_trip(h36m_result, tmp_path):
    path = h36m_result.to_json(tmp_path / "out" / "eval.json")
    back = EvalResult.from_json(path)
    assert back.per_action == h36m_result.per_action
    assert back.subject_action == h36m_result.subject_action
    assert back.card["num_samples"] == 20 and back.card["oracle"] is False
    assert back.card["num_nan_samples"] == 0 and back.card["precision"].split(" -> ")[1] in ("bf16", "fp32")
    assert [p.name for p in path.parent.iterdir()] == ["eval.json"]  # no temp files left
    rows = list(csv.DictReader(open(h36m_result.to_csv(tmp_path / "eval.csv"))))
    avg = [r for r in rows if r["metric"] == "MPJPE" and r["action"] == "Average" and r["subject"] == "all"]
    assert len(avg) == 1 and float(avg[0]["value_mm"]) == pytest.approx(h36m_result.per_action["MPJPE"]["Average"], abs=1e-3)
    assert rows[0]["dataset"] == "h36m" and rows[0]["protocol"] == "gt_free" and rows[0]["num_nan_samples"] == "0"
    text = h36m_result.format_table()
    assert "| MPJPE |" in text and "Dir." in text and "ORACLE" in text and "protocol: gt_free" in text
    json.loads(path.read_text())  # strict JSON


def test_official_oracle_flagged_and_gt_backprojection(h36m_file, h36m_result):
    denoiser, cfg = _model(H36M17)
    ev = EvalConfig(**{**EVAL.__dict__, "protocol": "official_oracle"})
    res = evaluate((denoiser, cfg), h36m_file, eval_cfg=ev, device="cpu", progress=False)
    assert res.card["oracle"] is True and res.card["uses_ground_truth"] is True
    assert res.card["protocol"] == "official_oracle"
    # With exact 2D, x/y become exact: only depth errors are left, so the error drops.
    assert res.per_action["MPJPE"]["Average"] < h36m_result.per_action["MPJPE"]["Average"]


def test_official_oracle_pose_exact_with_exact_depth():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(4, 17, 3)) * 0.2
    gt[:, 0] = 0
    root = np.column_stack([rng.normal(size=4) * 0.3, rng.normal(size=4) * 0.3, np.full(4, 5.0)])
    k = np.tile([2.3, 2.2, 0.05, -0.03], (4, 1))
    kp = project_perspective(gt + root[:, None], k)
    pred = gt.copy()
    pred[..., :2] += 0.1  # x, y wrong, depth right
    np.testing.assert_allclose(official_oracle_pose(pred, kp, k, root[:, 2]), gt, atol=1e-9)


def test_official_oracle_needs_intrinsics(humaneva_file):
    denoiser, cfg = _model(HUMANEVA15)
    ev = EvalConfig(**{**EVAL.__dict__, "protocol": "official_oracle"})
    with pytest.raises(ConfigError, match="intrinsics"):
        evaluate((denoiser, cfg), humaneva_file, eval_cfg=ev, device="cpu", progress=False)


def test_humaneva_table3_layout(humaneva_file):
    denoiser, cfg = _model(HUMANEVA15)
    ev = EvalConfig(**{**EVAL.__dict__, "aggregate": "reproject"})
    res = evaluate((denoiser, cfg), humaneva_file, eval_cfg=ev, device="cpu", progress=False)
    cells = res.subject_action["P-MPJPE"]
    assert list(cells) == ["Walking", "Jog", "Box", "Average"]
    assert list(cells["Walking"]) == ["S1", "S2", "S3", "Average"]
    assert "Walk S1" in res.format_table()
    rows = compare_with_paper(res, "table3")
    assert len(rows) == 9 and rows[0]["column"] == "Walk S1" and rows[0]["paper_row"] == "N=1"
    assert rows[0]["paper_mm"] == 13.6 and rows[0]["ours_mm"] == pytest.approx(cells["Walking"]["S1"])


def test_compare_with_paper_table1_and_2(h36m_result):
    rows = compare_with_paper(h36m_result, "table1")
    assert len(rows) == 2 * 16 and {r["paper_row"] for r in rows} == {"Ours (N=1)"}
    walking = [r for r in rows if r["metric"] == "MPJPE" and r["column"] == "Walking"][0]
    assert walking["paper_mm"] == 44.0
    assert walking["difference_mm"] == pytest.approx(walking["ours_mm"] - 44.0)
    missing = [r for r in rows if r["column"] == "Sitting"][0]
    assert missing["ours_mm"] is None and missing["difference_mm"] is None
    rows2 = compare_with_paper(h36m_result, "table2")
    assert [r for r in rows2 if r["column"] == "Average"][0]["paper_mm"] == 37.3
    with pytest.raises(ConfigError):
        compare_with_paper(h36m_result, "table9")


def test_empty_split_names_file_and_split(h36m_file):
    denoiser, cfg = _model(H36M17)
    with pytest.raises(DataError) as e:
        evaluate((denoiser, cfg), h36m_file, split="val", eval_cfg=EVAL, device="cpu", progress=False)
    msg = str(e.value)
    assert str(h36m_file) in msg and "'val'" in msg and "\n" not in msg


@pytest.mark.parametrize("field,value", [("sampler", "euler"), ("aggregate", "best"), ("protocol", "cheat")])
def test_unknown_names_one_line_config_error(h36m_file, field, value):
    denoiser, cfg = _model(H36M17)
    ev = EvalConfig(**{**EVAL.__dict__, field: value})
    with pytest.raises(ConfigError) as e:
        evaluate((denoiser, cfg), h36m_file, eval_cfg=ev, device="cpu", progress=False)
    assert value in str(e.value) and "\n" not in str(e.value)


def test_max_samples_and_eval_defaults_from_config(h36m_file):
    denoiser, cfg = _model(H36M17)
    cfg = Config(model=cfg.model, eval=EvalConfig(num_steps=1, num_hypotheses=1, flip=False, max_samples=7))
    res = evaluate((denoiser, cfg), h36m_file, device="cpu", progress=False)
    assert res.card["num_samples"] == 7 and res.card["num_hypotheses"] == 1 and res.card["flip"] is False
    assert res.hypotheses["oracle_best_of_h"]["Average"] == pytest.approx(res.per_action["MPJPE"]["Average"])


def test_evaluate_from_run_directory(h36m_file, tmp_path):
    from diffupose.model.checkpoint import save_checkpoint

    denoiser, cfg = _model(H36M17)
    save_checkpoint(tmp_path / "run" / "checkpoint" / "latest", model=denoiser, ema_model=denoiser, optimizer=None,
                    step=0, epoch=0, config=cfg, skeleton=H36M17)
    res = evaluate(tmp_path / "run", h36m_file, eval_cfg=EVAL, device="cpu", progress=False)
    assert res.card["checkpoint"] == {"path": str(tmp_path / "run"), "checkpoint": "best", "selected_on": "val"}
    assert res.card["checkpoint_selected_on"] == "val" and res.card["split"] == "test"
    in_memory = evaluate((denoiser, cfg), h36m_file, eval_cfg=EVAL, device="cpu", progress=False)
    for action, value in in_memory.per_action["MPJPE"].items():
        assert res.per_action["MPJPE"][action] == pytest.approx(value, rel=1e-5)


H36M_DIR = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data" / "h36m"


@pytest.mark.realdata
def test_real_h36m_camera_geometry():
    """Real cameras: the root translation is recovered from ground-truth 2D and pose, and the
    released back-projection reproduces the ground truth up to lens distortion."""
    if not (H36M_DIR / "h36m_3d17_train.npz").is_file():
        pytest.skip(f"{H36M_DIR} has no h36m_3d17_train.npz")
    from diffupose.inference.aggregate import estimate_root_translation
    from diffupose.data.h36m import load_h36m
    from diffupose.evaluation.metrics import mpjpe

    data = load_h36m(H36M_DIR, subjects=["S1"], actions=["Walking"], stride=100)
    gt = data.poses_3d.astype(np.float64)
    root = estimate_root_translation(gt, data.keypoints_2d, data.intrinsics)
    assert np.abs(root - data.root_position).max(axis=0)[:2].max() < 0.02  # x, y within 2 cm
    assert np.abs(root - data.root_position)[:, 2].mean() < 0.15  # depth: distortion is ignored
    back = official_oracle_pose(gt, data.keypoints_2d, data.intrinsics, data.root_position[:, 2])
    assert mpjpe(back, gt).mean() * 1000 < 10.0
