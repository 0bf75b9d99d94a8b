"""Command line: `diffupose prepare|train|evaluate|calibrate|sample|lift|models|describe|report`.

Argument parsing lives here only; every command calls one library function. Errors meant for
users (DiffuPoseError) are printed as one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import datetime
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


class _ProtocolChoices(tuple):
    """`evaluate --protocol` choices: help and argparse's messages list these; the old name
    'default' also passes the parser, so that the evaluation refuses it in one line naming its new
    name (gt_free)."""

    def __contains__(self, value) -> bool:
        return value == "default" or tuple.__contains__(self, value)


def _add_eval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="ddpm | ddim for a DDPM model; euler | heun | midpoint for a flow-matching model "
                        "(ddim means euler for it). Default: the model's own eval.sampler (ddim unless its "
                        "card says otherwise)")
    p.add_argument("--steps", type=int, default=None,
                   help="network evaluations per chain (NFE) for ddim and the flow samplers; ddpm always runs "
                        "all T steps. Default: the model's eval.num_steps (5 unless its card says otherwise)")
    p.add_argument("--eta", type=float, default=None,
                   help="DDIM / Euler eta, 0 = deterministic (default: the model's eval.eta, 0)")
    p.add_argument("--hypotheses", type=int, default=None,
                   help="number of hypotheses N per input (default: lift 10; evaluate and sample: the model's "
                        "eval.num_hypotheses, 10)")
    p.add_argument("--flip", dest="flip", action="store_true", default=None,
                   help="average each hypothesis with its left-right mirrored twin (default: the model's "
                        "eval.flip, on)")
    p.add_argument("--no-flip", dest="flip", action="store_false",
                   help="turn the flip off (half the network work)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed of the hypotheses (default: the model's eval.seed, 0)")
    p.add_argument("--device", default="auto",
                   help="auto (default: cuda when available, else cpu) | cpu | cuda | cuda:N")
    p.add_argument("--checkpoint", choices=("best", "ema", "model"), default=None,
                   help="weights of a --run: best (the default; the EMA weights with the lowest validation "
                        "error, chosen on val), ema (the latest EMA weights) or model (the latest raw weights). "
                        "--model always uses the zoo model's final EMA weights (ema)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (default: refuse)")
    p.add_argument("--uncalibrated", dest="calibrated", action="store_false", default=None,
                   help="the raw sampler's hypotheses: do not apply the model's calibration (calibration.json beside "
                        "its weights, from `diffupose calibrate`; default: applied when the model has one)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default=None,
                   help="the network's arithmetic while sampling: auto = bf16 on CPUs with native bf16 for models "
                        "that predict v or a flow velocity (about 2x faster, within 0.1 mm) | bf16 | fp32 (default: "
                        "auto for lift, fp32 for evaluate and sample, whose numbers are then the same on every machine)")


def _eval_overrides(args: argparse.Namespace) -> dict:
    mapping = {"sampler": "sampler", "steps": "num_steps", "eta": "eta", "hypotheses": "num_hypotheses",
               "flip": "flip", "seed": "seed", "checkpoint": "checkpoint",
               "aggregate": "aggregate", "protocol": "protocol", "batch_size": "batch_size",
               "max_samples": "max_samples", "input_2d": "input_2d", "input_source": "input_source",
               "calibrated": "calibrated", "precision": "precision"}
    return {f"eval.{key}": getattr(args, name) for name, key in mapping.items()
            if getattr(args, name, None) is not None}


def _add_model_source(p: argparse.ArgumentParser,
                      run_help: str = "a run directory from `diffupose train`, or a checkpoint directory") -> None:
    """--run DIR or --model NAME (a shipped zoo model; `diffupose models` lists them)."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help=run_help)
    source.add_argument("--model", help="a shipped model by name (`diffupose models` lists them), e.g. h36m-det; "
                                        "one of --run and --model is required")


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

    parser = argparse.ArgumentParser(
        prog="diffupose", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="DiffuPose workbench: diffusion-based 3D human pose lifting. Lift 2D keypoints to\n"
                    "3D hypotheses with a shipped model, or prepare data, train, evaluate and report.",
        epilog="Start here:\n"
               "  diffupose models                    which model for which input\n"
               "  diffupose lift --model h36m-det-video --keypoints examples/coco17_S8_walking.json "
               "--image-size 1000 1002 --out out/walk\n"
               "`diffupose COMMAND --help` lists a command's options and their defaults; "
               "the docs: docs/README.md.")
    parser.add_argument("--version", action="version", version=f"diffupose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (default: info)")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    _add_lift_parser(sub)
    p = sub.add_parser("models", help="list the shipped models (which input each is for), or print one model's card",
                       description="List the shipped models, or print one model's card (its data, recipe, "
                                   "validation numbers and the commands that reproduce them).")
    p.add_argument("name", nargs="?", default=None, help="a model name: print its card (default: list them all)")
    p.add_argument("--json", action="store_true", help="print the table (or the card) as JSON, for scripts (default: text)")
    _add_prepare_parser(sub)
    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_calibrate_parser(sub)
    _add_sample_parser(sub)
    _add_describe_parser(sub)
    _add_report_parser(sub)
    return parser


