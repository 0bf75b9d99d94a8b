"""Accuracy, spread and calibration against network evaluations (NFE): DDPM with DDIM beside
flow matching with Euler, Heun and midpoint, each model on the same seeded validation samples.

    # the two models at equal training budget (h36m_cpu recipe, 6,000 steps, seed 0):
    #   DDPM (v): runs/ddpm-u, the recipe below without the objective override (the retired zoo
    #   model h36m-gt was this run);  flow: the same recipe with diffusion.objective=flow
    OMP_NUM_THREADS=2 diffupose train --data h36m_gt.npz --out runs/flow-u --preset h36m_cpu \\
        --set diffusion.objective=flow --set train.max_steps=6000 --set train.max_minutes=0 --set train.seed=0
    OMP_NUM_THREADS=2 python benchmarks/sampler_curve.py --data h36m_gt.npz \\
        --model ddpm-v=runs/ddpm-u --model flow=runs/flow-u --nfe 1,2,3,5,10,20 --out runs/sampler_curve.json
    python benchmarks/sampler_curve.py --table runs/sampler_curve.json         # the table again

`--model LABEL=RUN` takes a run directory or a zoo model name. Every point lifts the `val` split
(held-out training subjects; never a test split) on a seeded `--max-samples` subset with N = 10
hypotheses and flip, ground-truth free: MPJPE at N = 1 and N = 10 (mean), ORACLE best-of-10,
spread, quantile calibration error, poses/s (diffupose/sampler_curve.py says how each is
measured). `--eta 0,0.5,1` adds stochastic sampling (DDIM η; Euler's η on the flow path) for
the calibration question. Rows are appended to the JSON file as they finish (atomically), so an
interrupted sweep keeps what it measured and `--resume` skips the points it already has.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
from pathlib import Path

from diffupose.inference import zoo
from diffupose.evaluation.sampler_curve import sampler_curve
from diffupose.utils import atomic_write_text, environment_info

log = logging.getLogger("sampler_curve")

COLUMNS = ("model", "objective", "sampler", "nfe", "eta", "mpjpe_n1", "mpjpe_n10", "oracle", "spread",
           "calibration_error", "poses_per_second")


def table(rows: list[dict]) -> str:
    hyp = {k for r in rows for k in r if k.startswith("mpjpe_n") and k != "mpjpe_n1" and not k.endswith("average")}
    columns = [c for c in COLUMNS if c != "mpjpe_n10"]
    columns[columns.index("mpjpe_n1") + 1:columns.index("mpjpe_n1") + 1] = sorted(hyp)
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cells.append(f"{v:.3f}" if c == "calibration_error" else f"{v:.1f}" if isinstance(v, float) else str(v))
        body.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(body)


def _model_path(spec: str) -> tuple[str, str]:
    if "=" not in spec:
        raise SystemExit(f"--model {spec!r}: expected LABEL=RUN_DIR or LABEL=ZOO_NAME")
    label, where = spec.split("=", 1)
    return label, str(zoo.model_path(where))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="prepared .npz with a val split")
    p.add_argument("--model", action="append", default=[], metavar="LABEL=RUN", help="run directory or zoo name")
    p.add_argument("--nfe", default="1,2,3,5,10,20", help="network evaluations per chain, comma-separated")
    p.add_argument("--samplers", default=None, help="comma-separated; default: ddim for DDPM, euler,heun,midpoint "
                                                    "for flow")
    p.add_argument("--eta", default="0", help="comma-separated stochasticity levels (DDIM, Euler)")
    p.add_argument("--hypotheses", type=int, default=10)
    p.add_argument("--max-samples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-2d", default="file", choices=("file", "gt"))
    p.add_argument("--out", default="runs/sampler_curve.json")
    p.add_argument("--resume", action="store_true", help="keep the rows in --out and skip their points")
    p.add_argument("--table", metavar="JSON", help="print the table of a finished sweep and exit")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.table:
        print(table(json.loads(Path(args.table).read_text())["rows"]))
        return
    if not args.data or not args.model:
        raise SystemExit("--data and at least one --model are needed (or --table JSON)")
    out = Path(args.out)
    if out.exists() and not args.resume:
        raise SystemExit(f"{out}: exists; pass --resume to extend it or choose another --out")
    doc = json.loads(out.read_text()) if out.exists() else {"rows": []}
    env = environment_info()
    command = ("python benchmarks/sampler_curve.py " + " ".join(f"--model {m}" for m in args.model)
               + (f" --samplers {args.samplers}" if args.samplers else "") + f" --data {args.data} --nfe {args.nfe} "
               f"--eta {args.eta} --hypotheses {args.hypotheses} --max-samples {args.max_samples} --seed {args.seed} "
               f"--input-2d {args.input_2d}")
    doc.setdefault("commands", []).append(command)     # every call that added rows to this file
    doc.update({"machine": f"{platform.processor() or platform.machine()}, {env.get('num_threads')} threads",
        "versions": env["versions"], "commit": env.get("git_commit")})
    done = {(r["model"], r["sampler"], r["nfe"], r["eta"]) for r in doc["rows"]}
    nfes = [int(v) for v in args.nfe.split(",")]
    etas = [float(v) for v in args.eta.split(",")]
    samplers = args.samplers.split(",") if args.samplers else None
    for spec in args.model:
        label, path = _model_path(spec)

        def keep(row: dict, label: str = label, path: str = path) -> None:
            doc["rows"].append({"model": label, "run": path, **row})
            atomic_write_text(out, json.dumps(doc, indent=1) + "\n")

        sampler_curve(path, args.data, "val", nfes=nfes, etas=etas, samplers=samplers,
                      num_hypotheses=args.hypotheses, max_samples=args.max_samples, seed=args.seed,
                      input_2d=args.input_2d, skip=lambda s, n, e, label=label: (label, s, n, e) in done,
                      on_point=keep)
    print(table(doc["rows"]))


if __name__ == "__main__":
    main()
