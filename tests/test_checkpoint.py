"""Checkpoints: safe round trip, atomic writes, one-line errors for bad or foreign files."""
from __future__ import annotations

import fractions

import pytest
import torch

from diffupose.model import checkpoint as ckpt
from diffupose.model.checkpoint import (BEST, CHECKPOINT_DIR, LATEST, load_model, load_training_state,
                                        read_metadata, resolve_checkpoint, save_checkpoint)
from diffupose.config import apply_overrides, preset
from diffupose.model.ema import make_ema
from diffupose.errors import CheckpointError
from diffupose.model import build_denoiser
from diffupose.geometry.skeleton import H36M17, HUMANEVA15


def _tiny(dim=32, skeleton=H36M17, seed=0):
    cfg = preset("tiny", {"model.dim": dim})
    torch.manual_seed(seed)
    model = build_denoiser(cfg.model, skeleton)
    return cfg, model


def _trained_pieces(dim=32, skeleton=H36M17):
    """A model after two Adam steps, its EMA (different), the optimiser."""
    cfg, model = _tiny(dim, skeleton)
    ema = make_ema(model, decay=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    J = skeleton.num_joints
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        eps, y = model(torch.randn(8, J, 3, generator=g), torch.randn(8, J, 2, generator=g),
                       torch.randint(0, 100, (8,), generator=g))
        (eps.square().mean() + y.square().mean()).backward()
        opt.step()
        opt.zero_grad()
        ema.update_parameters(model)
    return cfg, model, ema, opt


def _save(path, cfg, model, ema, opt, skeleton=H36M17, step=7):
    rng = {"torch_cpu": torch.get_rng_state(), "noise_generator": [torch.Generator().manual_seed(3).get_state()]}
    return save_checkpoint(path, model=model, ema_model=ema, optimizer=opt, step=step, epoch=1, config=cfg,
                           skeleton=skeleton, rng_state=rng, extra={"best_val_mpjpe": 12.5})


def _assert_one_line(err: pytest.ExceptionInfo, fragment: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert fragment in msg, msg


def test_round_trip_model_ema_and_state(tmp_path):
    cfg, model, ema, opt = _trained_pieces()
    d = _save(tmp_path / "run" / CHECKPOINT_DIR / LATEST, cfg, model, ema, opt)
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "ema.safetensors", "model.safetensors", "state.pt"]
    # nothing temporary is left beside it
    assert [p.name for p in d.parent.iterdir()] == [LATEST]

    meta = read_metadata(d / "ema.safetensors")
    assert meta["skeleton"] == "h36m17" and meta["dim"] == "32" and meta["denoiser"] == "gcn"
    assert meta["weights"] == "ema" and meta["format_version"] == ckpt.FORMAT_VERSION

    for which, ref in (("ema", ema.module), ("model", model)):
        loaded, cfg2, skel = load_model(tmp_path / "run", which=which)
        assert cfg2 == cfg and skel is H36M17 and not loaded.training
        ref_sd = ref.state_dict()
        for k, v in loaded.state_dict().items():
            assert torch.equal(v, ref_sd[k]), (which, k)
    # EMA and raw weights really differ (so the test above can tell them apart)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), ema.module.state_dict().values()))

    # state.pt holds only plain data: loadable without unpickling code
    state = torch.load(d / "state.pt", weights_only=True)
    assert state["step"] == 7 and state["epoch"] == 1 and state["extra"]["best_val_mpjpe"] == 12.5

    cfg3, model3 = _tiny(seed=1)
    ema3 = make_ema(model3, decay=0.5)
    opt3 = torch.optim.Adam(model3.parameters(), lr=1e-2)
    restored = load_training_state(d, model=model3, ema_model=ema3, optimizer=opt3)
    assert restored["step"] == 7
    assert torch.equal(restored["rng"]["noise_generator"][0], torch.Generator().manual_seed(3).get_state())
    for k, v in model.state_dict().items():
        assert torch.equal(model3.state_dict()[k], v)
    s_ref, s_new = opt.state_dict()["state"], opt3.state_dict()["state"]
    assert s_ref.keys() == s_new.keys()
    for i in s_ref:
        assert torch.equal(s_ref[i]["exp_avg_sq"], s_new[i]["exp_avg_sq"])


def test_overwrite_is_atomic_and_failed_save_keeps_old(tmp_path, monkeypatch):
    cfg, model, ema, opt = _trained_pieces()
    d = tmp_path / CHECKPOINT_DIR / LATEST
    _save(d, cfg, model, ema, opt, step=1)
    _save(d, cfg, model, ema, opt, step=2)                        # replace an existing one
    assert torch.load(d / "state.pt", weights_only=True)["step"] == 2

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "atomic_write_text", boom)          # fails after the weights are written
    with pytest.raises(OSError):
        _save(d, cfg, model, ema, opt, step=3)
    assert torch.load(d / "state.pt", weights_only=True)["step"] == 2
    assert [p.name for p in d.parent.iterdir()] == [LATEST]       # temp dir cleaned up


