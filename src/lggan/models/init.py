"""Weight initialisation of the official releases (model.init, model.init_gain), zero biases everywhere.

* "xavier" (semantic release, SPADE's init; supp. §6.1): xavier normal, std = gain * sqrt(2 / (fan_in + fan_out)).
* "normal" (cross-view release, pix2pix's init_type "normal"): N(0, gain) on every Conv, ConvTranspose and Linear
  weight, whatever its fans.
* "kaiming": He normal, fan-in mode (not used by either release).

Parameter-free norms (InstanceNorm affine=False, SPADE's BatchNorm affine=False) have nothing to initialise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lggan.config import InitKind, choices
from lggan.models.class_conv import ClassSpecificConv

INIT_KINDS = choices(InitKind)


def _fill(w: torch.Tensor, kind: str, gain: float, fan_in: int, fan_out: int) -> None:
    if kind == "xavier":
        nn.init.normal_(w, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))
    elif kind == "normal":
        nn.init.normal_(w, 0.0, gain)
    else:  # kaiming normal, fan-in mode, for ReLU-like activations
        nn.init.normal_(w, 0.0, math.sqrt(2.0 / fan_in))


@torch.no_grad()
def init_weights(module: nn.Module, kind: str = "xavier", gain: float = 0.02) -> nn.Module:
    """Re-initialises every conv / transposed conv / linear (spectral-norm weight_orig included) and the per-class convs."""
    if kind not in INIT_KINDS:
        raise ValueError(f"init kind must be one of {INIT_KINDS}, got {kind!r}")
    for m in module.modules():
        if isinstance(m, ClassSpecificConv):
            # Each class's conv [3, n, k, k] gets the fans of a single conv, not of the stacked tensor.
            k2 = m.kernel_size**2
            _fill(m.weight, kind, gain, m.in_channels * k2, m.out_channels * k2)
            m.bias.zero_()
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.weight_orig if hasattr(m, "weight_orig") else m.weight
            receptive = w[0][0].numel() if w.dim() > 2 else 1
            fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
            _fill(w, kind, gain, fan_in, fan_out)
            if m.bias is not None:
                m.bias.zero_()
    return module