def _add_prepare_parser(sub) -> None:
    p = sub.add_parser("prepare", help="convert a dataset into one plain-array .npz (no pickle) for train and evaluate")
    p.add_argument("--dataset", required=True, choices=("h36m", "humaneva", "synthetic"),
                   help="which dataset (required); synthetic needs no files")
    p.add_argument("--data-dir", default=None,
                   help="folder with the dataset files (default: none; required for h36m and humaneva, not used "
                        "for synthetic)")
    p.add_argument("--keypoints", default="gt",
                   help="2D source: gt (projected ground truth, the default), sh (Human3.6M Stacked Hourglass "
                        "detections) or a VideoPose3D detections name, e.g. cpn_ft_h36m_dbb")
    p.add_argument("--out", required=True, help="output .npz (required)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="allow reading pickled VideoPose3D files, e.g. HumanEva-I's (unpickling can run code: "
                        "only for files you trust; default: refuse)")
    p.add_argument("--val-subjects", nargs="*", default=None,
                   help="training subjects held out as the 'val' split (e.g. S8); default: Human3.6M holds out "
                        "a seeded ~10%% of the training sequences, HumanEva-I the last chunk of each "
                        "subject x action")
    p.add_argument("--actions", nargs="*", default=None,
                   help="restrict to these actions (default: all; HumanEva-I: Walking, Jog, Box)")
    p.add_argument("--stride", type=int, default=1, help="keep every k-th frame (default 1: every frame)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the synthetic data and of the held-out val sequences (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (default: refuse)")


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a denoiser on a prepared .npz (resumable, checked)")
    p.add_argument("--data", required=True, help="prepared .npz from `diffupose prepare` (required)")
    p.add_argument("--out", required=True,
                   help="run directory (required; an existing run is resumed when its data and config match)")
    p.add_argument("--preset", default="default",
                   help=f"config preset: {', '.join(PRESETS)} (default: default, the released code's GPU "
                        "settings; on a CPU use h36m_cpu, h36m_sh_cpu or humaneva_cpu)")
    p.add_argument("--config", default=None, help="config JSON that replaces the preset (default: none)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=1e-3 (repeatable; default: none)")
    p.add_argument("--no-resume", action="store_true",
                   help="start a new run; refuses when --out already holds one (unless --overwrite). "
                        "Default: resume the run in --out when there is one")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out: deletes its checkpoints and history, then starts over "
                        "(default: resume it)")
    p.add_argument("--device", default=None,
                   help="auto | cpu | cuda | cuda:N (default: the config's train.device, auto = cuda when "
                        "available, else cpu)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (default: a bar, and a log line every 10 s)")


