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

from .io import default_permissions, fsync_tree, remove_tree, replace_folder

CKPT_DIR = "checkpoints"
PREV_SUFFIX = ".prev"  # iter_N.prev: the old iter_N while a re-save of iteration N swaps in
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
    """Writes checkpoints/iter_N atomically, then prunes all but the last `keep_last` up to N.

    There is no moment without the newest good checkpoint: the new one is complete (in a hidden temp folder)
    before anything is moved; an existing iter_N is renamed to iter_N.prev (which `list_checkpoints` still
    counts) until the new one is in place; pruned folders are renamed hidden before they are deleted.
    """
    root = Path(run_dir) / CKPT_DIR
    g_state = _state_dict_for_file(generator)
    for name, t in g_state.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"refusing to save iteration {iteration}: generator tensor {name!r} is not finite")
    final = root / f"iter_{iteration:08d}"
    tmp: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".iter_{iteration:08d}.tmp-{os.getpid()}-", dir=root))
        save_file(g_state, str(tmp / G_FILE), metadata={"iteration": str(iteration)})
        if discriminator is not None:
            save_file(_state_dict_for_file(discriminator), str(tmp / D_FILE))
        if generator_ema is not None:
            save_file(_state_dict_for_file(generator_ema), str(tmp / EMA_FILE))
        torch.save({**state, "iteration": iteration}, tmp / STATE_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        default_permissions(tmp)
        fsync_tree(tmp)  # on disk before it is renamed in, so that not even a power loss leaves an empty iter_N
        replace_folder(tmp, final, aside=final.with_name(final.name + PREV_SUFFIX))
        tmp = None
    except (OSError, SafetensorError, RuntimeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise CheckpointError(f"{final}: could not write the checkpoint ({reason}); earlier checkpoints are "
                              "kept") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    prune_checkpoints(run_dir, keep_last, up_to=iteration)
    return final


def prune_checkpoints(run_dir: str | os.PathLike, keep_last: int, up_to: int) -> None:
    """Deletes all but the newest `keep_last` checkpoints at or before iteration `up_to`.

    Newer ones (left by an earlier, longer run this one resumed before) are not counted: they may be corrupt,
    and counting them could delete the checkpoint just written.
    """
    older = [p for p in list_checkpoints(run_dir) if checkpoint_iteration(p) <= up_to]
    for old in older[: max(len(older) - keep_last, 0)]:
        remove_tree(old)


def clean_stale_files(run_dir: str | os.PathLike) -> list[str]:
    """Removes what killed saves left behind; call it only while holding the run folder's lock.

    Hidden temp/trash folders are deleted; an iter_N.prev whose iter_N never arrived is renamed back (it is the
    last complete copy of that iteration). Returns what was done, for the log.
    """
    root = Path(run_dir) / CKPT_DIR
    done: list[str] = []
    if not root.is_dir():
        return done
    for p in sorted(root.iterdir()):
        if p.name.startswith(".iter_") and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed the unfinished {p.name}")
        elif p.name.endswith(PREV_SUFFIX) and _NAME.match(p.name[: -len(PREV_SUFFIX)]) and p.is_dir():
            final = p.with_name(p.name[: -len(PREV_SUFFIX)])
            if final.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                done.append(f"removed {p.name} (replaced by {final.name})")
            else:
                os.rename(p, final)
                done.append(f"restored {final.name} from {p.name}")
    return done


def checkpoint_iteration(path: Path) -> int:
    name = path.name[: -len(PREV_SUFFIX)] if path.name.endswith(PREV_SUFFIX) else path.name
    m = _NAME.match(name)
    if m is None:
        raise CheckpointError(f"{path}: not a checkpoint folder name (expected iter_NNNNNNNN)")
    return int(m.group(1))


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first.

    Temp folders of interrupted writes are skipped; iter_N.prev (the old copy during a re-save) stands in for
    iter_N while iter_N is absent.
    """
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    found: dict[int, Path] = {}
    for p in root.iterdir():
        if not p.is_dir():
            continue
        if m := _NAME.match(p.name):
            found[int(m.group(1))] = p
    for p in root.iterdir():
        if p.is_dir() and p.name.endswith(PREV_SUFFIX) and (m := _NAME.match(p.name[: -len(PREV_SUFFIX)])):
            found.setdefault(int(m.group(1)), p)
    return [found[k] for k in sorted(found)]


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
    try:
        iteration = checkpoint_iteration(path)
    except CheckpointError:  # a folder renamed by the user: the state knows
        iteration = int((state or {}).get("iteration", 0))
    return Checkpoint(path, iteration, generator, discriminator, ema, state, config)


def load_latest(run_dir: str | os.PathLike, with_training_state: bool = True) -> Checkpoint | None:
    """The newest loadable checkpoint of a run; corrupt newer ones are reported and skipped."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return load_checkpoint(path, with_training_state)
        except CheckpointError as e:
            warnings.warn(f"{e}; falling back to the previous checkpoint", stacklevel=2)
    return None
