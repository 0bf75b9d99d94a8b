"""Seeded fuzz over `lift`'s readers (issue 21): 200 random keypoint inputs (arrays in .npy and
.json, COCO results, OpenPose files and folders, random bytes) with random shapes, NaN / inf /
huge values, wrong types in JSON and random options, lifted by a tiny in-memory model. Every case
must either succeed with every requested file written and finite, or raise a one-line
DataError / ConfigError with nothing left behind in the output folder. Anything else (a raw
traceback) fails the test and names the seed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffupose.data import keypoints as K
from diffupose.errors import ConfigError, DataError
from diffupose.lifting import lift
from diffupose.geometry.skeleton import H36M17

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CASES = 200
SIZE = (1000, 1002)
JOINTS = {"coco17": 17, "coco_wholebody": 133, "halpe26": 26, "body25": 25, "mpii16": 16, "h36m17": 17,
          "humaneva15": 15}
BAD_VALUES = (np.nan, np.inf, -np.inf, 1e30, -1e30, 3e6, 6000.0, -2500.0, 0.0)
BAD_JSON = ("x", None, True, {}, [], [1.0, 2.0], 10 ** 400, "NaN", -1, 1e308)


@pytest.fixture(scope="module")
def tiny_lifter():
    """A randomly initialised tiny-preset model: lifting needs no training to be exercised."""
    import torch

    from diffupose.config import preset
    from diffupose.inference import Lifter
    from diffupose.model import build_denoiser

    torch.manual_seed(0)
    config = preset("tiny")
    return Lifter.from_model(build_denoiser(config.model, H36M17), config, H36M17)


def _poses(rng, n: int) -> np.ndarray:
    """(n, 17, 2) plausible H36M-17 pixel poses."""
    base = K.MEAN_POSE_2D_H36M17 * rng.uniform(60, 150) + rng.uniform(200, 800, size=2)
    return base[None] + rng.normal(0, 3.0, size=(n, 17, 2))


def _corrupt(rng, values: np.ndarray) -> np.ndarray:
    """Put a few bad numbers (NaN, inf, huge, off-image) into a float array."""
    values = values.copy()
    for _ in range(int(rng.integers(1, 4))):
        values.flat[int(rng.integers(values.size))] = BAD_VALUES[int(rng.integers(len(BAD_VALUES)))]
    return values


def _array(rng, fmt: str, scored: bool = False) -> np.ndarray:
    """(N, J, 2|3) in `fmt`'s layout, scores as third value (always when `scored`) or not; sometimes
    the wrong shape."""
    n = int(rng.integers(1, 6))
    xy = K.from_h36m17(_poses(rng, n), fmt)
    scores = np.where(np.isfinite(xy).all(axis=-1), rng.uniform(0.4, 1.0, size=xy.shape[:2]), 0.0)
    arr = np.concatenate([np.nan_to_num(xy), scores[..., None]], axis=-1) if scored or rng.random() < 0.6 else xy
    if rng.random() < 0.1:                                      # a wrong shape
        shapes = [(n, int(rng.integers(1, 40)), arr.shape[-1]), (n, arr.shape[1], int(rng.integers(1, 6))),
                  (arr.shape[1] * 2,), (1, n, arr.shape[1], arr.shape[-1]), (0, arr.shape[1], 2)]
        shape = shapes[int(rng.integers(len(shapes)))]
        arr = rng.uniform(0, 1000, size=shape)
    if rng.random() < 0.1 and arr.ndim == 3 and arr.shape[-1] == 3:   # a score out of [0, 1]
        arr[int(rng.integers(len(arr))), int(rng.integers(arr.shape[1])), 2] = rng.choice([-1.0, 3.0, np.inf])
    if rng.random() < 0.3:
        arr = _corrupt(rng, arr) if arr.size else arr
    return arr


def _jsonify(rng, value):
    """Plain JSON data; now and then one element replaced by a wrong type."""
    data = value.tolist() if isinstance(value, np.ndarray) else value
    if rng.random() < 0.2 and isinstance(data, list) and data:
        flat = data
        while isinstance(flat, list) and flat and isinstance(flat[0], list) and rng.random() < 0.8:
            flat = flat[int(rng.integers(len(flat)))]
        if isinstance(flat, list) and flat:
            flat[int(rng.integers(len(flat)))] = BAD_JSON[int(rng.integers(len(BAD_JSON)))]
    return data


def _triplets(rng, fmt: str) -> list[list]:
    arr = _array(rng, fmt, scored=True)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        return [_jsonify(rng, arr.reshape(-1))]
    rows = [[float(v) for v in row.reshape(-1)] for row in arr]
    return [_jsonify(rng, row) for row in rows]


def _write_case(rng, folder: Path) -> tuple[Path, str]:
    """One random keypoint file or folder under `folder`, and its kind."""
    folder.mkdir(parents=True)
    kind = rng.choice(["npy", "json_array", "coco", "openpose", "openpose_dir", "garbage"],
                      p=[0.25, 0.15, 0.25, 0.12, 0.17, 0.06])
    fmt = rng.choice(list(JOINTS))
    if kind == "npy":
        path = folder / "kp.npy"
        arr = _array(rng, fmt)
        np.save(path, arr.astype(rng.choice([np.float64, np.float32, np.int64])) if rng.random() < 0.2
                and np.isfinite(arr).all() and np.abs(arr).max(initial=0) < 1e15 else arr)
    elif kind == "json_array":
        path = folder / "kp.json"
        data = _jsonify(rng, _array(rng, fmt))
        path.write_text(json.dumps({"keypoints": data} if rng.random() < 0.3 else data))
    elif kind == "coco":
        path = folder / "coco.json"
        fmt = rng.choice(["coco17", "halpe26", "coco_wholebody"])
        entries = [{"image_id": int(rng.integers(0, 4)), "category_id": 1, "keypoints": row,
                    "score": float(rng.uniform(0, 1))} for row in _triplets(rng, fmt)]
        for e in entries:
            if rng.random() < 0.1:
                e[rng.choice(["image_id", "keypoints", "score"])] = BAD_JSON[int(rng.integers(len(BAD_JSON)))]
            if rng.random() < 0.05:
                del e[rng.choice(["image_id", "keypoints"])]
        doc = {"annotations": entries} if rng.random() < 0.2 else entries
        path.write_text(json.dumps(doc))
    elif kind in ("openpose", "openpose_dir"):
        files = int(rng.integers(1, 4)) if kind == "openpose_dir" else 1
        path = folder / "op" if kind == "openpose_dir" else folder / "op.json"
        if kind == "openpose_dir":
            path.mkdir()
        for f in range(files):
            count = int(rng.choice([0, 1, 2], p=[0.1, 0.8, 0.1]))
            people = [{"pose_keypoints_2d": row} for row in _triplets(rng, "body25")[:count]]
            if rng.random() < 0.1:
                people = BAD_JSON[int(rng.integers(len(BAD_JSON)))]
            text = json.dumps({"version": 1.3, "people": people})
            (path / f"f_{f:03d}_keypoints.json" if kind == "openpose_dir" else path).write_text(text)
    else:
        path = folder / rng.choice(["junk.json", "junk.npy"])
        path.write_bytes(rng.bytes(int(rng.integers(0, 300))))
    return path, str(kind)


def _options(rng) -> dict:
    image_size = SIZE if rng.random() < 0.92 else [None, (0, 100), (-5, 5), (1000.5, 2)][int(rng.integers(4))]
    return {
        "format": None if rng.random() < 0.75 else str(rng.choice(list(JOINTS) + ["coco18"])),
        "image_size": image_size,
        "min_score": float(rng.choice([0.0, 0.3, 0.95, 1.5], p=[0.3, 0.55, 0.1, 0.05])),
        "people": str(rng.choice(["all", "all", "best", "everyone"])),
        "outputs": tuple(rng.choice(["npz", "json", "bvh"], size=int(rng.integers(1, 4)), replace=False))
        + (("html",) if rng.random() < 0.03 else ()),
    }


def test_200_seeded_cases_end_in_success_or_a_one_line_error(tmp_path, tiny_lifter):
    outcomes = {"ok": 0, "error": 0}
    messages, lifted = set(), set()
    for seed in range(CASES):
        rng = np.random.default_rng(seed)
        case = tmp_path / f"case{seed:03d}"
        path, kind = _write_case(rng, case / "in")
        options = _options(rng)
        out_dir = case / "out"
        try:
            result = lift(path, lifter=tiny_lifter, out=out_dir / "clip", num_hypotheses=2, num_steps=2,
                          progress=False, **options)
        except (DataError, ConfigError) as e:
            msg = str(e)
            assert msg and "\n" not in msg, f"seed {seed}: not one line: {msg!r}"
            assert not out_dir.exists(), f"seed {seed}: {msg} but left {sorted(out_dir.iterdir())}"
            outcomes["error"] += 1
            messages.add(msg.replace(str(path), "<file>")[:60])
            continue
        except Exception as e:  # the point of the test: anything else is a raw traceback
            raise AssertionError(f"seed {seed}: raw {type(e).__name__}: {e} ({options})") from e
        outcomes["ok"] += 1
        lifted.add(kind)
        expected = {f"clip.{fmt}" for fmt in options["outputs"]} | (
            {"plotly.min.js"} if "html" in options["outputs"] else set())
        assert {p.name for p in out_dir.iterdir()} == expected, f"seed {seed}"   # no temporaries either
        assert set(result.files) == set(options["outputs"]) and result.card["layout"]
        for name in ("hypotheses", "aggregate", "spread", "keypoints_2d"):
            assert np.isfinite(getattr(result, name)).all(), f"seed {seed}: {name}"
        # only plausible image coordinates got through (derived joints may extrapolate a little)
        assert np.abs(result.keypoints_2d).max() <= 5 * K.MAX_NORMALISED, f"seed {seed}"
        if "npz" in options["outputs"]:
            with np.load(out_dir / "clip.npz", allow_pickle=False) as f:
                assert np.isfinite(f["hypotheses"]).all() and f["hypotheses"].shape[0] == len(result)
        if "json" in options["outputs"]:
            assert json.loads((out_dir / "clip.json").read_text())["card"]["layout"] == result.card["layout"]
    # both paths are exercised: every reader lifts something, and many different refusals
    assert outcomes["ok"] >= 30 and outcomes["error"] >= 60, outcomes
    assert lifted == {"npy", "json_array", "coco", "openpose", "openpose_dir"}, lifted
    assert len(messages) >= 15, sorted(messages)
