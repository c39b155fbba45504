"""The two tasks of the paper as data + networks + loss recipes; the training loop is shared (train.py).

A task turns a collated batch into a `Prepared` record (generator inputs, class masks M_i, the real image and the
conditions of each discriminator), builds its networks from the config, and adds up its generator/discriminator
losses from the pure functions in losses.py. Semantic synthesis: hinge GAN with the semantic-guided D_s on
concat(S, image) (Eq. 8). Cross-view translation: vanilla GAN with D_i on concat(I_a, image) and D_s on
concat(S_g colour map, image) (Eq. 8-9).
"""

from __future__ import annotations

import abc

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from . import losses as L
from .config import Config, DataConfig
from .viz import gray_to_rgb, palette_to_rgb, to_unit


@dataclass
class Prepared:
    """One batch on the device, in the form every step needs."""

    gen_inputs: tuple[torch.Tensor, ...]  # positional arguments of the generator
    masks: torch.Tensor  # M_i, [B,C,H,W] in {0,1}
    real: torch.Tensor  # I_g, [B,3,H,W] in [-1,1]
    conditions: dict[str, torch.Tensor]  # discriminator name -> conditioning tensor [B,*,H,W]
    label: torch.Tensor  # [B,H,W] class indices, for sample grids
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def _judge(D: nn.Module, cond: torch.Tensor, images: list[torch.Tensor]) -> list[list[list[torch.Tensor]]]:
    """Runs D once on concat(cond, image) for all images stacked on the batch axis; splits the outputs back.

    D returns, per scale, the list of its intermediate features (the last is the prediction); the result is
    indexed [image][scale][layer].
    """
    n = len(images)
    x = torch.cat([torch.cat([cond, img], 1) for img in images], 0)  # [n*B, C_cond+3, H, W]
    preds = D(x)
    return [[[f.chunk(n, 0)[i] for f in scale] for scale in preds] for i in range(n)]


