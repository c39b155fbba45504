"""The semantic-synthesis generator: LGGANGenerator arguments from an official checkpoint's shapes, both directions.

G local groups and K scored groups: Cityscapes G = K = 35 (one per label channel, the instance edge excluded);
ADE20K G = 52 (channels 0..50 one each, group 51 the union of channels 51..150), K = 51 (group 51 is never scored),
i.e. local_groups=52.  The layout (SPADE's num_upsampling_layers) leaves no trace in the keys except up_4 ("most"):
Cityscapes was trained with "more", ADE20K with "normal"; `--dataset` / `--num-upsampling-layers` override the guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .layout import ConversionReport, _check_layout, _complete_spectral_norm, _fmt, expected_shapes, unwrap_state_dict
from .names import SEMANTIC_NAMES

# `--dataset` values and the preset that holds their data settings.
DATASET_PRESETS = {"cityscapes": "cityscapes", "ade20k": "ade20k", "coco-stuff": "coco-stuff", "synth-city": "synth"}


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

    names, stacked = SEMANTIC_NAMES, SEMANTIC_NAMES.stacked
    report.unused = sorted(k for k in sd if names.is_unused(k))
    try:
        weight, bias, used = stacked.stack(sd)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    rest = {k: v for k, v in sd.items() if k not in set(used) | set(report.unused)}
    ours, unexpected = names.to_ours(rest)
    ours[stacked.weight], ours[stacked.bias] = weight, bias

    expected = expected_shapes("LGGANGenerator", arguments)
    _complete_spectral_norm(ours, expected, report.notes)
    ours = _check_layout(ours, expected, unexpected, f"{source}: does not match the official LGGAN semantic "
                         f"generator layout inferred from its shapes ({arguments})")
    if report.unused:
        report.notes.append("unused by LGGAN (SPADE's input conv, replaced by the encoder): "
                            f"{', '.join(report.unused)}")
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
    stacked = SEMANTIC_NAMES.stacked
    if stacked.weight not in sd:
        raise ValueError("export: the state dict has no local branch (use_local=False); the official layout needs one")
    weight, bias = sd.pop(stacked.weight), sd.pop(stacked.bias)
    out, unmatched = SEMANTIC_NAMES.to_official(sd)
    if unmatched:
        raise ValueError(f"export: keys with no official name: {_fmt(unmatched)}")
    out.update(stacked.unstack(weight, bias))
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
