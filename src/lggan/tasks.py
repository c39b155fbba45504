"""The two tasks of the paper as data + networks + loss recipes; the training loop is shared (training/).

A task turns a collated batch into a `Prepared` record (generator inputs, class masks M_i, the real image and the
conditions of each discriminator), builds its networks from the config, and adds up its generator/discriminator
losses from the pure functions in losses.py. Semantic synthesis: hinge GAN with the semantic-guided D_s on
concat(S, image) (Eq. 8). Cross-view translation: vanilla GAN with D_i on concat(I_a, image) and D_s on
concat(S_g colour map, image) (Eq. 8-9).

Everything that differs between the tasks lives here, behind the abstract methods of `Task`: training
(datasets, networks, losses, sample grids), `lggan generate` (which files are read and how they become generator
inputs) and `lggan evaluate` (default split and metrics, the evaluation batches). Other modules ask the task,
never the task's name.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from . import losses as L
from .config import Config, DataConfig
from .io import one_line
from .viz import gray_to_rgb, palette_to_rgb, to_unit

# What `lggan generate` writes for each input, and `lggan evaluate` for each evaluation sample.
OUTPUT_SUFFIX = ".png"
# How many clashing names an error message lists.
_MAX_LISTED = 5


@dataclass
class Prepared:
    """One batch on the device, in the form every step needs."""

    gen_inputs: tuple[torch.Tensor, ...]  # positional arguments of the generator
    masks: torch.Tensor  # M_g, [B,G,H,W] in {0,1}: one mask per local group (G = C unless model.local_groups)
    real: torch.Tensor  # I_g, [B,3,H,W] in [-1,1]
    conditions: dict[str, torch.Tensor]  # discriminator name -> conditioning tensor [B,*,H,W]
    label: torch.Tensor  # [B,H,W] class indices, for sample grids
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class InferenceInput:
    """One input of `lggan generate`: the files it is read from and the name of the image made from it."""

    output_name: str
    path: Path
    instance_path: Path | None = None

    @property
    def sources(self) -> tuple[Path, ...]:
        return (self.path,) if self.instance_path is None else (self.path, self.instance_path)


@dataclass
class GeneratorSample:
    """What `Synthesizer.__call__` takes for one image: class map [H,W] (+ instance ids, or the cross-view input)."""

    label: torch.Tensor
    instance: torch.Tensor | None = None
    aerial: torch.Tensor | None = None


@dataclass
class EvalBatch:
    """A batch of `lggan evaluate --checkpoint`: generator arguments, the real photos and the file names."""

    names: list[str]  # file name of each image in generated/, real/ (and labels/)
    label: torch.Tensor  # [B,H,W] class indices
    real: torch.Tensor  # [B,3,H,W] in [-1,1]
    instance: torch.Tensor | None = None
    aerial: torch.Tensor | None = None
    label_maps: torch.Tensor | None = None  # [B,H,W] written to labels/ for mIoU; None: the task scores none


def _photo_suffixes() -> tuple[tuple[str, str], ...]:
    """(label-file stem suffix, photo stem suffix) of the datasets whose label maps and photos differ by a suffix."""
    from .data.cityscapes import IMAGE_SUFFIX, LABEL_SUFFIX

    return ((Path(LABEL_SUFFIX).stem, Path(IMAGE_SUFFIX).stem),)  # X_gtFine_labelIds -> X_leftImg8bit


def output_name(path: str | Path) -> str:
    """File name of the image generated from an input file: its stem + .png, where a label map named like its
    dataset's labels gets the name of its photo (Cityscapes: X_gtFine_labelIds.png -> X_leftImg8bit.png), so that
    `lggan evaluate --generated OUT --real PHOTOS` pairs them by name."""
    stem = Path(path).stem
    for label_suffix, photo_suffix in _photo_suffixes():
        if stem.endswith(label_suffix):
            stem = stem[: -len(label_suffix)] + photo_suffix
            break
    return stem + OUTPUT_SUFFIX


def check_unique_outputs(sources: list[Path], what: str) -> list[str]:
    """Output names of `sources`; ValueError naming both files when two would be written to the same name."""
    names: list[str] = []
    first: dict[str, Path] = {}
    clashes: list[str] = []
    for src in sources:
        name = output_name(src)
        if name in first:
            clashes.append(f"{first[name].name} and {src.name} -> {name}")
        else:
            first[name] = src
        names.append(name)
    if clashes:
        more = f" (and {len(clashes) - _MAX_LISTED} more)" if len(clashes) > _MAX_LISTED else ""
        raise ValueError(f"{what}: inputs would overwrite each other's output: {'; '.join(clashes[:_MAX_LISTED])}"
                         f"{more}; rename one of each pair")
    return names


def _judge(D: nn.Module, cond: torch.Tensor, images: list[torch.Tensor]) -> list[list[list[torch.Tensor]]]:
    """Runs D once on concat(cond, image) for all images stacked on the batch axis; splits the outputs back.

    D(cond, images) computes cond's part of its first conv once for all images. D returns, per scale, the list of
    its intermediate features (the last is the prediction); the result is indexed [image][scale][layer].
    """
    n = len(images)
    preds = D(cond, torch.cat(images, 0))  # images [n*B, 3, H, W]
    return [[[f.chunk(n, 0)[i] for f in scale] for scale in preds] for i in range(n)]


def _detach(preds: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
    return [[f.detach() for f in scale] for scale in preds]


def outputs_for_adversarial(out: Any, use_local: bool) -> dict[str, torch.Tensor]:
    """The images the GAN/FM/VGG/L1 terms apply to: I^C, I^G and I^L (only I^C = I^G for the global-only S1)."""
    if not use_local:
        return {"C": out.image}
    return {"C": out.image, "G": out.image_global, "L": out.image_local}


def as_id_batch(x: torch.Tensor | np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """Class or instance ids as a LongTensor [B,H,W] on `device` (default: where it is); [H,W] gets a batch axis."""
    t = torch.as_tensor(x)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    return t.to(t.device if device is None else device).long()


class Task(abc.ABC):
    """One task of the paper (model.task): its data, networks, inputs, evaluation and grids are abstract, grouped by
    the code that uses them; the D and G loss sums over its discriminators are shared."""

    cfg: Config
    num_classes: int
    data_root: str | None

    def __init__(self, cfg: Config, data_root: str | None = None):
        self.cfg = cfg
        self.num_classes = cfg.data.num_classes
        # --data wins over the config's data.root; None means the built-in synthetic data (where there is one).
        self.data_root = data_root or cfg.data.root

    # -- what every user reads: defaults, classes, colours, config notes -----------------------------------------------
    @classmethod
    @abc.abstractmethod
    def default_split(cls) -> str:
        """The split `lggan evaluate --checkpoint` generates from."""

    @classmethod
    @abc.abstractmethod
    def default_metrics(cls) -> tuple[str, ...]:
        """The metrics `lggan evaluate` computes when --metrics is not given (the paper's table for this task)."""

    @classmethod
    @abc.abstractmethod
    def has_label_maps(cls) -> bool:
        """Whether evaluation batches carry class maps for mIoU (`EvalBatch.label_maps`, written to labels/)."""

    @property
    @abc.abstractmethod
    def palette(self) -> np.ndarray:
        """uint8 [num_classes, 3] colours of the class maps (from the config; no dataset needed)."""

    @property
    @abc.abstractmethod
    def class_names(self) -> list[str]:
        """One display name per class channel of the model (from the config; no dataset needed)."""

    @abc.abstractmethod
    def d_names(self) -> list[str]:
        """Names of the discriminators (keys of `Prepared.conditions`)."""

    def config_notes(self) -> list[str]:
        """What a user may not expect of this config (printed by --print-config and the banner); none by default."""
        return []

    # -- used by lggan.training: data, networks, batches ---------------------------------------------------------------
    @abc.abstractmethod
    def build_datasets(self, with_val: bool = True) -> tuple[Any, Any]:
        """(train, val) datasets; val is None (with a warning saying why) when the split is missing or unusable."""

    @abc.abstractmethod
    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Batches dataset items."""

    @abc.abstractmethod
    def prepare(self, batch: dict[str, Any], device: torch.device) -> Prepared:
        """A collated batch on `device`, as every training step needs it."""

    @abc.abstractmethod
    def build_generator(self) -> nn.Module:
        """The generator described by the config (initialised, on the CPU)."""

    @abc.abstractmethod
    def build_discriminators(self) -> nn.ModuleDict:
        """The discriminators named by `d_names` (initialised, on the CPU)."""

    def _warn_no_val(self, where: Any, split: str, exc: BaseException) -> None:
        warnings.warn(f"no {split} split at {where} ({one_line(exc)}); sample grids use training images",
                      stacklevel=3)

    # -- used by generate (Synthesizer, `lggan generate`), the demo and `lggan export` ---------------------------------
    @abc.abstractmethod
    def generator_inputs(self, label: torch.Tensor, instance: torch.Tensor | None = None,
                         aerial: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Positional generator arguments for class maps `label` [B,H,W] (long, on the model's device)."""

    @abc.abstractmethod
    def inference_inputs(self, labels: Path, instances: Path | None = None) -> list[InferenceInput]:
        """The inputs of `lggan generate --labels LABELS [--instances INSTANCES]`, in order; files are not read."""

    @abc.abstractmethod
    def load_inference_input(self, item: InferenceInput, palette: Any = None) -> GeneratorSample:
        """Reads one input's files; ValueError naming the file when it cannot be used.

        palette: how colour label images become class ids (`lggan generate --palette`; None: the config's).
        """

    @abc.abstractmethod
    def export_graph(self, generator: nn.Module) -> nn.Module:
        """The traceable inference graph of `generator` (`lggan export`; lggan.export_graphs): ids in, I^C out."""

    @abc.abstractmethod
    def label_from_image(self, image: Any, palette: Any = None, where: str = "label") -> torch.Tensor:
        """Class indices [H,W] (long) of a label image given in memory, read as a label file of the task is: a PIL
        image (single-channel ids, or colours with `palette`) or a uint8 [H,W,3] colour array with `palette`."""

    # -- used by evaluate (`lggan evaluate --checkpoint`) and train.eval_every -----------------------------------------
    @abc.abstractmethod
    def eval_dataset(self, split: str) -> Any:
        """The dataset `split` at evaluation size (no augmentation); it has a `root` attribute."""

    @abc.abstractmethod
    def eval_sources(self, dataset: Any) -> list[Path]:
        """The file each item of an evaluation dataset comes from (its output name follows from it)."""

    @abc.abstractmethod
    def eval_batch(self, samples: list[dict[str, Any]], names: list[str]) -> EvalBatch:
        """Turns evaluation dataset items into an EvalBatch."""

    def eval_batches(self, dataset: Any, batch_size: int, limit: int | None = None
                     ) -> tuple[list[str], Iterator[EvalBatch]]:
        """Output names of the first `limit` items (all if None) and the batches over them.

        The names are checked up front: two items with one output name (a.png and a.jpg) raise before anything
        is generated.
        """
        if batch_size < 1:
            raise ValueError(f"--batch-size {batch_size}: must be >= 1")
        if limit is not None and limit < 1:
            raise ValueError(f"--limit {limit}: must be >= 1")
        sources = self.eval_sources(dataset)
        n = len(sources) if limit is None else min(limit, len(sources))
        names = check_unique_outputs(sources[:n], f"split {dataset.split!r} at {dataset.root}")

        def batches() -> Iterator[EvalBatch]:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                yield self.eval_batch([dataset[i] for i in range(start, stop)], names[start:stop])

        return names, batches()

    # -- used by lggan.training's steps: the loss sums (shared by every task) ------------------------------------------
    def discriminator_losses(self, discriminators: dict[str, nn.Module], prep: Prepared,
                             fakes: dict[str, torch.Tensor]):
        """Returns (total, terms): each D judges the real image and every fake output, in one batched call.

        One call per D (real and fakes stacked on the batch axis) is also what DistributedDataParallel needs:
        it allows a single forward per backward. Per D the total is sum_out L_D(real, fake_out) over the outputs
        out in {C, G, L}; with gan_mode vanilla that is the cross-view release's
        sum_out 0.5 * (BCE(D(fake_out), 0) + BCE(D(real), 1)), the real term weighing 1.5 in all.
        """
        lc = self.cfg.loss
        terms: dict[str, torch.Tensor] = {}
        total = prep.real.new_zeros(())
        images = [prep.real] + [f.detach() for f in fakes.values()]
        for name in self.d_names():
            preds = _judge(discriminators[name], prep.conditions[name], images)
            real_pred = preds[0]
            for k, fake_pred in zip(fakes, preds[1:]):
                loss = L.discriminator_loss(real_pred, fake_pred, lc.gan_mode)
                terms[f"D_{name}_{k}"] = loss.detach()
                total = total + loss
        return total * lc.gan, terms

    def generator_losses(self, discriminators: dict[str, nn.Module], prep: Prepared, out: Any,
                         vgg: nn.Module | None):
        """Returns (total, terms) for the G step: GAN, feature matching, VGG, L1 on each output; CE; local L1."""
        lc, mc = self.cfg.loss, self.cfg.model
        fakes = outputs_for_adversarial(out, mc.use_local)
        terms: dict[str, torch.Tensor] = {}
        total = prep.real.new_zeros(())

        def add(name: str, weight: float, value: torch.Tensor) -> None:
            nonlocal total
            terms[name] = value.detach()
            total = total + weight * value

        if lc.gan > 0 or lc.feat_match > 0:
            for name in self.d_names():
                # The real image rides along in the same call only for feature matching's targets.
                with_real = lc.feat_match > 0
                images = ([prep.real] if with_real else []) + list(fakes.values())
                preds = _judge(discriminators[name], prep.conditions[name], images)
                real_feats = _detach(preds[0]) if with_real else None
                for k, fake_pred in zip(fakes, preds[1:] if with_real else preds):
                    if lc.gan > 0:
                        add(f"G_gan_{name}_{k}", lc.gan, L.generator_gan_loss(fake_pred, lc.gan_mode))
                    if lc.feat_match > 0:
                        add(f"G_fm_{name}_{k}", lc.feat_match, L.feature_matching_loss(fake_pred, real_feats))
        for k, fake in fakes.items():
            if lc.vgg > 0 and vgg is not None:
                add(f"G_vgg_{k}", lc.vgg, vgg(fake, prep.real))
            if lc.image_l1 > 0:
                add(f"G_l1_{k}", lc.image_l1, L.l1_loss(fake, prep.real))
            if lc.tv > 0:
                add(f"G_tv_{k}", lc.tv, L.tv_loss(fake, lc.tv_reduction))
        if mc.use_local and lc.class_ce > 0:
            add("G_class_ce", lc.class_ce, L.class_ce_loss(out.class_logits, out.class_valid))
        if mc.use_local and lc.local_l1 > 0:
            add("G_local_l1", lc.local_l1, L.local_l1_loss(out.class_images, prep.real, prep.masks))
        return total, terms

    # -- used by lggan.training: sample grids --------------------------------------------------------------------------
    @abc.abstractmethod
    def grid_columns(self, prep: Prepared, out: Any) -> list[torch.Tensor]:
        """The columns of a sample grid, each [B,3,H,W] in [0,1]."""


def semantic_dataset_options(dc: DataConfig, train: bool = True) -> dict[str, Any]:
    """Keyword arguments of `build_semantic_dataset` that follow from the data config.

    Training resizes to load_size (then crops to crop_size, if set); evaluation resizes straight to the crop size
    with no crop, as the release tests (ADE20K: train 286 -> random 256 crop, test 256).
    """
    kw: dict[str, Any] = dict(load_size=dc.load_size if train else (dc.crop_size or dc.load_size))
    if dc.dataset == "custom":
        # data.num_classes counts one-hot channels: the files' classes plus one for a don't-care value.
        kw.update(num_classes=dc.num_classes - (1 if dc.dontcare is not None else 0), dontcare=dc.dontcare,
                  palette=dc.palette)
    return kw


# The files of a Cityscapes gtFine folder: each kind of input takes one of them (--labels *_labelIds, --instances
# *_instanceIds); the others are expected there.
CITYSCAPES_COMPANIONS = ("_labelIds", "_instanceIds", "_color", "_labelTrainIds", "_polygons")


def _list_inputs(path: Path, suffixes: tuple[str, ...], what: str, prefer: str | None = None) -> list[Path]:
    """Files of a folder (or the one file given); in a Cityscapes gtFine folder only the `prefer` kind."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {path}: no such file or folder")
    every = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    files = [p for p in every if p.suffix.lower() in suffixes]
    cityscapes = bool(prefer) and any(p.stem.endswith(prefer) for p in files)
    # A gtFine folder's other files (instance ids beside label ids, colour renderings, polygons) belong there:
    # leaving them out is expected, not worth a warning. Anything else left out is named.
    def expected(p: Path) -> bool:
        return cityscapes and p.stem.endswith(CITYSCAPES_COMPANIONS)

    skipped = {p.name: f"not {'/'.join(suffixes)}" for p in every
               if p.suffix.lower() not in suffixes and not expected(p)}
    if cityscapes:
        skipped.update({p.name: f"not a *{prefer} file, and the folder has those" for p in files
                        if not p.stem.endswith(prefer) and not expected(p)})
        files = [p for p in files if p.stem.endswith(prefer)]
    if not files:
        raise FileNotFoundError(f"{what} {path}: no {'/'.join(suffixes)} files in this folder")
    if skipped:  # one output per input, or the inputs left out are named with the reason
        listed = "; ".join(f"{name} ({why})" for name, why in sorted(skipped.items())[:_MAX_LISTED])
        more = f"; and {len(skipped) - _MAX_LISTED} more" if len(skipped) > _MAX_LISTED else ""
        warnings.warn(f"{what} {path}: {len(skipped)} file{'s' if len(skipped) > 1 else ''} skipped: {listed}{more}",
                      stacklevel=2)
    return files


def _stem_key(p: Path) -> str:
    """Matches Cityscapes-style names (x_gtFine_labelIds / x_gtFine_instanceIds) and plain equal stems."""
    stem = p.stem
    for suffix in ("_gtFine_labelIds", "_gtFine_instanceIds", "_labelIds", "_instanceIds"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


class SemanticTask(Task):
    """Semantic image synthesis: S (one-hot + instance edges) -> photo (paper §3, §4.2)."""

    LABEL_SUFFIXES = (".png",)  # label and instance maps must be lossless

    @classmethod
    def default_split(cls) -> str:
        return "val"

    @classmethod
    def default_metrics(cls) -> tuple[str, ...]:
        return ("fid", "kid", "miou")  # paper Table 3

    @classmethod
    def has_label_maps(cls) -> bool:
        return True

    @cached_property
    def palette(self) -> np.ndarray:
        return self.label_spec.palette

    def config_notes(self) -> list[str]:
        from .config import get_preset

        m = self.cfg.model
        try:
            base = get_preset(self.cfg.preset).model
        except ValueError:  # a config of no preset
            return []
        if m.ngf != base.ngf and m.spade_hidden == base.spade_hidden:
            # SPADE's hidden width is its own option (nhidden = 128 in the release whatever ngf is).
            return [f"model.ngf={m.ngf} (preset {self.cfg.preset}: {base.ngf}) leaves model.spade_hidden at "
                    f"{m.spade_hidden}, a width of its own (the release keeps 128 whatever ngf is); scale it with "
                    f"--set model.spade_hidden=N"]
        return []

    @cached_property
    def class_names(self) -> list[str]:
        return list(self.label_spec.class_names)

    @property
    def size_step(self) -> int:
        """Label maps' width and height must be multiples of this: 2^(the global generator's upsamplings)."""
        from .models.global_generator import upsampling_step

        return upsampling_step(self.cfg.model.num_upsampling_layers)

    def d_names(self) -> list[str]:
        return ["D_s"]

    def _dataset(self, root: str | Path | None, split: str, train: bool):
        from .data import build_semantic_dataset

        dc = self.cfg.data
        return build_semantic_dataset(dc.dataset, root, split, **semantic_dataset_options(dc, train),
                                      crop_size=dc.crop_size if train else None, flip=dc.flip and train)

    def _check_root(self) -> None:
        dc = self.cfg.data
        if dc.dataset != "synth-city" and self.data_root is None:
            raise ValueError(f"--data: the {dc.dataset} dataset needs its folder (data.root)")

    def build_datasets(self, with_val: bool = True):
        dc = self.cfg.data
        self._check_root()
        train = self._dataset(self.data_root, "train", train=True)
        if train.num_classes != dc.num_classes:
            raise ValueError(
                f"data.num_classes={dc.num_classes} but the {dc.dataset} dataset at {train.root} has "
                f"{train.num_classes} one-hot channels"
            )
        if dc.use_instance and not train.has_instance:
            raise ValueError(f"data.use_instance=true but the {dc.dataset} dataset at {train.root} has no "
                             "instance maps (set data.use_instance=false)")
        val = None
        if with_val:
            try:
                val = self._dataset(str(train.root), "val", train=False)
            except (FileNotFoundError, ValueError) as e:
                self._warn_no_val(train.root, "val", e)
        return train, val

    def collate(self, samples):
        from .data import collate_semantic

        return collate_semantic(samples)

    def build_generator(self) -> nn.Module:
        from .models import LGGANGenerator, init_weights

        mc = self.cfg.model
        return init_weights(kind=mc.init, gain=mc.init_gain, module=LGGANGenerator(
            num_classes=self.num_classes,
            semantic_nc=self.cfg.data.semantic_nc,
            ngf=mc.ngf,
            spade_hidden=mc.spade_hidden,
            num_res_blocks=mc.num_res_blocks,
            local_combine=mc.local_combine,
            use_local=mc.use_local,
            use_weight_map=mc.use_weight_map,
            class_pool=mc.class_pool,
            num_upsampling_layers=mc.num_upsampling_layers,
            local_groups=mc.local_groups,
        ))

    def build_discriminators(self) -> nn.ModuleDict:
        from .models import MultiscaleDiscriminator, init_weights

        mc = self.cfg.model
        return init_weights(kind=mc.init, gain=mc.init_gain, module=nn.ModuleDict(
            {"D_s": MultiscaleDiscriminator(self.cfg.data.semantic_nc + 3, ndf=mc.ndf, n_layers=mc.d_layers,
                                            num_d=mc.num_d)}
        ))

    def export_graph(self, generator: nn.Module) -> nn.Module:
        from .export_graphs import SemanticExport

        return SemanticExport(generator, self.cfg.data.use_instance)

    def prepare(self, batch: dict[str, Any], device: torch.device) -> Prepared:
        from .data import make_semantic_input

        label = batch["label"].to(device, non_blocking=True)
        instance = batch.get("instance")
        if self.cfg.data.use_instance:
            instance = instance.to(device, non_blocking=True)
        else:
            instance = None
        from .models.class_conv import group_masks

        S = make_semantic_input(label, self.num_classes, instance)  # [B, C(+1), H, W]
        real = batch["image"].to(device, non_blocking=True)
        # The local L1 pairs branch g with M_g: the group masks the generator builds (model.local_groups), [B, G, H, W].
        masks = group_masks(S[:, : self.num_classes], self.cfg.model.local_groups)
        return Prepared((S,), masks, real, {"D_s": S}, label)

    def grid_columns(self, prep: Prepared, out: Any) -> list[torch.Tensor]:
        """colourised label | I^G | I^L | W_g | W_l | I^C | real."""
        cols = [palette_to_rgb(prep.label, self.palette)]
        if self.cfg.model.use_local:
            cols += [to_unit(out.image_global), to_unit(out.image_local), gray_to_rgb(out.weight_global),
                     gray_to_rgb(out.weight_local)]
        return cols + [to_unit(out.image), to_unit(prep.real)]

    # -- inference -------------------------------------------------------------------------------------------------
    def generator_inputs(self, label, instance=None, aerial=None):
        from .data import make_semantic_input

        label = as_id_batch(label)
        if aerial is not None:
            raise ValueError("`aerial` is a cross-view input; this is a semantic-synthesis model")
        if self.cfg.data.use_instance:
            # Without instance maps the labels themselves delimit regions (SPADE's fallback; `lggan generate` too).
            instance = label if instance is None else as_id_batch(instance, label.device)
        else:
            instance = None
        h, w = label.shape[-2:]
        step = self.size_step
        if h % step or w % step:
            raise ValueError(f"label map of {w}x{h}: width and height must be multiples of {step} for this generator "
                             f"(model.num_upsampling_layers={self.cfg.model.num_upsampling_layers!r})")
        return (make_semantic_input(label, self.num_classes, instance),)

    def inference_inputs(self, labels: Path, instances: Path | None = None) -> list[InferenceInput]:
        label_files = _list_inputs(labels, self.LABEL_SUFFIXES, "--labels", prefer="_labelIds")
        inst_by_key: dict[str, Path] = {}
        if instances is not None and self.cfg.data.use_instance:
            for p in _list_inputs(instances, self.LABEL_SUFFIXES, "--instances", prefer="_instanceIds"):
                inst_by_key[_stem_key(p)] = p
        items = []
        for f in label_files:
            inst = None
            if inst_by_key:
                key = _stem_key(f)
                if key not in inst_by_key:
                    raise FileNotFoundError(f"--instances: no instance map for {f.name} (looked for {key}*)")
                inst = inst_by_key[key]
            items.append(InferenceInput(output_name(f), f, inst))
        return items

    @cached_property
    def label_spec(self):
        """Raw label-file value -> class channel of the model's dataset (lggan.data.common.LabelSpec); a custom
        dataset's classes named and coloured by its data.palette."""
        from .data import label_spec_for
        from .data.palette import resolve_label_palette

        dc = self.cfg.data
        try:
            named_by = resolve_label_palette(dc.palette, "data.palette")
        except ValueError:
            # Names and colours only: reading a colour label image through it raises the error where it matters.
            named_by = None
        return label_spec_for(dc.dataset, dc.num_classes, dc.dontcare, named_by)

    def _palette(self, palette: Any):
        from .data.palette import resolve_label_palette

        return resolve_label_palette(palette if palette is not None else self.cfg.data.palette,
                                     "--palette" if palette is not None else "data.palette")

    def label_from_image(self, image, palette=None, where="label"):
        from .data.common import describe_invalid
        from .data.palette import label_image_values

        raw = label_image_values(image, self._palette(palette), where)
        mapped = self.label_spec.map_raw(raw)
        if (mapped < 0).any():
            raise ValueError(f"{where}: {describe_invalid(raw, mapped, self.label_spec)}")
        return torch.from_numpy(mapped)

    def load_inference_input(self, item: InferenceInput, palette: Any = None) -> GeneratorSample:
        from .data.common import load_index_map, load_label

        dc = self.cfg.data
        # At the file's size; `lggan generate` resizes it and checks that the generator can take the size it runs at.
        label = torch.from_numpy(load_label(item.path, self.label_spec, self._palette(palette)))
        inst = None
        if dc.use_instance:
            if item.instance_path is None:
                # Without instance maps the labels themselves delimit regions (SPADE's fallback).
                inst = label.clone()
            else:
                inst = torch.from_numpy(load_index_map(item.instance_path, "instance").astype(np.int64))
                if inst.shape != label.shape:
                    raise ValueError(f"{item.instance_path}: size {tuple(inst.shape[::-1])} differs from its label "
                                     f"map {item.path} ({tuple(label.shape[::-1])})")
        return GeneratorSample(label, inst)

    # -- evaluation ------------------------------------------------------------------------------------------------
    def eval_dataset(self, split: str):
        self._check_root()
        return self._dataset(self.data_root, split, train=False)

    def eval_sources(self, dataset) -> list[Path]:
        return [Path(p.image) for p in dataset.pairs]

    def eval_batch(self, samples, names):
        from .data import collate_semantic

        batch = collate_semantic(samples)
        return EvalBatch(names, batch["label"], batch["image"], instance=batch["instance"],
                         label_maps=batch["label"])


