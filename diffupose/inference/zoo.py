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
import logging
import os
import shutil
import textwrap
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError
from ..model.checkpoint import load_model, resolve_checkpoint
from ..utils import atomic_write_text, git_commit

__all__ = ["ZOO_DIR", "available", "card", "model_dir", "is_zoo_name", "model_path", "export_model", "card_markdown",
           "sha256", "models_table", "model_summary", "model_summaries", "RETIRED", "resolve_name", "set_card_entry"]

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo_models"
WEIGHTS = "ema.safetensors"
CARD = "card.json"


# Retired names -> their successor, resolved for one release with a one-line notice.
RETIRED: dict[str, str] = {"h36m-gt": "h36m", "h36m-det-long": "h36m-det", "h36m-det-flow": "h36m-det-fast",
                           "h36m-det-flow-ln": "h36m-det-fast"}

log = logging.getLogger("diffupose.zoo")


def resolve_name(name: str, root: Path | None = None) -> str:
    """A shipped model's current name: a retired name (RETIRED) resolves to its successor with one
    notice line; any other name is returned as it is."""
    successor = RETIRED.get(name)
    if successor is None or (ZOO_DIR if root is None else Path(root)).joinpath(name, CARD).is_file():
        return name
    log.warning("zoo model %r was retired and replaced by %r (the old name works for this release only)",
                name, successor)
    return successor


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
    """A bare name (no path separator) of a shipped model that is not also a loadable run or
    checkpoint here: a folder that merely shares the name (a dataset folder `h36m`, say) does not
    hide the shipped model; a run folder of that name does, with one warning line."""
    text = str(text)
    if os.sep in text or "/" in text or not (text in available(root) or text in RETIRED):
        return False
    try:
        resolve_checkpoint(text)
    except CheckpointError:
        return True
    log.warning("%s: a run or checkpoint folder of that name is here and is used, not the shipped model %s (give "
                "the run as ./%s to say so, or run from another folder for the shipped one)", text, text, text)
    return False


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
    """The folder of a shipped model (a retired name: its successor's), after checking its
    weights against the card's sha256."""
    root = ZOO_DIR if root is None else Path(root)
    name = resolve_name(name, root)
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
                 overwrite: bool = False, allow_dirty: bool = False) -> Path:
    """Copy a run's final EMA weights and config into root/name with its card (sha256, parameter
    count and the commit the export ran at filled in here). An existing model is replaced only
    with overwrite=True; a working tree with uncommitted changes is refused unless allow_dirty
    (the card should name code that exists)."""
    root = ZOO_DIR if root is None else Path(root)
    commit = git_commit()
    if commit.endswith("-dirty") and not allow_dirty:
        raise ConfigError(f"the working tree has uncommitted changes ({commit}): commit them first so that the card "
                          f"names code that exists, or pass allow_dirty=True (benchmarks/zoo.py --allow-dirty)")
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
            "exported_at_commit": commit, "config": cfg.to_dict()}
    atomic_write_text(tmp / CARD, json.dumps(info, indent=2, sort_keys=False) + "\n")
    atomic_write_text(tmp / "README.md", card_markdown(info))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def set_card_entry(name: str, key: str, value: Any, root: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Set one entry of a shipped model's card.json (e.g. its `calibration`) and rewrite its
    README.md from it; every other field, `weights_sha256` included, is kept as it is.
    -> (card path, the new card)."""
    root = ZOO_DIR if root is None else Path(root)
    info = {**card(name, root), key: value}
    path = root / name / CARD
    atomic_write_text(path, json.dumps(info, indent=2, sort_keys=False) + "\n")
    atomic_write_text(root / name / "README.md", card_markdown(info))
    return path, info


def card_markdown(info: dict[str, Any]) -> str:
    """The model card for people: every field of card.json but the full config."""
    lines = [f"# Model card: `{info['name']}`", "", str(info.get("summary", "")), ""]
    for key, value in info.items():
        if key in ("name", "summary", "config", "val_results", "calibration", "seeds") or (
                key == "lift_seconds_per_1000_frames" and "lift_speed" in info):     # said in lift_speed's line
            continue
        if key == "lift_speed" and isinstance(value, dict):
            value = _lift_speed_text(value)
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
        lines.append(f"- **{key.replace('_', ' ')}**: {value}")
    results = info.get("val_results") or []
    if results:
        lines += ["", "## Validation numbers", "", "| input 2D | N | MPJPE (mm) | P-MPJPE (mm) | command |",
                  "|---|---|---|---|---|"]
        for r in results:
            lines.append(f"| {r['input_2d']} | {r['num_hypotheses']} | {r['mpjpe']:.1f} | {r['p_mpjpe']:.1f} | "
                         f"`{r['command']}` |")
    lines += _seeds_markdown(info.get("seeds") or {})
    lines += _calibration_markdown(info.get("calibration") or {})
    lines += ["", "The full training config is in `card.json` (`config`) and `config.json`.", ""]
    return "\n".join(lines)


def _lift_speed_text(entry: dict[str, Any]) -> str:
    """The card's lift time as a sentence: seconds, what was timed, on which CPU, the command."""
    sampling = f" ({entry['sampling_s']:.2f} s of it sampling)" if entry.get("sampling_s") is not None else ""
    return (f"{entry.get('seconds_end_to_end'):.2f} s per 1,000 frames{sampling}: {entry.get('what', '')}; "
            f"{entry.get('cpu', '')}. `{entry.get('command', '')}`")


def _seeds_markdown(entry: dict[str, Any]) -> list[str]:
    """The card's seed section: the shipped seed's number beside mean ± sd over the recipe's seeds."""
    if not entry:
        return ["", "## Seeds", "", "Only the shipped seed has been trained: the spread over seeds of this recipe is not "
                "measured yet (three seeds of each Human3.6M detection recipe span at most 1.0 mm, of the ground-truth "
                "`h36m` 2.4 mm: benchmarks/RECIPES.md 5d, 6e, 6g, 6i)."]
    seeds = entry.get("seeds", [])
    lines = ["", "## Seeds", "", f"The same recipe trained with seeds {', '.join(map(str, seeds))} (shipped: "
             f"{entry.get('shipped_seed')}), each evaluated as above at N = {entry.get('num_hypotheses', 10)}; "
             f"sd over the seeds (ddof = 1). `{entry.get('command', '')}`", "",
             "| input 2D | shipped seed (mm) | per seed (mm) | mean ± sd (mm) |", "|---|---|---|---|"]
    def row(label: str, values: list[float], mean: float, sd: float | None) -> str:
        return (f"| {label} | {values[0]:.1f} | {' / '.join(f'{x:.1f}' for x in values)} | {mean:.1f}"
                + (f" ± {sd:.1f}" if sd is not None else "") + " |")

    for input_2d, v in (entry.get("per_input") or {}).items():
        lines.append(row(input_2d, v.get("mpjpe") or [], v.get("mean", 0), v.get("sd")))
        if v.get("p_mpjpe"):
            lines.append(row(f"{input_2d}, P-MPJPE", v["p_mpjpe"], v.get("p_mean", 0), v.get("p_sd")))
    return lines


def _calibration_markdown(entries: dict[str, Any]) -> list[str]:
    """The card's calibration section: per 2D source, the method, what it was fitted on and the
    held-out numbers raw -> calibrated (`diffupose calibrate`, calibration.json beside the weights)."""
    if not entries:
        return []
    held = [(e.get("held_out") or {}).get("rows") or {} for e in entries.values()]
    repeats = {h.get("repeats") for h in held}
    halves = ("the validation rows, each sequence cut in time at its median frame"
              if {h.get("halves") for h in held} == {"in time"} else "the validation sequences")
    held_out = ("Held-out numbers: fitted on one half of the validation sequences, measured on the other."
                if repeats == {None} else
                f"Held-out numbers: the mean over {2 * max(r or 1 for r in repeats)} held-out halves ("
                f"{max(r or 1 for r in repeats)} seeded splits of {halves}, each used both ways: "
                f"fitted on one half, measured on the other).")
    lines = ["", "## Calibration", "",
             "The hypotheses' spread is calibrated after training (`calibration.json`, applied by default; "
             "`calibrated=False` gives the raw sampler). " + held_out, "",
             "| 2D source | method | fitted on | calib. error raw → calibrated | 90 % band coverage raw → calibrated |",
             "|---|---|---|---|---|"]

    def pair(held, get):
        raw, cal = get(held.get("raw") or {}), get(held.get(held.get("chosen")) or {})
        fmt = (lambda v: "–" if v is None else f"{v:.3f}")
        return f"{fmt(raw)} → {fmt(cal)}"

    for source, entry in entries.items():
        on, held = entry.get("fitted_on") or {}, entry.get("held_out") or {}
        fitted = (f"{on.get('dataset', '')} {on.get('split', '')} ({', '.join(on.get('subjects') or [])}), "
                  f"{on.get('num_rows')} rows, {on.get('keypoints_2d_name', '')}; N = {on.get('num_hypotheses')}, "
                  f"{on.get('sampler')} {on.get('nfe')} NFE; {on.get('date', '')}")
        lines.append(f"| {source} | {entry.get('method')} | {fitted} | "
                     f"{pair(held, lambda f: f.get('calibration_error'))} | "
                     f"{pair(held, lambda f: (f.get('coverage') or {}).get('0.9'))} |")
    return lines


def model_summary(name: str, root: Path | None = None) -> dict[str, Any]:
    """One shipped model as a row of the chooser: name, the input it is for, frames (W), network
    evaluations per chain (NFE), S8 val MPJPE at N = 10 on detections and on ground-truth 2D,
    `lift` seconds per 1,000 frames (N = 10, measured at export on the card's CPU), weights size,
    and the input kinds it is the recommended model for."""
    root = ZOO_DIR if root is None else Path(root)
    info = card(name, root)
    cfg = info.get("config", {})
    model, ev, diffusion = cfg.get("model", {}), cfg.get("eval", {}), cfg.get("diffusion", {})
    sampler = ev.get("sampler", "ddim")
    nfe = int(diffusion.get("num_timesteps", 100)) if sampler == "ddpm" else int(ev.get("num_steps", 5))

    def val(kind: str) -> float | None:
        rows = [r for r in info.get("val_results", []) if r.get("num_hypotheses") == 10
                and str(r.get("input_2d", "")).lower().startswith(kind)]     # "GT (projected, beside ...)" too
        return round(float(rows[0]["mpjpe"]), 1) if rows else None

    weights = root / name / WEIGHTS
    return {"name": name, "input": info.get("input", "-"), "frames": int(model.get("window", 1)), "nfe": nfe,
            "val_detections_mm": val("detections"), "val_gt_2d_mm": val("gt"),
            "lift_s_per_1000_frames": info.get("lift_seconds_per_1000_frames"),
            "size_mb": round(weights.stat().st_size / 1e6, 1) if weights.is_file() else None,
            "recommended_for": list(info.get("recommended_for", [])), "skeleton": info.get("skeleton"),
            "seeds": {k: {"mean": v.get("mean"), "sd": v.get("sd")}
                      for k, v in ((info.get("seeds") or {}).get("per_input") or {}).items()}}


def model_summaries(root: Path | None = None) -> list[dict[str, Any]]:
    """`model_summary` of every shipped model in the chooser's order: recommended ones first, then by name."""
    return sorted((model_summary(n, root) for n in available(root)), key=lambda r: (not r["recommended_for"], r["name"]))


def models_table(root: Path | None = None) -> str:
    """The chooser `diffupose models` prints: one aligned row per shipped model (recommended ones
    first, marked *), the columns of `model_summary`, and how to see a card."""
    names = available(root)
    if not names:
        return "no models shipped"
    rows = model_summaries(root)
    fmt = (lambda v: "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v)))
    header = ["", "name", "for input", "frames", "NFE", "det. mm", "GT 2D mm", "s/1k frames", "MB"]
    table = [header] + [["*" if r["recommended_for"] else "", r["name"], r["input"], fmt(r["frames"]), fmt(r["nfe"]),
                         fmt(r["val_detections_mm"]), fmt(r["val_gt_2d_mm"]), fmt(r["lift_s_per_1000_frames"]),
                         fmt(r["size_mb"])] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    right = {3, 4, 5, 6, 7, 8}
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in table]
    recommended = [f"{kind}: {r['name']}" for r in rows for kind in r["recommended_for"]]
    notes = ["* recommended" + (f" ({'; '.join(recommended)})" if recommended else ""),
             "mm: MPJPE (N = 10, ground-truth free) on each model's validation data: Human3.6M S8 (not the S9/S11 "
             "test subjects) for h36m models, held-out Train chunks for humaneva (its card's headline is P-MPJPE); "
             "det. = detections, GT 2D = projected ground truth; s/1k frames: `diffupose lift` of a 1,000-frame "
             "track, N = 10, on the card's CPU; MB: the weights file (10^6 bytes)",
             "`diffupose models NAME` prints a model's card; `--json` this table for scripts"]
    retired = {a: b for a, b in RETIRED.items() if a not in names}     # a name still shipped is not retired yet
    if retired:
        notes.append("retired names (this release only): " + ", ".join(f"{a} -> {b}" for a, b in sorted(retired.items())))
    lines.append("")
    for note in notes:                                                   # as wide as the table, at least 80
        lines += textwrap.wrap(note, width=max(80, len(lines[0])), subsequent_indent="  ", break_on_hyphens=False)
    return "\n".join(lines)
