"""Training loop: it learns, resumes bit-identically, is seeded, schedules the lr, logs, and
keeps the best checkpoint by validation on held-out training data."""
from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from diffupose.model.checkpoint import BEST, CHECKPOINT_DIR, LATEST, load_model
from diffupose.config import apply_overrides, preset
from diffupose.data.prepared import load_prepared
from diffupose.diffusion import NoiseSchedule, sample
from diffupose.model.ema import ema_decay, make_ema
from diffupose.errors import ConfigError
from diffupose.training import TrainingDiverged
from diffupose.evaluation.metrics import mpjpe
from diffupose.model import build_denoiser
from diffupose.training import (HISTORY_KEYS, build_lr_scheduler, epoch_indices, load_training_data, lr_factor,
                                read_history, train, validate)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(npz, **overrides):
    return preset("tiny", {"data.path": str(npz), **overrides})


def _test_mpjpe(model, cfg, npz, n=256) -> float:
    """mm, mean of 2 DDIM hypotheses on the first n test samples (fixed noise)."""
    test = load_prepared(npz).select(split="test", max_samples=n, seed=0)
    schedule = NoiseSchedule.from_config(cfg.diffusion)
    hyps = sample(model, schedule, torch.from_numpy(test.keypoints_2d), num_hypotheses=2, sampler="ddim",
                  num_steps=5, generator=torch.Generator().manual_seed(0))
    return 1000 * float(mpjpe(hyps.mean(dim=1), test.poses_3d).mean())


# ---------------------------------------------------------------- one real (tiny) training run

@pytest.fixture(scope="module")
def trained(synthetic_npz, tmp_path_factory):
    cfg = _cfg(synthetic_npz, **{"model.dim": 64, "train.lr": 3e-3, "train.max_steps": 200,
                                 "train.val_every": 50, "train.checkpoint_every": 100, "train.log_every": 25})
    run_dir = tmp_path_factory.mktemp("run")
    result = train(cfg, run_dir, progress=False)
    return cfg, run_dir, result


def test_tiny_training_learns(trained, synthetic_npz):
    cfg, run_dir, result = trained
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        untrained = build_denoiser(cfg.model, load_prepared(synthetic_npz).skeleton).eval()
    model, _, _ = load_model(run_dir)           # best EMA weights
    before, after = _test_mpjpe(untrained, cfg, synthetic_npz), _test_mpjpe(model, cfg, synthetic_npz)
    assert after < 0.5 * before, (before, after)
    vals = [r["val_mpjpe"] for r in result.history if r["val_mpjpe"] is not None]
    assert len(vals) == 4 and min(vals) < 0.5 * vals[0], vals
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < 0.8 * losses[0], losses


def test_history_and_run_files(trained):
    cfg, run_dir, result = trained
    rows = read_history(run_dir)
    assert rows == result.history
    assert [r["step"] for r in rows] == list(range(25, 201, 25))
    for r in rows:
        assert set(r) == set(HISTORY_KEYS)
        assert math.isfinite(r["loss"]) and abs(r["loss"] - r["loss_eps"] - r["loss_2d"]) < 1e-4
        assert r["samples_per_s"] > 0 and r["lr"] > 0
    assert [r["step"] for r in rows if r["val_mpjpe"] is not None] == [50, 100, 150, 200]
    assert all(r["val_loss"] > 0 for r in rows if r["val_mpjpe"] is not None)
    assert (run_dir / "config.json").is_file() and (run_dir / "environment.json").is_file()
    assert result.steps == 200 and result.wall_time_s > 0


