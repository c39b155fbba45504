"""SPADE normalisation and SPADE residual block of the global generator G_g (§3.2; Park et al. 2019, Eq. 1 and Fig. 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lggan.models.checkpointing import CheckpointableBlock
from lggan.models.semantic_layout import (RegionModulate, SemanticLayout, gemm_weight, spade_tables,
                                            worth_regions)
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

    def _gamma_beta_bias(self) -> torch.Tensor:
        """[2C]: the bias of mlp_gamma and mlp_beta as one conv, the 1 of (1 + gamma) folded in."""
        return torch.cat([self.mlp_gamma.bias + 1, self.mlp_beta.bias])

    def modulation(self, S: torch.Tensor | None, layout=None, actv: torch.Tensor | None = None,
                   channels_last: bool = False):
        """concat(1 + gamma, beta) at S's size: a [B, 2C, h, w] tensor, or with `layout` (a LayoutAt of S at this size)
        the same per region, as (table [R, 2C], index [B, h, w], channels_last) (semantic_layout.spade_tables).

        actv: mlp_shared(S) when the caller has it (SPADEResBlock computes all its SPADEs' at once).
        """
        bias = self._gamma_beta_bias()
        if layout is not None:
            conv = self.mlp_shared[0]
            weight = gemm_weight([self.mlp_gamma.weight, self.mlp_beta.weight])  # [9 * hidden, 2C]
            return (*spade_tables(layout, conv.weight, conv.bias, weight, bias), channels_last)
        if actv is None:
            actv = self.mlp_shared(S)  # [B, hidden, h, w]
        # mlp_gamma and mlp_beta as one conv with 2C outputs.
        return F.conv2d(actv, torch.cat([self.mlp_gamma.weight, self.mlp_beta.weight]), bias, padding=1)

    def modulate(self, x: torch.Tensor, mod) -> torch.Tensor:
        """BatchNorm(x) * (1 + gamma) + beta for mod = modulation(...)."""
        if isinstance(mod, tuple):  # per region: the filled modulation is never stored
            return RegionModulate.apply(self.param_free_norm(x), *mod)
        C = x.shape[1]
        return torch.addcmul(mod[:, C:], self.param_free_norm(x), mod[:, :C])

    def forward(self, x: torch.Tensor, S: torch.Tensor, layout: SemanticLayout | None = None) -> torch.Tensor:
        """x [B, C, h, w], S [B, semantic_nc, H, W] (resized nearest to h, w); layout: S's SemanticLayout."""
        at = _regions(layout, x)
        if at is None and S.shape[-2:] != x.shape[-2:]:
            S = F.interpolate(S, size=x.shape[-2:], mode="nearest")
        return self.modulate(x, self.modulation(S, at, channels_last=_is_channels_last(x)))


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous()


def _regions(layout: SemanticLayout | None, x: torch.Tensor):
    """The LayoutAt of `layout` at x's size when the region path pays off there, else None (dense convs)."""
    if layout is None:
        return None
    at = layout.at(x.shape[-2:])
    return at if worth_regions(at) else None


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

    def _modulations(self, x: torch.Tensor, S: torch.Tensor, layout: SemanticLayout | None) -> list[torch.Tensor]:
        """concat(1 + gamma, beta) of norm_0, norm_1 (and norm_s): per region, or with one mlp_shared conv for all."""
        norms = [self.norm_0, self.norm_1] + ([self.norm_s] if self.learned_shortcut else [])
        at = _regions(layout, x)
        cl = _is_channels_last(x)
        if at is not None:
            return [n.modulation(None, at, channels_last=cl) for n in norms]
        if S.shape[-2:] != x.shape[-2:]:
            S = F.interpolate(S, size=x.shape[-2:], mode="nearest")
        # The SPADEs' mlp_shared convs all read S at this size: one conv with their outputs concatenated.
        convs = [n.mlp_shared[0] for n in norms]
        actv = F.relu(F.conv2d(S, torch.cat([c.weight for c in convs]), torch.cat([c.bias for c in convs]),
                               padding=1))  # [B, n*hidden, h, w]
        parts = actv.split([c.out_channels for c in convs], 1)
        return [n.modulation(None, actv=a) for n, a in zip(norms, parts)]

    def body(self, x: torch.Tensor, S: torch.Tensor, layout: SemanticLayout | None = None) -> torch.Tensor:
        """x [B, fin, h, w], S [B, semantic_nc, h, w] (or any size: resized) -> [B, fout, h, w]; layout: S's
        SemanticLayout (the region path), or None."""
        mods = self._modulations(x, S, layout)
        x_s = self.conv_s(self.norm_s.modulate(x, mods[2])) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0.modulate(x, mods[0]), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1.modulate(dx, mods[1]), 0.2))
        return x_s + dx
