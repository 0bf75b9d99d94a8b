"""Command line: `diffupose prepare|train|evaluate|sample|lift|models|describe|report`.

Argument parsing lives here only; every command calls one library function. Errors meant for
users (DiffuPoseError) are printed as one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import PRESETS
from .diffusion.samplers import SAMPLERS
from .errors import ConfigError, DataError, DiffuPoseError
from .inference.aggregate import AGGREGATIONS
from .workbench.assets import EXTRA_MODULES, WORKBENCH_INSTALL
from .workbench.profiles import profile_names

log = logging.getLogger("diffupose")


def _add_eval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="ddpm | ddim for a DDPM model; euler | heun | midpoint for a flow-matching model "
                        "(ddim means euler for it)")
    p.add_argument("--steps", type=int, default=None,
                   help="network evaluations per chain (NFE) for ddim and the flow samplers; ddpm always runs T")
    p.add_argument("--eta", type=float, default=None, help="DDIM / Euler eta (0 = deterministic)")
    p.add_argument("--hypotheses", type=int, default=None, help="number of hypotheses H")
    p.add_argument("--flip", dest="flip", action="store_true", default=None, help="test-time flip")
    p.add_argument("--no-flip", dest="flip", action="store_false")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--checkpoint", choices=("best", "ema", "model"), default=None,
                   help="best: EMA weights chosen on val (default); ema: latest EMA weights; model: latest raw weights")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _eval_overrides(args: argparse.Namespace) -> dict:
    mapping = {"sampler": "sampler", "steps": "num_steps", "eta": "eta", "hypotheses": "num_hypotheses",
               "flip": "flip", "seed": "seed", "checkpoint": "checkpoint",
               "aggregate": "aggregate", "protocol": "protocol", "batch_size": "batch_size",
               "max_samples": "max_samples", "input_2d": "input_2d", "input_source": "input_source"}
    return {f"eval.{key}": getattr(args, name) for name, key in mapping.items()
            if getattr(args, name, None) is not None}


def _add_model_source(p: argparse.ArgumentParser, run_help: str = "run or checkpoint directory") -> None:
    """--run DIR or --model NAME (a shipped zoo model; `diffupose models` lists them)."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help=run_help)
    source.add_argument("--model", help="a shipped zoo model by name (see `diffupose models`), e.g. h36m-det")


def _resolve_model_source(args: argparse.Namespace) -> None:
    """--model NAME -> args.run = the zoo folder (checksum verified); its weights are the final
    EMA (no checkpoint selection), so the checkpoint default becomes `ema`."""
    if getattr(args, "model", None):
        from .inference.zoo import model_dir

        args.run = str(model_dir(args.model))
        if args.checkpoint is None:
            args.checkpoint = "ema"
        elif args.checkpoint != "ema":
            raise ConfigError(f"zoo model {args.model}: ships only its final EMA weights (--checkpoint ema)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="diffupose", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"diffupose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prepare_parser(sub)
    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_sample_parser(sub)
    _add_lift_parser(sub)
    p = sub.add_parser("models", help="list the shipped zoo models, or print one model's card")
    p.add_argument("name", nargs="?", default=None, help="a model name: print its card")
    _add_describe_parser(sub)
    _add_report_parser(sub)
    return parser


def _add_prepare_parser(sub) -> None:
    p = sub.add_parser("prepare", help="convert a dataset into one safe prepared .npz")
    p.add_argument("--dataset", required=True, choices=("h36m", "humaneva", "synthetic"))
    p.add_argument("--data-dir", default=None, help="folder with the dataset files (not for synthetic)")
    p.add_argument("--keypoints", default="gt", help="2D source: gt (projected/given) or a detections name, e.g. cpn_ft_h36m_dbb")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--allow-pickle", action="store_true",
                   help="allow reading pickled VideoPose3D files (only for files you trust)")
    p.add_argument("--val-subjects", nargs="*", default=None,
                   help="training subjects held out as the 'val' split (e.g. S8); default: held-out sequences")
    p.add_argument("--actions", nargs="*", default=None, help="restrict to these actions")
    p.add_argument("--stride", type=int, default=1, help="keep every k-th frame")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a denoiser on a prepared .npz")
    p.add_argument("--data", required=True, help="prepared .npz")
    p.add_argument("--out", required=True,
                   help="run directory (an existing run is resumed when its data and config match)")
    p.add_argument("--preset", default="default", help=f"config preset: {', '.join(PRESETS)}")
    p.add_argument("--config", default=None, help="config JSON (replaces the preset)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=1e-3 (repeatable)")
    p.add_argument("--no-resume", action="store_true",
                   help="start a new run; refuses when --out already holds one (unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out: deletes its checkpoints and history, then starts over")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-progress", action="store_true")


