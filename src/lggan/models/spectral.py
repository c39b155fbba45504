"""Spectral normalisation (Miyato et al. 2018; supplement §6.1) that keeps the official key names and can be deep-copied."""

from __future__ import annotations

from torch import nn


def _detach_weight(module: nn.Module, args, output) -> None:
    # torch's spectral_norm leaves the normalised weight as a non-leaf attribute after forward, which breaks
    # copy.deepcopy (e.g. an EMA copy of G).  The pre-forward hook recomputes it every call, so detaching the stale
    # attribute afterwards changes nothing; the autograd graph keeps its own reference.
    module.weight = module.weight.detach()


def spectral_norm(module: nn.Module) -> nn.Module:
    """torch.nn.utils.spectral_norm (state-dict keys weight_orig / weight_u / weight_v) + deep-copy safety."""
    nn.utils.spectral_norm(module)
    module.register_forward_hook(_detach_weight)
    return module
