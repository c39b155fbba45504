"""Activation checkpointing of G's repeated blocks (train.activation_checkpointing) without touching module state twice.

torch.utils.checkpoint (use_reentrant=False) drops a block's activations in the forward pass and runs the block again
in the backward pass. Two kinds of module state would be updated by that second run:

* spectral norm (SPADE's conv_0 / conv_1 / conv_s): its pre-forward hook runs one power iteration in training mode,
  updating the buffers u, v in place and computing sigma = u . (W v) from the updated ones. A recompute would run a
  second iteration: u, v would advance twice per step and the recomputed weight W / sigma would differ from the one
  the forward used, so the gradients would be wrong too. During the recompute the power iteration is switched off
  (n_power_iterations = 0): sigma is then computed from the u, v the forward left, which are bitwise the values it
  used (it works on clones of them), so the recomputed weight is the forward's.
* batch norm (SPADE's param-free norm): in training mode every call updates running_mean / running_var and
  num_batches_tracked in place. During the recompute these buffers are swapped for scratch copies, which take the
  second update and are thrown away; the module otherwise runs exactly as in the forward (batch statistics, the
  same saved tensors: switching track_running_stats off instead would save fewer tensors for backward, which
  torch's recompute check rejects).

Nothing in these blocks draws random numbers; the RNG state is preserved anyway (torch's default), so a block with
dropout added later would also recompute exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.utils.checkpoint import checkpoint


_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


@contextlib.contextmanager
def recompute_guard(module: nn.Module) -> Iterator[None]:
    """While active, `module`'s spectral norms skip their power iteration and its batch norms update scratch copies
    of their running statistics (the real buffers are put back, untouched, on exit)."""
    hooks = [h for m in module.modules() for h in m._forward_pre_hooks.values() if isinstance(h, SpectralNorm)]
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved_iters = [h.n_power_iterations for h in hooks]
    saved_stats = [{k: m._buffers[k] for k in _BN_STATS if m._buffers.get(k) is not None} for m in norms]
    try:
        for h in hooks:
            h.n_power_iterations = 0
        for m, stats in zip(norms, saved_stats):
            for k, buf in stats.items():
                m._buffers[k] = buf.clone()  # [C] (num_batches_tracked: []), updated by the recompute, then dropped
        yield
    finally:
        for h, n in zip(hooks, saved_iters):
            h.n_power_iterations = n
        for m, stats in zip(norms, saved_stats):
            m._buffers.update(stats)


def checkpointed_call(module: nn.Module, body: Callable[..., Any], *args: Any) -> Any:
    """body(*args) (the module's own forward) under non-reentrant activation checkpointing.

    The first call of the wrapped function is the forward; any later one is torch's recompute in the backward pass,
    which runs under `recompute_guard` so that no module state changes twice.
    """
    calls = 0

    def run(*a: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return body(*a)
        with recompute_guard(module):
            return body(*a)

    return checkpoint(run, *args, use_reentrant=False, preserve_rng_state=True)


class CheckpointableBlock(nn.Module):
    """A block whose forward can be checkpointed: subclasses implement `body`; `checkpointing` switches it on.

    Only in training with gradients on: evaluation and no-grad forwards (the D step's fakes, sampling) keep nothing
    for backward anyway.
    """

    checkpointing: bool = False

    def body(self, *args: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpointed_call(self, self.body, *args)
        return self.body(*args)


def set_activation_checkpointing(model: nn.Module, on: bool = True) -> int:
    """Switches checkpointing on/off for every CheckpointableBlock in `model` (G_g's SPADE blocks, the residual blocks
    of G_l and of the cross-view trunk); returns how many blocks it set."""
    blocks = [m for m in model.modules() if isinstance(m, CheckpointableBlock)]
    for m in blocks:
        m.checkpointing = on
    return len(blocks)