def _add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="per-action MPJPE / P-MPJPE of a run on a prepared split")
    _add_model_source(p, "run directory")
    p.add_argument("--data", required=True, help="prepared .npz")
    p.add_argument("--split", default="test")
    p.add_argument("--json", default=None, help="write the result as JSON")
    p.add_argument("--csv", default=None, help="write tidy rows as CSV")
    p.add_argument("--aggregate", choices=AGGREGATIONS, default=None)
    p.add_argument("--protocol", default=None,
                   help="gt_free (default, ground-truth free) or official_oracle (the released code's "
                        "evaluation, uses 3D ground truth)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--input-2d", choices=("file", "gt"), default=None,
                   help="file: the prepared 2D (detections for a detections file); gt: the projected ground "
                        "truth kept beside detections")
    p.add_argument("--input-source", choices=("auto", "clean", "detected"), default=None,
                   help="the 2D source a model trained with model.source_condition is told; auto (default): "
                        "detected for a detections file's own 2D, clean for ground truth")
    _add_eval_options(p)


def _add_sample_parser(sub) -> None:
    p = sub.add_parser("sample", help="lift 2D keypoints (.npy/.json) to H 3D hypotheses (.npz)")
    _add_model_source(p)
    p.add_argument("--keypoints", required=True, help=".npy or .json array (N, J, 2)")
    p.add_argument("--out", required=True, help="output .npz with hypotheses (N, H, J, 3)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                   help="keypoints are pixels of a W x H image (default: already normalised)")
    p.add_argument("--aggregate", choices=AGGREGATIONS, default=None)
    _add_eval_options(p)


def _add_lift_parser(sub) -> None:
    p = sub.add_parser("lift", help="lift a 2D detector's keypoints (COCO, Halpe, OpenPose, MPII, H36M) to 3D "
                                    "hypotheses: .npz/.json, .bvh and an HTML viewer")
    _add_model_source(p)
    p.add_argument("--keypoints", required=True, help="keypoint file, or a folder of OpenPose per-frame .json files")
    p.add_argument("--format", default=None,
                   choices=("coco17", "coco_wholebody", "halpe26", "body25", "mpii16", "h36m17", "humaneva15"),
                   help="keypoint layout (default: detected from the file; a 17-joint array is read as h36m17 "
                        "only when its geometry says so, else pass --format coco17 or h36m17)")
    size = p.add_argument_group("camera")
    size.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                      help="keypoints are pixels of a W x H image (needed for detector output)")
    size.add_argument("--focal", type=float, default=None,
                      help="focal length in pixels: place the root in metric camera space (else root-relative)")
    p.add_argument("--min-score", type=float, default=0.3, help="keypoints scored lower are missing (default 0.3)")
    p.add_argument("--people", choices=("all", "best"), default="all",
                   help="all detections, or the best-scoring person of each frame (a track)")
    p.add_argument("--missing", choices=("auto", "mask", "fill"), default="auto",
                   help="missing joints: auto (mask if the model was trained with missing joints, else fill), "
                        "mask, or fill (interpolate in time / fit the mean pose)")
    p.add_argument("--smooth", type=float, default=0.0,
                   help="Gaussian sigma in frames for the aggregate of a track (default 0 = off)")
    p.add_argument("--aggregate", choices=AGGREGATIONS, default=None)
    p.add_argument("--out", required=True, help="output stem or file (.npz/.json/.bvh/.html); all four are written")
    p.add_argument("--outputs", nargs="+", default=["npz", "json", "bvh", "html"],
                   choices=("npz", "json", "bvh", "html"), help="which files to write (default: all)")
    p.add_argument("--fps", type=float, default=50.0, help="the input's frame rate: the BVH's frame time and, for a windowed model, the spacing of its 2D window "
                        "(default 50, Human3.6M's rate)")
    _add_eval_options(p)


def _add_describe_parser(sub) -> None:
    p = sub.add_parser("describe", help="print parameter count and layer summary as one JSON line")
    p.add_argument("--denoiser", choices=("gcn", "unet"), default="gcn")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--skeleton", default="h36m17")
    p.add_argument("--released-unused-film", action="store_true",
                   help="build the FiLM block the released code creates but never uses")


