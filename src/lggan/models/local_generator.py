"""Class-specific local generator G_l (§3.2, Eq. 1-4, Fig. 3)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from lggan.config import LocalCombine, choices
from lggan.models.class_conv import ClassImages, ClassSpecificConv, combine_class_images
from lggan.models.residual import ResidualBlock

LOCAL_COMBINES = choices(LocalCombine)


class LocalOutput(NamedTuple):
    features: torch.Tensor  # f' [B, ngf, H, W]: the shared features every class filters with its mask (Eq. 1)
    class_images: ClassImages  # I^l_i for all classes, sparse (see ClassImages)
    image: torch.Tensor  # I^L [B, 3, H, W] (Eq. 3 or Eq. 4)


def upconv_in_relu(x: torch.Tensor, deconv: nn.Module) -> torch.Tensor:
    """Transposed conv (3x3, stride 2) -> InstanceNorm (no affine) -> ReLU, the 2x upsampling step of G_l and G_w."""
    return F.relu(F.instance_norm(deconv(x)))


def upconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    """3x3 stride-2 transposed conv that exactly doubles the size (padding 1, output padding 1)."""
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)


class LocalClassGenerator(nn.Module):
    """G_l: residual blocks + two 2x up-convs give f'; F_i = M_i * f' (Eq. 1) -> per-class conv7x7 + tanh -> I^L.

    num_classes counts the local branch's groups G: one per class channel, or the ADE20K release's 52 groups over
    151 channels (`lggan.models.class_conv.group_masks` builds their masks).  Eq. 4's fusion conv reads 3G channels
    (the ADE20K release's deconv9: 156).
    """

    def __init__(self, num_classes: int, ngf: int = 64, num_res_blocks: int = 9, combine: str = "conv",
                 in_channels: int | None = None, tile_size: int = 16):
        super().__init__()
        if combine not in LOCAL_COMBINES:
            raise ValueError(f"local_combine must be one of {LOCAL_COMBINES}, got {combine!r}")
        if num_res_blocks < 0:
            raise ValueError(f"num_res_blocks must be >= 0, got {num_res_blocks}")
        in_channels = 4 * ngf if in_channels is None else in_channels
        self.num_classes, self.ngf, self.combine_mode = num_classes, ngf, combine
        self.res_blocks = nn.ModuleList(ResidualBlock(in_channels) for _ in range(num_res_blocks))
        self.deconv_1 = upconv(in_channels, 2 * ngf)
        self.deconv_2 = upconv(2 * ngf, ngf)
        self.class_conv = ClassSpecificConv(num_classes, ngf, 3, kernel_size=7, tile_size=tile_size)
        if combine == "conv":
            self.combine = nn.Conv2d(3 * num_classes, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, M: torch.Tensor) -> LocalOutput:
        """x: E's features [B, in_channels, H/4, W/4]; M: group masks M_g [B, G, H, W] (group_masks)."""
        for block in self.res_blocks:
            x = block(x)
        f = upconv_in_relu(upconv_in_relu(x, self.deconv_1), self.deconv_2)  # f' [B, ngf, H, W]
        if M.shape[-2:] != f.shape[-2:]:
            raise ValueError(f"masks M are {tuple(M.shape[-2:])} but f' is {tuple(f.shape[-2:])}: "
                             "the input size must be a multiple of 4")
        I_l = self.class_conv(f, M)  # I^l_g, g = 1..G
        if self.combine_mode == "sum":
            I_L = I_l.sum()  # Eq. 3
        else:
            # Eq. 4: conv3x3 over concat_g I^l_g, [B, 3G, H, W] group-major as the release's torch.cat -> [B, 3, H, W]
            I_L = torch.tanh(combine_class_images(I_l, self.combine.weight, self.combine.bias))
        return LocalOutput(f, I_l, I_L)

    def forward_dense(self, x: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
        """I^L alone [B, 3, H, W], with the class convs computed densely (ClassSpecificConv.forward_dense): the
        traceable path `lggan export` uses; equal to `forward(x, M).image`."""
        for block in self.res_blocks:
            x = block(x)
        f = upconv_in_relu(upconv_in_relu(x, self.deconv_1), self.deconv_2)
        I_l = self.class_conv.forward_dense(f, M)  # [B, 3G, H, W], group-major
        if self.combine_mode == "sum":
            B, _, H, W = I_l.shape
            return I_l.view(B, -1, 3, H, W).sum(1)  # Eq. 3
        return torch.tanh(self.combine(I_l))  # Eq. 4 (zero 'same' padding, as combine_class_images)