def test_resolve_best_then_latest(tmp_path):
    cfg, model, ema, opt = _trained_pieces()
    run = tmp_path / "run"
    _save(run / CHECKPOINT_DIR / LATEST, cfg, model, ema, opt, step=5)
    assert resolve_checkpoint(run) == run / CHECKPOINT_DIR / LATEST           # no best yet: fall back
    _save(run / CHECKPOINT_DIR / BEST, cfg, model, ema, opt, step=3)
    assert resolve_checkpoint(run) == run / CHECKPOINT_DIR / BEST
    assert resolve_checkpoint(run, LATEST) == run / CHECKPOINT_DIR / LATEST
    assert resolve_checkpoint(run / CHECKPOINT_DIR / LATEST / "ema.safetensors") == run / CHECKPOINT_DIR / LATEST
    load_model(run / CHECKPOINT_DIR / BEST / "model.safetensors")            # a file works too


def test_truncated_and_corrupt_safetensors(tmp_path):
    cfg, model, ema, opt = _trained_pieces()
    d = _save(tmp_path / "c", cfg, model, ema, opt)
    f = d / "ema.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])                                    # truncated
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    _assert_one_line(e, "ema.safetensors")
    f.write_bytes(b"\x00garbage" * 10)                                        # not safetensors at all
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    _assert_one_line(e, "ema.safetensors")
    # raw weights are still fine
    load_model(d, which="model")


def test_foreign_safetensors_without_metadata(tmp_path):
    from safetensors.torch import save_file

    cfg, model, ema, opt = _trained_pieces()
    d = _save(tmp_path / "c", cfg, model, ema, opt)
    save_file({"x": torch.zeros(3)}, str(d / "ema.safetensors"))
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    _assert_one_line(e, "not a DiffuPose checkpoint")


def test_other_skeleton_and_dim_rejected(tmp_path):
    cfg, model, ema, opt = _trained_pieces(skeleton=HUMANEVA15)
    d = _save(tmp_path / "he", cfg, model, ema, opt, skeleton=HUMANEVA15)
    loaded, _, skel = load_model(d, expect_skeleton="humaneva15", expect_dim=32)
    assert skel is HUMANEVA15
    with pytest.raises(CheckpointError) as e:
        load_model(d, expect_skeleton=H36M17)
    _assert_one_line(e, "humaneva15")
    with pytest.raises(CheckpointError) as e:
        load_model(d, expect_dim=64)
    _assert_one_line(e, "dim 32")


def test_shape_mismatch_and_edited_config(tmp_path):
    cfg32, _, _, _ = _trained_pieces(dim=32)
    _, model48, ema48, opt48 = _trained_pieces(dim=48)
    # weights of a dim-48 model under a dim-32 config: caught tensor by tensor
    d = _save(tmp_path / "c", cfg32, model48, ema48, opt48)
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    _assert_one_line(e, "shape")
    # config.json edited after saving: metadata and config disagree
    cfg, model, ema, opt = _trained_pieces(dim=32)
    d = _save(tmp_path / "e", cfg, model, ema, opt)
    (d / "config.json").write_text(apply_overrides(cfg, {"model.dim": 48}).to_json())
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    _assert_one_line(e, "disagrees")
    # a different block count: missing keys
    (d / "config.json").write_text(apply_overrides(cfg, {"model.num_blocks": 2}).to_json())
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    _assert_one_line(e, "missing")