def _add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="per-action MPJPE / P-MPJPE of a run or model on a prepared split")
    _add_model_source(p, "a run directory from `diffupose train`")
    p.add_argument("--data", required=True, help="prepared .npz from `diffupose prepare` (required)")
    p.add_argument("--split", default="test", help="train | val | test (default: test)")
    p.add_argument("--json", default=None, help="write the result and its protocol card as JSON (default: none)")
    p.add_argument("--csv", default=None, help="write tidy rows as CSV (default: none)")
    p.add_argument("--aggregate", choices=AGGREGATIONS, default=None,
                   help="how the N hypotheses become one pose (default: the model's eval.aggregate, mean)")
    p.add_argument("--protocol", choices=_ProtocolChoices(("gt_free", "official_oracle")), default=None,
                   help="gt_free (ground-truth free; the default unless the run's eval.protocol says otherwise) "
                        "or official_oracle (the released code's evaluation: uses the 3D ground-truth root depth)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="2D inputs per sampler call (default: the model's eval.batch_size, 2048)")
    p.add_argument("--max-samples", type=int, default=None,
                   help="evaluate a seeded subset of this many samples (default: the model's eval.max_samples, "
                        "0 = all)")
    p.add_argument("--input-2d", choices=("file", "gt"), default=None,
                   help="file: the prepared 2D (detections for a detections file); gt: the projected ground "
                        "truth kept beside detections (default: the model's eval.input_2d, file)")
    p.add_argument("--input-source", choices=("auto", "clean", "detected"), default=None,
                   help="the 2D source a model trained with model.source_condition is told; auto (default): "
                        "detected for a detections file's own 2D, clean for ground truth")
    _add_eval_options(p)


def _add_calibrate_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="fit the calibration of a run's or model's hypotheses on its validation split "
                                         "(calibration.json beside the weights; used by default afterwards)",
                       description="Sample N hypotheses per 2D input of the model's validation split with its own "
                                   "sampler (flip on), fit a per-joint scale of the hypotheses' deviations from their "
                                   "aggregate and split-conformal radii, keep the method that calibrates better on "
                                   "held-out halves of the sequences (ten seeded splits, each used both ways), and "
                                   "write calibration.json beside the weights (a zoo model: also its card). Prints "
                                   "the held-out raw vs calibrated table. A test split is refused.")
    _add_model_source(p)
    p.add_argument("--data", required=True, help="prepared .npz from `diffupose prepare` (required)")
    p.add_argument("--split", default=None,
                   help="the split to fit on (default: the model's validation split, config.data.val_split; a test "
                        "split is refused)")
    p.add_argument("--max-samples", type=int, default=10000,
                   help="fit on a seeded subset of this many samples (default 10000; 0 = all)")
    p.add_argument("--hypotheses", type=int, default=10, help="hypotheses N per input (default 10)")
    p.add_argument("--input-2d", choices=("file", "gt"), default="file",
                   help="file: the prepared 2D (detections for a detections file: fits the `detected` calibration); "
                        "gt: the projected ground truth kept beside them (the `clean` one). Default: file")
    p.add_argument("--checkpoint", choices=("best", "ema", "model"), default=None,
                   help="weights of a --run (default: ema, the latest EMA weights, since the validation split chose "
                        "`best`); --model always uses the zoo model's final EMA weights")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset, the hypotheses and the halves (default 0)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="2D inputs per sampler call (default: the model's eval.batch_size)")
    p.add_argument("--device", default="auto", help="auto (default: cuda when available, else cpu) | cpu | cuda | cuda:N")
    p.add_argument("--out", default=None,
                   help="folder to write calibration.json into (default: beside the weights: the run folder, or the "
                        "zoo model's folder and its card)")
    p.add_argument("--json", default=None, help="also write the held-out report as JSON (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file (default: refuse)")
    p.add_argument("--allow-dirty", action="store_true",
                   help="--model: write into the zoo folder although the working tree has uncommitted changes (the "
                        "file then names a -dirty commit; default: refuse)")


