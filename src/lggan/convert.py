"""Official LGGAN checkpoints <-> lggan state dicts (facts from the released key names and shapes; no code reused).

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

G local groups and K scored groups: Cityscapes G = K = 35 (one per label channel, the instance edge excluded);
ADE20K G = 52 (channels 0..50 one each, group 51 the union of channels 51..150), K = 51 (group 51 is never scored),
i.e. local_groups=52.  The layout (SPADE's num_upsampling_layers) leaves no trace in the keys except up_4 ("most"):
Cityscapes was trained with "more", ADE20K with "normal"; `--dataset` / `--num-upsampling-layers` override the guess.

Key mapping for the semantic discriminator (official SPADE MultiscaleDiscriminator -> MultiscaleDiscriminator):

    discriminator_{s}.model0.0.*                -> scales.{s}.layers.0.0.*     (plain conv with bias)
    discriminator_{s}.model{n}.0.0.*, 0<n<L     -> scales.{s}.layers.{n}.0.*   (spectral norm, no bias; IN has no keys)
    discriminator_{s}.model{L}.0.*              -> scales.{s}.layers.{L}.0.*   (plain conv with bias, 1 output)

Spectral-norm layers keep torch's weight_orig / weight_u / weight_v names on both sides, and the stored u, v are
kept as they are: in eval mode torch divides by sigma = u^T W v without a power iteration, as the release did.
Checkpoints saved without weight_v are completed (see `_complete_spectral_norm`), and one holding a plain `weight` for
such a layer gets weight_orig = weight and fresh singular vectors (each reported in the notes).

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

`convert_official_file` tells them apart by their keys (`deconv5_global.weight`: cross-view G;
`discriminator_0.model0.0.weight`: semantic D; else semantic G) and writes OUT.safetensors + OUT.json, whose "config"
entry is a full lggan Config (what `lggan.generate.load_generator` builds the model from), plus
OUT.unused.safetensors with the checkpoint's unused tensors (e.g. `fc`), so that `export_official_file` writes the
release's file back bit for bit.
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

from lggan.io import atomic_write, check_outputs

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
DISCRIMINATOR_MODEL = "MultiscaleDiscriminator"
# Presets whose data settings fit a semantic checkpoint with this many label channels (else cityscapes).
SEMANTIC_PRESETS = {35: "cityscapes", 151: "ade20k", 183: "coco-stuff"}
# `--dataset` values and the preset that holds their data settings.
DATASET_PRESETS = {"cityscapes": "cityscapes", "ade20k": "ade20k", "coco-stuff": "coco-stuff", "synth-city": "synth"}
_WRAPPER_KEYS = ("state_dict", "model", "netG", "generator", "G", "netD", "discriminator", "D", "params", "net")


@dataclass(frozen=True)
class ReleasedSemantic:
    """What identifies a released semantic-synthesis model by its shapes, and what its shapes cannot tell."""

    semantic_nc: int  # conv1's input channels (D: model0's input - 3)
    groups: int  # deconv5_{g} count, G
    scored: int  # fc2 rows, K
    num_classes: int  # label channels (S's first channels; the rest are instance edges)
    layout: str  # num_upsampling_layers the release trained with (not visible in the keys)


# Facts §1a and §3: Cityscapes 35 label channels + instance edge, 'more'; ADE20K 151 channels, 52 groups, 'normal'.
RELEASED_SEMANTIC = {
    "cityscapes": ReleasedSemantic(semantic_nc=36, groups=35, scored=35, num_classes=35, layout="more"),
    "ade20k": ReleasedSemantic(semantic_nc=151, groups=52, scored=51, num_classes=151, layout="normal"),
}


@dataclass
class ConversionReport:
    """What a conversion found: the task, the inferred model arguments, ignored keys and remarks."""

    arguments: dict[str, Any]
    task: str = "semantic"  # semantic (LGGANGenerator) | crossview (CrossViewGenerator)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    num_tensors: int = 0
    part: str = "generator"  # generator | discriminator (MultiscaleDiscriminator)
    dataset: str | None = None  # the released dataset the checkpoint was detected as (or --dataset), None: unknown
    detected: str = ""  # one line saying what was detected and which settings were guessed

    @property
    def model(self) -> str:
        """The lggan class the converted state dict belongs to."""
        return DISCRIMINATOR_MODEL if self.part == "discriminator" else TASK_MODELS[self.task]

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


def _complete_spectral_norm(ours: dict[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]],
                            notes: list[str]) -> None:
    """Fills in the spectral-norm tensors of `expected` that a checkpoint saved differently, in place.

    * weight_orig, weight_u, weight (PyTorch < 1.1 saved the normalised weight, no weight_v): v is chosen so that
      u^T W v = sigma, the scale between weight_orig and weight, so eval mode (weight = W / u^T W v) gives exactly the
      saved weight; this is the condition torch's own loader solves for such files.
    * weight_orig, weight_u only: v = normalise(W^T u), the v of torch's next power-iteration step from the stored u.
    * a plain weight: weight_orig = weight, u and v its leading singular vectors.
    """
    for key in [k for k in expected if k.endswith(".weight_orig")]:
        base = key[: -len("_orig")]
        u_key, v_key = base + "_u", base + "_v"
        if key in ours and u_key in ours and v_key not in ours:
            W = ours[key].reshape(ours[key].shape[0], -1).double()  # [out, in*k*k]
            u = ours[u_key].double()
            Wtu = W.t() @ u
            if base in ours and base not in expected:
                saved = ours.pop(base).reshape_as(W).double()
                # Least-squares sigma of weight_orig = sigma * weight (robust to zero entries of weight).
                sigma = (W * W).sum() / (W * saved).sum()
                v = Wtu * (sigma / (Wtu @ Wtu))  # u^T W v = sigma
                notes.append(f"{base}: saved without weight_v (PyTorch < 1.1): v solved from the saved weight")
            else:
                v = torch.nn.functional.normalize(Wtu, dim=0)
                notes.append(f"{base}: saved without weight_v: v = normalise(W^T u) from the stored u")
            ours[v_key] = v.to(ours[key].dtype)
        elif key not in ours and base in ours and base not in expected:
            w = ours.pop(base)
            ours[key] = w
            ours[u_key], ours[v_key] = _power_iteration(w)
            notes.append(f"{base}: plain weight used as weight_orig, spectral-norm vectors recomputed")


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

def _indices(state_dict: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    return sorted(int(m[1]) for k in state_dict if (m := re.fullmatch(pattern, k)))


def detect_semantic_release(semantic_nc: int, groups: int, scored: int) -> str | None:
    """The released dataset whose semantic generator has these shapes (conv1 input, deconv5_* count, fc2 rows)."""
    for name, r in RELEASED_SEMANTIC.items():
        if (r.semantic_nc, r.groups, r.scored) == (semantic_nc, groups, scored):
            return name
    return None


def _dataset_layout(dataset: str | None) -> str:
    """The num_upsampling_layers a dataset's release trained with; SPADE's default "normal" for any other."""
    return RELEASED_SEMANTIC[dataset].layout if dataset in RELEASED_SEMANTIC else "normal"


def _dataset_classes(dataset: str | None) -> int | None:
    """Label channels (one-hot classes) of a dataset's preset, None when unknown."""
    if dataset in RELEASED_SEMANTIC:
        return RELEASED_SEMANTIC[dataset].num_classes
    if dataset in DATASET_PRESETS:
        from lggan.config import get_preset

        return get_preset(DATASET_PRESETS[dataset]).data.num_classes
    return None


