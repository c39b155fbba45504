"""Official LGGAN checkpoints -> lggan state dicts (facts from the released key names and shapes; no code reused).

Key mapping for the semantic-synthesis generator (official name -> LGGANGenerator name):

    conv1..conv5.{weight,bias}                  -> encoder.conv1..conv5.*                 (E, §3.1)
    head_0, G_middle_0, G_middle_1, up_0..up_3,
    conv_img .*   (incl. weight_orig/_u/_v,
    param_free_norm running stats)              -> global_generator.<same name>.*         (G_g, SPADE)
    resnet_blocks{k}.conv{1,2}.*   (k = 1..9)   -> local.res_blocks.{k-1}.conv{1,2}.*     (G_l)
    deconv3_local.*, deconv4_local.*            -> local.deconv_1.*, local.deconv_2.*
    deconv5_{i}.weight [3, ngf, 7, 7], i=0..C-1 -> local.class_conv.weight[i]  ([C, 3, ngf, 7, 7], stacked)
    deconv5_{i}.bias [3]                        -> local.class_conv.bias[i]    ([C, 3])
    deconv9.*                                   -> local.combine.*                        (Eq. 4)
    fc2.*                                       -> classifier.fc.*                        (Eq. 5)
    deconv3_attention.*, deconv4_attention.*,
    deconv5_attention.*                         -> weight_map.deconv_1.*, .deconv_2.*, .to_weights.*  (G_w)
    fc.*                                        -> unused (SPADE's input conv; LGGAN feeds G_g from E instead)

Spectral-norm layers keep torch's weight_orig / weight_u / weight_v names on both sides; a checkpoint holding a plain
`weight` for such a layer gets weight_orig = weight and fresh singular vectors (reported in the notes).

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

`convert_official_file` tells the two apart by `deconv5_global.weight` and writes OUT.safetensors + OUT.json, whose
"config" entry is a full lggan Config (what `lggan.generate.load_generator` builds the model from).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from lggan.io import atomic_write

RenameRule = tuple[str, Callable[[re.Match], str] | str]

SEMANTIC_RULES: list[RenameRule] = [
    (r"conv([1-5])\.(weight|bias)", r"encoder.conv\1.\2"),
    (r"(head_0|G_middle_0|G_middle_1|up_[0-3]|conv_img)\.(.+)", r"global_generator.\1.\2"),
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
RELEASE_CROSSVIEW_CLASSES = 6  # Dayton / CVUSA semantic classes of the release
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
CROSSVIEW_ANCHOR = "deconv5_global.weight"  # only the cross-view release has it
TASK_MODELS = {"semantic": "LGGANGenerator", "crossview": "CrossViewGenerator"}
# Presets whose data settings fit a semantic checkpoint with this many classes (else cityscapes).
SEMANTIC_PRESETS = {35: "cityscapes", 151: "ade20k", 183: "coco-stuff"}
_WRAPPER_KEYS = ("state_dict", "model", "netG", "generator", "G", "params", "net")


@dataclass
class ConversionReport:
    """What a conversion found: the task, the inferred generator arguments, ignored keys and remarks."""

    arguments: dict[str, Any]
    task: str = "semantic"  # semantic (LGGANGenerator) | crossview (CrossViewGenerator)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    num_tensors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __iter__(self):
        # dict(report) gives the same as to_dict()
        return iter(self.to_dict().items())


# ----------------------------------------------------------------------------------------------- generic helpers

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


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint: a plain state dict, one wrapped under a usual key, or 'module.'-prefixed."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    if not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = [obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if not inner:
            mappings = [v for v in obj.values() if isinstance(v, Mapping)]
            inner = mappings if len(mappings) == 1 else []
        if not inner:
            raise ValueError(f"{source}: no state dict found (top-level keys: {sorted(map(str, obj))[:10]})")
        return unwrap_state_dict(inner[0], source)
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel / DDP
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _power_iteration(weight: torch.Tensor, iters: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Leading singular vectors (u, v) of weight viewed as [out, -1], as torch's spectral_norm stores them."""
    W = weight.detach().reshape(weight.shape[0], -1).double()
    gen = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(W.shape[0], generator=gen, dtype=W.dtype), dim=0)
    v = torch.nn.functional.normalize(W.t() @ u, dim=0)
    for _ in range(iters):
        v = torch.nn.functional.normalize(W.t() @ u, dim=0)
        u = torch.nn.functional.normalize(W @ v, dim=0)
    return u.to(weight.dtype), v.to(weight.dtype)


def _shapes(sd: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in sd.items()}


