"""SPADE normalisation and SPADE residual block of the global generator G_g (§3.2; Park et al. 2019, Eq. 1 and Fig. 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lggan.models.checkpointing import CheckpointableBlock
from lggan.models.spectral import spectral_norm


class SPADE(nn.Module):
    """SPADE: param-free BatchNorm(x) * (1 + gamma(S)) + beta(S), gamma/beta from a conv MLP on S resized to x."""

    def __init__(self, num_features: int, semantic_nc: int, hidden: int = 128):
        super().__init__()
        # nn.BatchNorm2d (not a custom norm) so nn.SyncBatchNorm.convert_sync_batchnorm can swap it when distributed.
        self.param_free_norm = nn.BatchNorm2d(num_features, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(semantic_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, num_features, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, num_features, 3, padding=1)

    def forward(self, x: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
        if S.shape[-2:] != x.shape[-2:]:
            S = F.interpolate(S, size=x.shape[-2:], mode="nearest")
        actv = self.mlp_shared(S)  # [B, hidden, h, w]
        gamma, beta = self.mlp_gamma(actv), self.mlp_beta(actv)  # [B, C_x, h, w]
        return self.param_free_norm(x) * (1 + gamma) + beta


class SPADEResBlock(CheckpointableBlock):
    """SPADE residual block: out = shortcut(x) + conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x, S))), S))).

    With `checkpointing` on (train.activation_checkpointing) its activations are recomputed in the backward pass.
    """

    def __init__(self, fin: int, fout: int, semantic_nc: int, hidden: int = 128):
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmiddle, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(fmiddle, fout, 3, padding=1))
        self.norm_0 = SPADE(fin, semantic_nc, hidden)
        self.norm_1 = SPADE(fmiddle, semantic_nc, hidden)
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = SPADE(fin, semantic_nc, hidden)

    def body(self, x: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
        """x [B, fin, h, w], S [B, semantic_nc, h, w] (or any size: resized) -> [B, fout, h, w]."""
        x_s = self.conv_s(self.norm_s(x, S)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, S), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, S), 0.2))
        return x_s + dx
