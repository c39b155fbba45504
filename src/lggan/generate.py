"""Inference: load a generator (our run/checkpoint or a converted official file) and synthesise photos.

    >>> from lggan import load_generator
    >>> synth = load_generator("runs/synth")          # newest checkpoint (EMA weights when present)
    >>> result = synth(label_map)                      # LongTensor/array [H,W] or [B,H,W] of class indices, or a
    >>>                                                # PIL label image (colours: palette="cityscapes" or a JSON file)
    >>> result.image                                   # I^C, [B,3,H,W] in [-1,1], float32
    >>> result.to_pil()                                # the PNG `lggan generate` writes, as a PIL image
    >>> synth.save_pretrained("my_generator")          # generator.safetensors + config.json; from_pretrained reads it

`synth(...)` and `lggan generate` run at the model's training size by default (label maps resized nearest);
`size=(W, H)` / `--size` picks another, `native=True` / `--native` keeps each map's own. `lggan generate` names a
Cityscapes label map's output after its photo and reads colour label images through --palette.

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


# The outputs `GenerationResult.to_pil(name)` can draw: the generator's field names, and the --save-branches folder
# names (global, local) for I^G and I^L.
IMAGE_OUTPUTS = ("image", "image_global", "image_local", "weight_global", "weight_local")


def output_uint8(name: str, t: torch.Tensor) -> np.ndarray:
    """One image of an output as `lggan generate` writes it: images [3,H,W] in [-1,1] -> uint8 [H,W,3]; weight maps
    W_g, W_l [1,H,W] in [0,1] -> uint8 [H,W]."""
    if name.startswith("weight"):
        w = t[0].detach().float().clamp(0, 1).cpu().numpy()
        return (w * 255.0 + 0.5).astype(np.uint8)
    return tensor_to_uint8(t)


class GenerationResult:
    """What a `Synthesizer` call returns: the generator's outputs in float32 (`image` I^C [B,3,H,W] in [-1,1],
    `image_global` I^G, `image_local` I^L, `weight_global` W_g and `weight_local` W_l [B,1,H,W] in [0,1],
    `class_images`, `class_logits`, `class_valid`; None where the model has no such branch), and `to_pil`.

    Indexing and unpacking work as on the generator's own output (lggan.models.GeneratorOutput).
    """

    def __init__(self, output: Any, batched: bool):
        self.output = output
        self.batched = batched  # the input had a batch axis: to_pil returns a list

    def __getattr__(self, name: str) -> Any:
        if name in ("output", "batched"):
            raise AttributeError(name)
        return getattr(self.output, name)

    def __iter__(self):
        return iter(self.output)

    def __getitem__(self, index: int) -> Any:
        return self.output[index]

    def __len__(self) -> int:
        return len(self.output)

    def to_pil(self, name: str = "image") -> Any:
        """The output `name` as PIL images, exactly the pixels `lggan generate` writes: one image for an input
        without a batch axis (a [H,W] map, a PIL image), else a list, one per input.

        name: "image" (I^C, the final image), "image_global" / "global" (I^G), "image_local" / "local" (I^L),
        "weight_global", "weight_local" (W_g, W_l, grayscale).
        """
        from PIL import Image

        key = BRANCH_FOLDERS.get(name, name)
        if key not in IMAGE_OUTPUTS:
            raise ValueError(f"to_pil({name!r}): expected one of {', '.join(IMAGE_OUTPUTS)}, global, local")
        t = getattr(self.output, key)
        if t is None:
            raise ValueError(f"to_pil({name!r}): this model has no such output (its local branch is off: "
                             "model.use_local=false)")
        images = [Image.fromarray(output_uint8(key, t[j])) for j in range(t.shape[0])]
        return images if self.batched else images[0]


def _is_colour_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.ndim == 3 and x.shape[-1] in (3, 4) and x.dtype == np.uint8


def _resize_maps(size: tuple[int, int] | None, *maps: torch.Tensor | None) -> list[torch.Tensor | None]:
    """Id maps [..., H, W] resized nearest (as the data pipeline resizes label maps) to size (W, H); None stays."""
    from .data.transforms import resize_nearest

    return [m if m is None or size is None else resize_nearest(m, size) for m in maps]


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
        self.task = make_task(cfg)  # what turns label maps (and the cross-view input) into G's arguments

    @property
    def task_name(self) -> str:
        """The model's task name (model.task)."""
        return self.cfg.model.task

    @property
    def training_size(self) -> tuple[int, int]:
        """(width, height) the model was trained at (data.crop_size, else data.load_size): `lggan generate`'s size."""
        return model_size(self.cfg)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "auto", use_ema: bool = True,
                        amp: str = "auto", channels_last: str = "auto") -> Synthesizer:
        """Loads a generator folder written by `save_pretrained` (or any path `load_generator` takes)."""
        return load_generator(folder, device, use_ema=use_ema, amp=amp, channels_last=channels_last)

    def save_pretrained(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Writes this generator as a folder: generator.safetensors (the weights in use: the EMA copy when it was
        loaded) and config.json (the model's config) -- the layout of a checkpoint folder, so `load_generator`,
        `from_pretrained`, `lggan generate --checkpoint`, `lggan evaluate` and `lggan export` all read it.

        Existing files there are replaced only with `overwrite`; each file is written atomically.
        """
        from safetensors.torch import save_file

        from .io import atomic_write

        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise FileExistsError(f"{folder}: is a file, not a folder")
        targets = [folder / ckpt.G_FILE, folder / ckpt.CONFIG_FILE, folder / ckpt.EMA_FILE]
        existing = [t.name for t in targets if t.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"{folder}: {', '.join(existing)} already there; pass overwrite=True to replace "
                                  "them, or choose another folder")
        state = ckpt._state_dict_for_file(self.generator)
        metadata = {"format": "pt", "lggan_version": __import__("lggan").__version__}
        atomic_write(targets[0], lambda tmp: save_file(state, tmp, metadata=metadata))
        self.cfg.save_json(targets[1])
        if targets[2].exists():  # a stale EMA copy would be loaded instead of these weights
            targets[2].unlink()
        return folder

    def _label_batch(self, label: Any, palette: Any, what: str) -> tuple[torch.Tensor, bool]:
        """(class indices [B,H,W] long, whether the input had a batch axis) of any accepted label input."""
        from PIL import Image

        if isinstance(label, (list, tuple)):
            if not label:
                raise ValueError(f"{what}: an empty list")
            maps = [self._label_batch(x, palette, f"{what}[{i}]") for i, x in enumerate(label)]
            if any(batched for _, batched in maps):
                raise ValueError(f"{what}: a list holds one [H,W] map or image per input")
            if len({tuple(m.shape) for m, _ in maps}) > 1:
                raise ValueError(f"{what}: the maps of a list must have one size, got "
                                 f"{sorted({tuple(m.shape[-2:][::-1]) for m, _ in maps})} (WxH)")
            return torch.cat([m for m, _ in maps]), True
        if isinstance(label, Image.Image) or _is_colour_array(label):  # (a colour array needs a palette)
            return self.task.label_from_image(label, palette, what)[None], False
        t = torch.as_tensor(label)
        if t.ndim not in (2, 3):
            raise ValueError(f"{what}: class indices must be [H,W] or [B,H,W], got shape {tuple(t.shape)}")
        return (t[None] if t.ndim == 2 else t), t.ndim == 3

    @staticmethod
    def _id_batch(x: Any, what: str) -> torch.Tensor | None:
        """Instance ids of a tensor, array, PIL image or list of them, [B,H,W]; None stays None."""
        from PIL import Image

        if x is None:
            return None
        if isinstance(x, (list, tuple)):
            return torch.stack([Synthesizer._id_batch(v, f"{what}[{i}]")[0] for i, v in enumerate(x)])
        if isinstance(x, Image.Image):
            if x.mode not in ("L", "P", "I", "I;16", "I;16L", "I;16B"):
                raise ValueError(f"{what}: instance maps are single-channel ids, got PIL mode {x.mode}")
            x = np.array(x).astype(np.int64)
        t = torch.as_tensor(x)
        if t.ndim not in (2, 3):
            raise ValueError(f"{what}: instance ids must be [H,W] or [B,H,W], got shape {tuple(t.shape)}")
        return t[None] if t.ndim == 2 else t

    @torch.no_grad()
    def __call__(self, label: Any, instance: Any = None, aerial: torch.Tensor | None = None, palette: Any = None,
                 size: tuple[int, int] | None = None, native: bool = False) -> GenerationResult:
        """Generates from class maps; returns a GenerationResult (`.image`, ..., `.to_pil()`).

        label: class indices as a LongTensor / integer array [H,W] or [B,H,W]; a PIL image (or a list of them),
        read like a label file of the model's dataset (single-channel ids; a colour image through `palette`); or a
        uint8 [H,W,3] (or [H,W,4]) array, read as colours through `palette`.
        palette: a built-in name (lggan.data.palette.LABEL_PALETTE_NAMES: cityscapes, ade20k, coco-stuff), a JSON
        file or a lggan.data.palette.LabelPalette (default: the config's data.palette).
        instance: instance ids of the same size (tensor, array or PIL image), for models with instance edges;
        None uses the label map's own region boundaries, as `lggan generate` does without --instances.
        size: (width, height) to generate at; default: the model's training size (`training_size`), as `lggan
        generate` does. The maps are resized nearest, the cross-view input bilinearly, only where they differ.
        native: generate at the maps' own size instead (`lggan generate --native`; one 2048x1024 map takes ~40 s
        on 2 CPU cores).
        Cross-view task: `label` is the target-view class map [B,H,W] (0..C-1, 255 void), `aerial` the
        conditioning input concat(I_a, S_g colour) [B,6,H,W] in [-1,1] (at the label's size).
        """
        from .tasks import as_id_batch

        if native and size is not None:
            raise ValueError(f"size={tuple(size)} and native=True: give one (native keeps the maps' own size)")
        label, batched = self._label_batch(label, palette, "label")
        instance = self._id_batch(instance, "instance")
        size = None if native else tuple(size) if size is not None else self.training_size
        label, instance = _resize_maps(size, label, instance)
        if aerial is not None and size is not None:
            from .data.transforms import resize_image

            a = torch.as_tensor(aerial)
            if tuple(a.shape[-2:]) != (size[1], size[0]):
                aerial = torch.stack([resize_image(v, size) for v in (a[None] if a.ndim == 3 else a)])
        # The label goes to the device as integers [B,H,W]; the one-hot S [B,C(+1),H,W] is made there.
        inputs = self.task.generator_inputs(as_id_batch(label, self.device), instance, aerial)
        if self.plan.channels_last:
            inputs = tuple(precision.channels_last_input(t) for t in inputs)
        with precision.autocast(self.device.type, self.plan.autocast_dtype):
            out = self.generator(*inputs)
        # Images, weight maps, logits as float32 whatever ran inside.
        return GenerationResult(precision.to_float(out), batched)


def model_size(cfg: Config) -> tuple[int, int]:
    """(width, height) a model was trained at: data.crop_size, else data.load_size (what evaluation uses too)."""
    w, h = cfg.data.crop_size or cfg.data.load_size
    return int(w), int(h)


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
    from .runtime import resolve_device

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
    """One display name per class channel of the model (the task's names)."""
    from .tasks import make_task

    return make_task(cfg).class_names


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

    from .io import refuse_checkpoints_folder

    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out}: is a file, not a folder")
    refuse_checkpoints_folder("--out", out)
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


def _at_size(sample: Any, size: tuple[int, int] | None, native: bool) -> Any:
    """A loaded input at the generation size (W, H): maps resized nearest, a cross-view input bicubic; None: as read."""
    from dataclasses import replace

    if native and sample.aerial is not None:
        raise ValueError("--native: a cross-view model reads its panel files at its panel size (data.crop_size); "
                         "use --size WxH for another size")
    if size is None or tuple(sample.label.shape[-2:]) == (size[1], size[0]):
        return sample
    label, instance = _resize_maps(size, sample.label, sample.instance)
    aerial = sample.aerial
    if aerial is not None:
        from .data.transforms import resize_image

        aerial = resize_image(aerial, size)
    return replace(sample, label=label, instance=instance, aerial=aerial)


def generate_folder(checkpoint: str | os.PathLike, labels: str | os.PathLike, out: str | os.PathLike,
                    instances: str | os.PathLike | None = None, batch_size: int = 4,
                    device: str = "auto", save_branches: bool = False, use_ema: bool = True,
                    progress: bool = True, overwrite: bool = False, amp: str = "auto",
                    channels_last: str = "auto", size: tuple[int, int] | None = None, native: bool = False,
                    palette: Any = None, html: bool = False) -> list[Path]:
    """Writes one synthesised PNG per input into `out`; with `save_branches` also I^G, I^L, W_g, W_l into
    out/global, out/local, out/weight_global, out/weight_local, and into out/classes a grid of the per-class images
    I^l_i of the classes present in the input, each captioned with its class name. Returns the synthesised images'
    paths.

    Names: the input's stem + .png, except that a label map named like its dataset's labels gets its photo's name
    (Cityscapes: X_gtFine_labelIds.png -> X_leftImg8bit.png), so `lggan evaluate --generated OUT --real PHOTOS`
    pairs them. Size: the model's training size (data.crop_size, else data.load_size; label and instance maps
    resized nearest), `size` (width, height) for another one, or with `native` each file's own size; every output
    is written at that generation size. palette: how colour label images become class ids (a built-in name, a JSON
    file; default: the config's data.palette); single-channel maps are ids as always.

    Inputs are never touched: `out` may not be (inside) the --labels / --instances folder, no output may land on an
    input file, and two inputs may not share an output name. Existing outputs are replaced only with `overwrite`.
    All of this is checked, and every input is read, before the first image is generated; each file is written
    through a temp file + rename. amp / channels_last: as `load_generator` (--amp auto|bf16|off). html: also write
    out/index.html, a page of every input's label map (in out/label_maps, in its class colours) beside what was
    generated from it.
    """
    from .tasks import make_task

    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: must be >= 1")
    if native and size is not None:
        raise ValueError("--size and --native: give one of them (--native keeps each file's own size)")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"--size {size}: expected a positive (width, height)")
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
    if html:
        targets += [out / PAGE_FILE] + [out / LABEL_PICTURES / it.output_name for it in items]
    _check_targets(items, out, {"--labels": labels, "--instances": inst_path}, targets, overwrite)
    target_size = None if native else (tuple(size) if size is not None else model_size(cfg))
    samples = [_at_size(task.load_inference_input(it, palette), target_size, native) for it in items]
    # A size the generator cannot take fails before anything is generated (one check per size).
    checked: set[tuple[int, ...]] = set()
    for it, sample in zip(items, samples):
        if tuple(sample.label.shape) in checked:
            continue
        checked.add(tuple(sample.label.shape))
        try:
            task.generator_inputs(sample.label[None], None if sample.instance is None else sample.instance[None],
                                  None if sample.aerial is None else sample.aerial[None])
        except ValueError as e:
            if native:
                raise ValueError(f"{it.path}: {e}; leave out --native to generate at the model's size, or pass "
                                 "--size WxH") from None
            what = (f"--size {size[0]}x{size[1]}" if size is not None
                    else f"the model's size {target_size[0]}x{target_size[1]} (data.crop_size / data.load_size)")
            raise ValueError(f"{what}: {e}") from None
    synth = _build_generator(checkpoint, where, cfg, device, use_ema, amp, channels_last)
    names = class_names(cfg) if branches else []
    # Batch inputs of equal size together; keep the input order in the output list.
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(tuple(s.label.shape), []).append(i)
    written: dict[int, Path] = {}
    bar = None
    if progress:
        from .progress import progress_bar

        bar = progress_bar(total=len(items), desc="generate", unit="img")
    try:
        for group in groups.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                batch = [samples[i] for i in chunk]
                res = synth(torch.stack([s.label for s in batch]),
                            torch.stack([s.instance for s in batch]) if batch[0].instance is not None else None,
                            torch.stack([s.aerial for s in batch]) if batch[0].aerial is not None else None,
                            native=True)  # sized above
                for j, i in enumerate(chunk):
                    name = items[i].output_name
                    target = out / name
                    save_png(tensor_to_uint8(res.image[j]), target)
                    written[i] = target
                    if branches:
                        for folder, key in BRANCH_FOLDERS.items():  # W_g, W_l: [1,H,W] in [0,1]; I^G, I^L in [-1,1]
                            save_png(output_uint8(key, getattr(res, key)[j]), out / folder / name)
                        save_png(class_grid(res.class_images, j, samples[i].label, names),
                                 out / CLASS_GRID_FOLDER / name)
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if html:
        _write_generate_page(out, items, samples, task, branches, checkpoint)
    return [written[i] for i in sorted(written)]


# `generate --html`: the page and the folder of its label-map pictures, inside --out.
PAGE_FILE = "index.html"
LABEL_PICTURES = "label_maps"


def _write_generate_page(out: Path, items: list, samples: list, task: Any, branches: bool, checkpoint: Path) -> None:
    """out/index.html: each input's label map (in its class colours; void and unknown ids black) and its outputs."""
    from .results_page import PageRow, write_results_page
    from .viz import label_picture

    rows = []
    for it, sample in zip(items, samples):
        save_png(label_picture(sample.label, task.palette), out / LABEL_PICTURES / it.output_name)
        pictures = {"label map": out / LABEL_PICTURES / it.output_name, "generated": out / it.output_name}
        if branches:
            pictures |= {folder: out / folder / it.output_name for folder in BRANCH_FOLDERS}
        rows.append(PageRow(it.output_name, pictures))
    columns = list(rows[0].images) if rows else ["label map", "generated"]
    write_results_page(out / PAGE_FILE, f"lggan generate: {checkpoint}", rows, columns, [], {"images": len(rows)},
                       {"checkpoint": str(checkpoint), "size": "as generated (see each picture)"})