def _fmt(keys: list[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _check_layout(ours: dict[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], unexpected: list[str],
                  what: str) -> dict[str, torch.Tensor]:
    """`ours` in the order of `expected`; raises ValueError '<what>: missing / unexpected keys, shape mismatches'."""
    produced = _shapes(ours)
    missing = [k for k in expected if k not in produced]
    unexpected = unexpected + [k for k in produced if k not in expected]
    wrong = [f"{k} {produced[k]} != {expected[k]}" for k in expected if k in produced and produced[k] != expected[k]]
    if missing or unexpected or wrong:
        parts = [f"missing keys: {_fmt(missing)}" if missing else "",
                 f"unexpected keys: {_fmt(unexpected)}" if unexpected else "",
                 f"shape mismatches: {'; '.join(wrong[:12])}" if wrong else ""]
        raise ValueError(f"{what}: " + "; ".join(p for p in parts if p))
    return {k: ours[k] for k in expected}  # our module order


# ----------------------------------------------------------------------------------------------- semantic generator

def infer_semantic_arguments(state_dict: Mapping[str, torch.Tensor], source: str = "state dict") -> dict[str, Any]:
    """LGGANGenerator arguments implied by an official semantic-synthesis generator's shapes."""
    anchors = ("conv1.weight", "conv_img.weight", "head_0.norm_0.mlp_shared.0.weight", "fc2.weight")
    missing = [k for k in anchors if k not in state_dict]
    if missing:
        raise ValueError(f"{source}: not an official LGGAN semantic-synthesis generator: missing keys {missing} "
                         f"(found e.g. {_fmt(list(state_dict), 8)})")
    ngf, semantic_nc = state_dict["conv1.weight"].shape[:2]
    classes = sorted(int(m[1]) for k in state_dict if (m := re.fullmatch(SEMANTIC_CLASS_CONV, k)) and m[2] == "weight")
    num_classes = state_dict["fc2.weight"].shape[0]
    if len(classes) != num_classes:
        raise ValueError(f"{source}: fc2 predicts {num_classes} classes but there are {len(classes)} per-class "
                         "convs deconv5_*")
    res = {int(m[1]) for k in state_dict if (m := re.fullmatch(r"resnet_blocks(\d+)\.conv1\.weight", k))}
    return dict(
        num_classes=int(num_classes),
        semantic_nc=int(semantic_nc),
        ngf=int(ngf),
        spade_hidden=int(state_dict["head_0.norm_0.mlp_shared.0.weight"].shape[0]),
        num_res_blocks=len(res),
        local_combine="conv" if "deconv9.weight" in state_dict else "sum",
        use_local=True,
        use_weight_map="deconv5_attention.weight" in state_dict,
        class_pool="image",
    )


def expected_semantic_shapes(arguments: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of LGGANGenerator(**arguments).state_dict(), built on the meta device (no memory)."""
    from lggan.models import LGGANGenerator

    with torch.device("meta"):
        model = LGGANGenerator(**arguments)
    return _shapes(model.state_dict())


def convert_official_semantic(state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
                              ) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Maps an official semantic-synthesis generator state dict onto LGGANGenerator's (see the module docstring).

    Returns (our state dict, report with the inferred constructor arguments).  Raises ValueError listing the missing /
    unexpected / wrongly shaped keys when the dict is not such a generator.
    """
    sd = unwrap_state_dict(state_dict, source)
    arguments = infer_semantic_arguments(sd, source)
    report = ConversionReport(arguments=arguments)

    unused_patterns = [re.compile(p) for p in SEMANTIC_UNUSED]
    report.unused = sorted(k for k in sd if any(p.fullmatch(k) for p in unused_patterns))
    try:
        weight, bias, used = stack_indexed(sd, SEMANTIC_CLASS_CONV, first_index=0)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    rest = {k: v for k, v in sd.items() if k not in set(used) | set(report.unused)}
    ours, unexpected = rename_keys(rest, SEMANTIC_RULES)
    ours[CLASS_CONV_WEIGHT], ours[CLASS_CONV_BIAS] = weight, bias

    expected = expected_semantic_shapes(arguments)
    # Spectral-norm layers saved with a plain weight: weight_orig = weight, singular vectors recomputed.
    for key in [k for k in expected if k.endswith(".weight_orig") and k not in ours]:
        base = key[: -len("_orig")]
        if base in ours and base not in expected:
            w = ours.pop(base)
            ours[key] = w
            ours[base + "_u"], ours[base + "_v"] = _power_iteration(w)
            report.notes.append(f"{base}: plain weight used as weight_orig, spectral-norm vectors recomputed")

    ours = _check_layout(ours, expected, unexpected, f"{source}: does not match the official LGGAN semantic "
                         f"generator layout inferred from its shapes ({arguments})")
    if report.unused:
        report.notes.append(f"unused by LGGAN (SPADE's input conv, replaced by the encoder): {', '.join(report.unused)}")
    report.num_tensors = len(ours)
    return ours, report


def export_official_semantic(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse mapping: an LGGANGenerator state dict under the official names (without the unused `fc`)."""
    sd = dict(state_dict)
    if CLASS_CONV_WEIGHT not in sd:
        raise ValueError("export: the state dict has no local branch (use_local=False); the official layout needs one")
    weight, bias = sd.pop(CLASS_CONV_WEIGHT), sd.pop(CLASS_CONV_BIAS)
    out, unmatched = rename_keys(sd, SEMANTIC_EXPORT_RULES)
    if unmatched:
        raise ValueError(f"export: keys with no official name: {_fmt(unmatched)}")
    out.update(unstack_indexed(weight, bias, "deconv5_{}", 0))
    return out


# ----------------------------------------------------------------------------------------------- cross-view generator

def _class_conv_indices(state_dict: Mapping[str, torch.Tensor]) -> list[int]:
    return sorted(int(m[1]) for k in state_dict if (m := re.fullmatch(CROSSVIEW_CLASS_CONV, k)) and m[2] == "weight")


def infer_crossview_arguments(state_dict: Mapping[str, torch.Tensor], source: str = "state dict",
                              num_classes: int | None = None) -> dict[str, Any]:
    """CrossViewGenerator arguments implied by an official cross-view generator's shapes.

    The release builds one more per-class conv than it uses (deconv5_1..7 for Dayton/CVUSA's 6 classes), so by
    default num_classes = (number of deconv5_{i}) - 1, or the width of deconv9 / fc2 when present; pass num_classes
    to override (the first num_classes convs are used, the rest reported unused).
    """
    anchors = ("conv1.weight", CROSSVIEW_ANCHOR)
    missing = [k for k in anchors if k not in state_dict]
    if missing:
        raise ValueError(f"{source}: not an official LGGAN cross-view generator: missing keys {missing} "
                         f"(found e.g. {_fmt(list(state_dict), 8)})")
    ngf, in_channels = state_dict["conv1.weight"].shape[:2]
    res = {int(m[1]) for k in state_dict if (m := re.fullmatch(r"resnet_blocks(\d+)\.conv1\.weight", k))}
    use_local = "deconv3_local.weight" in state_dict
    classes = _class_conv_indices(state_dict)
    if use_local:
        if classes != list(range(CROSSVIEW_FIRST_CLASS, CROSSVIEW_FIRST_CLASS + len(classes))) or not classes:
            raise ValueError(f"{source}: the per-class convs deconv5_{{i}} must run from deconv5_"
                             f"{CROSSVIEW_FIRST_CLASS} without gaps, got indices {classes}")
        if num_classes is None:
            if "deconv9.weight" in state_dict:
                num_classes = state_dict["deconv9.weight"].shape[1] // 3
            elif "fc2.weight" in state_dict:
                num_classes = state_dict["fc2.weight"].shape[0]
            else:
                num_classes = max(len(classes) - 1, 1)
        if not 1 <= num_classes <= len(classes):
            raise ValueError(f"{source}: num_classes={num_classes} but the checkpoint has {len(classes)} per-class "
                             f"convs deconv5_{CROSSVIEW_FIRST_CLASS}..deconv5_{classes[-1]}")
    elif num_classes is None:
        num_classes = RELEASE_CROSSVIEW_CLASSES  # no G_l: the class count only describes the data
    return dict(
        in_channels=int(in_channels),
        num_classes=int(num_classes),
        ngf=int(ngf),
        num_res_blocks=len(res),
        use_local=use_local,
        use_weight_map=use_local and "deconv5_attention.weight" in state_dict,
        local_combine="conv" if "deconv9.weight" in state_dict else "sum",
        tile_size=16,
        use_classifier=use_local and "fc2.weight" in state_dict,
        class_pool="image",
    )


def expected_crossview_shapes(arguments: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of CrossViewGenerator(**arguments).state_dict(), built on the meta device (no memory)."""
    from lggan.models import CrossViewGenerator

    with torch.device("meta"):
        model = CrossViewGenerator(**arguments)
    return _shapes(model.state_dict())


def convert_official_crossview(state_dict: Mapping[str, torch.Tensor], source: str = "state dict",
                               num_classes: int | None = None) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Maps an official cross-view generator state dict onto CrossViewGenerator's (see the module docstring).

    Returns (our state dict, report with the inferred constructor arguments; the spare per-class convs are listed as
    unused).  Raises ValueError listing the missing / unexpected / wrongly shaped keys when the layout does not fit.
    """
    sd = unwrap_state_dict(state_dict, source)
    arguments = infer_crossview_arguments(sd, source, num_classes)
    report = ConversionReport(arguments=arguments, task="crossview")
    C = arguments["num_classes"]
    spare = [i for i in _class_conv_indices(sd) if i >= CROSSVIEW_FIRST_CLASS + C] if arguments["use_local"] else []
    report.unused = sorted(f"deconv5_{i}.{p}" for i in spare for p in ("weight", "bias") if f"deconv5_{i}.{p}" in sd)
    rest = {k: v for k, v in sd.items() if k not in set(report.unused)}
    used = []
    if arguments["use_local"]:
        try:
            weight, bias, used = stack_indexed(rest, CROSSVIEW_CLASS_CONV, first_index=CROSSVIEW_FIRST_CLASS)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    rest = {k: v for k, v in rest.items() if k not in set(used)}
    ours, unexpected = rename_keys(rest, CROSSVIEW_RULES)
    if arguments["use_local"]:
        ours[CLASS_CONV_WEIGHT], ours[CLASS_CONV_BIAS] = weight, bias
    ours = _check_layout(ours, expected_crossview_shapes(arguments), unexpected,
                         f"{source}: does not match the official LGGAN cross-view generator layout inferred "
                         f"from its shapes ({arguments})")
    if spare:
        names = ", ".join(f"deconv5_{i}" for i in spare)
        report.notes.append(f"unused: {names} (the release builds more per-class convs than its {C} classes use)")
    report.num_tensors = len(ours)
    return ours, report


def export_official_crossview(state_dict: Mapping[str, torch.Tensor], spare_class_conv: bool = True
                              ) -> dict[str, torch.Tensor]:
    """The inverse mapping: a CrossViewGenerator state dict under the official names.

    With spare_class_conv the unused deconv5_{C+1} of the release is added (zeros), so that the official
    ResnetGenerator_local loads the result strictly.
    """
    sd = dict(state_dict)
    local = CLASS_CONV_WEIGHT in sd
    weight, bias = (sd.pop(CLASS_CONV_WEIGHT), sd.pop(CLASS_CONV_BIAS)) if local else (None, None)
    out, unmatched = rename_keys(sd, CROSSVIEW_EXPORT_RULES)
    if unmatched:
        raise ValueError(f"export: keys with no official cross-view name: {_fmt(unmatched)}")
    if local:
        out.update(unstack_indexed(weight, bias, "deconv5_{}", CROSSVIEW_FIRST_CLASS))
        if spare_class_conv:
            spare = f"deconv5_{CROSSVIEW_FIRST_CLASS + weight.shape[0]}"
            out[f"{spare}.weight"], out[f"{spare}.bias"] = torch.zeros_like(weight[0]), torch.zeros_like(bias[0])
    return out


# ----------------------------------------------------------------------------------------------- either task

def detect_official_task(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'crossview' when the official cross-view generator's `deconv5_global.weight` is present, else 'semantic'."""
    return "crossview" if CROSSVIEW_ANCHOR in state_dict else "semantic"


def convert_official(state_dict: Mapping[str, torch.Tensor], source: str = "state dict",
                     num_classes: int | None = None) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Converts an official semantic-synthesis or cross-view generator state dict, whichever its keys show."""
    sd = unwrap_state_dict(state_dict, source)
    if detect_official_task(sd) == "crossview":
        return convert_official_crossview(sd, source, num_classes)
    if "conv_img.weight" not in sd and "conv1.weight" not in sd:
        raise ValueError(f"{source}: not an official LGGAN generator: neither the semantic-synthesis layout "
                         f"(conv_img.weight, head_0.*) nor the cross-view one ({CROSSVIEW_ANCHOR}) "
                         f"(found e.g. {_fmt(list(sd), 8)})")
    if num_classes is not None:
        raise ValueError(f"{source}: num_classes can only be given for cross-view checkpoints; a semantic one "
                         "has exactly one per-class conv per class")
    return convert_official_semantic(sd, source)


def converted_config(report: ConversionReport) -> tuple[dict[str, Any], list[str]]:
    """A full lggan Config (as a dict) that builds the converted generator, plus notes on what it cannot describe.

    Semantic: the preset of the dataset with that many classes (cityscapes otherwise) with data.num_classes,
    data.use_instance and the model widths set from the weights.  Cross-view: the dayton-a2g preset likewise.
    """
    from lggan.config import get_preset, validate

    a, notes = report.arguments, []
    if report.task == "crossview":
        cfg = get_preset("dayton-a2g")
        cfg.data.num_classes = a["num_classes"]
        for key in ("ngf", "num_res_blocks", "use_local", "use_weight_map", "local_combine", "class_pool"):
            setattr(cfg.model, key, a[key])
        if a["in_channels"] != 6:
            notes.append(f"the generator takes {a['in_channels']} input channels but the cross-view task feeds 6 "
                         "(concat(I_a, S_g)): load it with lggan.convert.load_converted")
        if a["use_classifier"]:
            notes.append("the checkpoint has a classification module (fc2); the cross-view task builds none: load "
                         "it with lggan.convert.load_converted")
    else:
        cfg = get_preset(SEMANTIC_PRESETS.get(a["num_classes"], "cityscapes"))
        cfg.data.num_classes = a["num_classes"]
        cfg.data.use_instance = a["semantic_nc"] > a["num_classes"]
        for key in ("ngf", "spade_hidden", "num_res_blocks", "local_combine", "use_local", "use_weight_map",
                    "class_pool"):
            setattr(cfg.model, key, a[key])
        if a["semantic_nc"] > a["num_classes"] + 1:
            notes.append(f"semantic_nc={a['semantic_nc']} is more than num_classes + 1 instance-edge channel; the "
                         "config cannot describe it: load it with lggan.convert.load_converted")
    validate(cfg)
    return cfg.to_dict(), notes


# ----------------------------------------------------------------------------------------------- files

def arguments_path(out_path: str | os.PathLike) -> Path:
    """The JSON written next to a converted file: OUT.safetensors -> OUT.json."""
    return Path(out_path).with_suffix(".json")


def load_official_file(in_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Reads an official .pth (torch.load with weights_only=True) and unwraps its state dict."""
    in_path = Path(in_path)
    if not in_path.is_file():
        raise FileNotFoundError(f"official checkpoint not found: {in_path}")
    from .metrics.files import load_weights_file

    # Tensors and plain containers only (weights_only=True): a pickle naming other objects could run code.
    return unwrap_state_dict(load_weights_file(in_path, "official checkpoint"), str(in_path))


def convert_official_file(in_path: str | os.PathLike, out_path: str | os.PathLike,
                          num_classes: int | None = None) -> ConversionReport:
    """Converts an official semantic-synthesis or cross-view generator .pth into OUT.safetensors plus OUT.json.

    The task is detected from the keys (`deconv5_global.weight`: cross-view).  Both files are written atomically.
    The JSON holds {"config" (a full lggan Config: what `lggan.generate.load_generator` builds the model from),
    "task", "model", "arguments", "source", "unused", "notes"}; the safetensors metadata holds the model class and
    its arguments ("lggan_model", "lggan_arguments") for `load_converted`.  num_classes: cross-view only (see
    `infer_crossview_arguments`).
    """
    from safetensors.torch import save_file

    out_path = Path(out_path)
    json_path = arguments_path(out_path)
    if json_path == out_path:
        raise ValueError(f"output {out_path}: give a .safetensors file name (the arguments go to {json_path.name})")
    sd = load_official_file(in_path)
    ours, report = convert_official(sd, source=str(in_path), num_classes=num_classes)
    config, notes = converted_config(report)
    report.notes += notes
    model = TASK_MODELS[report.task]
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in ours.items()}
    metadata = {"format": "pt", "lggan_model": model, "lggan_arguments": json.dumps(report.arguments)}
    atomic_write(out_path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    info = {"config": config, "task": report.task, "model": model, "arguments": report.arguments,
            "source": str(in_path), "unused": report.unused, "notes": report.notes}
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2) + "\n"))
    return report


def load_converted(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Builds the generator (LGGANGenerator or CrossViewGenerator) described by a converted file's metadata and
    loads its weights (strict)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from lggan.models import CrossViewGenerator, LGGANGenerator

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"converted generator not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "lggan_arguments" not in meta:
        raise ValueError(f"{path}: no lggan_arguments metadata; not written by convert_official_file")
    classes = {"LGGANGenerator": LGGANGenerator, "CrossViewGenerator": CrossViewGenerator}
    name = meta.get("lggan_model", "LGGANGenerator")
    if name not in classes:
        raise ValueError(f"{path}: unknown lggan_model {name!r} in its metadata (expected one of {sorted(classes)})")
    model = classes[name](**json.loads(meta["lggan_arguments"]))
    model.load_state_dict(load_file(str(path)))
    return model.to(device)
