"""The cross-view generator: CrossViewGenerator arguments from an official checkpoint's shapes, both directions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from .layout import ConversionReport, _check_layout, _fmt, expected_shapes, unwrap_state_dict
from .names import CROSSVIEW_NAMES

RELEASE_CROSSVIEW_CLASSES = 6  # Dayton / CVUSA semantic classes of the release
CROSSVIEW_ANCHOR = "deconv5_global.weight"  # only the cross-view release has it
CROSSVIEW_FIRST_CLASS = CROSSVIEW_NAMES.stacked.first_index  # deconv5_1 is class 0


def _class_conv_indices(state_dict: Mapping[str, torch.Tensor]) -> list[int]:
    pattern = CROSSVIEW_NAMES.stacked.pattern
    return sorted(int(m[1]) for k in state_dict if (m := re.fullmatch(pattern, k)) and m[2] == "weight")


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
            weight, bias, used = CROSSVIEW_NAMES.stacked.stack(rest)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    rest = {k: v for k, v in rest.items() if k not in set(used)}
    ours, unexpected = CROSSVIEW_NAMES.to_ours(rest)
    if arguments["use_local"]:
        ours[CROSSVIEW_NAMES.stacked.weight], ours[CROSSVIEW_NAMES.stacked.bias] = weight, bias
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
    stacked = CROSSVIEW_NAMES.stacked
    local = stacked.weight in sd
    weight, bias = (sd.pop(stacked.weight), sd.pop(stacked.bias)) if local else (None, None)
    out, unmatched = CROSSVIEW_NAMES.to_official(sd)
    if unmatched:
        raise ValueError(f"export: keys with no official cross-view name: {_fmt(unmatched)}")
    if local:
        out.update(stacked.unstack(weight, bias))
    clash = sorted(k for k in (unused or {}) if k in out)
    if clash:
        raise ValueError(f"export: the kept unused tensors {_fmt(clash)} are part of the model itself")
    if local and spare_class_conv:
        spare = f"deconv5_{CROSSVIEW_FIRST_CLASS + weight.shape[0]}"
        out[f"{spare}.weight"], out[f"{spare}.bias"] = torch.zeros_like(weight[0]), torch.zeros_like(bias[0])
    out.update({k: v.clone() for k, v in (unused or {}).items()})
    return out
