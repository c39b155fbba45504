"""Inference: load a generator (our run/checkpoint or a converted official file) and synthesise photos.

    >>> from lggan import load_generator
    >>> synth = load_generator("runs/synth")          # newest checkpoint (EMA weights when present)
    >>> result = synth(label_map)                      # LongTensor [H,W] or [B,H,W] of class indices
    >>> result.image                                   # I^C, [B,3,H,W] in [-1,1]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from . import checkpoint as ckpt
from .config import Config
from .viz import save_png, tensor_to_uint8

LABEL_SUFFIXES = (".png",)
PANEL_SUFFIXES = (".png", ".jpg", ".jpeg")


def _find_model_files(path: Path) -> tuple[Path, Config]:
    """Resolves a run folder / checkpoint folder / .safetensors file to (weights folder or file, config)."""
    if path.is_dir() and (path / ckpt.CKPT_DIR).is_dir():
        found = ckpt.list_checkpoints(path)
        if not found:
            raise FileNotFoundError(f"--checkpoint {path}: the run has no complete checkpoint yet")
        return path, Config.load_json(path / "config.json")
    if path.is_dir():
        if not (path / ckpt.G_FILE).is_file():
            raise FileNotFoundError(f"--checkpoint {path}: no {ckpt.G_FILE} in this folder")
        cfg_file = path / ckpt.CONFIG_FILE
        if not cfg_file.is_file():
            cfg_file = path.parent.parent / "config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"--checkpoint {path}: no config.json beside the weights")
        return path, Config.load_json(cfg_file)
    if path.is_file() and path.suffix == ".safetensors":
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            raise FileNotFoundError(
                f"--checkpoint {path}: the model description {sidecar.name} is missing beside it "
                "(`lggan convert-official` writes it)"
            )
        return path, Config.from_dict(json.loads(sidecar.read_text())["config"])
    raise FileNotFoundError(f"--checkpoint {path}: no such run folder, checkpoint folder or .safetensors file")


class Synthesizer:
    """A generator in eval mode plus what it needs to turn label maps (or cross-view inputs) into its input."""

    def __init__(self, generator: nn.Module, cfg: Config, device: torch.device):
        self.generator = generator.to(device).eval()
        self.cfg = cfg
        self.device = device

    @property
    def task(self) -> str:
        return self.cfg.model.task

    @torch.no_grad()
    def __call__(self, label: torch.Tensor | np.ndarray, instance: torch.Tensor | np.ndarray | None = None,
                 aerial: torch.Tensor | None = None) -> Any:
        """Semantic task: `label` [H,W] or [B,H,W] class indices (+ `instance` ids when the model uses edges).

        Cross-view task: `label` is the target-view class map [B,H,W] (0..C-1, 255 void), `aerial` the
        conditioning input concat(I_a, S_g colour) [B,6,H,W] in [-1,1].
        """
        label = torch.as_tensor(np.asarray(label) if isinstance(label, np.ndarray) else label)
        if label.ndim == 2:
            label = label.unsqueeze(0)
        label = label.to(self.device).long()
        C = self.cfg.data.num_classes
        if self.task == "crossview":
            from .data.crossview import class_masks

            if aerial is None:
                raise ValueError("cross-view generation needs `aerial`: concat(I_a, S_g colour) [B,6,H,W]")
            aerial = aerial.to(self.device)
            if aerial.dim() == 3:
                aerial = aerial.unsqueeze(0)
            return self.generator(aerial.float(), class_masks(label, C).float())
        from .data import make_semantic_input

        if self.cfg.data.use_instance:
            if instance is None:
                raise ValueError(
                    "this model was trained with instance edges (data.use_instance): pass `instance` ids "
                    "(--instances on the command line)"
                )
            instance = torch.as_tensor(np.asarray(instance) if isinstance(instance, np.ndarray) else instance)
            if instance.ndim == 2:
                instance = instance.unsqueeze(0)
            instance = instance.to(self.device).long()
        else:
            instance = None
        h, w = label.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"label map of {w}x{h}: width and height must be multiples of 32 for this generator")
        S = make_semantic_input(label, C, instance)
        return self.generator(S)


def load_generator(path: str | os.PathLike, device: str | torch.device = "auto", use_ema: bool = True) -> Synthesizer:
    """Loads a generator from a run folder, a checkpoint folder, or a converted official .safetensors file."""
    from safetensors.torch import load_file

    from .tasks import make_task
    from .train import resolve_device

    path = Path(path)
    where, cfg = _find_model_files(path)
    dev = resolve_device(device) if isinstance(device, str) else device
    G = make_task(cfg).build_generator()
    if where.is_file():
        state = load_file(str(where))
    else:
        found = ckpt.load_latest(where, with_training_state=False) if (where / ckpt.CKPT_DIR).is_dir() else \
            ckpt.load_checkpoint(where, with_training_state=False)
        if found is None:
            raise ckpt.CheckpointError(f"--checkpoint {where}: no loadable checkpoint")
        state = found.generator_ema if (use_ema and found.generator_ema is not None) else found.generator
    missing, unexpected = G.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ckpt.CheckpointError(
            f"--checkpoint {path}: weights do not fit the model in its config "
            f"(missing {sorted(missing)[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {sorted(unexpected)[:5]}{'...' if len(unexpected) > 5 else ''})"
        )
    return Synthesizer(G, cfg, dev)


@dataclass
class _Item:
    name: str
    label: torch.Tensor  # [H,W]
    instance: torch.Tensor | None
    aerial: torch.Tensor | None = None


def _list_inputs(path: Path, suffixes: tuple[str, ...], what: str, prefer: str | None = None) -> list[Path]:
    """Files of a folder (or the one file given); in a Cityscapes gtFine folder only the `prefer` kind."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
    if prefer and any(p.stem.endswith(prefer) for p in files):
        files = [p for p in files if p.stem.endswith(prefer)]
    if not files:
        raise FileNotFoundError(f"{what} {path}: no {'/'.join(suffixes)} files in this folder")
    return files