def _add_report_parser(sub) -> None:
    p = sub.add_parser("report", help="execute the notebooks with papermill into reports/<name>/ (needs the "
                                      "workbench extra: pip install 'diffupose[workbench]')")
    p.add_argument("--profile", default="demo", help=", ".join(profile_names()))
    p.add_argument("--name", default=None, help="report folder name (default: the profile)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile parameter (e.g. data_dir=...) or config value (train.lr=...)")
    p.add_argument("--out-root", default="reports")
    p.add_argument("--notebooks", nargs="*", default=None, help="run only these notebooks (e.g. 01 02)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="let 01_data_prep unpickle the dataset's files (HumanEva's VideoPose3D files are "
                        "pickled; runs code stored in them: only for files you trust)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the report in the folder: delete it (with its training run when the run is "
                        "inside) and start over. Without it, running the same report again resumes it (training "
                        "continues from its last checkpoint, pages are rewritten), and a report of another "
                        "profile, or a finished one made with other --set values, is refused")


def cmd_prepare(args: argparse.Namespace) -> None:
    from .data.prepare import prepare_dataset, summarize
    from .data.prepared import load_prepared
    from .utils import check_output_file

    check_output_file(args.out, overwrite=args.overwrite)
    out = prepare_dataset(args.dataset, data_dir=args.data_dir, out=args.out, keypoints=args.keypoints,
                          allow_pickle=args.allow_pickle, val_subjects=args.val_subjects,
                          actions=args.actions, stride=args.stride, seed=args.seed)
    print(json.dumps({"out": str(out), **summarize(load_prepared(out))}, default=str))


def _train_config(args: argparse.Namespace):
    from .config import Config, apply_overrides, preset

    cfg = Config.from_json(args.config) if args.config else preset(args.preset)
    overrides = list(args.overrides) + [f"data.path={args.data}"]
    if args.device:
        overrides.append(f"train.device={args.device}")
    return apply_overrides(cfg, overrides)


def cmd_train(args: argparse.Namespace) -> None:
    from .training import train

    cfg = _train_config(args)
    result = train(cfg, args.out, resume=not args.no_resume, overwrite=args.overwrite, progress=not args.no_progress)
    print(json.dumps({"run_dir": str(result.run_dir), "steps": result.steps,
                      "best_val_mpjpe_mm": result.best_val_mpjpe, "wall_time_s": result.wall_time_s}))


def _eval_config(args: argparse.Namespace):
    """The run's EvalConfig with the command-line overrides, validated (one-line errors)."""
    from .config import Config, apply_overrides
    from .errors import CheckpointError
    from .evaluation.protocols import check_eval_config

    _resolve_model_source(args)
    config_path = Path(args.run) / "config.json"
    if not config_path.exists():
        raise CheckpointError(f"{args.run}: not a run directory (no config.json)")
    overrides = _eval_overrides(args)
    stored = Config.from_json(config_path)
    if stored.eval.protocol == "default" and "eval.protocol" not in overrides:  # runs made before the rename
        overrides["eval.protocol"] = "gt_free"
    ev = apply_overrides(stored, overrides).eval
    check_eval_config(ev)
    return ev


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.protocols import evaluate
    from .utils import check_output_file

    _resolve_model_source(args)
    for path in (args.json, args.csv):
        if path:
            check_output_file(path, overwrite=args.overwrite)
    result = evaluate(args.run, args.data, split=args.split, eval_cfg=_eval_config(args), device=args.device)
    print(result.format_table())
    if args.json:
        result.to_json(args.json)
    if args.csv:
        result.to_csv(args.csv)


# Normalised screen coordinates lie in [-1, 1] along x (and |y| <= h/w); pixel coordinates of
# any real image are far larger. Beyond this bound the input is taken for pixels.
NORMALISED_BOUND = 2.0


def read_keypoints_file(path: str | Path, image_size: tuple[int, int] | None = None):
    """Keypoints for `sample`: a .npy array or a .json list, shape (N, J, 2) or (J, 2), every
    joint present -> (N, J, 2) float32 normalised screen coordinates. Pixel input needs
    `image_size` (W, H); input that looks like pixels without it is refused."""
    import numpy as np

    from .geometry.projection import normalize_screen_coordinates

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif path.suffix == ".json":
            arr = json.loads(path.read_text())
        else:
            raise DataError(f"{path}: expected a .npy or .json keypoints file")
        arr = np.asarray(arr, dtype=np.float32)
    except (ValueError, TypeError, OSError) as e:
        raise DataError(f"{path}: cannot read keypoints as a numeric (N, J, 2) array "
                        f"({str(e).splitlines()[0]})") from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise DataError(f"{path}: keypoints must have shape (N, J, 2), got {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{path}: no keypoints (empty array)")
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: keypoints contain NaN or inf (use `diffupose lift` for missing joints)")
    if image_size is not None:
        w, h = image_size
        if w <= 0 or h <= 0:
            raise DataError(f"{path}: --image-size must be positive, got {w} x {h}")
        arr = normalize_screen_coordinates(arr, w, h).astype(np.float32)
    elif np.abs(arr).max() > NORMALISED_BOUND:
        raise DataError(f"{path}: values up to {np.abs(arr).max():.0f} look like pixels; pass --image-size W H "
                        "(normalised screen coordinates lie within [-1, 1])")
    return arr


