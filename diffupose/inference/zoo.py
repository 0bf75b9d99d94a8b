"""The model zoo: trained models shipped inside the package, one folder each.

    diffupose/zoo_models/<name>/
        ema.safetensors   final EMA weights, fp32 (no checkpoint selection)
        config.json       the run's config (what `checkpoint.load_model` rebuilds the denoiser from)
        card.json         the model card as data: data and 2D source, preset and config
                          overrides, seed, commit, training time and hardware, val numbers with
                          the command that reproduces them, intended use, data license terms,
                          parameter count and the sha256 of ema.safetensors
        README.md         the same card for people (written from card.json)

A zoo name is accepted wherever a run folder is (`diffupose lift --model NAME`, `evaluate
--model NAME`, `diffupose.inference.zoo.model_dir(NAME)` in Python). The checksum is verified each time
a model is opened; a mismatch is a one-line error. `export_model` turns a finished training run
into a zoo folder (`benchmarks/zoo.py` trains and exports from a card).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError
from ..utils import atomic_write_text

__all__ = ["ZOO_DIR", "available", "card", "model_dir", "is_zoo_name", "model_path", "export_model", "card_markdown",
           "sha256", "models_table"]

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo_models"
WEIGHTS = "ema.safetensors"
CARD = "card.json"


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def available(root: Path | None = None) -> list[str]:
    """Names of the shipped models (folders with a card), sorted."""
    root = ZOO_DIR if root is None else Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD).is_file())


def is_zoo_name(text: str | os.PathLike, root: Path | None = None) -> bool:
    """A bare name (no path separator, not an existing path) of a shipped model."""
    text = str(text)
    return os.sep not in text and "/" not in text and not Path(text).exists() and text in available(root)


def card(name: str, root: Path | None = None) -> dict[str, Any]:
    """The model card of a shipped model (ConfigError naming the known models when unknown)."""
    root = ZOO_DIR if root is None else Path(root)
    path = root / name / CARD
    if not path.is_file():
        known = ", ".join(available(root)) or "none"
        raise ConfigError(f"unknown zoo model {name!r}; shipped models: {known}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: model card is not valid JSON ({e})") from None


def model_dir(name: str, root: Path | None = None, verify: bool = True) -> Path:
    """The folder of a shipped model, after checking its weights against the card's sha256."""
    root = ZOO_DIR if root is None else Path(root)
    info = card(name, root)
    folder = root / name
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: zoo model weights missing")
    if verify:
        want = info.get("weights_sha256")
        got = sha256(weights)
        if want != got:
            raise CheckpointError(f"{weights}: checksum {got[:12]}… does not match the card's {str(want)[:12]}…; "
                                  f"the file is damaged or was replaced")
    return folder


def model_path(name_or_path: str | os.PathLike, root: Path | None = None) -> Path:
    """The folder to load for `name_or_path`: a shipped model's (checksum verified) when it is a
    bare zoo name, else the run or checkpoint path as given."""
    return model_dir(str(name_or_path), root) if is_zoo_name(name_or_path, root) else Path(name_or_path)


def export_model(run_dir: str | os.PathLike, name: str, fields: dict[str, Any], *, root: Path | None = None,
                 overwrite: bool = False) -> Path:
    """Copy a run's final EMA weights and config into root/name with its card (sha256 and
    parameter count filled in here). An existing model is replaced only with overwrite=True."""
    from ..model.checkpoint import load_model, resolve_checkpoint

    root = ZOO_DIR if root is None else Path(root)
    ckpt = resolve_checkpoint(run_dir, "latest")
    folder = root / name
    if folder.exists() and not overwrite:
        raise ConfigError(f"{folder}: zoo model exists; pass overwrite=True to replace it")
    denoiser, cfg, skeleton = load_model(ckpt, which="ema", select="latest")
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    shutil.copy2(ckpt / WEIGHTS, tmp / WEIGHTS)
    shutil.copy2(ckpt / "config.json", tmp / "config.json")
    info = {"name": name, **fields, "skeleton": skeleton.name,
            "parameters": int(sum(p.numel() for p in denoiser.parameters())),
            "weights": "final EMA weights (fp32), no checkpoint selection", "weights_sha256": sha256(tmp / WEIGHTS),
            "config": cfg.to_dict()}
    atomic_write_text(tmp / CARD, json.dumps(info, indent=2, sort_keys=False) + "\n")
    atomic_write_text(tmp / "README.md", card_markdown(info))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def card_markdown(info: dict[str, Any]) -> str:
    """The model card for people: every field of card.json but the full config."""
    lines = [f"# Model card: `{info['name']}`", "", str(info.get("summary", "")), ""]
    for key, value in info.items():
        if key in ("name", "summary", "config", "val_results"):
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        lines.append(f"- **{key.replace('_', ' ')}**: {value}")
    results = info.get("val_results") or []
    if results:
        lines += ["", "## Validation numbers", "", "| input 2D | N | MPJPE (mm) | P-MPJPE (mm) | command |",
                  "|---|---|---|---|---|"]
        for r in results:
            lines.append(f"| {r['input_2d']} | {r['num_hypotheses']} | {r['mpjpe']:.1f} | {r['p_mpjpe']:.1f} | "
                         f"`{r['command']}` |")
    lines += ["", "The full training config is in `card.json` (`config`) and `config.json`.", ""]
    return "\n".join(lines)


def models_table(root: Path | None = None) -> str:
    """One line per shipped model: name, 2D input, N=10 val MPJPE, size (for `diffupose models`)."""
    names = available(root)
    if not names:
        return "no models shipped"
    out = []
    for name in names:
        info = card(name, root)
        best = [r for r in info.get("val_results", []) if r.get("num_hypotheses") == 10]
        numbers = ", ".join(f"{r['input_2d']}: {r['mpjpe']:.1f} mm" for r in best)
        out.append(f"{name:<12} {info.get('summary', '')}  [val MPJPE N=10 — {numbers}]")
    return "\n".join(out)
