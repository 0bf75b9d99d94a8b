"""torchrun: one process per device, rank 0 decides (`Dist`), and the RNG streams saved with
every checkpoint (`rng_state`, `set_rng_state`). A single process is a `Dist()` of one rank."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed

from ..utils import resolve_device

__all__ = ["Dist", "resolve_train_device", "setup_distributed", "rng_state", "set_rng_state"]

log = logging.getLogger("diffupose.train")


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    owns_group: bool = False
    comm_device: torch.device = torch.device("cpu")   # where collectives run (CUDA for nccl)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision, on every rank."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([int(flag)], device=self.comm_device)
        torch.distributed.broadcast(t, src=0)
        return bool(t.item())

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """All ranks' copies of a same-shaped tensor (CPU), in rank order."""
        if self.world_size == 1:
            return [t]
        t = t.to(self.comm_device)
        out = [torch.empty_like(t) for _ in range(self.world_size)]
        torch.distributed.all_gather(out, t)
        return [o.cpu() for o in out]

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's BatchNorm statistics on every rank (DDP only copies them at the start of the
        next forward, so without this each rank's EMA would average its own statistics)."""
        if self.world_size > 1:
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()


def resolve_train_device(name: str) -> torch.device:
    return resolve_device(name, key="train.device")


def setup_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """torchrun (WORLD_SIZE > 1): one process per device; nccl on CUDA, gloo on the CPU."""
    device = resolve_train_device(device_name)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist(), device

    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    owns = not torch.distributed.is_initialized()
    if owns:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    comm_device = device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
    return Dist(rank=rank, world_size=world_size, owns_group=owns, comm_device=comm_device), device


def rng_state(noise_gen: torch.Generator, dist: Dist) -> dict[str, Any]:
    state = {"torch_cpu": torch.get_rng_state(), "noise_generator": dist.gather(noise_gen.get_state())}
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], noise_gen: torch.Generator, dist: Dist) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if torch.cuda.is_available() and len(state.get("torch_cuda", [])) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
    noise_states = state["noise_generator"]
    if len(noise_states) == dist.world_size:
        noise_gen.set_state(noise_states[dist.rank])
    else:
        log.warning("resuming with %d ranks from a checkpoint of %d: noise generators re-seeded",
                    dist.world_size, len(noise_states))