def test_best_checkpoint_is_chosen_by_val(trained):
    cfg, run_dir, result = trained
    vals = {r["step"]: r["val_mpjpe"] for r in result.history if r["val_mpjpe"] is not None}
    best_step = min(vals, key=vals.get)
    best = torch.load(run_dir / CHECKPOINT_DIR / BEST / "state.pt", weights_only=True)
    latest = torch.load(run_dir / CHECKPOINT_DIR / LATEST / "state.pt", weights_only=True)
    assert best["step"] == best_step and latest["step"] == 200
    assert result.best_val_mpjpe == pytest.approx(vals[best_step])
    assert latest["extra"]["best_val_mpjpe"] == pytest.approx(vals[best_step])
    # the EMA weights saved as `best` are those validated at best_step: re-validating them
    # reproduces that number exactly (validation uses a fixed-seed generator)
    ema, _, _ = load_model(run_dir, which="ema", select=BEST)
    data = load_training_data(cfg, torch.device("cpu"))
    weights = torch.tensor(data.skeleton.loss_weights, dtype=torch.float32)
    val_mpjpe, _ = validate(ema, NoiseSchedule.from_config(cfg.diffusion), data, cfg, weights)
    assert val_mpjpe == pytest.approx(vals[best_step], rel=1e-6)


# ---------------------------------------------------------------- exact resume and determinism

def _small(npz, **overrides):
    # 4,608 flip-doubled training samples / (128 x 2) = 18 steps per epoch: 20 steps cross one.
    base = {"train.batch_size": 128, "train.grad_accum": 2, "train.max_steps": 20, "train.warmup_steps": 4,
            "train.val_every": 5, "train.checkpoint_every": 7, "train.log_every": 1, "data.max_val_samples": 32,
            "train.val_steps": 2}
    return _cfg(npz, **{**base, **overrides})


def _weights(run_dir):
    d = run_dir / CHECKPOINT_DIR / LATEST
    out = {f"model.{k}": v for k, v in load_file(d / "model.safetensors").items()}
    out.update({f"ema.{k}": v for k, v in load_file(d / "ema.safetensors").items()})
    state = torch.load(d / "state.pt", weights_only=True)
    for i, s in state["optimizer"]["state"].items():
        out.update({f"adam.{i}.{k}": v for k, v in s.items()})
    return out, state


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


@pytest.fixture(scope="module")
def straight(synthetic_npz, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("straight")
    train(_small(synthetic_npz), run_dir, progress=False)
    return run_dir


def test_resume_is_bit_identical(synthetic_npz, straight, tmp_path):
    cfg = _small(synthetic_npz)
    # interrupted at step 10 (mid-epoch; the cosine horizon stays 20), then resumed
    interrupted = train(cfg, tmp_path, progress=False, callback=lambda row: row["step"] == 10)
    assert interrupted.steps == 10
    assert torch.load(tmp_path / CHECKPOINT_DIR / LATEST / "state.pt", weights_only=True)["step"] == 10
    env_file = tmp_path / "environment.json"
    started = json.loads(env_file.read_text())
    env_file.write_text(json.dumps({**started, "git_commit": "the-commit-that-started-it"}))
    # a row logged after the checkpoint (a run killed between logging and checkpointing) is dropped on resume
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write(json.dumps({**read_history(tmp_path)[-1], "step": 11}) + "\n")
    resumed = train(cfg, tmp_path, progress=False)
    assert resumed.steps == 20
    # the environment is where the run started; each resume is listed, none replaces it
    train(cfg, tmp_path, progress=False)                           # nothing left to train: still a resume
    env = json.loads(env_file.read_text())
    assert env["git_commit"] == "the-commit-that-started-it"
    assert [r["step"] for r in env["resumes"]] == [10, 20]
    assert env["resumes"][0]["git_commit"] == started["git_commit"]
    (a, state_a), (b, state_b) = _weights(straight), _weights(tmp_path)
    _assert_identical(a, b)
    assert torch.equal(state_a["rng"]["noise_generator"][0], state_b["rng"]["noise_generator"][0])
    # history has no duplicated steps and matches the straight run's validations
    rows = read_history(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 21))
    ref = read_history(straight)
    assert [r["val_mpjpe"] for r in rows] == [r["val_mpjpe"] for r in ref]


