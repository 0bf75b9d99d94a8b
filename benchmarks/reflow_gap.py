"""How closely few-step Euler follows a reflow teacher's map: for the same noise and the same 2D
input, the distance between a model's Euler-k pose and the teacher's own sampler's pose.

    # a reflow student of a shipped model (docs/samplers.md, "Reflow"; h36m-det-fast is one), then:
    OMP_NUM_THREADS=2 python benchmarks/reflow_gap.py --data h36m_sh.npz --teacher h36m-det \\
        --model teacher=h36m-det --model fast=h36m-det-fast --nfe 1,2,3 --max-samples 2000

Reflow trains the student on straight lines from each noise draw to the pose the teacher's
sampler sends it to (train.reflow_from); this measures how far it got. Each row: one model at
Euler with k network evaluations, one hypothesis per sample, no flip, started from the same
seeded noise as the teacher's reference (its eval.sampler / eval.num_steps unless
--teacher-sampler / --teacher-steps). Columns, all mm, mean over joints and samples:
`to_teacher` (distance to the teacher's pose for that noise: 0 = the map is followed exactly),
`to_gt` (MPJPE of that single pose; uses the 3D ground truth of the `val` split — the
teacher's own row is its reference's). The samples are the seeded `val` subset evaluate uses;
never a test split.
"""
from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import torch

from diffupose.config import EvalConfig
from diffupose.evaluation.scoring import open_run
from diffupose.inference import zoo
from diffupose.inference.lifter import SamplingSettings
from diffupose.utils import atomic_write_text, environment_info

log = logging.getLogger("reflow_gap")


def poses(run, settings: SamplingSettings, noise: torch.Tensor, batch: int) -> torch.Tensor:
    """One pose per sample (N, J, 3) from `noise` (N, J, 3), batch by batch (a source-conditioned
    model is told settings.input_source, which open_run resolved from the data)."""
    y = run.data.keypoints_2d
    return torch.cat([run.lifter.sample_tensor(y[a:a + batch], settings, noise=noise[a:a + batch])[:, 0].float().cpu()
                      for a in range(0, len(y), batch)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="prepared .npz with a val split")
    p.add_argument("--teacher", required=True, help="run directory or zoo name of the reflow teacher")
    p.add_argument("--teacher-sampler", default=None, help="default: the teacher's eval.sampler")
    p.add_argument("--teacher-steps", type=int, default=None, help="default: the teacher's eval.num_steps")
    p.add_argument("--model", action="append", required=True, metavar="LABEL=RUN", help="run directory or zoo name")
    p.add_argument("--nfe", default="1,2,3", help="Euler evaluations, comma-separated")
    p.add_argument("--max-samples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-2d", default="file", choices=("file", "gt"))
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--json", default=None, help="write the rows and the environment here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    models = []
    for spec in args.model:
        if "=" not in spec:
            raise SystemExit(f"--model {spec!r}: expected LABEL=RUN_DIR or LABEL=ZOO_NAME")
        label, where = spec.split("=", 1)
        models.append((label, str(zoo.model_path(where))))
    ev = EvalConfig(num_hypotheses=1, flip=False, checkpoint="ema", max_samples=args.max_samples, seed=args.seed,
                    input_2d=args.input_2d, batch_size=args.batch_size)
    teacher = open_run(str(zoo.model_path(args.teacher)), args.data, "val", ev)
    tcfg = teacher.lifter.config.eval
    ref_settings = teacher.settings.replace(sampler=args.teacher_sampler or tcfg.sampler,
                                            num_steps=args.teacher_steps or tcfg.num_steps, num_hypotheses=1, flip=False)
    n, J = len(teacher.data), teacher.lifter.skeleton.num_joints
    noise = torch.randn((n, J, 3), generator=torch.Generator().manual_seed(args.seed + 1))
    gt = torch.as_tensor(np.asarray(teacher.data.poses_3d, dtype=np.float32))
    mm = lambda a, b: 1000.0 * float((a - b).norm(dim=-1).mean())     # noqa: E731
    reference = poses(teacher, ref_settings, noise, args.batch_size)
    rows = [{"model": "teacher reference", "sampler": ref_settings.sampler, "nfe": ref_settings.num_steps,
             "to_teacher": 0.0, "to_gt": mm(reference, gt)}]
    for label, where in models:
        run = open_run(where, args.data, "val", ev, source=teacher.source)
        for nfe in (int(k) for k in args.nfe.split(",")):
            settings = run.settings.replace(sampler="euler", num_steps=nfe, num_hypotheses=1, flip=False)
            out = poses(run, settings, noise, args.batch_size)
            rows.append({"model": label, "sampler": "euler", "nfe": nfe, "to_teacher": mm(out, reference),
                         "to_gt": mm(out, gt)})
            log.info("%s euler %d: %.1f mm to the teacher, %.1f mm to the ground truth", label, nfe,
                     rows[-1]["to_teacher"], rows[-1]["to_gt"])
    print("| model | sampler | NFE | to the teacher's pose, mm | to the ground truth, mm |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['sampler']} | {r['nfe']} | {r['to_teacher']:.1f} | {r['to_gt']:.1f} |")
    if args.json:
        atomic_write_text(args.json, json.dumps({"rows": rows, "args": vars(args), "samples": n,
                                                 "environment": environment_info()}, indent=2))


if __name__ == "__main__":
    main()
