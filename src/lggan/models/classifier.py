"""Classification module for class-specific discriminative feature learning (§3.2, Eq. 5, Fig. 3)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

CLASS_POOLS = ("image", "mask")


class ClassLogits(NamedTuple):
    logits: torch.Tensor  # [B, C, C]: logits[b, i] classifies the pooled F_i of sample b
    valid: torch.Tensor  # [B, C] bool: H_i, class i present in sample b


class ClassificationModule(nn.Module):
    """Eq. 5: pool each F_i = M_i * f' to an ngf-vector, shared FC ngf -> C; H_i marks the classes present."""

    def __init__(self, num_classes: int, in_channels: int = 64, pool: str = "image"):
        super().__init__()
        if pool not in CLASS_POOLS:
            raise ValueError(f"class_pool must be one of {CLASS_POOLS}, got {pool!r}")
        self.num_classes, self.pool = num_classes, pool
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, f: torch.Tensor, M: torch.Tensor) -> ClassLogits:
        M = M.to(f.dtype)
        # sum_p M_i(p) f'(p) for every class at once, without building the stacked [B, C, n, H, W] tensor.
        pooled = torch.bmm(M.flatten(2), f.flatten(2).transpose(1, 2))  # [B, C, n]
        area = M.flatten(2).sum(-1)  # [B, C]
        if self.pool == "image":
            pooled = pooled / f[0, 0].numel()  # official: average over all H*W pixels
        else:
            # Semantic-guided pooling: mean over the class's own pixels (absent classes stay 0; they are masked out).
            pooled = pooled / area.clamp_min(torch.finfo(f.dtype).tiny).unsqueeze(-1)
        valid = (M != 0).flatten(2).any(-1)  # [B, C]
        return ClassLogits(self.fc(pooled), valid)
