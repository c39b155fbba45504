"""Parameter-sharing encoder E of LGGAN (§3.1, Fig. 2)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from lggan.models.residual import ResidualBlock
from lggan.models.semantic_layout import SemanticLayout, conv_worth_regions, layout_conv


class EncoderOutput(NamedTuple):
    features: torch.Tensor  # [B, 4*ngf, H/4, W/4]: E(S) for G_l and G_w (after the residual blocks, if any)
    deep: torch.Tensor | None  # [B, 16*ngf, H/16, W/16]: E(S) for G_g (None when num_deep = 0)


class SharedEncoder(nn.Module):
    """E (§3.1): reflect-pad 3, conv7x7 -> ngf, then stride-2 conv3x3s doubling the width, each + IN + ReLU.

    num_res_blocks > 0 appends residual blocks at 4*ngf to the H/4 features (not to the deep path): the shared trunk of the cross-view
    generator (official resnet_blocks1..9); the semantic generator keeps them in G_l instead (0 here).
    """

    def __init__(self, in_channels: int, ngf: int = 64, num_deep: int = 2, num_res_blocks: int = 0):
        super().__init__()
        if in_channels < 1 or ngf < 1:
            raise ValueError(f"in_channels and ngf must be >= 1, got {in_channels}, {ngf}")
        if num_deep not in (0, 1, 2):
            raise ValueError(f"num_deep must be 0, 1 or 2, got {num_deep}")
        if num_res_blocks < 0:
            raise ValueError(f"num_res_blocks must be >= 0, got {num_res_blocks}")
        self.in_channels, self.ngf, self.num_deep = in_channels, ngf, num_deep
        # Official names conv1..conv5; the instance norms have no parameters (affine=False).
        self.conv1 = nn.Conv2d(in_channels, ngf, 7)
        self.conv2 = nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1)
        if num_deep >= 1:
            self.conv4 = nn.Conv2d(4 * ngf, 8 * ngf, 3, stride=2, padding=1)
        if num_deep >= 2:
            self.conv5 = nn.Conv2d(8 * ngf, 16 * ngf, 3, stride=2, padding=1)
        self.res_blocks = nn.ModuleList(ResidualBlock(4 * ngf) for _ in range(num_res_blocks))

    @staticmethod
    def _block(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.instance_norm(conv(x)))

    def forward(self, S: torch.Tensor, layout: SemanticLayout | None = None) -> EncoderOutput:
        """S [B, in_channels, H, W]; layout: S's SemanticLayout, with which conv1 (it reads only S) is computed per
        region (semantic_layout.layout_conv: the same function) where that pays off."""
        if S.dim() != 4 or S.shape[1] != self.in_channels:
            raise ValueError(f"encoder input S must be [B, {self.in_channels}, H, W], got {tuple(S.shape)}")
        at = layout.at(S.shape[-2:]) if layout is not None else None
        if at is not None and conv_worth_regions(at, 7, 1, 3, "reflect", S.device.type):
            h = layout_conv(at, self.conv1.weight, self.conv1.bias, padding=3, padding_mode="reflect")
            x = F.relu(F.instance_norm(h))  # [B, ngf, H, W]
        else:
            x = self._block(self.conv1, F.pad(S, (3, 3, 3, 3), mode="reflect"))  # [B, ngf, H, W]
        x = self._block(self.conv2, x)  # [B, 2ngf, H/2, W/2]
        x = self._block(self.conv3, x)  # [B, 4ngf, H/4, W/4]
        deep = None
        if self.num_deep >= 1:
            deep = self._block(self.conv4, x)  # [B, 8ngf, H/8, W/8]
        if self.num_deep >= 2:
            deep = self._block(self.conv5, deep)  # [B, 16ngf, H/16, W/16]
        features = x
        for block in self.res_blocks:
            features = block(features)  # [B, 4ngf, H/4, W/4]
        return EncoderOutput(features, deep)