def test_resume_with_longer_budget_exponential(synthetic_npz, tmp_path):
    """max_steps=10 then max_steps=20 (a schedule that does not depend on the horizon)."""
    over = {"train.lr_schedule": "exponential", "train.lr_decay": 0.5, "train.warmup_steps": 0,
            "train.grad_clip": 0.5}
    train(_small(synthetic_npz, **over), tmp_path / "straight", progress=False)
    train(_small(synthetic_npz, **over, **{"train.max_steps": 10}), tmp_path / "resumed", progress=False)
    train(_small(synthetic_npz, **over), tmp_path / "resumed", progress=False)
    _assert_identical(_weights(tmp_path / "straight")[0], _weights(tmp_path / "resumed")[0])
    # exponential: constant inside an epoch (18 steps), x lr_decay per epoch
    lrs = [r["lr"] for r in read_history(tmp_path / "straight")]
    lr = _small(synthetic_npz, **over).train.lr
    assert lrs[:18] == [lr] * 18 and lrs[18:] == [lr * 0.5] * 2


def test_same_seed_same_weights_other_seed_differs(synthetic_npz, straight, tmp_path):
    train(_small(synthetic_npz), tmp_path / "again", progress=False)
    _assert_identical(_weights(straight)[0], _weights(tmp_path / "again")[0])
    train(_small(synthetic_npz, **{"train.seed": 1, "train.max_steps": 2}), tmp_path / "seed1", progress=False)
    train(_small(synthetic_npz, **{"train.max_steps": 2}), tmp_path / "seed0", progress=False)
    a, b = _weights(tmp_path / "seed0")[0], _weights(tmp_path / "seed1")[0]
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("model."))


def test_no_resume_refuses_an_existing_run_unless_overwrite(synthetic_npz, tmp_path):
    cfg = _small(synthetic_npz, **{"train.max_steps": 3})
    train(cfg, tmp_path, progress=False)
    before = (tmp_path / CHECKPOINT_DIR / LATEST / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="overwrite") as e:
        train(cfg, tmp_path, progress=False, resume=False)
    assert "\n" not in str(e.value) and "step 3" in str(e.value)
    assert (tmp_path / CHECKPOINT_DIR / LATEST / "model.safetensors").read_bytes() == before   # nothing lost
    assert [r["step"] for r in read_history(tmp_path)] == [1, 2, 3]
    result = train(_small(synthetic_npz, **{"train.max_steps": 2}), tmp_path, progress=False, resume=False,
                   overwrite=True)
    assert result.steps == 2 and [r["step"] for r in read_history(tmp_path)] == [1, 2]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


# ---------------------------------------------------------------- schedules, budget, AMP

def _lrs(tc, steps, steps_per_epoch=1000, total_steps=100, start_step=0, optimizer=None):
    optimizer = optimizer or torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=tc.lr)
    scheduler = build_lr_scheduler(optimizer, tc, steps_per_epoch, total_steps, start_step=start_step)
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_learning_rate_schedules():
    tc = preset("tiny", {"train.lr": 1.0, "train.warmup_steps": 10, "train.min_lr_ratio": 0.1}).train
    lrs = _lrs(tc, 100)
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)      # linear warm-up
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))                     # then decays
    assert lr_factor(tc, 1000, 100)(100) == pytest.approx(0.1)                 # to the floor
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5, rel=1e-6)                 # half way
    exp = apply_overrides(preset("tiny"), {"train.lr_schedule": "exponential", "train.warmup_steps": 0,
                                           "train.lr": 4e-5, "train.lr_decay": 0.995}).train
    assert 4e-5 * lr_factor(exp, 10, 0)(35) == pytest.approx(4e-5 * 0.995 ** 3)
    const = apply_overrides(preset("paper"), {}).train
    assert _lrs(const, 10) == [4e-5] * 10
    with pytest.raises(ConfigError):
        apply_overrides(preset("tiny"), {"train.lr_schedule": "step"})


def test_wall_clock_budget_checkpoints_then_resume(synthetic_npz, tmp_path):
    result = train(_small(synthetic_npz, **{"train.max_minutes": 1e-9}), tmp_path, progress=False)
    assert result.steps == 1
    assert torch.load(tmp_path / CHECKPOINT_DIR / LATEST / "state.pt", weights_only=True)["step"] == 1
    result = train(_small(synthetic_npz, **{"train.max_steps": 3}), tmp_path, progress=False)
    assert result.steps == 3 and [r["step"] for r in result.history] == [1, 2, 3]


