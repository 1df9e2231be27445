"""Process-group setup for torch DDP, from torchrun's or submitit's environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size, local rank, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` picks this rank's GPU when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(  # bad input: one line at the entry point, no traceback
                "device=cuda: torch sees no CUDA device on this machine; use device=cpu, or "
                "device=auto (a GPU where there is one)"
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {name!r}: expected auto, cpu or cuda")


def export_cluster_environment() -> None:
    """Under submitit (or plain ``srun`` with several tasks), export RANK, WORLD_SIZE, MASTER_ADDR,
    ... from the job's environment with submitit's ``TorchDistributedEnvironment``; torchrun has set
    them already."""
    if "WORLD_SIZE" in os.environ:
        return
    in_submitit = bool(os.environ.get("SUBMITIT_EXECUTOR"))
    in_srun = int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ
    if not (in_submitit or in_srun):
        return
    from submitit.helpers import TorchDistributedEnvironment

    if in_srun:  # plain srun: tell submitit which environment to read
        os.environ.setdefault("SUBMITIT_EXECUTOR", "slurm")
    env = TorchDistributedEnvironment()
    if env.world_size > 1:
        env.export(set_cuda_visible_devices=False)


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched with several processes (torchrun, submitit with
    tasks_per_node > 1, srun); NCCL on GPUs, gloo on CPU."""
    export_cluster_environment()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank, dev)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.enabled:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (returns it unchanged in a single process). The sum runs on this
    rank's device (NCCL reduces CUDA tensors only) and comes back where ``values`` was."""
    if info.enabled:
        reduced = values.to(info.device, copy=True)
        dist.all_reduce(reduced)
        values = reduced.to(values.device)
    return values


def broadcast_object(obj, info: DistInfo):
    """Rank 0's value of ``obj`` on every rank."""
    if not info.enabled:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
