"""The LGGAN generator G for semantic image synthesis (§3, Fig. 2): E -> (G_g, G_l, G_w) -> I^C."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from lggan.models.class_conv import ClassImages, group_masks
from lggan.models.classifier import CLASS_POOLS, ClassificationModule
from lggan.models.encoder import SharedEncoder
from lggan.models.global_generator import SPADEGenerator
from lggan.models.local_generator import LOCAL_COMBINES, LocalClassGenerator
from lggan.models.semantic_layout import SemanticLayout
from lggan.models.weight_map import WeightMapGenerator, fuse


class GeneratorOutput(NamedTuple):
    """Everything the losses need.  Fields that a switched-off branch does not produce are None."""

    image: torch.Tensor  # I^C [B, 3, H, W] (Eq. 7); equals image_global when use_local=False
    image_global: torch.Tensor  # I^G [B, 3, H, W]
    image_local: torch.Tensor | None  # I^L [B, 3, H, W] (Eq. 3/4)
    class_images: ClassImages | None  # I^l_g, sparse; .dense() gives [B, G, 3, H, W] (Eq. 2 uses it directly)
    weight_local: torch.Tensor | None  # W_l [B, 1, H, W] (constant 0.5 when use_weight_map=False)
    weight_global: torch.Tensor | None  # W_g [B, 1, H, W]
    class_logits: torch.Tensor | None  # [B, K, K] (Eq. 5); K = G scored groups (G - 1 with local_groups)
    class_valid: torch.Tensor | None  # [B, K] bool, H_i


class LGGANGenerator(nn.Module):
    """G (§3, Fig. 2): shared encoder E, global SPADE generator G_g, class-specific G_l, classifier, weight maps G_w.

    num_upsampling_layers: G_g's layout ("normal", "more" as the Cityscapes release, "most"; see SPADEGenerator).
    local_groups: None, one local group per class channel; N, channels 0..N-2 one group each and all later channels
    summed into group N-1, which the classifier does not score (the ADE20K release: N = 52 over 151 channels).
    region_constant (attribute, default True): compute the convs that read only S per region of the label map
    (models/semantic_layout.py); False runs them densely, as the release does (same function; benchmarks compare).
    """

    region_constant: bool = True

    def __init__(self, num_classes: int, semantic_nc: int, ngf: int = 64, spade_hidden: int = 128,
                 num_res_blocks: int = 9, local_combine: str = "conv", use_local: bool = True,
                 use_weight_map: bool = True, class_pool: str = "image", tile_size: int = 16,
                 num_upsampling_layers: str = "normal", local_groups: int | None = None):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if semantic_nc < num_classes:
            raise ValueError(f"semantic_nc ({semantic_nc}) must be >= num_classes ({num_classes}): "
                             "S holds the C class masks first, then optional extra channels (instance edges)")
        if ngf < 1 or spade_hidden < 1:
            raise ValueError(f"ngf and spade_hidden must be >= 1, got {ngf}, {spade_hidden}")
        if local_groups is not None and not 2 <= local_groups <= num_classes:
            raise ValueError(f"local_groups must be between 2 and num_classes={num_classes} (or None), "
                             f"got {local_groups}")
        self.arguments: dict[str, Any] = dict(
            num_classes=num_classes, semantic_nc=semantic_nc, ngf=ngf, spade_hidden=spade_hidden,
            num_res_blocks=num_res_blocks, local_combine=local_combine, use_local=use_local,
            use_weight_map=use_weight_map, class_pool=class_pool, tile_size=tile_size,
            num_upsampling_layers=num_upsampling_layers, local_groups=local_groups)
        self.num_classes, self.semantic_nc = num_classes, semantic_nc
        self.use_local, self.use_weight_map = use_local, use_weight_map
        self.local_groups = local_groups
        # G groups in the local branch; the classifier scores all of them, or all but the union group.
        self.num_groups = num_classes if local_groups is None else local_groups
        num_scored = self.num_groups if local_groups is None else self.num_groups - 1
        self.encoder = SharedEncoder(semantic_nc, ngf, num_deep=2)
        self.global_generator = SPADEGenerator(semantic_nc, ngf, spade_hidden, num_upsampling_layers)
        if use_local:
            self.local = LocalClassGenerator(self.num_groups, ngf, num_res_blocks, local_combine, tile_size=tile_size)
            self.classifier = ClassificationModule(self.num_groups, ngf, class_pool, num_scored=num_scored)
            if use_weight_map:
                self.weight_map = WeightMapGenerator(ngf)
        elif local_combine not in LOCAL_COMBINES or class_pool not in CLASS_POOLS:
            raise ValueError(f"local_combine must be one of {LOCAL_COMBINES} and class_pool one of {CLASS_POOLS}, "
                             f"got {local_combine!r}, {class_pool!r}")

    def forward(self, S: torch.Tensor) -> GeneratorOutput:
        """S: [B, semantic_nc, H, W], the C one-hot class masks M_i first; H, W multiples of 2^5/6/7 (the layout)."""
        if S.dim() != 4 or S.shape[1] != self.semantic_nc:
            raise ValueError(f"S must be [B, {self.semantic_nc}, H, W], got {tuple(S.shape)}")
        H, W = S.shape[-2:]
        step = self.global_generator.step  # 32, 64 or 128
        if H % step or W % step or H < step or W < step:
            raise ValueError(f"S height and width must be positive multiples of {step}, got {H}x{W}")
        if self.training and S.shape[0] * (H // step) * (W // step) < 2:
            raise ValueError(f"in training, SPADE's batch norm needs more than one value per channel at the "
                             f"{H // step}x{W // step} starting grid: use batch size > 1 or a larger image than {H}x{W}")
        M = group_masks(S[:, : self.num_classes], self.local_groups)  # [B, G, H, W]; the class channels themselves if None
        # S as region keys: the convs that read only S (E's conv1, every SPADE's gamma/beta) are then computed per
        # region, the same function as the dense convs (None: dense, e.g. for an S that needs a gradient).
        layout = SemanticLayout.from_semantic(S) if self.region_constant else None
        E = self.encoder(S, layout)
        I_G = self.global_generator(E.deep, S, layout)
        if not self.use_local:  # S1: global generator only
            return GeneratorOutput(I_G, I_G, None, None, None, None, None, None)
        local = self.local(E.features, M)
        cls = self.classifier(local.features, M)
        if self.use_weight_map:
            W_l, W_g = self.weight_map(E.features)
        else:  # S2-S4: fixed equal fusion weights
            W_l = W_g = I_G.new_full((S.shape[0], 1, H, W), 0.5)
        I_C = fuse(I_G, local.image, W_g, W_l)
        return GeneratorOutput(I_C, I_G, local.image, local.class_images, W_l, W_g, cls.logits, cls.valid)