def _check_dataset(dataset: str | None) -> None:
    if dataset is not None and dataset not in DATASET_PRESETS:
        raise ValueError(f"--dataset {dataset!r}: expected one of {', '.join(DATASET_PRESETS)}")


def infer_semantic_arguments(state_dict: Mapping[str, torch.Tensor], source: str = "state dict",
                             dataset: str | None = None, num_upsampling_layers: str | None = None) -> dict[str, Any]:
    """LGGANGenerator arguments implied by an official semantic-synthesis generator's shapes.

    G = number of deconv5_{g}, K = fc2 rows: K = G means one group per label channel (local_groups None, num_classes
    G, the remaining conv1 input channels are instance edges); K = G - 1 means the last group is an unscored union
    (local_groups G; num_classes = all conv1 input channels, less one instance edge if `dataset` has them).  The
    layout: "most" when up_4 exists, else `num_upsampling_layers`, else the dataset's release layout.
    """
    anchors = ("conv1.weight", "conv_img.weight", "head_0.norm_0.mlp_shared.0.weight", "fc2.weight")
    missing = [k for k in anchors if k not in state_dict]
    if missing:
        raise ValueError(f"{source}: not an official LGGAN semantic-synthesis generator: missing keys {missing} "
                         f"(found e.g. {_fmt(list(state_dict), 8)})")
    _check_dataset(dataset)
    ngf, semantic_nc = (int(d) for d in state_dict["conv1.weight"].shape[:2])
    groups = len(_indices(state_dict, r"deconv5_(\d+)\.weight"))
    scored = int(state_dict["fc2.weight"].shape[0])
    if scored == groups:
        num_classes, local_groups = groups, None
    elif scored == groups - 1:
        # The unscored last group sums the remaining label channels: every input channel but instance edges.
        classes = _dataset_classes(dataset)
        num_classes, local_groups = (semantic_nc if classes is None else classes), groups
    else:
        raise ValueError(f"{source}: fc2 predicts {scored} groups but there are {groups} per-group convs deconv5_* "
                         "(expected as many, or one more: an unscored union group as in the ADE20K release)")
    if semantic_nc < num_classes or (local_groups is not None and not 2 <= local_groups <= num_classes):
        raise ValueError(f"{source}: {groups} per-group convs and conv1's {semantic_nc} input channels do not fit "
                         f"{'--dataset ' + dataset if dataset else 'any release'} ({num_classes} label channels)")
    expected_classes = _dataset_classes(dataset)
    if dataset is not None and local_groups is None and expected_classes != num_classes:
        raise ValueError(f"{source}: --dataset {dataset} has {expected_classes} label channels but the checkpoint "
                         f"has {num_classes} per-class convs deconv5_*")
    if "up_4.conv_0.weight_orig" in state_dict or "up_4.conv_0.weight" in state_dict:
        layout = "most"
        if num_upsampling_layers not in (None, "most"):
            raise ValueError(f"{source}: --num-upsampling-layers {num_upsampling_layers}: the checkpoint has up_4, "
                             "which only the 'most' layout builds")
    else:
        layout = num_upsampling_layers or _dataset_layout(dataset)
        if layout == "most":
            raise ValueError(f"{source}: --num-upsampling-layers most: the checkpoint has no up_4 block")
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
        num_upsampling_layers=layout,
        local_groups=local_groups,
    )


