"""Pixel-level fusion weight-map generator G_w (§3.2, Eq. 6-7)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from lggan.models.local_generator import upconv, upconv_in_relu


class WeightMaps(NamedTuple):
    W_l: torch.Tensor  # [B, 1, H, W] weight of the local image I^L
    W_g: torch.Tensor  # [B, 1, H, W] weight of the global image I^G; W_l + W_g = 1


class WeightMapGenerator(nn.Module):
    """G_w (Eq. 6): two 2x up-convs + IN + ReLU, conv1x1 -> 2, channel softmax; channel 0 = W_l, 1 = W_g (official)."""

    def __init__(self, ngf: int = 64, in_channels: int | None = None):
        super().__init__()
        in_channels = 4 * ngf if in_channels is None else in_channels
        self.deconv_1 = upconv(in_channels, 2 * ngf)
        self.deconv_2 = upconv(2 * ngf, ngf)
        self.to_weights = nn.Conv2d(ngf, 2, 1)

    def forward(self, x: torch.Tensor) -> WeightMaps:
        h = upconv_in_relu(upconv_in_relu(x, self.deconv_1), self.deconv_2)  # [B, ngf, H, W]
        W_f = torch.softmax(self.to_weights(h), dim=1)  # [B, 2, H, W]
        return WeightMaps(W_f[:, 0:1], W_f[:, 1:2])


def fuse(I_G: torch.Tensor, I_L: torch.Tensor, W_g: torch.Tensor, W_l: torch.Tensor) -> torch.Tensor:
    """Eq. 7: I^C = I^G * W_g + I^L * W_l."""
    return I_G * W_g + I_L * W_l
