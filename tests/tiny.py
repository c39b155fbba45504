"""Tiny models shared by the tests: config overrides, and generators saved as `lggan convert-official` writes them."""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from lggan.config import apply_overrides, get_preset
from lggan.tasks import make_task

SEMANTIC = ["data.load_size=64x32", "model.ngf=4", "model.spade_hidden=8", "model.num_res_blocks=1"]
CROSSVIEW = ["data.load_size=36x36", "data.crop_size=32x32", "model.ngf=4", "model.num_res_blocks=1"]


def save_model_file(folder: Path, name: str, cfg, G: torch.nn.Module) -> Path:
    """Weights + config sidecar (FOLDER/NAME.safetensors and NAME.json), as a converted official file."""
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps({"config": cfg.to_dict()}))
    return path


def model_file(folder: Path, preset: str, overrides: list[str], name: str | None = None) -> Path:
    """A randomly initialised (seed 0) generator of `preset` with `overrides`, saved by save_model_file."""
    cfg = apply_overrides(get_preset(preset), overrides)
    torch.manual_seed(0)
    return save_model_file(folder, name or preset, cfg, make_task(cfg).build_generator())