def _add_sample_parser(sub) -> None:
    p = sub.add_parser("sample", help="raw sampling: a complete (N, J, 2) array in the model's joint order to "
                                      "hypotheses (.npz); for detector files use lift")
    _add_model_source(p)
    p.add_argument("--keypoints", required=True, help=".npy or .json array (N, J, 2) (required)")
    p.add_argument("--out", required=True, help="output .npz with hypotheses (N, H, J, 3) (required)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                   help="keypoints are pixels of a W x H image (default: already normalised)")
    p.add_argument("--aggregate", choices=AGGREGATIONS, default=None,
                   help="how the hypotheses become one pose (default: the model's eval.aggregate, mean)")
    _add_eval_options(p)


def _add_lift_parser(sub) -> None:
    p = sub.add_parser("lift", help="lift a 2D detector's keypoints (COCO, Halpe, OpenPose, MPII, H36M) to 3D "
                                    "hypotheses: .npz/.json, .bvh and an HTML viewer")
    _add_model_source(p)
    p.add_argument("--keypoints", required=True,
                   help="keypoint file (COCO / Halpe / OpenPose JSON, .npy or .json array), or a folder of OpenPose "
                        "per-frame .json files (required)")
    p.add_argument("--format", default=None,
                   choices=("coco17", "coco_wholebody", "halpe26", "body25", "mpii16", "h36m17", "humaneva15"),
                   help="keypoint layout (default: detected from the file; a 17-joint array is read as h36m17 "
                        "only when its geometry says so, else pass --format coco17 or h36m17)")
    size = p.add_argument_group("camera")
    size.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                      help="keypoints are pixels of a W x H image (needed for pixel input such as detector "
                           "output; default: none, the keypoints must be normalised screen coordinates)")
    size.add_argument("--focal", type=float, default=None,
                      help="focal length in pixels (principal point at the image centre): place the root in "
                           "metric camera space (default: none, root-relative output)")
    p.add_argument("--min-score", type=float, default=0.3, help="keypoints scored lower are missing (default 0.3)")
    p.add_argument("--people", choices=("all", "best"), default="all",
                   help="all: every detection (the default); best: the best-scoring person of each frame (a track)")
    p.add_argument("--missing", choices=("auto", "mask", "fill"), default="auto",
                   help="missing joints: auto (the default: mask if the model was trained with missing joints, "
                        "except a track's joints missing for at most 0.2 s, interpolated in time; else fill), "
                        "mask (every missing joint masked), or fill (interpolate in time / fit the mean pose)")
    p.add_argument("--smooth", type=float, default=0.0,
                   help="Gaussian sigma in frames for the aggregate of a track (default 0 = off)")
    p.add_argument("--aggregate", choices=AGGREGATIONS, default=None,
                   help="how the hypotheses become one pose (default: the model's eval.aggregate, mean)")
    p.add_argument("--out", required=True,
                   help="output stem, e.g. out/walk (a .npz/.json/.bvh/.html suffix is dropped); the files "
                        "--outputs names are written beside it (required)")
    p.add_argument("--outputs", nargs="+", default=["npz", "json", "bvh", "html"],
                   choices=("npz", "json", "bvh", "html"), help="which files to write (default: all four)")
    p.add_argument("--fps", type=float, default=50.0, help="the input's frame rate: the BVH's frame time and, for a windowed model, the spacing of its 2D window "
                        "(default 50, Human3.6M's rate)")
    p.add_argument("--viewer-js", choices=("inline", "file"), default="inline",
                   help="inline (default): the HTML viewer carries plotly.js and works alone wherever it is moved; "
                        "file: it loads plotly.min.js written beside it (smaller pages sharing one copy)")
    _add_eval_options(p)