def cmd_sample(args: argparse.Namespace) -> None:
    from .inference.lifter import Lifter, SamplingSettings
    from .utils import atomic_savez, check_output_file

    eval_cfg = _eval_config(args)
    check_output_file(args.out, overwrite=args.overwrite)
    keypoints = read_keypoints_file(args.keypoints, args.image_size)
    lifter = Lifter.load(args.run, checkpoint=eval_cfg.checkpoint, device=args.device)
    if keypoints.shape[1] != lifter.skeleton.num_joints:
        raise DataError(f"{args.keypoints}: {keypoints.shape[1]} joints, but the model was trained on "
                        f"{lifter.skeleton.name} with {lifter.skeleton.num_joints}")
    out = lifter.lift(keypoints, SamplingSettings.from_eval_config(eval_cfg))
    atomic_savez(args.out, hypotheses=out.hypotheses, aggregate=out.aggregate, spread=out.spread,
                 keypoints_2d=keypoints,
                 card=json.dumps({"run": str(args.run), "skeleton": lifter.skeleton.name, **eval_cfg.__dict__}))
    print(json.dumps({"out": str(args.out), "hypotheses_shape": list(out.hypotheses.shape)}))


def cmd_lift(args: argparse.Namespace) -> None:
    from .lifting import lift

    _resolve_model_source(args)
    num_hypotheses = args.hypotheses if args.hypotheses is not None else 10
    result = lift(args.keypoints, args.run, format=args.format, image_size=args.image_size, focal_length=args.focal,
                  num_hypotheses=num_hypotheses, aggregate=args.aggregate, min_score=args.min_score,
                  smooth=args.smooth, people=args.people, missing=args.missing, sampler=args.sampler, num_steps=args.steps,
                  flip=args.flip, seed=args.seed, checkpoint=args.checkpoint or "best", device=args.device,
                  out=args.out, outputs=args.outputs, overwrite=args.overwrite, fps=args.fps)
    print(json.dumps({"files": {k: str(v) for k, v in result.files.items()}, "layout": result.card["layout"],
                      "hypotheses_shape": list(result.hypotheses.shape), "coordinates": result.card["coordinates"],
                      "missing_joints": result.card["missing_joints"],
                      "missing_joint_handling": result.card["missing_joint_handling"]}))


def cmd_models(args: argparse.Namespace) -> None:
    from .inference import zoo

    if args.name is None:
        print(zoo.models_table())
        return
    zoo.model_dir(args.name)            # verifies the checksum
    print(zoo.card_markdown(zoo.card(args.name)))


def cmd_describe(args: argparse.Namespace) -> None:
    from .config import ModelConfig
    from .model import build_denoiser, count_parameters
    from .geometry.skeleton import get_skeleton

    skeleton = get_skeleton(args.skeleton)
    model_cfg = ModelConfig(denoiser=args.denoiser, dim=args.dim, released_unused_film=args.released_unused_film)
    model = build_denoiser(model_cfg, skeleton)
    layers = [{"name": name, "type": type(m).__name__, "parameters": sum(p.numel() for p in m.parameters())}
              for name, m in model.named_children()]
    print(json.dumps({"denoiser": args.denoiser, "dim": args.dim, "skeleton": skeleton.name,
                      "num_joints": skeleton.num_joints, "parameters": count_parameters(model),
                      "layers": layers}))


def cmd_report(args: argparse.Namespace) -> None:
    from .workbench.reports import run_report

    overrides = list(args.overrides) + (["allow_pickle=true"] if args.allow_pickle else [])
    path = run_report(args.profile, name=args.name, overrides=overrides, out_root=args.out_root,
                      notebooks=args.notebooks, overwrite=args.overwrite)
    print(json.dumps({"report": str(Path(path) / "index.html")}))


COMMANDS = {"prepare": cmd_prepare, "train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample,
            "lift": cmd_lift, "models": cmd_models, "describe": cmd_describe, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        COMMANDS[args.command](args)
    except (DiffuPoseError, ConfigError) as e:
        print(f"diffupose {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] not in EXTRA_MODULES:
            raise
        print(f"diffupose {args.command}: error: this needs the workbench extra ({e.name} is not installed): "
              f"{WORKBENCH_INSTALL}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"diffupose {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
