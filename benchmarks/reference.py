"""The release's computation, written plainly, with the weights of our model: the benchmarks' reference.

Global generator G_g (`reference_global`): as the release computes SPADE (and as lggan did before the region-constant
path): every SPADE resizes the full-resolution map itself and runs its own mlp_shared conv over the whole image, then
mlp_gamma and mlp_beta as two convs, BN(x) * (1 + gamma) + beta; E's conv1 runs densely over the one-hot map.

Discriminators (`concatenating_discriminator`): every image concatenated with the map, as released.

Local branch: the plain per-class reference, computed densely.

This is the straightforward (official-release style) computation of Eq. 1 and Eq. 4: for every class i, present in
the image or not, F_i = M_i * f' (Eq. 1), reflection pad 3, the class's own 64->3 conv7x7 over the whole image, tanh;
then the class images are concatenated and fused by the 3C->3 conv3x3 (+ tanh, Eq. 4).  It reads the stacked
parameters of our `ClassSpecificConv` (weight [C, 3, ngf, 7, 7], bias [C, 3]) and the combine conv of our
`LocalClassGenerator`, so "ours vs reference" compares the same math on the same weights (the test in
tests/test_benchmarks_reference.py checks that both give the same images and gradients).

As in the official code, F_i is formed one class at a time inside the loop (the conv keeps its padded input for the
backward pass, so all C padded copies of f' are alive at the end of the forward pass either way; forming the whole
[B, C, ngf, H, W] stack first would only add one more copy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lggan.models.generator import GeneratorOutput, LGGANGenerator
from lggan.models.global_generator import SPADEGenerator
from lggan.models.local_generator import LocalClassGenerator, upconv_in_relu
from lggan.models.spade import SPADE, SPADEResBlock
from lggan.models.weight_map import fuse


def release_spade(norm: SPADE, x: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """SPADE as released: S resized to x, mlp_shared, then mlp_gamma and mlp_beta as two convs over the image."""
    S = F.interpolate(S, size=x.shape[-2:], mode="nearest")
    actv = norm.mlp_shared(S)
    return norm.param_free_norm(x) * (1 + norm.mlp_gamma(actv)) + norm.mlp_beta(actv)


def release_block(block: SPADEResBlock, x: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """SPADEResBlock as released (each of its SPADEs on its own)."""
    x_s = block.conv_s(release_spade(block.norm_s, x, S)) if block.learned_shortcut else x
    dx = block.conv_0(F.leaky_relu(release_spade(block.norm_0, x, S), 0.2))
    dx = block.conv_1(F.leaky_relu(release_spade(block.norm_1, dx, S), 0.2))
    return x_s + dx


def reference_global(gg: SPADEGenerator, x: torch.Tensor, S: torch.Tensor, layout=None) -> torch.Tensor:
    """G_g's forward (the layouts normal / more / most) with release_block for every block: I^G [B, 3, H, W].

    `layout` (what LGGANGenerator passes G_g) is ignored: every conv runs densely."""
    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, scale_factor=2, mode="nearest")

    H, W = S.shape[-2:]
    x = F.interpolate(x, size=(H // gg.step, W // gg.step), mode="nearest")
    x = up(release_block(gg.head_0, x, S))
    x = release_block(gg.G_middle_0, x, S)
    if gg.num_upsampling_layers in ("more", "most"):
        x = up(x)
    x = release_block(gg.G_middle_1, x, S)
    for block in [gg.up_0, gg.up_1, gg.up_2, gg.up_3] + ([gg.up_4] if hasattr(gg, "up_4") else []):
        x = release_block(block, up(x), S)
    return torch.tanh(gg.conv_img(F.leaky_relu(x, 0.2)))


def concatenating_discriminator(D: torch.nn.Module) -> torch.nn.Module:
    """Makes D(S, images) (n images per map) run as released: D(concat(S, image)) on the stacked concatenations, so
    S's part of the first conv is computed for every image, densely. Returns D (its forward patched)."""
    own = D.forward

    def forward(*inputs: torch.Tensor):
        if len(inputs) == 2:
            cond, images = inputs
            cond = cond.repeat(images.shape[0] // cond.shape[0], 1, 1, 1)
            return own(torch.cat([cond, images], 1))
        return own(*inputs)

    D.forward = forward
    return D


def dense_class_images(local: LocalClassGenerator, f: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """I^l_i for all C classes, densely: f' [B, ngf, H, W], M [B, C, H, W] -> [B, C, 3, H, W] (Eq. 1)."""
    conv = local.class_conv
    r = conv.kernel_size // 2
    M = M.to(f.dtype)
    images = []
    for i in range(conv.num_classes):  # every class, present or not
        F_i = f * M[:, i : i + 1]  # Eq. 1
        x = F.pad(F_i, (r, r, r, r), mode="reflect")
        images.append(torch.tanh(F.conv2d(x, conv.weight[i], conv.bias[i])))
    return torch.stack(images, 1)


def dense_local_image(local: LocalClassGenerator, class_images: torch.Tensor) -> torch.Tensor:
    """I^L from dense class images [B, C, 3, H, W]: Eq. 3 (sum) or Eq. 4 (tanh(conv3x3(concat)))."""
    if local.combine_mode == "sum":
        return class_images.sum(1)
    cat = class_images.flatten(1, 2)  # [B, 3C, H, W], class-major like the official torch.cat
    return torch.tanh(F.conv2d(cat, local.combine.weight, local.combine.bias, padding=local.combine.padding))


def reference_local_head(local: LocalClassGenerator, f: torch.Tensor, M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The class-specific part of G_l, densely: (class images [B, C, 3, H, W], I^L [B, 3, H, W])."""
    I_l = dense_class_images(local, f, M)
    return I_l, dense_local_image(local, I_l)


def reference_forward(model: LGGANGenerator, S: torch.Tensor) -> GeneratorOutput:
    """`model(S)` with the local branch's class-specific part computed by the dense reference.

    G_g is `reference_global` (SPADE as released) and E runs densely; everything else (G_l's residual blocks and
    up-convs, classifier, weight maps, fusion) is the model's own code.  `class_images` of the result is the dense [B, C, 3, H, W] tensor, which
    `lggan.losses.local_l1_loss` accepts as well.
    """
    if not model.use_local:
        raise ValueError("reference_forward needs a model with the local branch (use_local=True)")
    M = S[:, : model.num_classes]
    E = model.encoder(S)  # no layout: conv1 dense over the one-hot map
    I_G = reference_global(model.global_generator, E.deep, S)
    local = model.local
    x = E.features
    for block in local.res_blocks:
        x = block(x)
    f = upconv_in_relu(upconv_in_relu(x, local.deconv_1), local.deconv_2)  # f'
    I_l, I_L = reference_local_head(local, f, M)
    cls = model.classifier(f, M)
    if model.use_weight_map:
        W_l, W_g = model.weight_map(E.features)
    else:
        W_l = W_g = I_G.new_full((S.shape[0], 1, *S.shape[-2:]), 0.5)
    I_C = fuse(I_G, I_L, W_g, W_l)
    return GeneratorOutput(I_C, I_G, I_L, I_l, W_l, W_g, cls.logits, cls.valid)