def _add_describe_parser(sub) -> None:
    p = sub.add_parser("describe", help="print a denoiser's parameter count and layer summary as one JSON line")
    p.add_argument("--denoiser", choices=("gcn", "unet"), default="gcn",
                   help="gcn (the paper's modulated GCN, the default) or unet (the paper's Table IV ablation)")
    p.add_argument("--dim", type=int, default=256, help="hidden width (default 256)")
    p.add_argument("--skeleton", default="h36m17", help="joint layout: h36m17 (the default) or humaneva15")
    p.add_argument("--released-unused-film", action="store_true",
                   help="build the FiLM block the released code creates but never uses (default: off)")


def _add_report_parser(sub) -> None:
    p = sub.add_parser("report", help="execute the notebooks with papermill into reports/<name>/ (needs the "
                                      "workbench extra: pip install 'diffupose[workbench]')")
    p.add_argument("--profile", default="demo",
                   help=f"{', '.join(profile_names())} (default: demo, the synthetic data)")
    p.add_argument("--name", default=None, help="report folder name (default: the profile)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile parameter (e.g. data_dir=...) or config value (train.lr=...); "
                        "repeatable (default: none)")
    p.add_argument("--out-root", default="reports", help="folder that holds the report folders (default: reports)")
    p.add_argument("--notebooks", nargs="*", default=None,
                   help="run only these notebooks, e.g. 01 02 (default: all of them)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="let 01_data_prep unpickle the dataset's files (HumanEva's VideoPose3D files are "
                        "pickled; runs code stored in them: only for files you trust; default: refuse)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the report in the folder: delete it (with its training run when the run is "
                        "inside) and start over. Default: running the same report again resumes it (training "
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
    if args.json and args.csv and Path(args.json).resolve() == Path(args.csv).resolve():
        raise ConfigError(f"--json and --csv both name {args.json}; give each its own file")
    result = evaluate(args.run, args.data, split=args.split, eval_cfg=_eval_config(args), device=args.device)
    print(result.format_table())
    if args.json:
        result.to_json(args.json)
    if args.csv:
        result.to_csv(args.csv)


def cmd_calibrate(args: argparse.Namespace) -> None:
    from .evaluation.calibration import calibrate_model
    from .utils import atomic_write_text, check_output_file

    if args.json:
        check_output_file(args.json, overwrite=args.overwrite)
    result = calibrate_model(args.model or args.run, args.data, split=args.split, max_samples=args.max_samples,
                             num_hypotheses=args.hypotheses, input_2d=args.input_2d, checkpoint=args.checkpoint,
                             seed=args.seed, batch_size=args.batch_size, device=args.device, out=args.out,
                             allow_dirty=args.allow_dirty)
    print(result.format_table())
    if args.json:
        atomic_write_text(args.json, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")


def read_sample_keypoints(path: str | Path, image_size: tuple[int, int] | None = None):
    """The input of `sample`, read by lift's array reader (`data.keypoint_io.read_keypoint_array`:
    a .npy array or a .json list) and normalised as `lift` normalises (`data.layouts.
    normalize_keypoints`: pixel input needs `image_size` (W, H), input that looks like pixels
    without it is refused): shape (N, J, 2) or (J, 2), every joint present, in the model's
    joint order -> (N, J, 2) float32 normalised screen coordinates."""
    import numpy as np

    from .data.keypoint_io import read_keypoint_array
    from .data.layouts import normalize_keypoints

    arr = read_keypoint_array(path)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise DataError(f"{path}: keypoints must have shape (N, J, 2), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: keypoints contain NaN or inf (use `diffupose lift` for missing joints)")
    return normalize_keypoints(arr, image_size, str(path)).astype(np.float32)


def cmd_sample(args: argparse.Namespace) -> None:
    from .inference.lifter import Lifter, SamplingSettings
    from .utils import atomic_savez, check_output_file, environment_info

    eval_cfg = _eval_config(args)
    check_output_file(args.out, overwrite=args.overwrite)
    keypoints = read_sample_keypoints(args.keypoints, args.image_size)
    lifter = Lifter.load(args.run, checkpoint=eval_cfg.checkpoint, device=args.device)
    if keypoints.shape[1] != lifter.skeleton.num_joints:
        raise DataError(f"{args.keypoints}: {keypoints.shape[1]} joints, but the model was trained on "
                        f"{lifter.skeleton.name} with {lifter.skeleton.num_joints}")
    settings = SamplingSettings.from_eval_config(eval_cfg)
    out = lifter.predict(keypoints, settings)
    env = environment_info()
    card = {"run": str(args.run), "skeleton": lifter.skeleton.name, **eval_cfg.__dict__,
            "calibrated": bool(out.calibration.get("calibrated")), "radius_90": out.calibration,
            "precision": f"{settings.precision} -> {lifter.arithmetic(settings)}",
            "checkpoint": getattr(lifter, "checkpoint_card", {}), "git_commit": env["git_commit"],
            "python": env["python"], "versions": env["versions"],
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    atomic_savez(args.out, hypotheses=out.hypotheses, aggregate=out.aggregate, spread=out.spread,
                 radius_90=out.radius_90, keypoints_2d=keypoints, card=json.dumps(card, default=str))
    print(json.dumps({"out": str(args.out), "hypotheses_shape": list(out.hypotheses.shape)}))


def cmd_lift(args: argparse.Namespace) -> None:
    from .lifting import lift

    if args.model and args.checkpoint not in (None, "ema"):
        raise ConfigError(f"zoo model {args.model}: ships only its final EMA weights (--checkpoint ema)")
    num_hypotheses = args.hypotheses if args.hypotheses is not None else 10
    result = lift(args.keypoints, args.model or args.run, format=args.format, image_size=args.image_size, focal_length=args.focal,
                  num_hypotheses=num_hypotheses, aggregate=args.aggregate, min_score=args.min_score,
                  smooth=args.smooth, people=args.people, missing=args.missing, sampler=args.sampler, num_steps=args.steps,
                  flip=args.flip, seed=args.seed, calibrated=args.calibrated, precision=args.precision or "auto",
                  checkpoint=args.checkpoint,
                  device=args.device,
                  out=args.out, outputs=args.outputs, overwrite=args.overwrite, fps=args.fps,
                  viewer_js=args.viewer_js)
    print(json.dumps({"files": {k: str(v) for k, v in result.files.items()}, "layout": result.card["layout"],
                      "hypotheses_shape": list(result.hypotheses.shape), "coordinates": result.card["coordinates"],
                      "missing_joints": result.card["missing_joints"],
                      "joints_interpolated_in_time": result.card.get("joints_interpolated_in_time", 0),
                      "missing_joint_handling": result.card["missing_joint_handling"]}))
    print(lift_summary(result), file=sys.stderr)


def lift_summary(result) -> str:
    """The one line a person reads after `diffupose lift`: what was lifted and what to open."""
    n, h = result.hypotheses.shape[:2]
    files = result.files
    if not files:
        return f"lifted {n} frames ({h} hypotheses each); no files written (pass --out)"
    main = files.get("html") or next(iter(files.values()))
    rest = ", ".join(str(p) for k, p in files.items() if p != main)
    return f"lifted {n} frames ({h} hypotheses each) -> open {main}" + (f" (also wrote {rest})" if rest else "")


def cmd_models(args: argparse.Namespace) -> None:
    from .inference import zoo

    if args.name is None:
        print(json.dumps(zoo.model_summaries(), indent=2) if args.json
              else zoo.models_table())
        return
    name = zoo.resolve_name(args.name)
    zoo.model_dir(name)                 # verifies the checksum
    print(json.dumps(zoo.card(name), indent=2) if args.json else zoo.card_markdown(zoo.card(name)))


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


COMMANDS = {"prepare": cmd_prepare, "train": cmd_train, "evaluate": cmd_evaluate, "calibrate": cmd_calibrate,
            "sample": cmd_sample,
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
