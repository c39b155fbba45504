"""Image-level global generator G_g (§3.2): the SPADE generator fed by E's deep features instead of a downsampled map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lggan.config import UPSAMPLINGS
from lggan.models.semantic_layout import SemanticLayout
from lggan.models.spade import SPADEResBlock

NUM_UPSAMPLINGS = UPSAMPLINGS["normal"]  # SPADE's default layout: the starting grid is (H, W) / 2^5
UPSAMPLING_LAYOUTS = tuple(UPSAMPLINGS)  # SPADE's num_upsampling_layers: "normal", "more", "most"


def _up(t: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, scale_factor=2, mode="nearest")


def upsampling_step(num_upsampling_layers: str) -> int:
    """2^n for SPADE's layout n = 5 ("normal"), 6 ("more") or 7 ("most"): H and W must be multiples of it."""
    if num_upsampling_layers not in UPSAMPLINGS:
        raise ValueError(f"num_upsampling_layers must be one of {UPSAMPLING_LAYOUTS}, got {num_upsampling_layers!r}")
    return 2 ** UPSAMPLINGS[num_upsampling_layers]


class SPADEGenerator(nn.Module):
    """G_g: I^G = tanh(conv_img(lrelu(SPADE blocks 16,16,16,8,4,2,1(,1/2) x ngf with 5/6/7 nearest 2x upsamplings))).

    The layouts are SPADE's num_upsampling_layers: "normal" starts at (H, W)/32; "more" (the Cityscapes release)
    starts at (H, W)/64 and adds a 2x upsampling between G_middle_0 and G_middle_1; "most" starts at (H, W)/128,
    adds that upsampling and a last block up_4 (ngf -> ngf/2, conv_img then reads ngf/2 channels).
    """

    def __init__(self, semantic_nc: int, ngf: int = 64, hidden: int = 128, num_upsampling_layers: str = "normal"):
        super().__init__()
        self.step = upsampling_step(num_upsampling_layers)
        if num_upsampling_layers == "most" and ngf < 2:
            raise ValueError(f"num_upsampling_layers='most' halves ngf in up_4: ngf must be >= 2, got {ngf}")
        nf = ngf
        self.semantic_nc, self.ngf, self.num_upsampling_layers = semantic_nc, ngf, num_upsampling_layers
        self.head_0 = SPADEResBlock(16 * nf, 16 * nf, semantic_nc, hidden)
        self.G_middle_0 = SPADEResBlock(16 * nf, 16 * nf, semantic_nc, hidden)
        self.G_middle_1 = SPADEResBlock(16 * nf, 16 * nf, semantic_nc, hidden)
        self.up_0 = SPADEResBlock(16 * nf, 8 * nf, semantic_nc, hidden)
        self.up_1 = SPADEResBlock(8 * nf, 4 * nf, semantic_nc, hidden)
        self.up_2 = SPADEResBlock(4 * nf, 2 * nf, semantic_nc, hidden)
        self.up_3 = SPADEResBlock(2 * nf, 1 * nf, semantic_nc, hidden)
        final_nc = nf
        if num_upsampling_layers == "most":
            self.up_4 = SPADEResBlock(1 * nf, nf // 2, semantic_nc, hidden)
            final_nc = nf // 2
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, S: torch.Tensor, layout: SemanticLayout | None = None) -> torch.Tensor:
        """x: E's deep features [B, 16ngf, h, w] (any h, w); S: [B, semantic_nc, H, W] with H, W multiples of `step`.

        layout: S's SemanticLayout; with it each SPADE computes gamma/beta per region where that pays off (the same
        function as the dense convs, which run where it does not or without a layout).
        """
        H, W = S.shape[-2:]
        step = self.step
        if H % step or W % step or H < step or W < step:
            raise ValueError(f"global generator (num_upsampling_layers={self.num_upsampling_layers!r}): S height and "
                             f"width must be positive multiples of {step}, got {H}x{W}")
        if x.shape[1] != 16 * self.ngf:
            raise ValueError(f"global generator: x must have {16 * self.ngf} channels, got {x.shape[1]}")
        # Every SPADE at a given resolution sees the same resized map: resize once per resolution. With a layout the
        # blocks get S as it is and resize it only where they run dense (the region path resizes the layout's keys).
        S_at = {}

        def seg(t: torch.Tensor) -> torch.Tensor:
            size = tuple(t.shape[-2:])
            if layout is not None:
                return S
            if size not in S_at:
                S_at[size] = F.interpolate(S, size=size, mode="nearest")
            return S_at[size]

        # The release resizes E's 1/16 output (conv5) to the start grid with F.interpolate's default mode, nearest:
        # [B, 16ngf, H/16, W/16] -> [B, 16ngf, H/step, W/step] (for "more": every 4th pixel).
        x = F.interpolate(x, size=(H // step, W // step), mode="nearest")
        x = _up(self.head_0(x, seg(x), layout))  # [B, 16ngf, 2H/step, 2W/step]
        x = self.G_middle_0(x, seg(x), layout)
        if self.num_upsampling_layers in ("more", "most"):
            x = _up(x)  # the extra 2x between G_middle_0 and G_middle_1
        x = self.G_middle_1(x, seg(x), layout)  # [B, 16ngf, H/16, W/16] ("most": H/32, W/32)
        blocks = [self.up_0, self.up_1, self.up_2, self.up_3] + ([self.up_4] if hasattr(self, "up_4") else [])
        for block in blocks:  # each doubles the size first: up_3 (up_4 for "most") ends at [B, ngf(/2), H, W]
            x = _up(x)
            x = block(x, seg(x), layout)
        I_G = torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
        return I_G
