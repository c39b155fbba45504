"""Peak memory of one training step.

What is measured is the same quantity on both devices: bytes of tensor storage handed out by PyTorch's allocator.

* CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats` (the caching allocator's own counter; the
  cache itself and cuDNN workspaces outside the allocator are not counted).
* CPU: the profiler with `profile_memory=True` records every allocation and free of PyTorch's CPU allocator
  (c10::DefaultCPUAllocator reports each one with its address and size).  Summing, in time order, the allocations
  made during the step minus the frees of those same blocks gives the bytes of tensor storage the step holds; its
  maximum is the step's peak.  (Frees of blocks that existed before the step -- the previous step's gradients -- are
  left out: the profiler reports some of them and not others, which would make the result depend on history.)  Not counted: memory that
  oneDNN/OpenMP allocate outside the PyTorch allocator (scratch pads, thread stacks), and malloc's own overhead and
  fragmentation, i.e. this is the "max_memory_allocated" of the CPU, not the process RSS.

`peak` = bytes live before the step (parameters, buffers, input, target: everything already allocated) + the largest
increase during the step (activations saved for backward, temporaries, parameter gradients, which are set to None
before each step and so are allocated inside it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch


@dataclass
class PeakMemory:
    base: int  # bytes of tensor storage live before the step
    increase: int  # peak bytes allocated during the step above `base`

    @property
    def peak(self) -> int:
        return self.base + self.increase


def live_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind the given tensors."""
    seen: dict[int, int] = {}
    for t in tensors:
        if t is None:
            continue
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def _allocation_events(prof) -> list[tuple[int, int, int]]:
    """(time ns, ptr, bytes; negative for a free) of every CPU allocator event the profiler recorded."""
    out = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        stack.extend(e.children)
        ef = e.extra_fields
        if type(ef).__name__ == "_ExtraFields_Allocation" and ef.device.type == "cpu":
            out.append((e.start_time_ns, ef.ptr, ef.alloc_size))
    out.sort(key=lambda x: x[0])
    return out


def cpu_step_peak(fn: Callable[[], object]) -> int:
    """Peak bytes of PyTorch CPU allocations made by fn() above what was live when it started.

    Only blocks allocated inside fn() count: the free of a block that existed before (e.g. the previous step's
    gradients, released by zero_grad) is ignored, so the result does not depend on what ran before.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        fn()
    live: dict[int, int] = {}
    current = peak = 0
    for _, ptr, nbytes in _allocation_events(prof):
        if nbytes > 0:
            live[ptr] = nbytes
            current += nbytes
            peak = max(peak, current)
        elif ptr in live:
            current -= live.pop(ptr)
    return peak


def cuda_step_peak(fn: Callable[[], object], device: torch.device) -> PeakMemory:
    """PeakMemory of fn() on a CUDA device from the caching allocator's counters."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return PeakMemory(before, torch.cuda.max_memory_allocated(device) - before)


def step_peak(fn: Callable[[], object], device: torch.device, live: Iterable[torch.Tensor]) -> PeakMemory:
    """Runs fn() once and returns its PeakMemory.

    CPU: `live` are the tensors alive before the step (weights, buffers, input, target) and give `base`; on CUDA the
    allocator's memory_allocated() before the step is used instead.
    """
    if device.type == "cuda":
        return cuda_step_peak(fn, device)
    base = live_bytes(live)
    return PeakMemory(base, cpu_step_peak(fn))
