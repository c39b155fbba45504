"""Classification module for class-specific discriminative feature learning (§3.2, Eq. 5, Fig. 3)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from lggan.config import ClassPool, choices

CLASS_POOLS = choices(ClassPool)


class ClassLogits(NamedTuple):
    logits: torch.Tensor  # [B, K, K]: logits[b, i] classifies the pooled F_i of sample b (K scored groups)
    valid: torch.Tensor  # [B, K] bool: H_i, group i present in sample b


class ClassificationModule(nn.Module):
    """Eq. 5: pool each F_i = M_i * f' to an ngf-vector, shared FC ngf -> K; H_i marks the groups present.

    num_classes is the number of mask channels (groups) it receives; num_scored (default: all) how many of the first
    ones it classifies.  The ADE20K release scores groups 0..50 of 52 (fc2 is Linear(64 -> 51)): the union group 51
    is never classified.
    """

    def __init__(self, num_classes: int, in_channels: int = 64, pool: str = "image", num_scored: int | None = None):
        super().__init__()
        if pool not in CLASS_POOLS:
            raise ValueError(f"class_pool must be one of {CLASS_POOLS}, got {pool!r}")
        num_scored = num_classes if num_scored is None else num_scored
        if not 1 <= num_scored <= num_classes:
            raise ValueError(f"classifier: num_scored must be between 1 and num_classes={num_classes}, got {num_scored}")
        self.num_classes, self.num_scored, self.pool = num_classes, num_scored, pool
        self.fc = nn.Linear(in_channels, num_scored)

    def forward(self, f: torch.Tensor, M: torch.Tensor) -> ClassLogits:
        """f: f' [B, n, H, W]; M: group masks [B, num_classes, H, W] -> logits [B, K, K], valid [B, K]."""
        if M.dim() != 4 or M.shape[1] != self.num_classes:
            raise ValueError(f"classifier: masks must be [B, {self.num_classes}, H, W], got {tuple(M.shape)}")
        M = M[:, : self.num_scored].to(f.dtype)  # [B, K, H, W]: the unscored (union) group is left out
        # sum_p M_i(p) f'(p) for every class at once, without building the stacked [B, K, n, H, W] tensor.
        pooled = torch.bmm(M.flatten(2), f.flatten(2).transpose(1, 2))  # [B, K, n]
        area = M.flatten(2).sum(-1)  # [B, K]
        if self.pool == "image":
            pooled = pooled / f[0, 0].numel()  # official: AdaptiveAvgPool2d(1) of F_i, i.e. the sum over M_i / (H*W)
        else:
            # Semantic-guided pooling: mean over the class's own pixels (absent classes stay 0; they are masked out).
            pooled = pooled / area.clamp_min(torch.finfo(f.dtype).tiny).unsqueeze(-1)
        valid = (M != 0).flatten(2).any(-1)  # [B, K]: per (sample, group), as the ADE20K release
        return ClassLogits(self.fc(pooled), valid)
