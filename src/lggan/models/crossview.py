"""The LGGAN generator for cross-view image translation (§3, §4.1): ResNet trunk E -> (G_g, G_l, G_w) -> I^C.

Same components as the semantic generator (E, G_l, G_w, Eq. 1-7), arranged as the official cross-view release:
E = conv7x7 + two stride-2 convs + residual blocks on concat(I_a, S_g); G_g = the ResNet generator's up-path; G_l
and G_w read E's output directly (no residual blocks of their own).  At ngf=64 and 6 classes the state dict maps
one-to-one onto the released ResnetGenerator_local (see lggan.convert).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lggan.models.classifier import CLASS_POOLS, ClassificationModule
from lggan.models.encoder import SharedEncoder
from lggan.models.generator import GeneratorOutput
from lggan.models.local_generator import (
    LOCAL_COMBINES,
    LocalClassGenerator,
    upconv,
    upconv_in_relu,
)
from lggan.models.weight_map import WeightMapGenerator, fuse

DOWNSAMPLING = 4  # E halves the size twice; every branch doubles it twice


class ResnetGlobalGenerator(nn.Module):
    """G_g of the cross-view task (§3.2): I^G = tanh(conv7x7(reflect_pad3(up(up(E))))), up = 2x up-conv + IN + ReLU."""

    def __init__(self, ngf: int = 64, in_channels: int | None = None, out_channels: int = 3):
        super().__init__()
        in_channels = 4 * ngf if in_channels is None else in_channels
        self.deconv_1 = upconv(in_channels, 2 * ngf)  # official deconv3_global
        self.deconv_2 = upconv(2 * ngf, ngf)  # official deconv4_global
        self.to_image = nn.Conv2d(ngf, out_channels, 7)  # official deconv5_global

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = upconv_in_relu(upconv_in_relu(x, self.deconv_1), self.deconv_2)  # [B, ngf, 4h, 4w]
        return torch.tanh(self.to_image(F.pad(h, (3, 3, 3, 3), mode="reflect")))  # I^G [B, 3, 4h, 4w]


class CrossViewGenerator(nn.Module):
    """G for cross-view translation (§3, §4.1): shared ResNet trunk E, G_g, G_l (Eq. 1-3), G_w (Eq. 6-7)."""

    def __init__(self, in_channels: int = 6, num_classes: int = 6, ngf: int = 64, num_res_blocks: int = 9,
                 use_local: bool = True, use_weight_map: bool = True, local_combine: str = "sum",
                 tile_size: int = 16, use_classifier: bool = False, class_pool: str = "image"):
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if ngf < 1:
            raise ValueError(f"ngf must be >= 1, got {ngf}")
        if num_res_blocks < 0:
            raise ValueError(f"num_res_blocks must be >= 0, got {num_res_blocks}")
        if local_combine not in LOCAL_COMBINES:
            raise ValueError(f"local_combine must be one of {LOCAL_COMBINES}, got {local_combine!r}")
        if class_pool not in CLASS_POOLS:
            raise ValueError(f"class_pool must be one of {CLASS_POOLS}, got {class_pool!r}")
        self.arguments: dict[str, Any] = dict(
            in_channels=in_channels, num_classes=num_classes, ngf=ngf, num_res_blocks=num_res_blocks,
            use_local=use_local, use_weight_map=use_weight_map, local_combine=local_combine, tile_size=tile_size,
            use_classifier=use_classifier, class_pool=class_pool)
        self.in_channels, self.num_classes = in_channels, num_classes
        self.use_local, self.use_weight_map = use_local, use_weight_map
        self.use_classifier = use_local and use_classifier
        self.encoder = SharedEncoder(in_channels, ngf, num_deep=0, num_res_blocks=num_res_blocks)
        self.global_generator = ResnetGlobalGenerator(ngf)
        if use_local:
            self.local = LocalClassGenerator(num_classes, ngf, num_res_blocks=0, combine=local_combine,
                                             in_channels=4 * ngf, tile_size=tile_size)
            if self.use_classifier:
                self.classifier = ClassificationModule(num_classes, ngf, class_pool)
            if use_weight_map:
                self.weight_map = WeightMapGenerator(ngf)

    def forward(self, x: torch.Tensor, M: torch.Tensor | None) -> GeneratorOutput:
        """x: concat(I_a, S_g colour) [B, in_channels, H, W] in [-1, 1]; M: class masks [B, C, H, W] (void: all 0).

        M may be None only when use_local=False.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be [B, {self.in_channels}, H, W] (concat of I_a and S_g), got {tuple(x.shape)}")
        B, _, H, W = x.shape
        if H % DOWNSAMPLING or W % DOWNSAMPLING or H < 2 * DOWNSAMPLING or W < 2 * DOWNSAMPLING:
            raise ValueError(f"x height and width must be multiples of {DOWNSAMPLING} and at least "
                             f"{2 * DOWNSAMPLING}, got {H}x{W}")
        if self.use_local and (M is None or M.dim() != 4 or tuple(M.shape) != (B, self.num_classes, H, W)):
            raise ValueError(f"masks M must be [{B}, {self.num_classes}, {H}, {W}] (one per class, like x), "
                             f"got {None if M is None else tuple(M.shape)}")
        E = self.encoder(x).features  # E(I_a, S_g) [B, 4ngf, H/4, W/4]
        I_G = self.global_generator(E)  # [B, 3, H, W]
        if not self.use_local:  # global generator only: I^C = I^G
            return GeneratorOutput(I_G, I_G, None, None, None, None, None, None)
        local = self.local(E, M)  # f' [B, ngf, H, W], I^l_i, I^L (Eq. 1, 3/4)
        logits = valid = None
        if self.use_classifier:
            logits, valid = self.classifier(local.features, M)  # Eq. 5
        if self.use_weight_map:
            W_l, W_g = self.weight_map(E)  # Eq. 6, each [B, 1, H, W]
        else:  # fixed equal fusion weights
            W_l = W_g = I_G.new_full((B, 1, H, W), 0.5)
        I_C = fuse(I_G, local.image, W_g, W_l)  # Eq. 7
        return GeneratorOutput(I_C, I_G, local.image, local.class_images, W_l, W_g, logits, valid)
