"""Why zero-filled missing joints hurt complete inputs: BatchNorm statistics.

    OMP_NUM_THREADS=2 python benchmarks/masking_bn_shift.py --run RUN --data h36m_gt.npz

Takes a model trained without masking (RUN, final EMA weights), re-estimates its BatchNorm
running statistics — forward passes only, no weight changes — on training batches that are
(a) complete, (b) masked like `train.joint_dropout=0.2 / limb_dropout=0.1` with the missing
joints' 2D set to 0, (c) masked the same way with the missing joints' 2D filled from their
present skeleton neighbours (`model.missing_fill=neighbour`), and prints the MPJPE on complete
val inputs (seeded subset, N = 1, DDIM-5, no flip) for each. A gap between (a) and (b) is what
masked training with zero-filled inputs costs on complete inputs before any weight moves.
"""
from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from diffupose.data.prepared import load_prepared
from diffupose.diffusion import q_sample
from diffupose.inference import Lifter, SamplingSettings
from diffupose.model.masking import graph_diameter, neighbour_fill, random_joint_mask


def val_mpjpe(lifter: Lifter, keypoints_2d: np.ndarray, poses_3d: np.ndarray) -> float:
    hyps = lifter.sample(keypoints_2d, SamplingSettings(num_hypotheses=1, num_steps=5, flip=False, seed=0))
    return 1000.0 * float(np.linalg.norm(hyps[:, 0] - poses_3d, axis=-1).mean())


def reestimate_batchnorm(lifter: Lifter, train, inputs: str, batches: int, batch_size: int, seed: int = 0) -> Lifter:
    """A copy of the model whose BatchNorm statistics are the plain average over `batches`
    training batches with `inputs` = complete | zero | neighbour."""
    model = copy.deepcopy(lifter.denoiser)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None                                   # cumulative average
    adjacency = torch.from_numpy(lifter.skeleton.adjacency())
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for i in range(batches):
            rows = slice(i * batch_size, (i + 1) * batch_size)
            x0, y = torch.from_numpy(train.poses_3d[rows]), torch.from_numpy(train.keypoints_2d[rows])
            if inputs != "complete":
                mask = random_joint_mask(len(y), lifter.skeleton, joint_prob=0.2, limb_prob=0.1, generator=g)
                y = (neighbour_fill(y, mask, adjacency, graph_diameter(adjacency)) if inputs == "neighbour"
                     else torch.where(mask[..., None], y, torch.zeros(())))
            t = torch.randint(0, lifter.schedule.num_timesteps, (len(y),), generator=g)
            model(q_sample(lifter.schedule, x0, t, torch.randn(x0.shape, generator=g)), y, t)
    return Lifter.from_model(model.eval(), lifter.config, lifter.skeleton)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a run trained without masking")
    p.add_argument("--data", required=True, help="prepared .npz with train and val splits")
    p.add_argument("--val-samples", type=int, default=2000)
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args()
    lifter = Lifter.load(args.run, checkpoint="ema", device="cpu")
    data = load_prepared(args.data)
    val = data.select(split="val", max_samples=args.val_samples, seed=0)
    train = data.select(split="train", max_samples=args.batches * args.batch_size, seed=1)
    print("| BatchNorm statistics | val MPJPE (mm), complete inputs, N = 1 |\n|---|---|")
    print(f"| the run's own | {val_mpjpe(lifter, val.keypoints_2d, val.poses_3d):.1f} |")
    for inputs, label in (("complete", "re-estimated on complete batches"),
                          ("zero", "re-estimated on masked batches, missing 2D = 0"),
                          ("neighbour", "re-estimated on masked batches, missing 2D = neighbour mean")):
        model = reestimate_batchnorm(lifter, train, inputs, args.batches, args.batch_size)
        print(f"| {label} | {val_mpjpe(model, val.keypoints_2d, val.poses_3d):.1f} |")


if __name__ == "__main__":
    main()
