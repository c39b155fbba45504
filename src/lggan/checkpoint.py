"""Checkpoints: one folder per iteration, written to a temp folder and renamed, so a crash never leaves half of one.

Layout of a run folder:
    config.json                       the resolved config
    checkpoints/iter_00001000/        generator.safetensors, discriminator.safetensors,
                                      [generator_ema.safetensors], state.pt (optimisers, RNG, counters), config.json
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .io import default_permissions

CKPT_DIR = "checkpoints"
_NAME = re.compile(r"^iter_(\d{8,})$")
G_FILE, D_FILE, EMA_FILE, STATE_FILE, CONFIG_FILE = (
    "generator.safetensors",
    "discriminator.safetensors",
    "generator_ema.safetensors",
    "state.pt",
    "config.json",
)


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, half-written or corrupt."""


@dataclass
class Checkpoint:
    path: Path
    iteration: int
    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor] | None
    generator_ema: dict[str, torch.Tensor] | None
    state: dict[str, Any] | None
    config: dict[str, Any] | None


def _state_dict_for_file(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses views that share storage; contiguous clones on the CPU are always accepted.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(
    run_dir: str | os.PathLike,
    iteration: int,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module | None,
    state: dict[str, Any],
    config: dict[str, Any],
    generator_ema: torch.nn.Module | None = None,
    keep_last: int = 3,
) -> Path:
    """Writes checkpoints/iter_N atomically (temp folder + rename), then prunes all but the last `keep_last`."""
    root = Path(run_dir) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    g_state = _state_dict_for_file(generator)
    for name, t in g_state.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"refusing to save iteration {iteration}: generator tensor {name!r} is not finite")
    final = root / f"iter_{iteration:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".iter_{iteration:08d}.", dir=root))
    try:
        save_file(g_state, str(tmp / G_FILE), metadata={"iteration": str(iteration)})
        if discriminator is not None:
            save_file(_state_dict_for_file(discriminator), str(tmp / D_FILE))
        if generator_ema is not None:
            save_file(_state_dict_for_file(generator_ema), str(tmp / EMA_FILE))
        torch.save({**state, "iteration": iteration}, tmp / STATE_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        default_permissions(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (temp folders of interrupted writes are skipped)."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing (the checkpoint is incomplete)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def load_checkpoint(path: str | os.PathLike, with_training_state: bool = True) -> Checkpoint:
    """Loads one checkpoint folder; a missing or corrupt file raises CheckpointError naming it."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint folder")
    m = _NAME.match(path.name)
    generator = _load_tensors(path / G_FILE)
    discriminator = ema = state = None
    if with_training_state:
        discriminator = _load_tensors(path / D_FILE)
        if (path / EMA_FILE).exists():
            ema = _load_tensors(path / EMA_FILE)
        try:
            state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{path / STATE_FILE}: file is missing (the checkpoint is incomplete)") from None
        except Exception as e:  # torch raises several types for truncated/garbled pickles
            raise CheckpointError(f"{path / STATE_FILE}: corrupt training state ({type(e).__name__}: {e})") from None
    elif (path / EMA_FILE).exists():
        ema = _load_tensors(path / EMA_FILE)
    config = None
    if (path / CONFIG_FILE).exists():
        try:
            config = json.loads((path / CONFIG_FILE).read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path / CONFIG_FILE}: corrupt config ({e})") from None
    iteration = int(m.group(1)) if m else int((state or {}).get("iteration", 0))
    return Checkpoint(path, iteration, generator, discriminator, ema, state, config)


def load_latest(run_dir: str | os.PathLike, with_training_state: bool = True) -> Checkpoint | None:
    """The newest loadable checkpoint of a run; corrupt newer ones are reported and skipped."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return load_checkpoint(path, with_training_state)
        except CheckpointError as e:
            warnings.warn(f"{e}; falling back to the previous checkpoint", stacklevel=2)
    return None
