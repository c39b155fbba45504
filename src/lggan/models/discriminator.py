"""Semantic-guided discriminator D_s (§3.2, Eq. 8): SPADE's multiscale PatchGAN on concat(S, image)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lggan.models.spectral import spectral_norm


class NLayerDiscriminator(nn.Module):
    """One PatchGAN scale: conv4x4 s2 + LReLU, then (spectral-norm) conv4x4 + IN + LReLU (x n_layers-1), conv4x4 -> 1."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 4, spectral: bool = True):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        layers = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2))]
        nf = ndf
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(2 * nf, 512)  # width capped at 512 as in SPADE
            stride = 1 if n == n_layers - 1 else 2
            # No bias: the instance norm that follows removes it.
            conv = nn.Conv2d(nf_prev, nf, 4, stride=stride, padding=2, bias=False)
            conv = spectral_norm(conv) if spectral else conv
            layers.append(nn.Sequential(conv, nn.InstanceNorm2d(nf), nn.LeakyReLU(0.2)))
        layers.append(nn.Sequential(nn.Conv2d(nf, 1, 4, stride=1, padding=2)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output (for feature matching); the last one is the patch prediction [B, 1, h, w]."""
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """D_s (Eq. 8): num_d PatchGANs on concat(S, image), each on a 2x avg-pooled copy of the previous input."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 4, num_d: int = 2, spectral: bool = True):
        super().__init__()
        if num_d < 1:
            raise ValueError(f"num_d must be >= 1, got {num_d}")
        self.in_channels = in_channels
        self.scales = nn.ModuleList(NLayerDiscriminator(in_channels, ndf, n_layers, spectral) for _ in range(num_d))

    def forward(self, *inputs: torch.Tensor) -> list[list[torch.Tensor]]:
        """D(S, image) or D(x): inputs are concatenated on channels; returns per scale the list of layer outputs."""
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"discriminator input must have {self.in_channels} channels in total, "
                             f"got shapes {[tuple(t.shape) for t in inputs]}")
        outputs = []
        for i, D in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(D(x))
        return outputs