class CrossViewTask(Task):
    """Cross-view translation: concat(I_a, S_g) -> target view, with the dual discriminator (paper §4.1)."""

    PANEL_SUFFIXES = (".png", ".jpg", ".jpeg")

    @classmethod
    def default_split(cls) -> str:
        return "test"

    @classmethod
    def default_metrics(cls) -> tuple[str, ...]:
        from .metrics.folders import CROSSVIEW_METRICS

        return CROSSVIEW_METRICS  # paper Tables 1-2

    @classmethod
    def has_label_maps(cls) -> bool:
        return False  # its class maps condition the generator; the paper scores no segmentation

    @cached_property
    def palette(self) -> np.ndarray:
        from .data.crossview import CROSSVIEW_PALETTE

        return CROSSVIEW_PALETTE

    @cached_property
    def class_names(self) -> list[str]:
        from .data import CROSSVIEW_CLASS_NAMES

        # Classes past the built-in six are numbered 1-based as in the mask files (gray 10*k).
        return [CROSSVIEW_CLASS_NAMES[k] if k < len(CROSSVIEW_CLASS_NAMES) else f"class {k + 1}"
                for k in range(self.cfg.data.num_classes)]

    def d_names(self) -> list[str]:
        return ["D_i", "D_s"]

    @property
    def _panel_size(self) -> int:
        dc = self.cfg.data
        return (dc.crop_size or dc.load_size)[0]

    def _root(self) -> Path:
        """The data folder: --data / data.root as given; the built-in towns only when neither is set."""
        dc = self.cfg.data
        if self.data_root is None:
            if dc.dataset == "synth-views":
                from .data.synthetic_views import ensure_synth_views

                return ensure_synth_views(None, size=self._panel_size)
            raise ValueError(f"--data: the {dc.dataset} dataset needs a folder (data.root)")
        root = Path(self.data_root)
        if not root.is_dir():
            raise FileNotFoundError(f"--data {root}: no such folder (the built-in synthetic towns are made only "
                                    "when no data folder is given)")
        return root

    def build_datasets(self, with_val: bool = True):
        from .data.crossview import CrossViewDataset

        dc = self.cfg.data
        root = self._root()
        # The release's transform: bicubic resize of every panel to load_size, one crop offset for all panels,
        # masks by exact match of the resized mask panel (data.palette).
        train = CrossViewDataset(root, "train", direction=dc.direction, load_size=dc.load_size[0],
                                 crop_size=dc.crop_size[0] if dc.crop_size else None, flip=dc.flip, train=True,
                                 mask_palette=dc.palette)
        if train.num_classes != self.num_classes:
            raise ValueError(f"data.num_classes={self.num_classes} but {root} has {train.num_classes} classes")
        val = None
        if with_val:
            split = self.default_split()
            try:
                val = self._eval_dataset_at(root, split)
            except (FileNotFoundError, ValueError) as e:
                self._warn_no_val(root, split, e)
        return train, val

    def _eval_dataset_at(self, root: Path, split: str):
        from .data.crossview import CrossViewDataset

        dc = self.cfg.data
        # As training sees them: resized to load_size, then cropped to the panel size; data.test_crop "random" is
        # the release's random test crop (seeded by train.seed and the item index), "center" the middle crop.
        return CrossViewDataset(root, split, direction=dc.direction, load_size=dc.load_size[0],
                                crop_size=self._panel_size, flip=False, train=False, mask_palette=dc.palette,
                                test_crop=dc.test_crop, seed=self.cfg.train.seed)

    def collate(self, samples):
        from .data.crossview import collate_crossview

        return collate_crossview(samples)

    def build_generator(self) -> nn.Module:
        from .models import CrossViewGenerator, init_weights

        mc = self.cfg.model
        return init_weights(CrossViewGenerator(in_channels=6, num_classes=self.num_classes, ngf=mc.ngf,
                                               num_res_blocks=mc.num_res_blocks, use_local=mc.use_local,
                                               use_weight_map=mc.use_weight_map), mc.init, mc.init_gain)

    def build_discriminators(self) -> nn.ModuleDict:
        """D_i on concat(I_a, image) and D_s on concat(S_g colour, image), 6 input channels each.

        model.discriminator "pix2pix": the release's PatchGAN (d_layers=3: 30x30 logits at 256 px), one scale;
        "spade": SPADE's multiscale PatchGAN without spectral norm.
        """
        from .models import MultiscaleDiscriminator, init_weights
        from .models.discriminator import PatchGANDiscriminator

        mc = self.cfg.model
        if mc.discriminator == "pix2pix":
            if mc.num_d != 1:
                raise ValueError(f"model.num_d={mc.num_d}: the pix2pix discriminator has one scale (set model.num_d=1 "
                                 "or model.discriminator=spade)")
            Ds = {name: PatchGANDiscriminator(6, ndf=mc.ndf, n_layers=mc.d_layers) for name in self.d_names()}
        else:
            Ds = {name: MultiscaleDiscriminator(6, ndf=mc.ndf, n_layers=mc.d_layers, num_d=mc.num_d, spectral=False)
                  for name in self.d_names()}
        return init_weights(nn.ModuleDict(Ds), mc.init, mc.init_gain)

    def export_graph(self, generator: nn.Module) -> nn.Module:
        from .export_graphs import CrossViewExport

        return CrossViewExport(generator)

    def prepare(self, batch: dict[str, Any], device: torch.device) -> Prepared:
        from .data.crossview import class_masks

        x = batch["input"].to(device, non_blocking=True)  # concat(I_a, S_g colour), [B,6,H,W]
        label = batch["label"].to(device, non_blocking=True)
        masks = class_masks(label, self.num_classes).to(x.dtype)  # [B,C,H,W], void -> 0
        real = batch["image"].to(device, non_blocking=True)
        cond = {"D_i": batch["cond_image"].to(device), "D_s": batch["semantic"].to(device)}
        return Prepared((x, masks), masks, real, cond, label)

    def grid_columns(self, prep: Prepared, out: Any) -> list[torch.Tensor]:
        """aerial | target map | I^G | I^L | W_g | W_l | I^C | real."""
        cols = [to_unit(prep.conditions["D_i"]), to_unit(prep.conditions["D_s"])]
        if self.cfg.model.use_local:
            cols += [to_unit(out.image_global), to_unit(out.image_local), gray_to_rgb(out.weight_global),
                     gray_to_rgb(out.weight_local)]
        return cols + [to_unit(out.image), to_unit(prep.real)]

    # -- inference -------------------------------------------------------------------------------------------------
    def generator_inputs(self, label, instance=None, aerial=None):
        from .data.crossview import class_masks

        if aerial is None:
            raise ValueError("cross-view generation needs `aerial`: concat(I_a, S_g colour) [B,6,H,W]")
        if instance is not None:
            raise ValueError("`instance` is a semantic-synthesis input; this is a cross-view model")
        label = as_id_batch(label)
        aerial = torch.as_tensor(aerial).to(label.device)
        if aerial.dim() == 3:
            aerial = aerial.unsqueeze(0)
        return aerial.float(), class_masks(label, self.num_classes).float()

    def inference_inputs(self, labels: Path, instances: Path | None = None) -> list[InferenceInput]:
        if instances is not None:
            raise ValueError(f"--instances {instances}: a cross-view model takes no instance maps (the panel files "
                             "hold all its inputs)")
        return [InferenceInput(output_name(f), f) for f in _list_inputs(labels, self.PANEL_SUFFIXES, "--labels")]

    def load_inference_input(self, item: InferenceInput, palette: Any = None) -> GeneratorSample:
        from .data.crossview import read_crossview_inputs

        x, label = read_crossview_inputs(item.path, direction=self.cfg.data.direction, size=self._panel_size,
                                         mask_palette=palette if palette is not None else self.cfg.data.palette)
        return GeneratorSample(label, aerial=x)

    def label_from_image(self, image, palette=None, where="label"):
        from PIL import Image

        from .data.crossview import resolve_palette

        array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) and image.mode in ("RGB", "RGBA")
                           else image)
        if array.ndim == 3:  # colours: the palette of the map panels (as the panel files are read)
            spec = palette if palette is not None else self.cfg.data.palette
            if spec is None:
                raise ValueError(f"{where}: a colour class map needs a palette (--palette / data.palette)")
            return torch.from_numpy(resolve_palette(spec, 6, self.num_classes).labels(array[..., :3]).astype(np.int64))
        if array.ndim != 2:
            raise ValueError(f"{where}: a class map must be [H, W], got shape {tuple(array.shape)}")
        return torch.from_numpy(array.astype(np.int64))

    # -- evaluation ------------------------------------------------------------------------------------------------
    def eval_dataset(self, split: str):
        return self._eval_dataset_at(self._root(), split)

    def eval_sources(self, dataset) -> list[Path]:
        return list(dataset.files)

    def eval_batch(self, samples, names):
        from .data.crossview import collate_crossview

        batch = collate_crossview(samples)
        return EvalBatch(names, batch["label"], batch["image"], aerial=batch["input"])


# The implementation of each value of model.task (config.TaskName declares the names).
TASKS: dict[str, type[Task]] = {"semantic": SemanticTask, "crossview": CrossViewTask}


def task_class(name: str) -> type[Task]:
    """The Task subclass of a model.task value."""
    if name not in TASKS:
        raise ValueError(f"model.task={name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]


def make_task(cfg: Config, data_root: str | None = None) -> Task:
    return task_class(cfg.model.task)(cfg, data_root)
