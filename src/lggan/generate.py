"""Inference: load a generator (our run/checkpoint or a converted official file) and synthesise photos.

    >>> from lggan import load_generator
    >>> synth = load_generator("runs/synth")          # newest checkpoint (EMA weights when present)
    >>> result = synth(label_map)                      # LongTensor [H,W] or [B,H,W] of class indices
    >>> result.image                                   # I^C, [B,3,H,W] in [-1,1], float32

Speed: `amp="auto"` runs the generator under bf16 autocast where the device computes bf16 natively (CUDA compute
capability >= 8, CPUs with AMX-BF16 / AVX512-BF16) and in fp32 elsewhere; `channels_last="auto"` uses the
channels-last layout on CUDA and with CPU bf16 (lggan.precision). Every output is handed back in float32.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from . import checkpoint as ckpt
from . import precision
from .config import Config
from .viz import save_png, tensor_to_uint8


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
        try:
            return path, Config.from_dict(json.loads(sidecar.read_text())["config"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"--checkpoint {path}: {sidecar} is not a model description written by `lggan "
                             f"convert-official` ({type(e).__name__}: {' '.join(str(e).split())})") from None
    if path.exists():
        raise ValueError(f"--checkpoint {path}: not a run folder, checkpoint folder or .safetensors file (an official "
                         "release .pth must be converted first: `lggan convert-official`)")
    raise FileNotFoundError(f"--checkpoint {path}: no such run folder, checkpoint folder or .safetensors file")


class Synthesizer:
    """A generator in eval mode plus its task, which turns label maps (or cross-view inputs) into its input.

    amp: "auto" (bf16 autocast where the device has it natively, else fp32), "bf16" or "off" (fp32);
    channels_last: "auto" (on for CUDA and with bf16 on CPU), "on" or "off". `plan` holds what was decided.
    """

    def __init__(self, generator: nn.Module, cfg: Config, device: torch.device, amp: str = "auto",
                 channels_last: str = "auto"):
        from .tasks import make_task

        device = torch.device(device)
        self.plan = precision.inference_plan(device, amp, channels_last)
        self.generator = generator.to(device).eval()
        if self.plan.channels_last:
            precision.to_channels_last(self.generator)
        self.cfg = cfg
        self.device = device
        self.recipe = make_task(cfg)

    @property
    def task(self) -> str:
        """The model's task name (model.task)."""
        return self.cfg.model.task

    @torch.no_grad()
    def __call__(self, label: torch.Tensor | np.ndarray, instance: torch.Tensor | np.ndarray | None = None,
                 aerial: torch.Tensor | None = None) -> Any:
        """Semantic task: `label` [H,W] or [B,H,W] class indices (+ `instance` ids when the model uses edges).

        Cross-view task: `label` is the target-view class map [B,H,W] (0..C-1, 255 void), `aerial` the
        conditioning input concat(I_a, S_g colour) [B,6,H,W] in [-1,1].
        """
        from .tasks import as_id_batch

        # The label goes to the device as integers [B,H,W]; the one-hot S [B,C(+1),H,W] is made there.
        inputs = self.recipe.generator_inputs(as_id_batch(label, self.device), instance, aerial)
        if self.plan.channels_last:
            inputs = tuple(precision.channels_last_input(t) for t in inputs)
        with precision.autocast(self.device.type, self.plan.autocast_dtype):
            out = self.generator(*inputs)
        return precision.to_float(out)  # images, weight maps, logits as float32 whatever ran inside


def _load_weights(where: Path, use_ema: bool, shown: Path) -> dict[str, torch.Tensor]:
    """The generator state dict of a .safetensors file or a checkpoint folder; errors name the file."""
    if where.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(where))
        except (SafetensorError, OSError, ValueError) as e:
            raise ckpt.CheckpointError(f"--checkpoint {where}: not a readable .safetensors file "
                                       f"({' '.join(str(e).split())})") from None
    found = ckpt.load_latest(where, with_training_state=False) if (where / ckpt.CKPT_DIR).is_dir() else \
        ckpt.load_checkpoint(where, with_training_state=False)
    if found is None:
        raise ckpt.CheckpointError(f"--checkpoint {shown}: no loadable checkpoint")
    return found.generator_ema if (use_ema and found.generator_ema is not None) else found.generator


def _build_generator(path: Path, where: Path, cfg: Config, device: str | torch.device, use_ema: bool,
                     amp: str = "auto", channels_last: str = "auto") -> Synthesizer:
    from .tasks import make_task
    from .train import resolve_device

    dev = resolve_device(device) if isinstance(device, str) else device
    G = make_task(cfg).build_generator()
    state = _load_weights(where, use_ema, path)
    try:
        missing, unexpected = G.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor whose shape differs from the config's model
        raise ckpt.CheckpointError(f"--checkpoint {path}: weights do not fit the model in its config "
                                   f"({' '.join(str(e).split())[:300]})") from None
    if missing or unexpected:
        raise ckpt.CheckpointError(
            f"--checkpoint {path}: weights do not fit the model in its config "
            f"(missing {sorted(missing)[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {sorted(unexpected)[:5]}{'...' if len(unexpected) > 5 else ''})"
        )
    return Synthesizer(G, cfg, dev, amp=amp, channels_last=channels_last)


