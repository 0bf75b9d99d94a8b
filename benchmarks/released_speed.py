"""Sampling speed side by side with the released DiffuPose code, on this machine.

    OMP_NUM_THREADS=2 python benchmarks/released_speed.py --released ../DiffuPose --model h36m --poses 200

The released code (github.com/lojol2327/DiffuPose, not vendored here) is imported from the
folder given by `--released` (or the environment variable DIFFUPOSE_RELEASED): its
`model.modulated_gcn.ModulatedGCN` denoiser and `model.diffusion.Diffusion` (DDPM ancestral
sampling over all its timesteps; it has no DDIM). When that folder or its imports (e.g.
`einops`) are missing, the script prints one line saying so and exits 0: nothing else depends
on it.

Both sides lift the same random inputs at the same width and depth (the workbench model's
`model.dim` and `model.num_blocks`; speed does not depend on the weights, so the released
network keeps its initial ones), in eval mode, no gradients, the same threads:

- released: the paper's protocol as released, N hypotheses x 2 (flip) DDPM chains of
  `--released-steps` (100) network passes each;
- workbench: `Lifter.lift` with the user-facing settings (N hypotheses, the model's own sampler
  and network evaluations per chain unless `--sampler` / `--steps` say otherwise: DDIM-5 for the
  DDPM zoo models, DDIM-1 for `h36m-det-fast`; flip, mean), the shared inference path
  `diffupose evaluate` and `diffupose lift` use.

Printed: poses/s of each, their ratio, and the rate per network pass (rows x passes per
second), which separates the denoiser's cost from the number of passes.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffupose import Lifter
from diffupose.inference import SamplingSettings


def load_released(folder: Path):
    """(ModulatedGCN, Diffusion) classes from the released checkout, or a reason it cannot be used."""
    if not (folder / "model" / "diffusion.py").is_file():
        return None, f"released code not found: {folder}/model/diffusion.py does not exist"
    sys.path.insert(0, str(folder))
    argv = sys.argv
    sys.argv = argv[:1]        # the released common/arguments.py parses sys.argv at import time
    try:
        gcn = importlib.import_module("model.modulated_gcn")
        diffusion = importlib.import_module("model.diffusion")
    except (Exception, SystemExit) as e:  # a missing optional dependency (einops, ...) or its argparse exiting
        return None, f"released code at {folder} does not import here ({type(e).__name__}: {e})"
    finally:
        sys.argv = argv
        sys.path.remove(str(folder))
    return (gcn.ModulatedGCN, diffusion.Diffusion), ""


def build_released(classes, adjacency: np.ndarray, dim: int, blocks: int, steps: int, num_joints: int):
    gcn_cls, diffusion_cls = classes
    adj = torch.as_tensor(adjacency, dtype=torch.float32)
    denoiser = gcn_cls(adj, dim, num_layers=blocks, p_dropout=0.0, nodes_group=None)
    model = diffusion_cls(denoiser, n_frame=1, n_joint=num_joints, timesteps=steps, loss_type="l1")
    return model.eval()


@torch.no_grad()
def time_released(model, keypoints_2d: np.ndarray, hypotheses: int, batch: int) -> float:
    """Seconds to sample `hypotheses` x 2 (flip) chains for every input, `batch` inputs at a time."""
    cond = torch.as_tensor(keypoints_2d, dtype=torch.float32)[:, None]          # (P, 1, J, 2)
    start = time.perf_counter()
    for lo in range(0, len(cond), batch):
        c = cond[lo:lo + batch]
        rows = c.repeat_interleave(2 * hypotheses, dim=0)                    # flip: a second chain set
        model.sample(rows, batch_size=len(rows))
    return time.perf_counter() - start


def time_workbench(lifter: Lifter, keypoints_2d: np.ndarray, settings: SamplingSettings) -> float:
    start = time.perf_counter()
    lifter.predict(keypoints_2d, settings, progress=False)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--released", default=os.environ.get("DIFFUPOSE_RELEASED", "../DiffuPose"),
                   help="folder of the released code (default: $DIFFUPOSE_RELEASED or ../DiffuPose)")
    p.add_argument("--model", default="h36m", help="workbench run directory or zoo name")
    p.add_argument("--poses", type=int, default=200, help="inputs lifted by each side")
    p.add_argument("--hypotheses", type=int, default=10)
    p.add_argument("--sampler", default=None, help="workbench sampler (default: the model's eval.sampler)")
    p.add_argument("--steps", type=int, default=None,
                   help="workbench network evaluations per chain (default: the model's eval.num_steps)")
    p.add_argument("--released-steps", type=int, default=100, help="released DDPM timesteps (the paper's T)")
    p.add_argument("--batch", type=int, default=100, help="released inputs per sample() call")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    classes, reason = load_released(Path(args.released))
    if classes is None:
        print(f"skipped: {reason}")
        return
    lifter = Lifter.from_pretrained(args.model, device="cpu")
    cfg, skeleton = lifter.config.model, lifter.skeleton
    torch.manual_seed(args.seed)
    released = build_released(classes, skeleton.normalized_adjacency(), cfg.dim, cfg.num_blocks, args.released_steps,
                              skeleton.num_joints)
    keypoints_2d = np.random.default_rng(args.seed).normal(0.0, 0.3, (args.poses, skeleton.num_joints, 2))
    keypoints_2d = keypoints_2d.astype(np.float32)
    own = {"sampler": args.sampler, "num_steps": args.steps}
    settings = SamplingSettings.from_eval_config(lifter.config.eval, num_hypotheses=args.hypotheses, flip=True,
                                                 aggregate="mean", seed=args.seed,
                                                 **{k: v for k, v in own.items() if v is not None})
    passes = settings.steps_for(lifter.config)
    sampler = f"{lifter.config.diffusion.objective} {settings.sampler}"
    time_workbench(lifter, keypoints_2d[:8], settings)                          # warm-up (allocations)
    ours = time_workbench(lifter, keypoints_2d, settings)
    theirs = time_released(released, keypoints_2d, args.hypotheses, args.batch)
    chains = args.poses * args.hypotheses * 2
    print(f"threads {torch.get_num_threads()}, {args.poses} poses, N = {args.hypotheses}, flip, dim {cfg.dim}, "
          f"{cfg.num_blocks} blocks")
    print("| code | sampler | passes per chain | poses/s | chain-passes/s |\n|---|---|---|---|---|")
    print(f"| released | DDPM | {args.released_steps} | {args.poses / theirs:.2f} | "
          f"{chains * args.released_steps / theirs:.0f} |")
    print(f"| workbench | {sampler} | {passes} | {args.poses / ours:.2f} | {chains * passes / ours:.0f} |")
    print(f"workbench / released: {theirs / ours:.1f}x poses/s, "
          f"{(chains * passes / ours) / (chains * args.released_steps / theirs):.2f}x per network pass")


if __name__ == "__main__":
    main()