def _describe_semantic(arguments: Mapping[str, Any], dataset: str | None, how: str) -> str:
    a = arguments
    groups = "one per label channel" if a["local_groups"] is None else (
        f"{a['local_groups']} groups ({a['local_groups'] - 1} scored + the union of channels "
        f"{a['local_groups'] - 1}..{a['num_classes'] - 1})")
    extra = a["semantic_nc"] - a["num_classes"]
    edges = f" + {extra} instance-edge channel" if extra == 1 else (f" + {extra} extra channels" if extra else "")
    name = dataset or "unknown dataset"
    return (f"{name} ({how}) semantic generator: {a['num_classes']} label channels{edges}, local branch {groups}, "
            f"layout {a['num_upsampling_layers']!r}, ngf {a['ngf']}")


def expected_shapes(model_name: str, arguments: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of lggan.models.<model_name>(**arguments).state_dict(), built on the meta device (no memory)."""
    from lggan import models

    with torch.device("meta"):
        model = getattr(models, model_name)(**arguments)
    return _shapes(model.state_dict())


def convert_official_semantic(state_dict: Mapping[str, torch.Tensor], source: str = "state dict",
                              dataset: str | None = None, num_upsampling_layers: str | None = None
                              ) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Maps an official semantic-synthesis generator state dict onto LGGANGenerator's (see the module docstring).

    dataset / num_upsampling_layers override what the shapes suggest (the layout is not visible in the keys).
    Returns (our state dict, report with the inferred constructor arguments and what was detected).  Raises
    ValueError listing the missing / unexpected / wrongly shaped keys when the dict is not such a generator.
    """
    sd = unwrap_state_dict(state_dict, source)
    _check_dataset(dataset)
    guess = None
    if dataset is None and "conv1.weight" in sd and "fc2.weight" in sd:
        guess = detect_semantic_release(int(sd["conv1.weight"].shape[1]),
                                        len(_indices(sd, r"deconv5_(\d+)\.weight")), int(sd["fc2.weight"].shape[0]))
    arguments = infer_semantic_arguments(sd, source, dataset or guess, num_upsampling_layers)
    used_dataset = dataset or guess
    how = "given" if dataset else ("detected from the shapes" if guess else "not a released layout")
    report = ConversionReport(arguments=arguments, dataset=used_dataset,
                              detected=_describe_semantic(arguments, used_dataset, how))
    if arguments["local_groups"] is not None and used_dataset is None:
        report.notes.append(f"unknown dataset: all {arguments['semantic_nc']} input channels are taken as label "
                            "channels (no instance edge); pass --dataset to say otherwise")
    if num_upsampling_layers is None and "up_4.conv_0.weight_orig" not in sd:
        report.notes.append(f"layout {arguments['num_upsampling_layers']!r} is not visible in the weights: it is "
                            f"{'the ' + used_dataset + ' release' if used_dataset in RELEASED_SEMANTIC else 'SPADE'}"
                            "'s; pass --num-upsampling-layers if the checkpoint was trained otherwise")

    unused_patterns = [re.compile(p) for p in SEMANTIC_UNUSED]
    report.unused = sorted(k for k in sd if any(p.fullmatch(k) for p in unused_patterns))
    try:
        weight, bias, used = stack_indexed(sd, SEMANTIC_CLASS_CONV, first_index=0)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    rest = {k: v for k, v in sd.items() if k not in set(used) | set(report.unused)}
    ours, unexpected = rename_keys(rest, SEMANTIC_RULES)
    ours[CLASS_CONV_WEIGHT], ours[CLASS_CONV_BIAS] = weight, bias

    expected = expected_shapes("LGGANGenerator", arguments)
    _complete_spectral_norm(ours, expected, report.notes)
    ours = _check_layout(ours, expected, unexpected, f"{source}: does not match the official LGGAN semantic "
                         f"generator layout inferred from its shapes ({arguments})")
    if report.unused:
        report.notes.append(f"unused by LGGAN (SPADE's input conv, replaced by the encoder): {', '.join(report.unused)}")
    report.num_tensors = len(ours)
    return ours, report


# What the release's LGGANGenerator always has (its state dict is loaded strictly).
RELEASE_SEMANTIC_REQUIRED = ("deconv9.weight", "fc2.weight", "deconv5_attention.weight", "deconv3_local.weight")


def export_official_semantic(state_dict: Mapping[str, torch.Tensor], unused: Mapping[str, torch.Tensor] | None = None
                             ) -> dict[str, torch.Tensor]:
    """The inverse mapping: an LGGANGenerator state dict under the official names, in the release's shapes.

    The release also saves SPADE's unused input conv `fc` ([16ngf, semantic_nc, 3, 3]) and loads strictly: `unused`
    (the tensors a conversion set aside) gives it back verbatim, otherwise it is written as zeros (never read).
    """
    sd = dict(state_dict)
    if CLASS_CONV_WEIGHT not in sd:
        raise ValueError("export: the state dict has no local branch (use_local=False); the official layout needs one")
    weight, bias = sd.pop(CLASS_CONV_WEIGHT), sd.pop(CLASS_CONV_BIAS)
    out, unmatched = rename_keys(sd, SEMANTIC_EXPORT_RULES)
    if unmatched:
        raise ValueError(f"export: keys with no official name: {_fmt(unmatched)}")
    out.update(unstack_indexed(weight, bias, "deconv5_{}", 0))
    missing = [k for k in RELEASE_SEMANTIC_REQUIRED if k not in out]
    if missing:
        raise ValueError(f"export: the release's generator always has {', '.join(missing)}; this model was built "
                         "without them (local_combine='sum' or use_weight_map=False), so the release cannot load it")
    conv1 = out["conv1.weight"]  # [ngf, semantic_nc, 7, 7]
    fc = {"fc.weight": conv1.new_zeros(16 * conv1.shape[0], conv1.shape[1], 3, 3),
          "fc.bias": conv1.new_zeros(16 * conv1.shape[0])}
    for k, v in fc.items():
        given = (unused or {}).get(k)
        if given is not None and tuple(given.shape) != tuple(v.shape):
            raise ValueError(f"export: the kept {k} is {tuple(given.shape)} but this generator's is {tuple(v.shape)}")
        out[k] = v if given is None else given.clone()
    return out


# ----------------------------------------------------------------------------------------------- semantic discriminator

DISCRIMINATOR_ANCHOR = "discriminator_0.model0.0.weight"  # SPADE's MultiscaleDiscriminator, first scale's first conv
DISCRIMINATOR_RULES: list[RenameRule] = [
    # Middle layers: model{n} = Sequential(Sequential(spectral conv, IN), LeakyReLU), so the conv is model{n}.0.0.
    (r"discriminator_(\d+)\.model(\d+)\.0\.0\.(weight_orig|weight_u|weight_v|weight|bias)", r"scales.\1.layers.\2.0.\3"),
    # First and last layers: model{n} = Sequential(conv[, LeakyReLU]), the conv is model{n}.0.
    (r"discriminator_(\d+)\.model(\d+)\.0\.(weight|bias)", r"scales.\1.layers.\2.0.\3"),
]
_OUR_D_LAYER = re.compile(r"scales\.(\d+)\.layers\.(\d+)\.0\.(.+)")
_TRAINING_D_PREFIX = "D_s."  # our training checkpoints keep the semantic D in a ModuleDict under this name


def infer_discriminator_arguments(state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
                                  ) -> dict[str, Any]:
    """MultiscaleDiscriminator arguments implied by an official SPADE/LGGAN semantic discriminator's keys and shapes."""
    if DISCRIMINATOR_ANCHOR not in state_dict:
        raise ValueError(f"{source}: not an official semantic discriminator: missing key {DISCRIMINATOR_ANCHOR} "
                         f"(found e.g. {_fmt(list(state_dict), 8)})")
    ndf, in_channels = (int(d) for d in state_dict[DISCRIMINATOR_ANCHOR].shape[:2])
    scales = _indices(state_dict, r"discriminator_(\d+)\.model0\.0\.weight")
    if scales != list(range(len(scales))):
        raise ValueError(f"{source}: discriminator scales must run discriminator_0..N-1, got {scales}")
    layers = sorted({int(m[1]) for k in state_dict if (m := re.match(r"discriminator_0\.model(\d+)\.", k))})
    if layers != list(range(len(layers))) or len(layers) < 2:
        raise ValueError(f"{source}: discriminator_0's layers must run model0..modelN (N >= 1), got {layers}")
    middle = [k for k in state_dict if re.fullmatch(r"discriminator_0\.model\d+\.0\.0\.weight_(orig|u)", k)]
    return dict(in_channels=in_channels, ndf=ndf, n_layers=len(layers) - 1, num_d=len(scales),
                spectral=bool(middle) or len(layers) == 2)


def convert_official_discriminator(state_dict: Mapping[str, torch.Tensor], source: str = "state dict",
                                   dataset: str | None = None) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Maps an official semantic discriminator ({epoch}_net_D.pth) onto MultiscaleDiscriminator's state dict."""
    sd = unwrap_state_dict(state_dict, source)
    _check_dataset(dataset)
    arguments = infer_discriminator_arguments(sd, source)
    semantic_nc = arguments["in_channels"] - 3  # D sees concat(S, image)
    guess = next((n for n, r in RELEASED_SEMANTIC.items() if r.semantic_nc == semantic_nc), None)
    used_dataset = dataset or guess
    how = "given" if dataset else ("detected from the shapes" if guess else "not a released layout")
    a = arguments
    report = ConversionReport(arguments=arguments, part="discriminator", dataset=used_dataset,
                              detected=f"{used_dataset or 'unknown dataset'} ({how}) semantic discriminator: "
                                       f"{a['num_d']} scales x {a['n_layers'] + 1} convs, ndf {a['ndf']}, "
                                       f"input {a['in_channels']} = {semantic_nc} label channels + 3")
    ours, unexpected = rename_keys(sd, DISCRIMINATOR_RULES)
    expected = expected_shapes("MultiscaleDiscriminator", arguments)
    _complete_spectral_norm(ours, expected, report.notes)
    ours = _check_layout(ours, expected, unexpected, f"{source}: does not match the official semantic "
                         f"discriminator layout inferred from its shapes ({arguments})")
    report.num_tensors = len(ours)
    return ours, report


def export_official_discriminator(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse mapping: a MultiscaleDiscriminator state dict (or our training checkpoint's D_s.*) under the
    official names discriminator_{s}.model{n}...."""
    sd = dict(state_dict)
    if sd and all(k.startswith(_TRAINING_D_PREFIX) for k in sd):
        sd = {k[len(_TRAINING_D_PREFIX):]: v for k, v in sd.items()}
    matches = {k: _OUR_D_LAYER.fullmatch(k) for k in sd}
    unmatched = [k for k, m in matches.items() if m is None]
    if unmatched:
        raise ValueError(f"export: keys with no official discriminator name: {_fmt(unmatched)}")
    last = max(int(m[2]) for m in matches.values())
    out = {}
    for k, m in matches.items():
        s, n, rest = int(m[1]), int(m[2]), m[3]
        inner = "0" if n in (0, last) else "0.0"  # middle convs sit inside the (conv, IN) Sequential
        out[f"discriminator_{s}.model{n}.{inner}.{rest}"] = sd[k]
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
    ours = _check_layout(ours, expected_shapes("CrossViewGenerator", arguments), unexpected,
                         f"{source}: does not match the official LGGAN cross-view generator layout inferred "
                         f"from its shapes ({arguments})")
    if spare:
        names = ", ".join(f"deconv5_{i}" for i in spare)
        report.notes.append(f"unused: {names} (the release builds more per-class convs than its {C} classes use)")
    report.num_tensors = len(ours)
    return ours, report


def export_official_crossview(state_dict: Mapping[str, torch.Tensor], spare_class_conv: bool = True,
                              unused: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The inverse mapping: a CrossViewGenerator state dict under the official names.

    With spare_class_conv the unused deconv5_{C+1} of the release is added (zeros), so that the official
    ResnetGenerator_local loads the result strictly.  `unused` (the tensors a conversion set aside) are written back
    verbatim, in place of those zeros.
    """
    sd = dict(state_dict)
    local = CLASS_CONV_WEIGHT in sd
    weight, bias = (sd.pop(CLASS_CONV_WEIGHT), sd.pop(CLASS_CONV_BIAS)) if local else (None, None)
    out, unmatched = rename_keys(sd, CROSSVIEW_EXPORT_RULES)
    if unmatched:
        raise ValueError(f"export: keys with no official cross-view name: {_fmt(unmatched)}")
    if local:
        out.update(unstack_indexed(weight, bias, "deconv5_{}", CROSSVIEW_FIRST_CLASS))
    clash = sorted(k for k in (unused or {}) if k in out)
    if clash:
        raise ValueError(f"export: the kept unused tensors {_fmt(clash)} are part of the model itself")
    if local and spare_class_conv:
        spare = f"deconv5_{CROSSVIEW_FIRST_CLASS + weight.shape[0]}"
        out[f"{spare}.weight"], out[f"{spare}.bias"] = torch.zeros_like(weight[0]), torch.zeros_like(bias[0])
    out.update({k: v.clone() for k, v in (unused or {}).items()})
    return out


# ----------------------------------------------------------------------------------------------- either task

def detect_official_task(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'crossview' when the official cross-view generator's `deconv5_global.weight` is present, else 'semantic'."""
    return "crossview" if CROSSVIEW_ANCHOR in state_dict else "semantic"


def detect_official_part(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'discriminator' for SPADE's MultiscaleDiscriminator keys (discriminator_0.model0.0.weight), else 'generator'."""
    return "discriminator" if DISCRIMINATOR_ANCHOR in state_dict else "generator"


def convert_official(state_dict: Mapping[str, torch.Tensor], source: str = "state dict",
                     num_classes: int | None = None, dataset: str | None = None,
                     num_upsampling_layers: str | None = None) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Converts an official semantic generator / discriminator or cross-view generator, whichever its keys show.

    num_classes: cross-view only; dataset: semantic only (generator and discriminator); num_upsampling_layers:
    semantic generator only.
    """
    sd = unwrap_state_dict(state_dict, source)
    semantic_only = [f for f, v in (("--dataset", dataset), ("--num-upsampling-layers", num_upsampling_layers)) if v]
    if detect_official_task(sd) == "crossview":
        if semantic_only:
            raise ValueError(f"{source}: {' and '.join(semantic_only)} apply to semantic-synthesis checkpoints; "
                             "this is a cross-view generator")
        ours, report = convert_official_crossview(sd, source, num_classes)
        a = report.arguments
        report.detected = (f"cross-view generator: {a['num_classes']} classes, {a['in_channels']} input channels, "
                           f"ngf {a['ngf']}, local branch {'on' if a['use_local'] else 'off'}")
        return ours, report
    if num_classes is not None:
        raise ValueError(f"{source}: num_classes can only be given for cross-view checkpoints; a semantic one "
                         "has exactly one per-group conv per group")
    if detect_official_part(sd) == "discriminator":
        if num_upsampling_layers:
            raise ValueError(f"{source}: --num-upsampling-layers applies to generators; this is a discriminator")
        return convert_official_discriminator(sd, source, dataset)
    if "conv_img.weight" not in sd and "conv1.weight" not in sd:
        raise ValueError(f"{source}: not an official LGGAN generator: neither the semantic-synthesis layout "
                         f"(conv_img.weight, head_0.*) nor the cross-view one ({CROSSVIEW_ANCHOR}) "
                         f"nor the semantic discriminator ({DISCRIMINATOR_ANCHOR}) (found e.g. {_fmt(list(sd), 8)})")
    return convert_official_semantic(sd, source, dataset, num_upsampling_layers)


def _semantic_preset(report: ConversionReport, num_classes: int) -> str:
    if report.dataset in DATASET_PRESETS:
        return DATASET_PRESETS[report.dataset]
    return SEMANTIC_PRESETS.get(num_classes, "cityscapes")


def converted_config(report: ConversionReport) -> tuple[dict[str, Any], list[str]]:
    """A full lggan Config (as a dict) that builds the converted model, plus notes on what it cannot describe.

    Semantic: the preset of the detected (or given) dataset, else of the dataset with that many classes
    (cityscapes otherwise), with data.num_classes, data.use_instance, model.num_upsampling_layers,
    model.local_groups and the model widths set from the weights (a discriminator: ndf, d_layers, num_d).
    Cross-view: the dayton-a2g preset likewise.
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
    elif report.part == "discriminator":
        semantic_nc = a["in_channels"] - 3
        classes = _dataset_classes(report.dataset)
        num_classes = semantic_nc if classes is None or classes > semantic_nc else classes
        cfg = get_preset(_semantic_preset(report, num_classes))
        cfg.data.num_classes = num_classes
        cfg.data.use_instance = semantic_nc > num_classes
        cfg.model.ndf, cfg.model.d_layers, cfg.model.num_d = a["ndf"], a["n_layers"], a["num_d"]
        if classes is None:
            notes.append(f"unknown dataset: the discriminator's {semantic_nc} label channels are taken as "
                         "classes without instance edges (pass --dataset to say otherwise)")
        if semantic_nc > num_classes + 1:
            notes.append(f"{semantic_nc} label channels are more than data.num_classes={num_classes} + 1 "
                         "instance-edge channel; the config cannot describe it: load it with "
                         "lggan.convert.load_converted")
    else:
        cfg = get_preset(_semantic_preset(report, a["num_classes"]))
        cfg.data.num_classes = a["num_classes"]
        cfg.data.use_instance = a["semantic_nc"] > a["num_classes"]
        for key in ("ngf", "spade_hidden", "num_res_blocks", "local_combine", "use_local", "use_weight_map",
                    "class_pool", "num_upsampling_layers", "local_groups"):
            setattr(cfg.model, key, a[key])
        if a["semantic_nc"] > a["num_classes"] + 1:
            notes.append(f"semantic_nc={a['semantic_nc']} is more than num_classes + 1 instance-edge channel; the "
                         "config cannot describe it: load it with lggan.convert.load_converted")
    try:
        validate(cfg)
    except ValueError as e:
        raise ValueError(f"the converted model's config (preset {cfg.preset!r}) is inconsistent: {e}") from None
    return cfg.to_dict(), notes


# ----------------------------------------------------------------------------------------------- files

def _with_data_settings(config: dict[str, Any], settings: dict[str, Any], where: Path) -> dict[str, Any]:
    """`config` with the data fields of an export-official settings file, validated like any config."""
    from lggan.config import Config, validate

    merged = {**config, "data": {**config["data"], **settings}}
    try:
        cfg = Config.from_dict(merged)
        validate(cfg)
    except ValueError as e:
        raise ValueError(f"{where}: its data settings do not fit this model ({e})") from None
    return cfg.to_dict()


def arguments_path(out_path: str | os.PathLike) -> Path:
    """The JSON written next to a converted file: OUT.safetensors -> OUT.json."""
    return Path(out_path).with_suffix(".json")


def unused_path(out_path: str | os.PathLike) -> Path:
    """Where a conversion keeps the checkpoint's unused tensors: OUT.safetensors -> OUT.unused.safetensors."""
    return Path(out_path).with_suffix(".unused.safetensors")


def load_official_file(in_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Reads an official .pth (torch.load with weights_only=True) and unwraps its state dict."""
    in_path = Path(in_path)
    if not in_path.is_file():
        raise FileNotFoundError(f"official checkpoint not found: {in_path}")
    from .metrics.files import load_weights_file

    # Tensors and plain containers only (weights_only=True): a pickle naming other objects could run code.
    return unwrap_state_dict(load_weights_file(in_path, "official checkpoint"), str(in_path))


def _save_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    # safetensors refuses views that share storage; contiguous CPU clones are always accepted.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def convert_official_file(in_path: str | os.PathLike, out_path: str | os.PathLike, num_classes: int | None = None,
                          dataset: str | None = None, num_upsampling_layers: str | None = None,
                          overwrite: bool = False) -> ConversionReport:
    """Converts an official generator or discriminator .pth into OUT.safetensors plus OUT.json.

    The kind is detected from the keys (see `convert_official`).  All files are written atomically.  The JSON holds
    {"config" (a full lggan Config: what `lggan.generate.load_generator` builds the model from), "task", "part",
    "model", "arguments", "dataset", "detected", "source", "unused", "unused_file", "notes"}; the safetensors
    metadata holds the model class and its arguments ("lggan_model", "lggan_arguments") for `load_converted`.  The
    checkpoint's unused tensors (the semantic `fc`, the cross-view spare deconv5_7) go to OUT.unused.safetensors so
    that `export_official_file` can write the release's file back exactly.
    """
    out_path = Path(out_path)
    json_path = arguments_path(out_path)
    if json_path == out_path or out_path.suffix != ".safetensors":
        raise ValueError(f"output {out_path}: give a .safetensors file name (the arguments go to {json_path.name})")
    # OUT, OUT.json and OUT.unused.safetensors (an old one is removed when this checkpoint has no unused tensors).
    check_outputs("OUTPUT", (out_path, json_path, unused_path(out_path)), overwrite, inputs={"INPUT": in_path})
    sd = load_official_file(in_path)
    ours, report = convert_official(sd, source=str(in_path), num_classes=num_classes, dataset=dataset,
                                    num_upsampling_layers=num_upsampling_layers)
    config, notes = converted_config(report)
    settings = _read_sidecar(Path(in_path))
    w, h = config["data"]["crop_size"] or config["data"]["load_size"]
    if settings is not None:  # the size, crop and palette the model was trained with (export-official kept them)
        config = _with_data_settings(config, settings, release_sidecar(in_path))
        notes.append(f"data settings (size, crop, palette) from {release_sidecar(in_path).name}")
    else:
        notes.append(f"the training size is a guess: the release file holds none, so the preset's {w}x{h} is used "
                     f"(set data.load_size / data.crop_size in {arguments_path(out_path).name} if it differs)")
    report.notes += notes
    metadata = {"format": "pt", "lggan_model": report.model, "lggan_arguments": json.dumps(report.arguments)}
    _save_safetensors(out_path, ours, metadata)
    extra = unused_path(out_path)
    if report.unused:
        _save_safetensors(extra, {k: sd[k] for k in report.unused}, {"format": "pt", "source": str(in_path)})
    elif extra.exists():
        extra.unlink()  # a stale one from an earlier conversion to the same name would be exported with this model
    info = {"config": config, "task": report.task, "part": report.part, "model": report.model,
            "arguments": report.arguments, "dataset": report.dataset, "detected": report.detected,
            "source": str(in_path), "unused": report.unused,
            "unused_file": extra.name if report.unused else None, "notes": report.notes}
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2) + "\n"))
    return report


MODEL_CLASSES = ("LGGANGenerator", "CrossViewGenerator", DISCRIMINATOR_MODEL)


def load_converted(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Builds the model (LGGANGenerator, CrossViewGenerator or MultiscaleDiscriminator) described by a converted
    file's metadata and loads its weights (strict)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from lggan import models

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"converted model not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "lggan_arguments" not in meta:
        raise ValueError(f"{path}: no lggan_arguments metadata; not written by convert_official_file")
    name = meta.get("lggan_model", "LGGANGenerator")
    if name not in MODEL_CLASSES:
        raise ValueError(f"{path}: unknown lggan_model {name!r} in its metadata (expected one of {MODEL_CLASSES})")
    model = getattr(models, name)(**json.loads(meta["lggan_arguments"]))
    model.load_state_dict(load_file(str(path)))
    return model.to(device)


# ----------------------------------------------------------------------------------------------- export

def detect_our_kind(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'discriminator', 'semantic' or 'crossview' for one of our state dicts (its key names)."""
    keys = list(state_dict)
    d_keys = [k[len(_TRAINING_D_PREFIX):] if k.startswith(_TRAINING_D_PREFIX) else k for k in keys]
    if keys and all(_OUR_D_LAYER.fullmatch(k) for k in d_keys):
        return "discriminator"
    if any(k.startswith("global_generator.head_0.") for k in keys):
        return "semantic"
    if any(k.startswith("global_generator.deconv_1.") for k in keys):
        return "crossview"
    raise ValueError(f"not an lggan generator or semantic discriminator state dict (found e.g. {_fmt(keys, 8)})")


def export_official(state_dict: Mapping[str, torch.Tensor], unused: Mapping[str, torch.Tensor] | None = None
                    ) -> tuple[dict[str, torch.Tensor], str]:
    """(our state dict under the release's names and shapes, its kind); `unused` as kept by a conversion."""
    kind = detect_our_kind(state_dict)
    if kind == "discriminator":
        if unused:
            raise ValueError("export: a discriminator has no unused tensors to put back")
        return export_official_discriminator(state_dict), kind
    if kind == "semantic":
        return export_official_semantic(state_dict, unused), kind
    return export_official_crossview(state_dict, unused=unused), kind


EXPORT_PARTS = {"generator": "generator.safetensors", "generator_ema": "generator_ema.safetensors",
                "discriminator": "discriminator.safetensors"}


def _our_weights_file(path: Path, part: str) -> Path:
    """The .safetensors file of `part` in a run folder (newest checkpoint), a checkpoint folder, or the file itself."""
    from . import checkpoint as ckpt

    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"OURS {path}: no such .safetensors file, run folder or checkpoint folder")
    if part not in EXPORT_PARTS:
        raise ValueError(f"--part {part!r}: expected one of {', '.join(EXPORT_PARTS)}")
    folder = path
    if (path / ckpt.CKPT_DIR).is_dir():
        found = ckpt.list_checkpoints(path)
        if not found:
            raise FileNotFoundError(f"OURS {path}: the run has no complete checkpoint yet")
        folder = found[-1]
    file = folder / EXPORT_PARTS[part]
    if not file.is_file():
        raise FileNotFoundError(f"OURS {path}: no {EXPORT_PARTS[part]} in {folder}")
    return file


# What the release's .pth cannot hold (it is a plain dict of tensors) but a model's use depends on: the data fields of
# its config. export-official writes them beside the .pth (G.pth -> G.pth.json); convert-official reads them back.
DATA_SIDECAR_FIELDS = ("dataset", "load_size", "crop_size", "flip", "direction", "test_crop", "palette", "dontcare")
SIDECAR_KIND = "lggan export-official data settings"


def release_sidecar(pth: str | os.PathLike) -> Path:
    """The JSON beside an exported release file: G.pth -> G.pth.json (never a converted model's G.json)."""
    pth = Path(pth)
    return pth.with_name(pth.name + ".json")


def _config_of_weights(file: Path) -> dict[str, Any] | None:
    """The lggan config a weights file was saved with: its checkpoint's config.json, or a converted file's OUT.json."""
    for candidate in (file.parent / "config.json", arguments_path(file)):
        try:
            data = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        config = data.get("config", data) if isinstance(data, dict) else None
        if isinstance(config, dict) and isinstance(config.get("data"), dict):
            return config
    return None


def _read_sidecar(in_path: Path) -> dict[str, Any] | None:
    """The data settings export-official wrote beside `in_path`, or None; a malformed one is an error naming it."""
    side = release_sidecar(in_path)
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{side}: cannot read the settings written by export-official ({' '.join(str(e).split())})"
                         ) from None
    if not isinstance(data, dict) or data.get("kind") != SIDECAR_KIND or not isinstance(data.get("data"), dict):
        raise ValueError(f"{side}: not the settings file export-official writes (kind {SIDECAR_KIND!r})")
    unknown = sorted(set(data["data"]) - set(DATA_SIDECAR_FIELDS))
    if unknown:
        raise ValueError(f"{side}: unknown data fields {unknown}")
    return data["data"]


def export_official_file(ours_path: str | os.PathLike, out_path: str | os.PathLike, part: str = "generator",
                         overwrite: bool = False) -> dict[str, Any]:
    """Writes one of our models as the release's .pth: torch.save of a plain {official name: tensor} dict.

    ours_path: a .safetensors file (converted or from a checkpoint), a checkpoint folder or a run folder (its newest
    checkpoint; `part` picks generator, generator_ema or discriminator there).  The unused tensors a conversion kept
    (OURS.unused.safetensors) are written back; without them the release's unused `fc` is zeros.  Returns
    {"source", "kind", "num_tensors", "unused_file"}.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = _our_weights_file(Path(ours_path), part)
    out_path = Path(out_path)
    config = _config_of_weights(file)
    sidecar = release_sidecar(out_path) if config is not None else None
    check_outputs("OUTPUT", [p for p in (out_path, sidecar) if p is not None], overwrite,
                  inputs={"OURS": file, "OURS (unused tensors)": unused_path(file)})

    def read(p: Path) -> dict[str, torch.Tensor]:
        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{p}: not a readable .safetensors file ({' '.join(str(e).split())})") from None

    extra_file = unused_path(file)
    unused = read(extra_file) if extra_file.is_file() else None
    ours = read(file)
    try:
        official, kind = export_official(ours, unused)
    except ValueError as e:
        raise ValueError(f"{file}: {e}") from None
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in official.items()}
    atomic_write(out_path, lambda tmp: torch.save(tensors, tmp))
    if sidecar is not None:
        settings = {"kind": SIDECAR_KIND, "source": str(file),
                    "data": {k: config["data"][k] for k in DATA_SIDECAR_FIELDS if k in config["data"]}}
        atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(settings, indent=2) + "\n"))
    return {"source": str(file), "kind": kind, "num_tensors": len(tensors),
            "unused_file": str(extra_file) if unused is not None else None,
            "settings_file": str(sidecar) if sidecar is not None else None}