def _read_semantic_inputs(synth: Synthesizer, labels: Path, instances: Path | None) -> list[_Item]:
    from .data import label_spec_for
    from .data.common import load_index_map, load_label

    cfg = synth.cfg
    spec = label_spec_for(cfg.data.dataset, cfg.data.num_classes, cfg.data.dontcare)
    items = []
    label_files = _list_inputs(labels, LABEL_SUFFIXES, "--labels", prefer="_labelIds")
    inst_by_name: dict[str, Path] = {}
    if instances is not None:
        for p in _list_inputs(instances, LABEL_SUFFIXES, "--instances", prefer="_instanceIds"):
            inst_by_name[_stem_key(p)] = p
    for f in label_files:
        lab = torch.from_numpy(load_label(f, spec))
        inst = None
        if cfg.data.use_instance:
            if instances is None:
                # Without instance maps the labels themselves delimit regions (SPADE's fallback).
                inst = lab.clone()
            else:
                key = _stem_key(f)
                if key not in inst_by_name:
                    raise FileNotFoundError(f"--instances: no instance map for {f.name} (looked for {key}*)")
                inst = torch.from_numpy(load_index_map(inst_by_name[key], "instance").astype(np.int64))
                if inst.shape != lab.shape:
                    raise ValueError(f"{inst_by_name[key]}: size {tuple(inst.shape[::-1])} differs from its label "
                                     f"map {f} ({tuple(lab.shape[::-1])})")
        items.append(_Item(f.name, lab, inst))
    return items


def _stem_key(p: Path) -> str:
    """Matches Cityscapes-style names (x_gtFine_labelIds / x_gtFine_instanceIds) and plain equal stems."""
    stem = p.stem
    for suffix in ("_gtFine_labelIds", "_gtFine_instanceIds", "_labelIds", "_instanceIds"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _read_crossview_inputs(synth: Synthesizer, panels: Path) -> list[_Item]:
    from .data.crossview import read_crossview_inputs

    items = []
    for f in _list_inputs(panels, PANEL_SUFFIXES, "--labels"):
        x, label = read_crossview_inputs(f, direction=synth.cfg.data.direction,
                                         size=(synth.cfg.data.crop_size or synth.cfg.data.load_size)[0])
        items.append(_Item(f.stem + ".png", label, None, x))
    return items


def generate_folder(checkpoint: str | os.PathLike, labels: str | os.PathLike, out: str | os.PathLike,
                    instances: str | os.PathLike | None = None, batch_size: int = 4,
                    device: str = "auto", save_branches: bool = False, use_ema: bool = True,
                    progress: bool = True) -> list[Path]:
    """Writes one synthesised PNG per input (same name) into `out`; with `save_branches` also I^G, I^L, W_g, W_l."""
    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: must be >= 1")
    synth = load_generator(checkpoint, device, use_ema)
    labels, out = Path(labels), Path(out)
    if synth.task == "crossview":
        items = _read_crossview_inputs(synth, labels)
    else:
        items = _read_semantic_inputs(synth, labels, Path(instances) if instances else None)
    # Batch inputs of equal size together; keep the input order in the output list.
    groups: dict[tuple[int, int], list[_Item]] = {}
    for it in items:
        groups.setdefault(tuple(it.label.shape), []).append(it)
    written: list[Path] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="generate", unit="img")
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            chunk = group[i : i + batch_size]
            label = torch.stack([c.label for c in chunk])
            inst = torch.stack([c.instance for c in chunk]) if chunk[0].instance is not None else None
            aer = torch.stack([c.aerial for c in chunk]) if chunk[0].aerial is not None else None
            res = synth(label, inst, aer)
            for j, c in enumerate(chunk):
                name = Path(c.name).with_suffix(".png").name
                target = out / name
                save_png(tensor_to_uint8(res.image[j]), target)
                written.append(target)
                if save_branches and getattr(res, "image_local", None) is not None:
                    stem = Path(name).stem
                    save_png(tensor_to_uint8(res.image_global[j]), out / "global" / f"{stem}.png")
                    save_png(tensor_to_uint8(res.image_local[j]), out / "local" / f"{stem}.png")
                    for key, folder in (("weight_global", "weight_global"), ("weight_local", "weight_local")):
                        w = getattr(res, key)[j, 0].detach().float().clamp(0, 1).cpu().numpy()
                        save_png((w * 255.0 + 0.5).astype(np.uint8), out / folder / f"{stem}.png")
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return written
