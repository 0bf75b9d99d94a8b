"""Config validation: types and ranges are checked up front, with one-line errors naming the
key (and the file for config.json)."""
from __future__ import annotations

import json

import pytest

from diffupose.config import PRESETS, Config, ModelConfig, TrainConfig, apply_overrides, preset
from diffupose.errors import ConfigError


def _one_line(err: pytest.ExceptionInfo, *fragments: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_valid_and_has_a_training_length(name):
    tc = preset(name).train
    assert tc.max_steps > 0 or tc.epochs > 0


def test_new_fields_default_off():
    cfg = Config()
    assert cfg.model.missing_joints is False
    assert cfg.train.joint_dropout == 0.0 and cfg.train.limb_dropout == 0.0


@pytest.mark.parametrize("key,value,fragments", [
    ("train.lr", -1e-3, ("train.lr", "positive", "-0.001")),
    ("train.lr", 0.0, ("train.lr", "positive")),
    ("train.lr", float("nan"), ("train.lr", "finite")),
    ("train.lr", float("inf"), ("train.lr", "finite")),
    ("model.dim", 0, ("model.dim", "multiple of 16")),
    ("model.dim", 40, ("model.dim", "multiple of 16")),
    ("model.denoiser", "transformer", ("model.denoiser", "gcn")),
    ("train.batch_size", 0, ("train.batch_size", ">= 1")),
    ("train.ema_decay", 1.5, ("train.ema_decay", "[0, 1]")),
    ("train.amp", "fp8", ("train.amp", "bf16")),
    ("train.lr_schedule", "step", ("train.lr_schedule", "cosine")),
    ("train.warmup_steps", -1, ("train.warmup_steps",)),
    ("train.joint_dropout", 1.0, ("train.joint_dropout", "[0, 1)")),
    ("train.val_sampler", "euler", ("train.val_sampler",)),
    ("data.max_val_samples", -5, ("data.max_val_samples",)),
    ("data.val_split", "", ("data.val_split",)),
])
def test_out_of_range_values(key, value, fragments):
    with pytest.raises(ConfigError) as e:
        preset("tiny", {key: value})
    _one_line(e, *fragments)


@pytest.mark.parametrize("section,key,value,fragments", [
    ("train", "lr", "fast", ("train.lr", "a number", "'fast'")),
    ("train", "batch_size", "64", ("train.batch_size", "an integer")),
    ("train", "batch_size", 64.0, ("train.batch_size", "an integer")),
    ("train", "max_steps", True, ("train.max_steps", "an integer")),
    ("train", "compile", "yes", ("train.compile", "auto, on, off")),
    ("train", "flip_augment", 1, ("unknown key",)),
    ("data", "flip_augment", 1, ("data.flip_augment", "true or false")),
    ("model", "dim", None, ("model.dim", "an integer")),
    ("eval", "num_hypotheses", "10", ("eval.num_hypotheses", "an integer")),
    ("diffusion", "lambda_2d", [0.8], ("diffusion.lambda_2d", "a number")),
])
def test_wrongly_typed_config_json_names_the_file_and_key(tmp_path, section, key, value, fragments):
    d = preset("tiny").to_dict()
    d[section][key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ConfigError) as e:
        Config.from_json(path)
    _one_line(e, str(path), *fragments)


def test_json_ints_are_accepted_for_floats_and_round_trip(tmp_path):
    d = preset("tiny").to_dict()
    d["train"]["lr"] = 1
    path = tmp_path / "config.json"
    path.write_text(json.dumps(d))
    cfg = Config.from_json(path)
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert Config.from_dict(json.loads(cfg.to_json())) == cfg


def test_a_config_that_is_not_an_object(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError) as e:
        Config.from_json(path)
    _one_line(e, str(path), "JSON object")


def test_max_steps_zero_uses_epochs_and_both_zero_is_refused():
    """max_steps > 0 wins; max_steps = 0 means `epochs` epochs; both 0 is an error (the step
    presets carry epochs = 0, so `--set train.max_steps=0` on them does not mean 1,000 epochs)."""
    assert TrainConfig(max_steps=0, epochs=3).epochs == 3
    assert TrainConfig(max_steps=10, epochs=0).max_steps == 10
    with pytest.raises(ConfigError) as e:
        TrainConfig(max_steps=0, epochs=0)
    _one_line(e, "train.max_steps", "train.epochs")
    for name in ("tiny", "demo", "h36m_cpu", "humaneva_cpu", "h36m_gpu"):
        with pytest.raises(ConfigError):
            preset(name, ["train.max_steps=0"])
    assert apply_overrides(preset("tiny"), ["train.max_steps=0", "train.epochs=2"]).train.epochs == 2


def test_dataclasses_validate_on_construction():
    with pytest.raises(ConfigError):
        ModelConfig(dim=0)
    with pytest.raises(ConfigError):
        TrainConfig(lr=-1.0)
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)


