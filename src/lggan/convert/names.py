"""Official <-> lggan parameter names of the three converted models (facts from the released key names).

Key mapping for the semantic-synthesis generator (official name -> LGGANGenerator name):

    conv1..conv5.{weight,bias}                  -> encoder.conv1..conv5.*                 (E, §3.1)
    head_0, G_middle_0, G_middle_1, up_0..up_3
    (up_4 for "most"), conv_img .*  (incl.
    weight_orig/_u/_v, param_free_norm stats)   -> global_generator.<same name>.*         (G_g, SPADE)
    resnet_blocks{k}.conv{1,2}.*   (k = 1..9)   -> local.res_blocks.{k-1}.conv{1,2}.*     (G_l)
    deconv3_local.*, deconv4_local.*            -> local.deconv_1.*, local.deconv_2.*
    deconv5_{g}.weight [3, ngf, 7, 7], g=0..G-1 -> local.class_conv.weight[g]  ([G, 3, ngf, 7, 7], stacked)
    deconv5_{g}.bias [3]                        -> local.class_conv.bias[g]    ([G, 3])
    deconv9.*  [3, 3G, 3, 3]                    -> local.combine.*                        (Eq. 4)
    fc2.*      [K, ngf]                         -> classifier.fc.*                        (Eq. 5)
    deconv3_attention.*, deconv4_attention.*,
    deconv5_attention.*                         -> weight_map.deconv_1.*, .deconv_2.*, .to_weights.*  (G_w)
    fc.*                                        -> unused (SPADE's input conv; LGGAN feeds G_g from E instead)

Key mapping for the cross-view generator (official ResnetGenerator_local -> CrossViewGenerator name):

    conv1..conv3.{weight,bias}                  -> encoder.conv1..conv3.*                 (E, §3.1)
    resnet_blocks{k}.conv{1,2}.*   (k = 1..9)   -> encoder.res_blocks.{k-1}.conv{1,2}.*   (E: the shared trunk)
    deconv3_global.*, deconv4_global.*,
    deconv5_global.*                            -> global_generator.deconv_1.*, .deconv_2.*, .to_image.*  (G_g)
    deconv3_local.*, deconv4_local.*            -> local.deconv_1.*, local.deconv_2.*    (G_l)
    deconv5_{i}.weight [3, ngf, 7, 7], i=1..C   -> local.class_conv.weight[i-1]  ([C, 3, ngf, 7, 7], stacked)
    deconv5_{i}.bias [3]                        -> local.class_conv.bias[i-1]    ([C, 3])
    deconv5_{C+1}..                             -> unused (the release builds deconv5_1..7 and uses 1..6)
    deconv3_attention.*, deconv4_attention.*,
    deconv5_attention.*                         -> weight_map.deconv_1.*, .deconv_2.*, .to_weights.*  (G_w)
    deconv9.*, fc2.*  (not in the release)      -> local.combine.*, classifier.fc.*  (Eq. 4, Eq. 5 options)

Key mapping for the semantic discriminator (official SPADE MultiscaleDiscriminator -> MultiscaleDiscriminator):

    discriminator_{s}.model0.0.*                -> scales.{s}.layers.0.0.*     (plain conv with bias)
    discriminator_{s}.model{n}.0.0.*, 0<n<L     -> scales.{s}.layers.{n}.0.*   (spectral norm, no bias; IN has no keys)
    discriminator_{s}.model{L}.0.*              -> scales.{s}.layers.{L}.0.*   (plain conv with bias, 1 output)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

RenameRule = tuple[str, Callable[[re.Match], str] | str]

SEMANTIC_RULES: list[RenameRule] = [
    (r"conv([1-5])\.(weight|bias)", r"encoder.conv\1.\2"),
    (r"(head_0|G_middle_0|G_middle_1|up_[0-4]|conv_img)\.(.+)", r"global_generator.\1.\2"),
    (r"resnet_blocks(\d+)\.(conv[12])\.(weight|bias)", lambda m: f"local.res_blocks.{int(m[1]) - 1}.{m[2]}.{m[3]}"),
    (r"deconv3_local\.(weight|bias)", r"local.deconv_1.\1"),
    (r"deconv4_local\.(weight|bias)", r"local.deconv_2.\1"),
    (r"deconv9\.(weight|bias)", r"local.combine.\1"),
    (r"fc2\.(weight|bias)", r"classifier.fc.\1"),
    (r"deconv3_attention\.(weight|bias)", r"weight_map.deconv_1.\1"),
    (r"deconv4_attention\.(weight|bias)", r"weight_map.deconv_2.\1"),
    (r"deconv5_attention\.(weight|bias)", r"weight_map.to_weights.\1"),
]
SEMANTIC_CLASS_CONV = r"deconv5_(\d+)\.(weight|bias)"  # per-class convs, stacked into one tensor
SEMANTIC_UNUSED = (r"fc\.(weight|bias)",)

# The reverse direction (lggan -> official names), for exporting and round-trip checks.
SEMANTIC_EXPORT_RULES: list[RenameRule] = [
    (r"encoder\.(conv[1-5])\.(weight|bias)", r"\1.\2"),
    (r"global_generator\.(.+)", r"\1"),
    (r"local\.res_blocks\.(\d+)\.(conv[12])\.(weight|bias)", lambda m: f"resnet_blocks{int(m[1]) + 1}.{m[2]}.{m[3]}"),
    (r"local\.deconv_1\.(weight|bias)", r"deconv3_local.\1"),
    (r"local\.deconv_2\.(weight|bias)", r"deconv4_local.\1"),
    (r"local\.combine\.(weight|bias)", r"deconv9.\1"),
    (r"classifier\.fc\.(weight|bias)", r"fc2.\1"),
    (r"weight_map\.deconv_1\.(weight|bias)", r"deconv3_attention.\1"),
    (r"weight_map\.deconv_2\.(weight|bias)", r"deconv4_attention.\1"),
    (r"weight_map\.to_weights\.(weight|bias)", r"deconv5_attention.\1"),
]
CLASS_CONV_WEIGHT, CLASS_CONV_BIAS = "local.class_conv.weight", "local.class_conv.bias"

CROSSVIEW_RULES: list[RenameRule] = [
    (r"conv([1-3])\.(weight|bias)", r"encoder.conv\1.\2"),
    (r"resnet_blocks(\d+)\.(conv[12])\.(weight|bias)",
     lambda m: f"encoder.res_blocks.{int(m[1]) - 1}.{m[2]}.{m[3]}"),
    (r"deconv3_global\.(weight|bias)", r"global_generator.deconv_1.\1"),
    (r"deconv4_global\.(weight|bias)", r"global_generator.deconv_2.\1"),
    (r"deconv5_global\.(weight|bias)", r"global_generator.to_image.\1"),
    (r"deconv3_local\.(weight|bias)", r"local.deconv_1.\1"),
    (r"deconv4_local\.(weight|bias)", r"local.deconv_2.\1"),
    (r"deconv9\.(weight|bias)", r"local.combine.\1"),
    (r"fc2\.(weight|bias)", r"classifier.fc.\1"),
    (r"deconv3_attention\.(weight|bias)", r"weight_map.deconv_1.\1"),
    (r"deconv4_attention\.(weight|bias)", r"weight_map.deconv_2.\1"),
    (r"deconv5_attention\.(weight|bias)", r"weight_map.to_weights.\1"),
]
CROSSVIEW_CLASS_CONV = SEMANTIC_CLASS_CONV  # deconv5_1 .. deconv5_K (deconv5_global / _attention do not match)
CROSSVIEW_FIRST_CLASS = 1
CROSSVIEW_EXPORT_RULES: list[RenameRule] = [
    (r"encoder\.(conv[1-3])\.(weight|bias)", r"\1.\2"),
    (r"encoder\.res_blocks\.(\d+)\.(conv[12])\.(weight|bias)",
     lambda m: f"resnet_blocks{int(m[1]) + 1}.{m[2]}.{m[3]}"),
    (r"global_generator\.deconv_1\.(weight|bias)", r"deconv3_global.\1"),
    (r"global_generator\.deconv_2\.(weight|bias)", r"deconv4_global.\1"),
    (r"global_generator\.to_image\.(weight|bias)", r"deconv5_global.\1"),
    (r"local\.deconv_1\.(weight|bias)", r"deconv3_local.\1"),
    (r"local\.deconv_2\.(weight|bias)", r"deconv4_local.\1"),
    (r"local\.combine\.(weight|bias)", r"deconv9.\1"),
    (r"classifier\.fc\.(weight|bias)", r"fc2.\1"),
    (r"weight_map\.deconv_1\.(weight|bias)", r"deconv3_attention.\1"),
    (r"weight_map\.deconv_2\.(weight|bias)", r"deconv4_attention.\1"),
    (r"weight_map\.to_weights\.(weight|bias)", r"deconv5_attention.\1"),
]


DISCRIMINATOR_RULES: list[RenameRule] = [
    # Middle layers: model{n} = Sequential(Sequential(spectral conv, IN), LeakyReLU), so the conv is model{n}.0.0.
    (r"discriminator_(\d+)\.model(\d+)\.0\.0\.(weight_orig|weight_u|weight_v|weight|bias)", r"scales.\1.layers.\2.0.\3"),
    # First and last layers: model{n} = Sequential(conv[, LeakyReLU]), the conv is model{n}.0.
    (r"discriminator_(\d+)\.model(\d+)\.0\.(weight|bias)", r"scales.\1.layers.\2.0.\3"),
]
_OUR_D_LAYER = re.compile(r"scales\.(\d+)\.layers\.(\d+)\.0\.(.+)")
_TRAINING_D_PREFIX = "D_s."  # our training checkpoints keep the semantic D in a ModuleDict under this name


def rename_keys(state_dict: Mapping[str, torch.Tensor], rules: list[RenameRule]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Applies the first matching (full-match regex, replacement) rule to every key; returns (renamed, unmatched keys)."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out, unmatched = {}, []
    for key, value in state_dict.items():
        for pattern, repl in compiled:
            m = pattern.fullmatch(key)
            if m:
                out[repl(m) if callable(repl) else m.expand(repl)] = value
                break
        else:
            unmatched.append(key)
    return out, unmatched


def stack_indexed(state_dict: Mapping[str, torch.Tensor], pattern: str = SEMANTIC_CLASS_CONV,
                  first_index: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stacks per-class layers named like deconv5_{i}.weight / .bias (i = first_index ..) into [K, ...] tensors.

    Returns (weight [K, *w], bias [K, *b], the keys used).  The indices must be consecutive from first_index.
    """
    regex = re.compile(pattern)
    found: dict[str, dict[int, torch.Tensor]] = {"weight": {}, "bias": {}}
    used = []
    for key, value in state_dict.items():
        m = regex.fullmatch(key)
        if m:
            found[m[2]][int(m[1])] = value
            used.append(key)
    idx = sorted(found["weight"])
    if not idx:
        raise ValueError(f"no per-class layers matching {pattern!r}")
    expected = list(range(first_index, first_index + len(idx)))
    if idx != expected or sorted(found["bias"]) != expected:
        raise ValueError(f"per-class layers {pattern!r}: indices must run {first_index}..{first_index + len(idx) - 1} "
                         f"with a weight and a bias each; got weights {idx} and biases {sorted(found['bias'])}")
    shapes = {tuple(found["weight"][i].shape) for i in idx}
    if len(shapes) != 1:
        raise ValueError(f"per-class layers {pattern!r} have different weight shapes: {sorted(shapes)}")
    return (torch.stack([found["weight"][i] for i in idx]), torch.stack([found["bias"][i] for i in idx]), used)


def unstack_indexed(weight: torch.Tensor, bias: torch.Tensor, template: str = "deconv5_{}",
                    first_index: int = 0) -> dict[str, torch.Tensor]:
    """Inverse of stack_indexed: {template.format(i).weight: weight[k], ...}."""
    out = {}
    for k in range(weight.shape[0]):
        name = template.format(first_index + k)
        out[f"{name}.weight"] = weight[k].clone()
        out[f"{name}.bias"] = bias[k].clone()
    return out