def test_missing_things(tmp_path):
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "nope")
    _assert_one_line(e, "not found")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "empty")
    _assert_one_line(e, "no checkpoint")

    cfg, model, ema, opt = _trained_pieces()
    d = _save(tmp_path / "c", cfg, model, ema, opt)
    (d / "ema.safetensors").unlink()
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    _assert_one_line(e, "ema.safetensors")
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError) as e:
        load_model(d, which="model")
    _assert_one_line(e, "config")
    (d / "state.pt").unlink()
    with pytest.raises(CheckpointError) as e:
        load_training_state(d, model=model, ema_model=None, optimizer=None)
    _assert_one_line(e, "state.pt")
    with pytest.raises(CheckpointError):
        load_model(d, which="nonsense")


def test_state_pt_never_unpickles_code(tmp_path):
    """A state.pt carrying a pickled object (not plain data) is refused, not executed."""
    cfg, model, ema, opt = _trained_pieces()
    d = _save(tmp_path / "c", cfg, model, ema, opt)
    torch.save({"format_version": ckpt.FORMAT_VERSION, "payload": fractions.Fraction(1, 3)}, d / "state.pt")
    with pytest.raises(CheckpointError) as e:
        load_training_state(d, model=model, ema_model=ema, optimizer=opt)
    _assert_one_line(e, "state.pt")


# ---------------------------------------------------------------- interrupted saves, NaN, old EMA files

def _fake_interrupted_swap(root, name, step_dir):
    """What a SIGKILL between _swap_in's two renames leaves: the old copy moved aside, a
    complete new copy under its temporary name, and no `name` folder."""
    import os
    old = root / f".{name}.old-abc123"
    old.mkdir()
    os.replace(root / name, old / name)
    (root / f".{name}.tmp-def456").mkdir()
    return old


def test_stale_swap_folders_are_repaired(tmp_path):
    cfg, model, ema, opt = _trained_pieces()
    root = tmp_path / "run" / CHECKPOINT_DIR
    _save(root / LATEST, cfg, model, ema, opt, step=9)
    _save(root / BEST, cfg, model, ema, opt, step=6)
    _fake_interrupted_swap(root, BEST, 6)                             # best only exists moved aside
    (root / f".{LATEST}.old-zzz").mkdir()                            # an empty leftover next to a good latest
    assert not ckpt.has_checkpoint(root / "nothing")
    done = ckpt.recover_interrupted_saves(root)
    assert sorted(p.name for p in root.iterdir()) == [BEST, LATEST]  # no dot-folders left
    assert any("restored" in line for line in done) and len(done) == 4
    assert torch.load(root / BEST / "state.pt", weights_only=True)["step"] == 6
    assert ckpt.recover_interrupted_saves(root) == []               # idempotent
    load_model(tmp_path / "run", select=BEST)


def test_non_finite_weights_are_never_saved(tmp_path):
    cfg, model, ema, opt = _trained_pieces()
    d = _save(tmp_path / "c", cfg, model, ema, opt, step=1)
    with torch.no_grad():
        next(ema.module.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError) as e:
        _save(d, cfg, model, ema, opt, step=2)
    _assert_one_line(e, "NaN")
    assert torch.load(d / "state.pt", weights_only=True)["step"] == 1    # the finite one is kept
    assert [p.name for p in d.parent.iterdir()] == ["c"]


def test_checkpoint_with_a_plain_module_ema_loads_into_averaged_model(tmp_path):
    """Checkpoints written before the EMA became an AveragedModel stored a plain copy of the
    denoiser: the same tensor names, so they load unchanged (load_model and resume)."""
    import copy

    from safetensors.torch import load_file

    cfg, model, ema, opt = _trained_pieces()
    plain = copy.deepcopy(ema.module)                                 # what the old code saved
    d = _save(tmp_path / "old", cfg, model, plain, opt)
    assert set(load_file(d / "ema.safetensors")) == set(model.state_dict())   # no "module." / n_averaged
    loaded, _, _ = load_model(d, which="ema")
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, plain.state_dict()[k])
    cfg2, model2 = _tiny(seed=3)
    ema2 = make_ema(model2, decay=0.5)
    load_training_state(d, model=model2, ema_model=ema2, optimizer=None)
    for k, v in ema2.module.state_dict().items():
        assert torch.equal(v, plain.state_dict()[k])