def load_generator(path: str | os.PathLike, device: str | torch.device = "auto", use_ema: bool = True,
                   amp: str = "auto", channels_last: str = "auto") -> Synthesizer:
    """Loads a generator from a run folder, a checkpoint folder, or a converted official .safetensors file.

    amp: "auto" | "bf16" | "off" (bf16 autocast where native / always / never); channels_last: "auto" | "on" |
    "off". Outputs are float32 in every case.
    """
    precision.check_inference_modes(amp, channels_last)  # a bad value fails before any file is read
    path = Path(path)
    where, cfg = _find_model_files(path)
    return _build_generator(path, where, cfg, device, use_ema, amp, channels_last)


# Sub-folders of --out that --save-branches writes (I^G, I^L, W_g, W_l), with the model output each holds.
BRANCH_FOLDERS = {"global": "image_global", "local": "image_local", "weight_global": "weight_global",
                  "weight_local": "weight_local"}
# The sub-folder of --out where --save-branches puts each input's grid of per-class images I^l_i.
CLASS_GRID_FOLDER = "classes"
# How many names an error message lists.
_MAX_LISTED = 5


def _listing(names: list[str]) -> str:
    more = len(names) - _MAX_LISTED
    return ", ".join(names[:_MAX_LISTED]) + (f", ... ({more} more)" if more > 0 else "")


def class_names(cfg: Config) -> list[str]:
    """One display name per class channel of the model: the dataset's names (cross-view: its class groups)."""
    from .config import SEMANTIC_DATASETS
    from .data import CROSSVIEW_CLASS_NAMES, label_spec_for

    dc = cfg.data
    if dc.dataset in SEMANTIC_DATASETS:
        return list(label_spec_for(dc.dataset, dc.num_classes, dc.dontcare).class_names)
    # Cross-view maps have no dataset label spec; classes past the built-in six are numbered 1-based as in the
    # mask files (gray 10*k).
    return [CROSSVIEW_CLASS_NAMES[k] if k < len(CROSSVIEW_CLASS_NAMES) else f"class {k + 1}"
            for k in range(dc.num_classes)]


def present_groups(label: torch.Tensor, num_classes: int, num_groups: int) -> dict[int, list[int]]:
    """The local branches whose mask is non-empty for a class map [H,W], each with the classes it covers there.

    With fewer groups than classes (model.local_groups) the last group is the union of every class from
    num_groups - 1 on, as `lggan.models.class_conv.group_masks` builds it; values outside 0..C-1 (void) are in
    no mask.
    """
    values = torch.unique(label.detach().cpu())
    classes = [int(c) for c in values.tolist() if 0 <= c < num_classes]
    groups: dict[int, list[int]] = {}
    for c in classes:
        groups.setdefault(min(c, num_groups - 1), []).append(c)
    return dict(sorted(groups.items()))


def present_class_images(class_images: Any, sample: int, groups: list[int]) -> torch.Tensor:
    """I^l_g of one sample for the given groups only, [len(groups), 3, H, W] in [-1, 1], as the model computed them.

    Builds the sparse ClassImages of just those (sample, group) entries and lets its own `dense()` expand them,
    so only the requested images are materialised (dense() of a whole batch would be [B, G, 3, H, W]).
    """
    from dataclasses import replace

    ci = class_images
    index = torch.full((ci.num_classes,), -1, dtype=torch.long, device=ci.class_idx.device)
    index[torch.as_tensor(groups, dtype=torch.long, device=index.device)] = torch.arange(
        len(groups), device=index.device)
    keep = (ci.batch_idx == sample) & (index[ci.class_idx] >= 0)
    sub = replace(ci, const=ci.const[torch.as_tensor(groups, dtype=torch.long, device=ci.const.device)],
                  delta=ci.delta[keep], batch_idx=torch.zeros_like(ci.batch_idx[keep]),
                  class_idx=index[ci.class_idx[keep]], tile_y=ci.tile_y[keep], tile_x=ci.tile_x[keep], batch_size=1)
    return sub.dense()[0]


def _group_caption(names: list[str], classes: list[int]) -> str:
    """A branch's tile caption: its class name; a union group (local_groups) names its first class and the count."""
    more = f" +{len(classes) - 1} more" if len(classes) > 1 else ""
    return names[classes[0]] + more


def class_grid(class_images: Any, sample: int, label: torch.Tensor, names: list[str]) -> np.ndarray:
    """uint8 grid of the per-class images I^l_i of one sample for the classes present in its map, captioned."""
    from .viz import captioned_grid

    groups = present_groups(label, len(names), class_images.num_classes)
    if not groups:  # an all-void map: no branch has a mask, so there is nothing class-specific to show
        return captioned_grid([], [])
    images = present_class_images(class_images, sample, list(groups))
    return captioned_grid([tensor_to_uint8(img) for img in images],
                          [_group_caption(names, classes) for classes in groups.values()])


