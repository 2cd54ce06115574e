"""Multi-process training with torch.distributed, launched by torchrun.

    torchrun --nproc-per-node N -m softbpr train ...        # one process per GPU (or CPU, gloo)

torchrun sets WORLD_SIZE / RANK / LOCAL_RANK; `setup` then joins the process group (NCCL on
CUDA, gloo on CPU) and gives each rank its device (cuda:LOCAL_RANK). Without those variables
everything here is a no-op for a single process. The trainer wraps the model in
DistributedDataParallel (gradients all-reduced and averaged in backward), gives each rank a
disjoint slice of every global batch, splits evaluation users across ranks and sums the metrics
back, and lets only rank 0 write files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .seeding import pick_device


@dataclass(frozen=True)
class Dist:
    world: int = 1
    rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (identity for one process)."""
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def gather_objects(self, obj) -> list:
        if not self.active:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def setup(requested_device: str) -> tuple[Dist, torch.device]:
    """Join the process group when launched by torchrun; returns (Dist, this rank's device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), pick_device(requested_device)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = pick_device(requested_device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(world, rank), dev


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
