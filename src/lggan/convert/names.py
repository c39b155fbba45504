"""Official <-> lggan parameter names: one table per converted model, read in both directions.

A table entry pairs an official name template with ours; each {field} stands for the same part of the name on both
sides and matches its pattern in the table's fields, and {k+1} on one side against {k} on the other shifts a number
(the release counts residual blocks from 1, ModuleList from 0).  A name takes the first entry whose template it
matches in full and is written with the other template.  The per-class convs of G_l are one stacked entry: official
{layer}.weight [3, ngf, 7, 7] and {layer}.bias [3], for layer = deconv5_{i}, i = first_index.., are row
i - first_index of ours .weight [C, 3, ngf, 7, 7] and .bias [C, 3].
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

RenameRule = tuple[str, Callable[[re.Match], str] | str]
_FIELD = re.compile(r"\{(\w+)([+-]\d+)?\}")  # {name}, {name+1}, {name-1}


def _template_regex(template: str, fields: Mapping[str, str]) -> tuple[str, list[tuple[str, int]]]:
    """(the full-match regex of a name template, its fields in group order as (name, shift))."""
    parts, slots, end = [], [], 0
    for m in _FIELD.finditer(template):
        parts += [re.escape(template[end:m.start()]), f"({fields[m[1]]})"]
        slots.append((m[1], int(m[2] or 0)))
        end = m.end()
    parts.append(re.escape(template[end:]))
    return "".join(parts), slots


def _writer(slots: list[tuple[str, int]], template: str) -> Callable[[re.Match], str]:
    """The replacement that writes `template` from a match of the regex whose fields are `slots`."""
    def write(m: re.Match) -> str:
        found = {name: (m[group], shift) for group, (name, shift) in enumerate(slots, 1)}

        def fill(field: re.Match) -> str:
            text, shift = found[field[1]]
            delta = int(field[2] or 0) - shift
            return text if delta == 0 else str(int(text) + delta)

        return _FIELD.sub(fill, template)

    return write


def rename_key(key: str, rules: list[RenameRule]) -> str | None:
    """The name the first matching (full-match regex, replacement) rule gives `key`; None when no rule matches."""
    for pattern, repl in rules:
        m = re.fullmatch(pattern, key)
        if m:
            return repl(m) if callable(repl) else m.expand(repl)
    return None


def rename_keys(state_dict: Mapping[str, torch.Tensor], rules: list[RenameRule]
                ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Renames every key by the first (full-match regex, replacement) rule it matches: (renamed, unmatched keys)."""
    out, unmatched = {}, []
    for key, value in state_dict.items():
        name = rename_key(key, rules)
        if name is None:
            unmatched.append(key)
        else:
            out[name] = value
    return out, unmatched


