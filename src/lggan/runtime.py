"""Where code runs: the device (`auto`, `cpu`, `cuda:1`, ...) and, under torchrun, this process's rank.

Used by training and by everything that only generates or scores (generate, evaluate, the demo), so it imports
nothing of the trainer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass
class DistInfo:
    """This process's place in a torchrun job (rank, world size) and the device it runs on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this call initialised the process group, so it also tears it down

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; anything else is passed to torch.device (clear error if absent)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r}: not a device name (auto, cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r}: CUDA is not available on this machine")
    return dev


def setup_distributed(device_name: str) -> DistInfo:
    """Reads torchrun's environment; initialises the process group (NCCL on GPUs, gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo(device=resolve_device(device_name))
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device, owns)


def unwrap(m: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (any other module as it is)."""
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: CUDA's allocator peak on a GPU, the resident set size (MiB) on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    except Exception:
        return float("nan")