def _detach(preds: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
    return [[f.detach() for f in scale] for scale in preds]


def outputs_for_adversarial(out: Any, use_local: bool) -> dict[str, torch.Tensor]:
    """The images the GAN/FM/VGG/L1 terms apply to: I^C, I^G and I^L (only I^C = I^G for the global-only S1)."""
    if not use_local:
        return {"C": out.image}
    return {"C": out.image, "G": out.image_global, "L": out.image_local}


class Task(abc.ABC):
    """Shared recipe: D step and G step losses over the task's discriminators."""

    cfg: Config
    num_classes: int
    palette: Any

    @abc.abstractmethod
    def d_names(self) -> list[str]:
        """Names of the discriminators (keys of `Prepared.conditions`)."""

    # -- losses ------------------------------------------------------------------------------------------------
    def discriminator_losses(self, discriminators: dict[str, nn.Module], prep: Prepared,
                             fakes: dict[str, torch.Tensor]):
        """Returns (total, terms): each D judges the real image and every fake output, in one batched call.

        One call per D (real and fakes stacked on the batch axis) is also what DistributedDataParallel needs:
        it allows a single forward per backward.
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
                add(f"G_tv_{k}", lc.tv, L.tv_loss(fake))
        if mc.use_local and lc.class_ce > 0:
            add("G_class_ce", lc.class_ce, L.class_ce_loss(out.class_logits, out.class_valid))
        if mc.use_local and lc.local_l1 > 0:
            add("G_local_l1", lc.local_l1, L.local_l1_loss(out.class_images, prep.real, prep.masks))
        return total, terms

    # -- sample grids ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def grid_columns(self, prep: Prepared, out: Any) -> list[torch.Tensor]:
        """The columns of a sample grid, each [B,3,H,W] in [0,1]."""


def semantic_dataset_options(dc: DataConfig) -> dict[str, Any]:
    """Keyword arguments of `build_semantic_dataset` that follow from the data config (any split)."""
    kw: dict[str, Any] = dict(load_size=dc.load_size)
    if dc.dataset == "custom":
        # data.num_classes counts one-hot channels: the files' classes plus one for a don't-care value.
        kw.update(num_classes=dc.num_classes - (1 if dc.dontcare is not None else 0), dontcare=dc.dontcare)
    return kw


class SemanticTask(Task):
    """Semantic image synthesis: S (one-hot + instance edges) -> photo (paper §3, §4.2)."""

    def __init__(self, cfg: Config, data_root: str | None = None):
        self.cfg = cfg
        self.num_classes = cfg.data.num_classes
        self.data_root = data_root or cfg.data.root
        self.palette = None

    def d_names(self) -> list[str]:
        return ["D_s"]

    def build_datasets(self, with_val: bool = True):
        from .data import build_semantic_dataset

        dc = self.cfg.data
        kw = semantic_dataset_options(dc)
        if dc.dataset not in ("custom", "synth-city") and self.data_root is None:
            raise ValueError(f"--data: the {dc.dataset} dataset needs its folder (data.root)")
        train = build_semantic_dataset(dc.dataset, self.data_root, "train", crop_size=dc.crop_size, flip=dc.flip,
                                       **kw)
        if train.num_classes != dc.num_classes:
            raise ValueError(
                f"data.num_classes={dc.num_classes} but the {dc.dataset} dataset at {train.root} has "
                f"{train.num_classes} one-hot channels"
            )
        if dc.use_instance and not train.has_instance:
            raise ValueError(f"data.use_instance=true but the {dc.dataset} dataset at {train.root} has no "
                             "instance maps (set data.use_instance=false)")
        self.palette = train.palette
        val = None
        if with_val:
            try:
                val = build_semantic_dataset(dc.dataset, str(train.root), "val", crop_size=None, flip=False, **kw)
            except (FileNotFoundError, ValueError):
                val = None
        return train, val

    def collate(self, samples):
        from .data import collate_semantic

        return collate_semantic(samples)

    def build_generator(self) -> nn.Module:
        from .models import LGGANGenerator, init_weights

        mc = self.cfg.model
        return init_weights(LGGANGenerator(
            num_classes=self.num_classes,
            semantic_nc=self.cfg.data.semantic_nc,
            ngf=mc.ngf,
            spade_hidden=mc.spade_hidden,
            num_res_blocks=mc.num_res_blocks,
            local_combine=mc.local_combine,
            use_local=mc.use_local,
            use_weight_map=mc.use_weight_map,
            class_pool=mc.class_pool,
        ))

    def build_discriminators(self) -> nn.ModuleDict:
        from .models import MultiscaleDiscriminator, init_weights

        mc = self.cfg.model
        return init_weights(nn.ModuleDict(
            {"D_s": MultiscaleDiscriminator(self.cfg.data.semantic_nc + 3, ndf=mc.ndf, n_layers=mc.d_layers,
                                            num_d=mc.num_d)}
        ))

    def prepare(self, batch: dict[str, Any], device: torch.device) -> Prepared:
        from .data import make_semantic_input

        label = batch["label"].to(device, non_blocking=True)
        instance = batch.get("instance")
        if self.cfg.data.use_instance:
            instance = instance.to(device, non_blocking=True)
        else:
            instance = None
        S = make_semantic_input(label, self.num_classes, instance)  # [B, C(+1), H, W]
        real = batch["image"].to(device, non_blocking=True)
        return Prepared((S,), S[:, : self.num_classes], real, {"D_s": S}, label)

    def grid_columns(self, prep: Prepared, out: Any) -> list[torch.Tensor]:
        """colourised label | I^G | I^L | W_g | W_l | I^C | real."""
        cols = [palette_to_rgb(prep.label, self.palette)]
        if self.cfg.model.use_local:
            cols += [to_unit(out.image_global), to_unit(out.image_local), gray_to_rgb(out.weight_global),
                     gray_to_rgb(out.weight_local)]
        return cols + [to_unit(out.image), to_unit(prep.real)]


class CrossViewTask(Task):
    """Cross-view translation: concat(I_a, S_g) -> target view, with the dual discriminator (paper §4.1)."""

    def __init__(self, cfg: Config, data_root: str | None = None):
        self.cfg = cfg
        self.num_classes = cfg.data.num_classes
        self.data_root = data_root or cfg.data.root
        self.palette = None

    def d_names(self) -> list[str]:
        return ["D_i", "D_s"]

    def build_datasets(self, with_val: bool = True):
        from .data.crossview import CrossViewDataset
        from .data.synthetic_views import ensure_synth_views

        dc = self.cfg.data
        root = self.data_root
        if dc.dataset == "synth-views" and (root is None or not (Path(root) / "train").is_dir()):
            root = str(ensure_synth_views(root, size=(dc.crop_size or dc.load_size)[0]))
        if root is None:
            raise ValueError(f"--data: the {dc.dataset} dataset needs a folder (data.root)")
        train = CrossViewDataset(root, "train", direction=dc.direction, load_size=dc.load_size[0],
                                 crop_size=dc.crop_size[0] if dc.crop_size else None, flip=dc.flip, train=True)
        if train.num_classes != self.num_classes:
            raise ValueError(f"data.num_classes={self.num_classes} but {root} has {train.num_classes} classes")
        self.palette = train.palette
        val = None
        if with_val:
            try:
                size = (dc.crop_size or dc.load_size)[0]
                val = CrossViewDataset(root, "test", direction=dc.direction, load_size=size, crop_size=None,
                                       flip=False, train=False)
            except (FileNotFoundError, ValueError):
                val = None
        return train, val

    def collate(self, samples):
        from .data.crossview import collate_crossview

        return collate_crossview(samples)

    def build_generator(self) -> nn.Module:
        from .models import CrossViewGenerator, init_weights

        mc = self.cfg.model
        return init_weights(CrossViewGenerator(in_channels=6, num_classes=self.num_classes, ngf=mc.ngf,
                                               num_res_blocks=mc.num_res_blocks, use_local=mc.use_local,
                                               use_weight_map=mc.use_weight_map))

    def build_discriminators(self) -> nn.ModuleDict:
        from .models import MultiscaleDiscriminator, init_weights

        mc = self.cfg.model
        return init_weights(nn.ModuleDict({
            name: MultiscaleDiscriminator(6, ndf=mc.ndf, n_layers=mc.d_layers, num_d=mc.num_d, spectral=False)
            for name in self.d_names()
        }))

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


def make_task(cfg: Config, data_root: str | None = None) -> Task:
    return CrossViewTask(cfg, data_root) if cfg.model.task == "crossview" else SemanticTask(cfg, data_root)