def test_time_cap_is_said_and_written_to_the_run_card(synthetic_npz, tmp_path, monkeypatch, caplog):
    """train.max_minutes stopping before max_steps: one terminal line, TrainResult and
    run_card.json say so; the resumed call that reaches max_steps says it no longer is."""
    import json
    import time
    import types

    from diffupose.training import loop

    offset = {"s": 0.0}                # the loop's clock jumps an hour once step 3 is logged
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: time.perf_counter() + offset["s"]))

    def jump(row):
        if row["step"] == 3:
            offset["s"] = 3600.0

    cfg = _small(synthetic_npz, **{"train.max_minutes": 30.0})
    with caplog.at_level("WARNING", logger="diffupose.train"):
        result = train(cfg, tmp_path, progress=False, callback=jump)
    assert result.steps == 4 and result.stopped_by_time_cap and result.max_steps == 20
    lines = [r.getMessage() for r in caplog.records if "time cap" in r.getMessage()]
    assert lines == ["stopped by the time cap (30 min) at step 4 of 20 — the model is undertrained; run the same "
                     "command again to resume it, or raise train.max_minutes"]
    card = json.loads((tmp_path / "run_card.json").read_text())
    assert set(card) == {"steps", "max_steps", "stopped_by_time_cap", "max_minutes", "training_minutes",
                         "best_val_mpjpe_mm", "seed", "git_commit"}
    assert card["steps"] == 4 and card["max_steps"] == 20 and card["stopped_by_time_cap"] is True
    assert card["max_minutes"] == 30.0 and 0 < card["training_minutes"] < 10 and card["seed"] == 0
    assert card["best_val_mpjpe_mm"] == result.best_val_mpjpe and isinstance(card["git_commit"], str)

    monkeypatch.setattr(loop, "time", time)
    caplog.clear()
    with caplog.at_level("WARNING", logger="diffupose.train"):
        result = train(cfg, tmp_path, progress=False)                 # resumed: reaches max_steps
    assert result.steps == 20 and not result.stopped_by_time_cap
    assert not [r for r in caplog.records if "time cap" in r.getMessage()]
    card2 = json.loads((tmp_path / "run_card.json").read_text())
    assert card2["steps"] == 20 and card2["stopped_by_time_cap"] is False
    assert card2["training_minutes"] >= card["training_minutes"]


def test_bf16_autocast_on_cpu_and_fp16_refused(synthetic_npz, tmp_path):
    result = train(_small(synthetic_npz, **{"train.amp": "bf16", "train.max_steps": 3, "train.val_every": 3}),
                   tmp_path / "bf16", progress=False)
    assert all(math.isfinite(r["loss"]) for r in result.history)
    assert math.isfinite(result.best_val_mpjpe)
    with pytest.raises(ConfigError, match="fp16"):
        train(_small(synthetic_npz, **{"train.amp": "fp16"}), tmp_path / "fp16", progress=False)


def test_ema_warm_up_and_buffers():
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 10**6) == 0.999
    assert ema_decay(0.995, None) == 0.995
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = make_ema(model, decay=0.75)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    for _ in range(40):                                            # past the warm-up: decay 0.75
        ema.update_parameters(model)
    model(torch.randn(16, 3) * 5)                                  # moves the BN statistics
    with torch.no_grad():
        model[0].weight.add_(1.0)
    before = ema.module.state_dict()["1.running_var"].clone()
    ema.update_parameters(model)
    sd, ref = ema.module.state_dict(), model.state_dict()
    assert torch.allclose(sd["1.running_var"], 0.75 * before + 0.25 * ref["1.running_var"])
    assert torch.equal(sd["1.num_batches_tracked"], ref["1.num_batches_tracked"])
    assert not torch.equal(sd["0.weight"], ref["0.weight"])


def test_epoch_indices_are_seeded_per_epoch():
    a, b = epoch_indices(50, 3, seed=0), epoch_indices(50, 3, seed=0)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(50))
    assert not torch.equal(a, epoch_indices(50, 4, seed=0))
    assert not torch.equal(epoch_indices(50, 4, seed=0), epoch_indices(50, 3, seed=1))


# ---------------------------------------------------------------- library schedule and EMA = the old hand-written ones