def _check_targets(items: list, out: Path, inputs: dict[str, Path | None], targets: list[Path],
                   overwrite: bool) -> None:
    """Refuses any plan that could destroy an input or an existing file; runs before anything is generated.

    inputs: the input arguments (--labels, --instances) by flag. targets: every file the run would write.
    """
    from .tasks import check_unique_outputs

    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out}: is a file, not a folder")
    out_real = out.resolve()
    for flag, given in inputs.items():
        if given is None or not given.is_dir():
            continue
        folder = given.resolve()
        if out_real == folder or folder in out_real.parents:
            raise ValueError(f"--out {out}: is inside the {flag} folder {given}; generated images would mix with "
                             "(and could overwrite) the inputs: choose an output folder outside it")
    check_unique_outputs([it.path for it in items], "--labels")
    sources = {src.resolve(): src for it in items for src in it.sources}
    for target in targets:
        src = sources.get(target.resolve())
        if src is not None:
            raise ValueError(f"--out {out}: writing {target} would overwrite the input file {src}")
    folders = [t for t in targets if t.is_dir()]
    if folders:
        raise FileExistsError(f"--out {out}: {_listing([str(t) for t in folders])} would be written but "
                              f"{'is a folder' if len(folders) == 1 else 'are folders'}")
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if existing and not overwrite:
        names = [t.relative_to(out).as_posix() for t in existing]
        raise FileExistsError(f"--out {out}: {len(existing)} of the {len(targets)} output files already exist "
                              f"({_listing(names)}); pass --overwrite to replace them, or choose an empty folder")


def generate_folder(checkpoint: str | os.PathLike, labels: str | os.PathLike, out: str | os.PathLike,
                    instances: str | os.PathLike | None = None, batch_size: int = 4,
                    device: str = "auto", save_branches: bool = False, use_ema: bool = True,
                    progress: bool = True, overwrite: bool = False, amp: str = "auto",
                    channels_last: str = "auto") -> list[Path]:
    """Writes one synthesised PNG per input (its stem + .png) into `out`; with `save_branches` also I^G, I^L, W_g,
    W_l into out/global, out/local, out/weight_global, out/weight_local, and into out/classes a grid of the
    per-class images I^l_i of the classes present in the input, each captioned with its class name. Returns the
    synthesised images' paths.

    Inputs are never touched: `out` may not be (inside) the --labels / --instances folder, no output may land on an
    input file, and two inputs may not share an output name. Existing outputs are replaced only with `overwrite`.
    All of this is checked, and every input is read, before the first image is generated; each file is written
    through a temp file + rename. amp / channels_last: as `load_generator` (--amp auto|bf16|off).
    """
    from .tasks import make_task

    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: must be >= 1")
    precision.check_inference_modes(amp, channels_last)  # a bad --amp fails before anything is read
    checkpoint, labels, out = Path(checkpoint), Path(labels), Path(out)
    inst_path = Path(instances) if instances is not None else None
    where, cfg = _find_model_files(checkpoint)
    task = make_task(cfg)
    items = task.inference_inputs(labels, inst_path)
    branches = save_branches and cfg.model.use_local
    targets = [out / it.output_name for it in items]
    if branches:
        targets += [out / folder / it.output_name for folder in (*BRANCH_FOLDERS, CLASS_GRID_FOLDER) for it in items]
    _check_targets(items, out, {"--labels": labels, "--instances": inst_path}, targets, overwrite)
    samples = [task.load_inference_input(it) for it in items]
    synth = _build_generator(checkpoint, where, cfg, device, use_ema, amp, channels_last)
    names = class_names(cfg) if branches else []
    # Batch inputs of equal size together; keep the input order in the output list.
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(tuple(s.label.shape), []).append(i)
    written: dict[int, Path] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="generate", unit="img")
    try:
        for group in groups.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                batch = [samples[i] for i in chunk]
                res = synth(torch.stack([s.label for s in batch]),
                            torch.stack([s.instance for s in batch]) if batch[0].instance is not None else None,
                            torch.stack([s.aerial for s in batch]) if batch[0].aerial is not None else None)
                for j, i in enumerate(chunk):
                    name = items[i].output_name
                    target = out / name
                    save_png(tensor_to_uint8(res.image[j]), target)
                    written[i] = target
                    if branches:
                        for folder, key in BRANCH_FOLDERS.items():
                            t = getattr(res, key)[j]
                            if key.startswith("weight"):  # W_g, W_l: [1,H,W] in [0,1]; I^G, I^L in [-1,1]
                                w = t[0].detach().float().clamp(0, 1).cpu().numpy()
                                save_png((w * 255.0 + 0.5).astype(np.uint8), out / folder / name)
                            else:
                                save_png(tensor_to_uint8(t), out / folder / name)
                        save_png(class_grid(res.class_images, j, samples[i].label, names),
                                 out / CLASS_GRID_FOLDER / name)
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return [written[i] for i in sorted(written)]
