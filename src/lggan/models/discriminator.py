"""Discriminators: SPADE's multiscale PatchGAN D_s (§3.2, Eq. 8) and pix2pix's PatchGAN of the cross-view release."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lggan.models.semantic_layout import SemanticLayout, conv_worth_regions, layout_conv
from lggan.models.spectral import spectral_norm


def joined_input(inputs: tuple[torch.Tensor, ...], in_channels: int, who: str) -> torch.Tensor:
    """D(x): the one input [B, in_channels, H, W]; ValueError otherwise."""
    x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{who}: input must have {in_channels} channels in total, "
                         f"got shapes {[tuple(t.shape) for t in inputs]}")
    return x


def conditional_input(cond: torch.Tensor, images: torch.Tensor, in_channels: int, who: str) -> int:
    """D(c, images): checks cond [B, Cc, H, W] and images [n*B, in_channels - Cc, H, W] (n images per condition,
    stacked on the batch axis, image-major); returns n."""
    B = cond.shape[0]
    if (cond.dim() != 4 or images.dim() != 4 or cond.shape[1] + images.shape[1] != in_channels
            or cond.shape[-2:] != images.shape[-2:] or B == 0 or images.shape[0] % B):
        raise ValueError(f"{who}: D(c, images) needs c [B, C_c, H, W] and images [n*B, {in_channels} - C_c, H, W], "
                         f"got {tuple(cond.shape)} and {tuple(images.shape)}")
    return images.shape[0] // B


def conditional_conv(conv: nn.Conv2d, cond: torch.Tensor, images: torch.Tensor,
                     layout: SemanticLayout | None = None) -> torch.Tensor:
    """conv(concat(c, image)) for n images per condition: conv_c(c) + conv_image(images), [n*B, O, h, w].

    The condition's part is computed once for all n images (the D step judges the real image and three fakes under
    one label map), per region when c is a label map (`layout`); the same function as the conv of the concatenation.
    """
    Cc, B = cond.shape[1], cond.shape[0]
    n = images.shape[0] // B
    stride, padding = conv.stride[0], conv.padding[0]
    w_cond, w_image = conv.weight[:, :Cc], conv.weight[:, Cc:]
    at = layout.at(cond.shape[-2:]) if layout is not None else None
    if at is not None and conv_worth_regions(at, conv.kernel_size[0], stride, padding, "zeros", cond.device.type):
        c = layout_conv(at, w_cond, conv.bias, stride, padding)
    else:
        c = F.conv2d(cond, w_cond, conv.bias, stride, padding)  # [B, O, h, w]
    x = F.conv2d(images, w_image, None, stride, padding)  # [n*B, O, h, w]
    return (x.view(n, B, *x.shape[1:]) + c).view(x.shape)


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

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None,
                layout: SemanticLayout | None = None) -> list[torch.Tensor]:
        """Every layer's output (for feature matching); the last one is the patch prediction [B, 1, h, w].

        With `cond`, x holds n images per condition and the first conv reads concat(cond, image) (conditional_conv).
        """
        features = []
        for i, layer in enumerate(self.layers):
            if i == 0 and cond is not None:
                x = layer[1](conditional_conv(layer[0], cond, x, layout))  # conv, LeakyReLU
            else:
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

    region_constant: bool = True  # the condition's part of the first conv per region of a label map

    def forward(self, *inputs: torch.Tensor) -> list[list[torch.Tensor]]:
        """D(x) or D(S, images): returns per scale the list of layer outputs.

        D(S, images): S [B, C_S, H, W] and images [n*B, 3, H, W] (n images per map, image-major), the same as
        D(concat(S, image)) for each image; S's part of each scale's first conv is computed once, per region of the
        label map on the first scale (the second scale sees S average-pooled: dense).
        """
        if len(inputs) == 2:
            cond, x = inputs
            conditional_input(cond, x, self.in_channels, "discriminator")
            dense = not self.region_constant or torch.is_autocast_enabled(cond.device.type)  # see conv_worth_regions
            layout = None if dense else SemanticLayout.from_semantic(cond)
            outputs = []
            for i, D in enumerate(self.scales):
                if i > 0:
                    cond, x = (F.avg_pool2d(t, 3, stride=2, padding=1, count_include_pad=False) for t in (cond, x))
                    layout = None
                outputs.append(D(x, cond, layout))
            return outputs
        x = joined_input(inputs, self.in_channels, "discriminator")
        outputs = []
        for i, D in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(D(x))
        return outputs


class PatchGANDiscriminator(nn.Module):
    """D_i / D_s of the cross-view release (§4.1, Eq. 9): pix2pix's PatchGAN ("basic", n_layers 3) on concat(c, x).

    Layers, all 4x4 convs with zero padding 1 and a bias, LeakyReLU 0.2 after every conv but the last:

        conv s2 -> ndf;  conv s2 -> 2ndf + IN;  ...;  conv s1 -> min(2^n_layers, 8) * ndf + IN;  conv s1 -> 1

    (n_layers = 3: 64, 128, 256, 512 -> 1 at ndf = 64; a 256 px input gives a 30x30 patch map, 64 px gives 6x6).
    InstanceNorm is affine=False with track_running_stats=True as in the release, so the state dict carries
    running_mean / running_var / num_batches_tracked (they are only read in eval mode, which training never uses).

    The layers sit in one nn.Sequential `model` with the release's indices, so the state dict keys are the official
    ones (no conversion needed): for n_layers = 3

        model.0  conv (in -> ndf, s2)          model.1  LeakyReLU
        model.2  conv (ndf -> 2ndf, s2)        model.3  IN   model.4  LeakyReLU
        model.5  conv (2ndf -> 4ndf, s2)       model.6  IN   model.7  LeakyReLU
        model.8  conv (4ndf -> 8ndf, s1)       model.9  IN   model.10 LeakyReLU
        model.11 conv (8ndf -> 1, s1)          (release: model.12 Sigmoid, no state)

    The release ends with a Sigmoid and nn.BCELoss; here the last layer returns logits and the losses use
    BCE-with-logits (losses.bce_real / bce_fake), the same numbers in a numerically stable form.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"PatchGANDiscriminator: in_channels must be >= 1, got {in_channels}")
        if ndf < 1:
            raise ValueError(f"PatchGANDiscriminator: ndf must be >= 1 (model.ndf), got {ndf}")
        if n_layers < 1:
            raise ValueError(f"PatchGANDiscriminator: n_layers must be >= 1 (model.d_layers), got {n_layers}")
        self.in_channels, self.ndf, self.n_layers = in_channels, ndf, n_layers
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        nf = ndf
        for n in range(1, n_layers + 1):
            # Stride 2 for the first n_layers - 1 of these, stride 1 for the last; width doubles, capped at 8 * ndf.
            nf_prev, nf = nf, ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(nf_prev, nf, 4, stride=stride, padding=1),
                       nn.InstanceNorm2d(nf, affine=False, track_running_stats=True),
                       nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(nf, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        # Where each block ends (after its LeakyReLU, and the final conv): the outputs feature matching reads.
        self._block_ends = {i for i, m in enumerate(layers) if isinstance(m, nn.LeakyReLU)} | {len(layers) - 1}

    def forward(self, *inputs: torch.Tensor) -> list[list[torch.Tensor]]:
        """D(x), x [B, in_channels, H, W], or D(c, images) with n images per condition (c [B, C_c, H, W], images
        [n*B, in_channels - C_c, H, W], image-major): the same as D(concat(c, image)) per image, c's part of the first
        conv computed once.

        Returns the multiscale contract with one scale: [[block_1, ..., block_{n_layers+1}, logits]], each block
        output [B, C_k, H_k, W_k] after its LeakyReLU, logits [B, 1, h, w] (h = H/8 - 2 at n_layers = 3).
        """
        if len(inputs) == 2:
            cond, x = inputs
            conditional_input(cond, x, self.in_channels, "PatchGANDiscriminator")
        else:
            cond, x = None, joined_input(inputs, self.in_channels, "PatchGANDiscriminator")
        features = []
        for i, layer in enumerate(self.model):
            x = conditional_conv(layer, cond, x) if i == 0 and cond is not None else layer(x)
            if i in self._block_ends:
                features.append(x)
        return [features]