def test_old_boolean_compile_is_read():
    d = preset("tiny").to_dict()
    d["train"]["compile"] = False
    assert Config.from_dict(d).train.compile == "off"
    d["train"]["compile"] = True
    assert Config.from_dict(d).train.compile == "on"


def test_eval_config_shares_the_sampling_fields_once(tmp_path):
    """EvalConfig inherits the sampling fields of SamplingConfig (as SamplingSettings does);
    keyword construction, `--set` and config.json files written before keep working."""
    from dataclasses import fields

    from diffupose.config import EvalConfig, SamplingConfig
    from diffupose.inference import SamplingSettings

    ev = EvalConfig(num_hypotheses=3, input_2d="gt", sampler="ddpm", flip=False)
    assert isinstance(ev, SamplingConfig) and issubclass(SamplingSettings, SamplingConfig)
    sampling = {f.name for f in fields(SamplingConfig)}
    assert sampling == {"num_hypotheses", "sampler", "num_steps", "eta", "flip", "aggregate", "batch_size", "seed",
                        "input_source", "calibrated", "precision"}
    assert {f.name for f in fields(EvalConfig)} - sampling == {"protocol", "checkpoint", "max_samples", "input_2d"}
    assert SamplingConfig().precision == "fp32"               # the same numbers on every machine
    settings = SamplingSettings.from_eval_config(ev)
    assert (settings.num_hypotheses, settings.sampler, settings.flip) == (3, "ddpm", False)
    assert SamplingSettings() == SamplingSettings.from_eval_config(EvalConfig())      # the same defaults
    old = {"sampler": "ddim", "num_steps": 5, "eta": 0.0, "num_hypotheses": 10, "aggregate": "mean", "flip": True,
           "protocol": "gt_free", "batch_size": 2048, "seed": 0, "checkpoint": "best", "max_samples": 0,
           "input_2d": "file"}                                     # a run's config.json "eval" before the change
    d = preset("tiny").to_dict()
    d["eval"] = old
    path = tmp_path / "config.json"
    path.write_text(json.dumps(d))
    cfg = Config.from_json(path)
    assert cfg.eval == EvalConfig() and json.loads(cfg.to_json())["eval"] == {**old, "input_source": "auto",
                                                                                   "calibrated": True,
                                                                                   "precision": "fp32"}
    assert apply_overrides(cfg, ["eval.num_hypotheses=7", "eval.flip=no"]).eval.num_hypotheses == 7


def test_sampler_names_are_checked_by_one_function():
    from diffupose.diffusion import check_sampler
    from diffupose.inference import SamplingSettings

    assert check_sampler("ddim") == "ddim"
    with pytest.raises(ConfigError) as e:
        preset("tiny", {"train.val_sampler": "rk4"})
    _one_line(e, "unknown train.val_sampler 'rk4'", "ddpm, ddim, euler, heun, midpoint")
    with pytest.raises(ConfigError) as e:
        SamplingSettings(sampler="rk4")
    _one_line(e, "unknown sampler 'rk4'", "ddpm, ddim")
    with pytest.raises(ConfigError) as e:
        preset("tiny", {"train.val_sampler": "euler"})     # a DDPM model has no flow sampler
    _one_line(e, "train.val_sampler euler needs a flow-matching model")


def test_set_values_are_coerced_by_one_function():
    from diffupose.config import coerce_value

    assert coerce_value("yes", False, "k") is True and coerce_value("3", 1, "k") == 3
    assert coerce_value("3", 1.0, "k") == 3.0 and isinstance(coerce_value("3", 1.0, "k"), float)
    assert coerce_value("[1, 2]", [0], "k") == [1, 2] and coerce_value("4,5", [0], "k") == [4, 5]
    assert coerce_value("a,b", [], "k") == ["a", "b"] and coerce_value('{"a": 1}', {}, "k") == {"a": 1}
    assert coerce_value("text", "old", "k") == "text" and coerce_value(5, "old", "k") == 5
    for text, current, fragment in (("many", 1, "expected a number (int)"), ("x", 0.5, "expected a number (float)"),
                                    ("maybe", True, "boolean"), ("{", {}, "expected JSON"),
                                    ("[1]", {}, "expected a dict")):
        with pytest.raises(ConfigError) as e:
            coerce_value(text, current, "section.key")
        _one_line(e, "--set section.key", fragment)
