"""Files: reading an official .pth, writing a converted model (OUT.safetensors, OUT.json, OUT.unused.safetensors),
loading it back, and writing one of ours as the release's .pth (plus the data settings it cannot hold).

`convert_official_file` tells them apart by their keys (`deconv5_global.weight`: cross-view G;
`discriminator_0.model0.0.weight`: semantic D; else semantic G) and writes OUT.safetensors + OUT.json, whose "config"
entry is a full lggan Config (what `lggan.generate.load_generator` builds the model from), plus
OUT.unused.safetensors with the checkpoint's unused tensors (e.g. `fc`), so that `export_official_file` writes the
release's file back bit for bit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lggan.io import atomic_write, check_outputs

from .dispatch import convert_official, converted_config, export_official
from .layout import DISCRIMINATOR_MODEL, ConversionReport, unwrap_state_dict


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
    from lggan.metrics.files import load_weights_file

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


EXPORT_PARTS = {"generator": "generator.safetensors", "generator_ema": "generator_ema.safetensors",
                "discriminator": "discriminator.safetensors"}


def _our_weights_file(path: Path, part: str) -> Path:
    """The .safetensors file of `part` in a run folder (newest checkpoint), a checkpoint folder, or the file itself."""
    from lggan import checkpoint as ckpt

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
