"""Either model: which one an official checkpoint or one of our state dicts is (from its keys), converted or
exported accordingly, and the lggan config that builds a converted model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .crossview import CROSSVIEW_ANCHOR, convert_official_crossview, export_official_crossview
from .discriminator import DISCRIMINATOR_ANCHOR, convert_official_discriminator, export_official_discriminator
from .layout import ConversionReport, _fmt, unwrap_state_dict
from .names import _OUR_D_LAYER, _TRAINING_D_PREFIX
from .semantic import DATASET_PRESETS, _dataset_classes, convert_official_semantic, export_official_semantic

# Presets whose data settings fit a semantic checkpoint with this many label channels (else cityscapes).
SEMANTIC_PRESETS = {35: "cityscapes", 151: "ade20k", 183: "coco-stuff"}


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
    if CROSSVIEW_ANCHOR in sd:  # the cross-view generator (detect_official_task)
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


def _crossview_config(report: ConversionReport) -> tuple[Any, list[str]]:
    """The dayton-a2g preset with the cross-view generator's widths and switches."""
    from lggan.config import get_preset

    a, notes = report.arguments, []
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
    return cfg, notes


def _discriminator_config(report: ConversionReport) -> tuple[Any, list[str]]:
    """The semantic preset of the discriminator's dataset with its ndf, d_layers and num_d."""
    from lggan.config import get_preset

    a, notes = report.arguments, []
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
    return cfg, notes


def _semantic_config(report: ConversionReport) -> tuple[Any, list[str]]:
    """The semantic preset of the generator's dataset with its classes, widths, layout and switches."""
    from lggan.config import get_preset

    a, notes = report.arguments, []
    cfg = get_preset(_semantic_preset(report, a["num_classes"]))
    cfg.data.num_classes = a["num_classes"]
    cfg.data.use_instance = a["semantic_nc"] > a["num_classes"]
    for key in ("ngf", "spade_hidden", "num_res_blocks", "local_combine", "use_local", "use_weight_map",
                "class_pool", "num_upsampling_layers", "local_groups"):
        setattr(cfg.model, key, a[key])
    if a["semantic_nc"] > a["num_classes"] + 1:
        notes.append(f"semantic_nc={a['semantic_nc']} is more than num_classes + 1 instance-edge channel; the "
                     "config cannot describe it: load it with lggan.convert.load_converted")
    return cfg, notes


# ConversionReport.model -> the lggan config that builds that converted model, plus notes.
CONVERTED_CONFIGS = {"LGGANGenerator": _semantic_config, "MultiscaleDiscriminator": _discriminator_config,
                     "CrossViewGenerator": _crossview_config}


def converted_config(report: ConversionReport) -> tuple[dict[str, Any], list[str]]:
    """A full lggan Config (as a dict) that builds the converted model, plus notes on what it cannot describe.

    Semantic: the preset of the detected (or given) dataset, else of the dataset with that many classes
    (cityscapes otherwise), with data.num_classes, data.use_instance, model.num_upsampling_layers,
    model.local_groups and the model widths set from the weights (a discriminator: ndf, d_layers, num_d).
    Cross-view: the dayton-a2g preset likewise.
    """
    from lggan.config import validate

    cfg, notes = CONVERTED_CONFIGS[report.model](report)
    try:
        validate(cfg)
    except ValueError as e:
        raise ValueError(f"the converted model's config (preset {cfg.preset!r}) is inconsistent: {e}") from None
    return cfg.to_dict(), notes


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


def _export_discriminator(state_dict: Mapping[str, torch.Tensor],
                          unused: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    if unused:
        raise ValueError("export: a discriminator has no unused tensors to put back")
    return export_official_discriminator(state_dict)


# detect_our_kind -> how one of our state dicts goes back to the release's names and shapes.
EXPORTERS = {"discriminator": _export_discriminator, "semantic": export_official_semantic,
             "crossview": lambda state_dict, unused: export_official_crossview(state_dict, unused=unused)}


def export_official(state_dict: Mapping[str, torch.Tensor], unused: Mapping[str, torch.Tensor] | None = None
                    ) -> tuple[dict[str, torch.Tensor], str]:
    """(our state dict under the release's names and shapes, its kind); `unused` as kept by a conversion."""
    kind = detect_our_kind(state_dict)
    return EXPORTERS[kind](state_dict, unused), kind
