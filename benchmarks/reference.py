"""The plain per-class reference of the local branch, computed densely with the weights of our model.

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
from lggan.models.local_generator import LocalClassGenerator, upconv_in_relu
from lggan.models.weight_map import fuse


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

    Everything else (encoder, global generator, G_l's residual blocks and up-convs, classifier, weight maps, fusion)
    is the model's own code.  `class_images` of the result is the dense [B, C, 3, H, W] tensor, which
    `lggan.losses.local_l1_loss` accepts as well.
    """
    if not model.use_local:
        raise ValueError("reference_forward needs a model with the local branch (use_local=True)")
    M = S[:, : model.num_classes]
    E = model.encoder(S)
    I_G = model.global_generator(E.deep, S)
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
