"""The one evaluation entry (`scoring.open_run`) and the batched scoring loop (`score_batches`)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from diffupose.model.checkpoint import save_checkpoint
from diffupose.config import Config, EvalConfig, ModelConfig
from diffupose.data.prepared import load_prepared
from diffupose.errors import ConfigError, DataError
from diffupose.model import build_denoiser
from diffupose.evaluation.scoring import (BatchScores, action_order, batch_ranges, open_run, score_batches,
                                         select_indices)
from diffupose.geometry.skeleton import H36M17, HUMANEVA15

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory holding an untrained H36M-17 model (weights 'latest', chosen on val)."""
    torch.manual_seed(0)
    cfg = Config(model=ModelConfig(dim=32, num_blocks=1))
    denoiser = build_denoiser(cfg.model, H36M17)
    run = tmp_path_factory.mktemp("run") / "run"
    save_checkpoint(run / "checkpoint" / "latest", model=denoiser, ema_model=denoiser, optimizer=None, step=0,
                    epoch=0, config=cfg, skeleton=H36M17)
    return run


def test_open_run_selects_the_seeded_subset_and_says_what_it_opened(run_dir, synthetic_npz):
    ev = EvalConfig(checkpoint="ema", max_samples=25, seed=3, num_hypotheses=2)
    run = open_run(run_dir, synthetic_npz, "test", ev, device="cpu")
    whole = load_prepared(synthetic_npz)
    expected = whole.select(split="test", max_samples=25, seed=3)
    np.testing.assert_array_equal(run.data.keypoints_2d, expected.keypoints_2d)
    np.testing.assert_array_equal(run.index, select_indices(whole, "test", 25, 3))
    assert len(run.source) == len(whole) and run.settings.num_hypotheses == 2 and run.ev is ev
    assert run.data_card()["split"] == "test" and run.data_card()["skeleton"] == "h36m17"
    assert run.checkpoint_card() == {"checkpoint": {"path": str(run_dir), "checkpoint": "ema", "selected_on": None},
                                     "checkpoint_selected_on": "none (no selection)"}


def test_open_run_refuses_best_on_its_split_empty_splits_and_other_skeletons(run_dir, synthetic_npz, tmp_path):
    with pytest.raises(ConfigError, match="chosen on split 'val'"):
        open_run(run_dir, synthetic_npz, "val", EvalConfig(checkpoint="best"), device="cpu")
    with pytest.raises(DataError, match="'nope' is empty"):
        open_run(run_dir, synthetic_npz, "nope", EvalConfig(checkpoint="ema"), device="cpu")
    with pytest.raises(ConfigError, match="max_samples"):
        open_run(run_dir, synthetic_npz, "test", EvalConfig(max_samples=-1), device="cpu")
    torch.manual_seed(0)
    cfg = Config(model=ModelConfig(dim=32, num_blocks=1))
    other = (build_denoiser(cfg.model, HUMANEVA15), cfg, HUMANEVA15)
    with pytest.raises(DataError, match="does not match the model's 'humaneva15'"):
        open_run(other, synthetic_npz, "test", EvalConfig(max_samples=4), device="cpu")


def test_score_batches_files_per_sample_values_and_sums_in_order():
    seen = []

    def score(scores: BatchScores, start, stop, values):
        seen.append((start, stop))
        scores.put("x", start, stop, values * 2.0)
        scores.put(("pair", "int"), start, stop, np.arange(start, stop, dtype=np.int32)[:, None].repeat(2, 1))
        scores.add("sum", values.sum(axis=0))

    data = np.arange(10, dtype=np.float32).reshape(5, 2)
    scores = score_batches(((a, b, data[a:b]) for a, b in batch_ranges(5, 2)), 5, score)
    assert seen == [(0, 2), (2, 4), (4, 5)]
    np.testing.assert_array_equal(scores.per_sample["x"], data * 2.0)
    assert scores.per_sample["x"].dtype == np.float32 and scores.per_sample[("pair", "int")].shape == (5, 2)
    np.testing.assert_array_equal(scores.sums["sum"], data.sum(axis=0))


def test_action_order_is_the_papers():
    assert action_order(["Walking", "Jog"])[:3] == ("Walking", "Jog", "Box")
    assert action_order(["Walking"], "h36m")[0] == "Directions"
    assert action_order(["Walking"], "HumanEva-I")[0] == "Walking"