@dataclass(frozen=True)
class Stacked:
    """Per-class layers official {layer}.weight / .bias, layer = `official` at i = first_index.., as one tensor each."""

    official: str  # the layer name template, with {i}
    ours: str  # the stacked module: ours.weight [C, *w], ours.bias [C, *b]
    first_index: int

    @property
    def pattern(self) -> str:
        """The regex of the official names, groups (i, weight|bias): what stack_indexed reads."""
        return _template_regex(self.official + ".{p}", {"i": r"\d+", "p": "weight|bias"})[0]

    @property
    def weight(self) -> str:
        return f"{self.ours}.weight"

    @property
    def bias(self) -> str:
        return f"{self.ours}.bias"

    def stack(self, state_dict: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """stack_indexed on these layers: (weight [C, *w], bias [C, *b], the official keys used)."""
        return stack_indexed(state_dict, self.pattern, self.first_index)

    def unstack(self, weight: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
        """The official per-class layers of stacked tensors: {layer.weight: weight[c], layer.bias: bias[c], ...}."""
        return unstack_indexed(weight, bias, self.official.replace("{i}", "{}"), self.first_index)


class NameTable:
    """One model's official <-> lggan names: (official, ours) template pairs, the stacked per-class layers, and the
    official names that have no counterpart in ours."""

    def __init__(self, entries: tuple[tuple[str, str], ...], fields: Mapping[str, str], stacked: Stacked,
                 unused: tuple[str, ...] = ()):
        self.entries, self.stacked = entries, stacked
        self.to_ours_rules: list[RenameRule] = []
        self.to_official_rules: list[RenameRule] = []
        for official, ours in entries:
            official_regex, official_slots = _template_regex(official, fields)
            ours_regex, ours_slots = _template_regex(ours, fields)
            names = [name for name, _ in official_slots]
            if sorted(names) != sorted(name for name, _ in ours_slots) or len(set(names)) != len(names):
                raise ValueError(f"name table entry {official!r} <-> {ours!r}: both sides must name the same fields, "
                                 "each once")
            self.to_ours_rules.append((official_regex, _writer(official_slots, ours)))
            self.to_official_rules.append((ours_regex, _writer(ours_slots, official)))
        self.unused_patterns = tuple(_template_regex(name, fields)[0] for name in unused)

    def ours_name(self, official: str) -> str | None:
        return rename_key(official, self.to_ours_rules)

    def official_name(self, ours: str) -> str | None:
        return rename_key(ours, self.to_official_rules)

    def to_ours(self, state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """(the tensors under our names, the keys no entry names) of an official state dict."""
        return rename_keys(state_dict, self.to_ours_rules)

    def to_official(self, state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """(the tensors under the official names, the keys no entry names) of one of our state dicts."""
        return rename_keys(state_dict, self.to_official_rules)

    def is_unused(self, official: str) -> bool:
        return any(re.fullmatch(p, official) for p in self.unused_patterns)


_FIELDS = {"p": "weight|bias", "k": r"\d+", "conv": "conv[12]"}  # a conv's parameter, a block number, a block's conv

# G_l's deconvs, its fusion conv (Eq. 4, [3, 3C, 3, 3]), the classifier (Eq. 5, [K, ngf]) and G_w: both releases name
# them alike (the cross-view release builds neither deconv9 nor fc2; CrossViewGenerator has them as options).
_LOCAL_AND_WEIGHT_MAP = (
    ("deconv3_local.{p}", "local.deconv_1.{p}"),
    ("deconv4_local.{p}", "local.deconv_2.{p}"),
    ("deconv9.{p}", "local.combine.{p}"),
    ("fc2.{p}", "classifier.fc.{p}"),
    ("deconv3_attention.{p}", "weight_map.deconv_1.{p}"),
    ("deconv4_attention.{p}", "weight_map.deconv_2.{p}"),
    ("deconv5_attention.{p}", "weight_map.to_weights.{p}"),
)

# The semantic-synthesis generator: official (SPADE-based) LGGAN -> LGGANGenerator.
SEMANTIC_NAMES = NameTable(
    entries=(
        ("conv{n}.{p}", "encoder.conv{n}.{p}"),  # E, §3.1
        # G_g (SPADE): every tensor of its blocks (up_4 in the "most" layout only), incl. the param_free_norm statistics
        ("{block}.{rest}", "global_generator.{block}.{rest}"),
        ("resnet_blocks{k+1}.{conv}.{p}", "local.res_blocks.{k}.{conv}.{p}"),  # G_l
        *_LOCAL_AND_WEIGHT_MAP,
    ),
    fields={**_FIELDS, "n": "[1-5]", "block": "head_0|G_middle_0|G_middle_1|up_[0-4]|conv_img", "rest": ".+"},
    stacked=Stacked("deconv5_{i}", "local.class_conv", first_index=0),  # G groups, g = 0..G-1
    unused=("fc.{p}",),  # SPADE's input conv; LGGAN feeds G_g from E instead
)

# The cross-view generator: official ResnetGenerator_local -> CrossViewGenerator.
CROSSVIEW_NAMES = NameTable(
    entries=(
        ("conv{n}.{p}", "encoder.conv{n}.{p}"),  # E, §3.1
        ("resnet_blocks{k+1}.{conv}.{p}", "encoder.res_blocks.{k}.{conv}.{p}"),  # E: the trunk both branches share
        ("deconv3_global.{p}", "global_generator.deconv_1.{p}"),  # G_g
        ("deconv4_global.{p}", "global_generator.deconv_2.{p}"),
        ("deconv5_global.{p}", "global_generator.to_image.{p}"),
        *_LOCAL_AND_WEIGHT_MAP,
    ),
    fields={**_FIELDS, "n": "[1-3]"},
    # C classes, i = 1..C (deconv5_global / _attention do not match); the release builds one more than it uses
    stacked=Stacked("deconv5_{i}", "local.class_conv", first_index=1),
)

# The semantic discriminator, official SPADE MultiscaleDiscriminator -> MultiscaleDiscriminator, one way only: the
# official name of one of our layers depends on where it sits (export_official_discriminator writes it from that).
#     discriminator_{s}.model0.0.*             -> scales.{s}.layers.0.0.*    (plain conv with bias)
#     discriminator_{s}.model{n}.0.0.*, 0<n<L  -> scales.{s}.layers.{n}.0.*  (spectral norm, no bias; IN has no keys)
#     discriminator_{s}.model{L}.0.*           -> scales.{s}.layers.{L}.0.*  (plain conv with bias, 1 output)
DISCRIMINATOR_RULES: list[RenameRule] = [
    # Middle layers: model{n} = Sequential(Sequential(spectral conv, IN), LeakyReLU), so the conv is model{n}.0.0.
    (r"discriminator_(\d+)\.model(\d+)\.0\.0\.(weight_orig|weight_u|weight_v|weight|bias)",
     r"scales.\1.layers.\2.0.\3"),
    # First and last layers: model{n} = Sequential(conv[, LeakyReLU]), the conv is model{n}.0.
    (r"discriminator_(\d+)\.model(\d+)\.0\.(weight|bias)", r"scales.\1.layers.\2.0.\3"),
]
_OUR_D_LAYER = re.compile(r"scales\.(\d+)\.layers\.(\d+)\.0\.(.+)")
_TRAINING_D_PREFIX = "D_s."  # our training checkpoints keep the semantic D in a ModuleDict under this name


def stack_indexed(state_dict: Mapping[str, torch.Tensor], pattern: str = SEMANTIC_NAMES.stacked.pattern,
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
