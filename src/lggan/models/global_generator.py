"""Image-level global generator G_g (§3.2): the SPADE generator fed by E's deep features instead of a downsampled map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lggan.models.spade import SPADEResBlock

NUM_UPSAMPLINGS = 5  # SPADE's "normal" layout: the starting grid is (H, W) / 2^5


def _up(t: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, scale_factor=2, mode="nearest")


class SPADEGenerator(nn.Module):
    """G_g: I^G = tanh(conv_img(lrelu(SPADE blocks 16,16,16,8,4,2,1 x ngf with 5 nearest 2x upsamplings)))."""

    def __init__(self, semantic_nc: int, ngf: int = 64, hidden: int = 128):
        super().__init__()
        nf = ngf
        self.semantic_nc, self.ngf = semantic_nc, ngf
        self.head_0 = SPADEResBlock(16 * nf, 16 * nf, semantic_nc, hidden)
        self.G_middle_0 = SPADEResBlock(16 * nf, 16 * nf, semantic_nc, hidden)
        self.G_middle_1 = SPADEResBlock(16 * nf, 16 * nf, semantic_nc, hidden)
        self.up_0 = SPADEResBlock(16 * nf, 8 * nf, semantic_nc, hidden)
        self.up_1 = SPADEResBlock(8 * nf, 4 * nf, semantic_nc, hidden)
        self.up_2 = SPADEResBlock(4 * nf, 2 * nf, semantic_nc, hidden)
        self.up_3 = SPADEResBlock(2 * nf, 1 * nf, semantic_nc, hidden)
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
        """x: E's deep features [B, 16ngf, h, w] (any h, w); S: [B, semantic_nc, H, W] with H, W multiples of 32."""
        H, W = S.shape[-2:]
        if H % 2**NUM_UPSAMPLINGS or W % 2**NUM_UPSAMPLINGS:
            raise ValueError(f"global generator: S height and width must be multiples of {2**NUM_UPSAMPLINGS}, got {H}x{W}")
        if x.shape[1] != 16 * self.ngf:
            raise ValueError(f"global generator: x must have {16 * self.ngf} channels, got {x.shape[1]}")
        # Every SPADE at a given resolution sees the same resized map: resize once per resolution.
        S_at = {}

        def seg(t: torch.Tensor) -> torch.Tensor:
            size = tuple(t.shape[-2:])
            if size not in S_at:
                S_at[size] = F.interpolate(S, size=size, mode="nearest")
            return S_at[size]

        x = F.interpolate(x, size=(H // 2**NUM_UPSAMPLINGS, W // 2**NUM_UPSAMPLINGS), mode="nearest")
        x = _up(self.head_0(x, seg(x)))
        x = self.G_middle_0(x, seg(x))
        x = _up(self.G_middle_1(x, seg(x)))
        x = _up(self.up_0(x, seg(x)))
        x = _up(self.up_1(x, seg(x)))
        x = _up(self.up_2(x, seg(x)))
        x = self.up_3(x, seg(x))  # [B, ngf, H, W]
        I_G = torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
        return I_G