def _old_learning_rate(tc, step: int, epoch: int, total_steps: int) -> float:
    """The hand-written schedule train.py used before LambdaLR (verbatim), as the reference."""
    if tc.warmup_steps > 0 and step < tc.warmup_steps:
        warm = (step + 1) / tc.warmup_steps
    else:
        warm = 1.0
    if tc.lr_schedule == "constant":
        return tc.lr * warm
    if tc.lr_schedule == "exponential":
        return tc.lr * warm * tc.lr_decay ** epoch
    if warm < 1.0:
        return tc.lr * warm
    progress = (step - tc.warmup_steps) / max(1, total_steps - tc.warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return tc.lr * (tc.min_lr_ratio + (1.0 - tc.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _old_make_ema(model):
    import copy
    ema = copy.deepcopy(model)
    ema.eval().requires_grad_(False)
    return ema


@torch.no_grad()
def _old_ema_update(ema, model, decay: float) -> None:
    model_state = model.state_dict()
    for name, e in ema.state_dict().items():
        m = model_state[name].detach()
        if e.is_floating_point():
            e.lerp_(m.to(e.dtype), 1.0 - decay)
        else:
            e.copy_(m)


@pytest.mark.parametrize("schedule", ["constant", "exponential", "cosine"])
def test_lambda_lr_matches_the_old_schedule_across_resume(schedule):
    tc = preset("tiny", {"train.lr": 2e-3, "train.lr_schedule": schedule, "train.warmup_steps": 25,
                         "train.lr_decay": 0.9, "train.min_lr_ratio": 0.05}).train
    spe, total, cut, longer = 37, 300, 137, 400
    param = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([param], lr=tc.lr)
    first = _lrs(tc, cut, spe, total, optimizer=opt)
    # resume: a fresh optimiser loads the saved state; the horizon grows to `longer` steps
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=tc.lr)
    opt2.load_state_dict(opt.state_dict())
    second = _lrs(tc, longer - cut, spe, longer, start_step=cut, optimizer=opt2)
    old = [_old_learning_rate(tc, s, s // spe, total) for s in range(cut)]
    old += [_old_learning_rate(tc, s, s // spe, longer) for s in range(cut, longer)]
    assert len(first + second) == longer
    assert first + second == pytest.approx(old, rel=1e-12, abs=0)


def _ema_pair_run(decay: float, every: int, steps: int, tmp_path, resume_at: int | None):
    """The old EMA and the AveragedModel EMA over `steps` Adam steps of a small denoiser
    (BatchNorm included); with `resume_at`, the new EMA goes through save_checkpoint /
    load_training_state and a fresh AveragedModel half way."""
    from diffupose.model.checkpoint import load_training_state, save_checkpoint
    from diffupose.model.ema import set_num_updates
    from diffupose.geometry.skeleton import H36M17

    cfg = preset("tiny", {"model.dim": 32})
    torch.manual_seed(0)
    model = build_denoiser(cfg.model, H36M17)
    old, new = _old_make_ema(model), make_ema(model, decay)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        model.train()
        eps, y = model(torch.randn(8, 17, 3, generator=g), torch.randn(8, 17, 2, generator=g),
                       torch.randint(0, 100, (8,), generator=g))
        (eps.square().mean() + y.square().mean()).backward()
        opt.step()
        opt.zero_grad()
        if step % every == 0:
            _old_ema_update(old, model, ema_decay(decay, step // every - 1))
            new.update_parameters(model)
        if step == resume_at:
            d = save_checkpoint(tmp_path / "ckpt", model=model, ema_model=new, optimizer=None, step=step, epoch=0,
                                config=cfg, skeleton=H36M17)
            new = make_ema(build_denoiser(cfg.model, H36M17), decay)        # a fresh process
            load_training_state(d, model=build_denoiser(cfg.model, H36M17), ema_model=new, optimizer=None)
            set_num_updates(new, step // every)
    return old.state_dict(), new.module.state_dict()


@pytest.mark.parametrize("every,resume_at", [(1, None), (1, 150), (3, 151)])
def test_averaged_model_ema_matches_the_old_ema(every, resume_at, tmp_path):
    old, new = _ema_pair_run(0.99, every, 300, tmp_path, resume_at)
    assert old.keys() == new.keys()
    for k in old:
        assert torch.allclose(old[k].float(), new[k].float(), rtol=1e-6, atol=1e-7), (k, (old[k] - new[k]).abs().max())


# ---------------------------------------------------------------- refusals, divergence, interrupted saves

def test_resume_refuses_other_data_or_config(synthetic_npz, tmp_path):
    import shutil

    from diffupose.data import prepare_dataset

    cfg = _small(synthetic_npz, **{"train.max_steps": 2})
    train(cfg, tmp_path / "run", progress=False)
    other = prepare_dataset("synthetic", out=tmp_path / "other.npz", num_frames=12, seed=1)
    with pytest.raises(ConfigError, match="not the file the run was trained on") as e:
        train(_small(other, **{"train.max_steps": 4}), tmp_path / "run", progress=False)
    assert "\n" not in str(e.value) and str(other.resolve()) in str(e.value)
    with pytest.raises(ConfigError, match=r"train\.lr is 0\.003 in the run, 0\.001 now"):
        train(_small(synthetic_npz, **{"train.max_steps": 4, "train.lr": 1e-3}), tmp_path / "run", progress=False)
    assert read_history(tmp_path / "run")[-1]["step"] == 2                     # untouched
    # the same file under another name, a longer budget and another log cadence: resumes
    moved = shutil.copy(synthetic_npz, tmp_path / "moved.npz")
    result = train(_small(moved, **{"train.max_steps": 4, "train.log_every": 2}), tmp_path / "run", progress=False)
    assert result.steps == 4


def test_divergence_stops_with_one_line_and_keeps_finite_checkpoints(synthetic_npz, tmp_path):
    from diffupose.training import TrainingDiverged

    cfg = _small(synthetic_npz, **{"train.max_steps": 50, "train.checkpoint_every": 1, "train.val_every": 1000,
                                   "train.warmup_steps": 0, "train.lr_schedule": "constant"})
    train(apply_overrides(cfg, {"train.max_steps": 2}), tmp_path, progress=False)
    with pytest.raises(TrainingDiverged) as e:
        train(apply_overrides(cfg, {"train.lr": 1e30}), tmp_path / "huge", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "diverged at step" in msg and "train.lr" in msg and "nan" in msg.lower() + "inf"
    rows = read_history(tmp_path / "huge")
    assert all(math.isfinite(r["loss"]) for r in rows)
    for d in (tmp_path / "huge" / CHECKPOINT_DIR).glob("*"):                 # whatever was saved is finite
        for t in load_file(d / "model.safetensors").values():
            assert torch.isfinite(t).all()


@pytest.mark.parametrize("overrides,fragment", [
    ({"train.lr": -1e-3}, "train.lr must be a positive number"),
    ({"model.dim": 0}, "model.dim must be a multiple of 16"),
    ({"train.max_steps": 0, "train.epochs": 0}, "train.epochs"),
    ({"train.lr": float("inf")}, "finite"),
])
def test_bad_config_values_are_one_line_errors(synthetic_npz, overrides, fragment):
    with pytest.raises(ConfigError) as e:
        _cfg(synthetic_npz, **overrides)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_max_steps_zero_means_epochs(synthetic_npz, tmp_path):
    # 4,608 flip-doubled samples / batch 512 = 9 steps per epoch; 2 epochs = 18 steps
    cfg = _cfg(synthetic_npz, **{"train.max_steps": 0, "train.epochs": 2, "train.batch_size": 512,
                                 "train.val_every": 0, "train.log_every": 9})
    result = train(cfg, tmp_path, progress=False)
    assert result.steps == 18 and [r["epoch"] for r in result.history] == [1.0, 2.0]


def test_start_repairs_an_interrupted_best_swap(synthetic_npz, tmp_path):
    import os

    cfg = _small(synthetic_npz, **{"train.max_steps": 5})
    train(cfg, tmp_path, progress=False)
    root = tmp_path / CHECKPOINT_DIR
    stale = root / f".{BEST}.old-xyz"
    stale.mkdir()
    os.replace(root / BEST, stale / BEST)                                  # killed between the two renames
    (root / f".{LATEST}.tmp-123").mkdir()
    result = train(_small(synthetic_npz, **{"train.max_steps": 6}), tmp_path, progress=False)
    assert result.steps == 6
    assert sorted(p.name for p in root.iterdir()) == [BEST, LATEST]


def test_progress_line_is_logged(synthetic_npz, tmp_path, caplog, monkeypatch):
    import diffupose.training.progress as progress_module

    monkeypatch.setattr(progress_module, "PROGRESS_EVERY_S", 0.0)
    with caplog.at_level("INFO", logger="diffupose.train"):
        train(_small(synthetic_npz, **{"train.max_steps": 5}), tmp_path, progress=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "diffupose.train" and "steps/s" in r.getMessage()]
    assert lines and all("\n" not in line for line in lines)
    assert "step 5/5" in lines[-1] and "val MPJPE" in lines[-1] and "ETA" in lines[-1] and "loss" in lines[-1]


def test_cli_train_no_resume_and_overwrite(synthetic_npz, tmp_path, capsys):
    from diffupose.cli import main

    base = ["train", "--data", str(synthetic_npz), "--out", str(tmp_path / "run"), "--preset", "tiny",
            "--no-progress", "--set", "train.max_steps=2", "--set", "train.val_every=2", "--set", "train.batch_size=32"]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base + ["--no-resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--overwrite" in err and str(tmp_path / "run") in err
    assert (tmp_path / "run" / CHECKPOINT_DIR / LATEST).is_dir()
    assert main(base + ["--no-resume", "--overwrite"]) == 0
    assert main(base[:-2] + ["--set", "train.lr=-1e-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train.lr must be a positive number" in err


def test_compile_auto_off_on_and_fallback(synthetic_npz, tmp_path, monkeypatch, caplog):
    from diffupose.training.optim import should_compile

    tc = preset("tiny").train
    cpu = torch.device("cpu")
    assert not should_compile(tc, cpu, 200)                                   # auto: short runs stay eager
    assert not should_compile(apply_overrides(preset("tiny"), {"train.compile": "off"}).train, cpu, 10**6)
    assert should_compile(apply_overrides(preset("tiny"), {"train.compile": "on"}).train, cpu, 5)

    class Broken(torch.nn.Module):                      # what a failing compiler looks like at the first call
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, *args, **kwargs):
            raise RuntimeError("C++ compile error: cannot find cc1plus")

    monkeypatch.setattr(torch, "compile", lambda model, **kw: Broken(model))
    cfg = _small(synthetic_npz, **{"train.max_steps": 3, "train.compile": "on"})
    with caplog.at_level("WARNING", logger="diffupose.train"):
        result = train(cfg, tmp_path, progress=False)
    assert result.steps == 3 and all(math.isfinite(r["loss"]) for r in result.history)
    assert any("torch.compile failed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_x0_and_v_parameterisations_learn_and_are_used_for_sampling(synthetic_npz, tmp_path, prediction):
    from diffupose.inference import Lifter, SamplingSettings

    cfg = _cfg(synthetic_npz, **{"diffusion.prediction": prediction, "train.max_steps": 120, "train.val_every": 40,
                                 "train.checkpoint_every": 40})
    result = train(cfg, tmp_path / "run", progress=False)
    vals = [r["val_mpjpe"] for r in result.history if r["val_mpjpe"] is not None]
    assert all(math.isfinite(v) for v in vals) and vals[-1] < 0.6 * vals[0], vals
    lifter = Lifter.load(tmp_path / "run", checkpoint="ema")
    assert lifter.config.diffusion.prediction == prediction
    y = load_prepared(synthetic_npz).select(split="test", max_samples=8, seed=0).keypoints_2d
    settings = SamplingSettings(num_hypotheses=2, num_steps=5, flip=False, seed=3)
    ours = lifter.sample(y, settings)
    as_eps = sample(lifter.denoiser, lifter.schedule, torch.from_numpy(y), num_hypotheses=2, num_steps=5,
                    generator=torch.Generator().manual_seed(3)).numpy()
    direct = sample(lifter.denoiser, lifter.schedule, torch.from_numpy(y), num_hypotheses=2, num_steps=5,
                    generator=torch.Generator().manual_seed(3), prediction=prediction).numpy()
    assert torch.allclose(torch.from_numpy(ours), torch.from_numpy(direct), atol=1e-5)
    assert not torch.allclose(torch.from_numpy(ours), torch.from_numpy(as_eps), atol=1e-3)
    with pytest.raises(ConfigError, match="diffusion.prediction"):   # a resume may not change it
        train(_cfg(synthetic_npz, **{"train.max_steps": 160}), tmp_path / "run", progress=False)


def test_init_from_copies_weights_and_grows_the_missing_joint_channel(synthetic_npz, straight, tmp_path):
    from diffupose.inference import Lifter

    cfg = _small(synthetic_npz, **{"train.init_from": str(straight), "model.missing_joints": True,
                                   "train.joint_dropout": 0.2, "train.max_steps": 1, "train.lr": 1e-12,
                                   "train.warmup_steps": 0})
    train(cfg, tmp_path / "masked", progress=False)
    source = Lifter.load(straight, checkpoint="ema")
    model, _, _ = load_model(tmp_path / "masked", which="model")
    w_src, w_new = source.denoiser.input_block.gconv.W, model.input_block.gconv.W
    assert w_new.shape[1] == w_src.shape[1] + 1 and w_new[:, -1].abs().max() < 1e-9   # zeros (+ one 1e-12 step)
    params = dict(model.named_parameters())
    for name, value in source.denoiser.named_parameters():      # copied (one 1e-12 Adam step aside)
        assert (params[name][tuple(slice(0, n) for n in value.shape)] - value).abs().max() < 1e-9, name
    # one training step moved the BatchNorm statistics; with the source's, nothing missing -> its outputs
    model.load_state_dict({**model.state_dict(), **{k: v for k, v in source.denoiser.state_dict().items()
                                                    if k not in params}})
    x, y, t = torch.randn(4, 17, 3), torch.randn(4, 17, 2) * 0.3, torch.tensor([0, 10, 50, 99])
    with torch.no_grad():
        ours, theirs = model.eval()(x, y, t)[0], source.denoiser(x, y, t)[0]
    assert torch.allclose(ours, theirs, atol=1e-5)
    with pytest.raises(ConfigError, match=r"parameter \S+ is \(.*match model.dim"):   # another width: one line
        train(_small(synthetic_npz, **{"train.init_from": str(straight), "model.dim": 48}), tmp_path / "wide",
              progress=False)


def test_a_new_budget_under_cosine_warns_and_is_recorded(synthetic_npz, tmp_path, caplog):
    import logging

    train(_small(synthetic_npz, **{"train.max_steps": 3}), tmp_path, progress=False)
    with caplog.at_level(logging.WARNING, logger="diffupose.train"):
        train(_small(synthetic_npz, **{"train.max_steps": 5}), tmp_path, progress=False)
    (line,) = [r.getMessage() for r in caplog.records if "new step budget" in r.getMessage()]
    assert "train.max_steps 3 -> 5" in line and "cosine" in line and "\n" not in line
    (resume,) = json.loads((tmp_path / "environment.json").read_text())["resumes"]
    assert resume["step"] == 3 and resume["changed"] == {"train.max_steps": [3, 5]}


def test_bad_eval_settings_a_file_as_out_and_overwrite_leave_nothing_stale(synthetic_npz, tmp_path):
    with pytest.raises(ConfigError, match="eval settings of the run: batch_size must be >= 1"):
        train(_small(synthetic_npz, **{"eval.batch_size": -1}), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()                                       # refused before any work
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(ConfigError, match="is a file, not a run directory"):
        train(_small(synthetic_npz), tmp_path / "afile", progress=False)
    assert (tmp_path / "afile").read_text() == "mine"
    train(_small(synthetic_npz, **{"train.max_steps": 2}), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "run_card.json").is_file()
    with pytest.raises(TrainingDiverged, match="no checkpoint was saved"):
        train(_small(synthetic_npz, **{"train.max_steps": 2, "train.lr": 1e30, "train.warmup_steps": 0}),
              tmp_path / "run", progress=False, overwrite=True, resume=False)
    assert not (tmp_path / "run" / "run_card.json").exists()                    # the replaced run's card is gone
