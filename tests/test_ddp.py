"""DistributedDataParallel on the CPU (gloo): two torchrun processes train in lockstep.

This file is also the worker script: `python -m torch.distributed.run --nproc_per_node 2
tests/test_ddp.py <data.npz> <run_dir> <weights_dir> <max_steps>`; each rank writes its final
weights to <weights_dir>/rank<r>.safetensors.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffupose.training import epoch_indices


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(npz: Path, run_dir: Path, weights_dir: Path, max_steps: int, timeout: float = 120.0):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           str(Path(__file__).resolve()), str(npz), str(run_dir), str(weights_dir), str(max_steps)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _check_lockstep(weights_dir: Path) -> None:
    from safetensors.torch import load_file

    ranks = [load_file(weights_dir / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and len(ranks[0]) > 0
    different = [k for k in ranks[0] if not torch.equal(ranks[0][k], ranks[1][k])]
    assert not different, different[:5]


def test_distributed_sampler_semantics():
    shards = [epoch_indices(10, epoch=2, seed=0, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]                    # padded to equal lengths
    full = epoch_indices(10, epoch=2, seed=0)
    assert set(torch.cat(shards).tolist()) == set(range(10))        # every sample seen
    assert torch.equal(torch.stack(shards, 1).flatten()[:10], full)  # rank::world slicing of one order
    even = [epoch_indices(8, epoch=0, seed=0, rank=r, world_size=2) for r in range(2)]
    assert not set(even[0].tolist()) & set(even[1].tolist())        # disjoint when divisible


def test_two_process_gloo_training(synthetic_npz, tmp_path):
    run_dir, weights_dir = tmp_path / "run", tmp_path / "weights"
    weights_dir.mkdir()
    _launch(synthetic_npz, run_dir, weights_dir, max_steps=4)
    _check_lockstep(weights_dir)
    # rank 0 alone wrote the run: checkpoints, one history (no duplicated rows)
    state = torch.load(run_dir / "checkpoint" / "latest" / "state.pt", weights_only=True)
    assert state["step"] == 4 and state["extra"]["world_size"] == 2
    assert len(state["rng"]["noise_generator"]) == 2                # every rank's noise stream saved
    assert not torch.equal(*state["rng"]["noise_generator"])        # ranks draw different noise
    from diffupose.training import read_history
    assert [r["step"] for r in read_history(run_dir)] == [1, 2, 3, 4]


@pytest.mark.slow
def test_two_process_resume(synthetic_npz, tmp_path):
    """Stopped at 3 steps, resumed to 6: the ranks still agree."""
    run_dir, weights_dir = tmp_path / "run", tmp_path / "weights"
    weights_dir.mkdir()
    _launch(synthetic_npz, run_dir, weights_dir, max_steps=3)
    _launch(synthetic_npz, run_dir, weights_dir, max_steps=6)
    _check_lockstep(weights_dir)
    assert torch.load(run_dir / "checkpoint" / "latest" / "state.pt", weights_only=True)["step"] == 6


def _worker(npz: str, run_dir: str, weights_dir: str, max_steps: str) -> None:
    from safetensors.torch import save_file

    from diffupose.config import preset
    from diffupose.training import train

    torch.set_num_threads(1)
    cfg = preset("tiny", {"data.path": npz, "train.device": "cpu", "train.batch_size": 64,
                          "train.max_steps": int(max_steps), "train.log_every": 1, "train.val_every": 2,
                          "train.checkpoint_every": 2, "data.max_val_samples": 32, "train.val_steps": 2})
    result = train(cfg, run_dir, progress=False)
    tensors = {f"model.{k}": v.contiguous() for k, v in result.model.state_dict().items()}
    tensors.update({f"ema.{k}": v.contiguous() for k, v in result.ema_model.state_dict().items()})
    save_file(tensors, str(Path(weights_dir) / f"rank{os.environ['RANK']}.safetensors"))


if __name__ == "__main__":
    _worker(*sys.argv[1:5])
