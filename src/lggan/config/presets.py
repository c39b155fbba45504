"""Named presets (the released scripts' settings, the built-in synthetic data, a user's own dataset) and the
ablation variants S1..S5 of paper Table 3. Each preset is a function, so every call returns a fresh object."""

from __future__ import annotations

import copy
from typing import Any

from .recipes import apply_recipe
from .sections import Config
from .types import ABLATION_VARIANTS
from .validation import validate


def _build(**sections: dict[str, Any]) -> Config:
    cfg = Config()
    for section, values in sections.items():
        for k, v in values.items():
            setattr(getattr(cfg, section), k, v)
    return cfg


def _semantic_release(dataset: str, num_classes: int | None, use_instance: bool, **kw: dict[str, Any]) -> Config:
    """S/train_*.sh: 100 + 100 epochs, hinge + feature matching 10 + VGG 10 (raw input) + class CE 1 + local L1 1,
    image L1 off (--no_l1_loss), xavier init (gain 0.02), SPADE's multiscale D, TTUR."""
    cfg = _build(data=dict(dataset=dataset, num_classes=num_classes, use_instance=use_instance, flip=True),
                 loss=dict(gan_mode="hinge", gan=1.0, feat_match=10.0, vgg=10.0, vgg_input="raw", class_ce=1.0,
                           local_l1=1.0, image_l1=0.0),
                 train=dict(epochs_const=100, epochs_decay=100))
    for section, values in kw.items():
        for k, v in values.items():
            setattr(getattr(cfg, section), k, v)
    return apply_recipe(cfg, "release")


def _cityscapes() -> Config:
    # `fixed` preprocessing: every image resized to 512x256; the global generator starts from a 4x8 grid ("more").
    return _semantic_release("cityscapes", 35, True, data=dict(load_size=(512, 256)),
                             model=dict(num_upsampling_layers="more"), train=dict(batch_size=8))


def _ade20k() -> Config:
    # resize_and_crop: 286 -> random 256 crop at training (evaluation: 256, no crop); 52 local groups, "normal".
    return _semantic_release("ade20k", 151, False, data=dict(load_size=(286, 286), crop_size=(256, 256)),
                             model=dict(local_groups=52), train=dict(batch_size=24))


def _coco_stuff() -> Config:
    # Not in the LGGAN release: SPADE's COCO-Stuff settings with the semantic release's recipe.
    return _semantic_release("coco-stuff", 183, True, data=dict(load_size=(256, 256)), train=dict(batch_size=32))


def _synth() -> Config:
    # Small widths, 128x64 images and a short schedule (3 epochs of the 500 synthetic scenes, about 1,500 images)
    # so that the default run ends within 20 minutes on a 2-core CPU. VGG is off because its ImageNet weights
    # cannot be downloaded at run time (switch it on with loss.vgg=10 once the file is in the torch hub cache); a
    # plain image L1 term helps the short schedule converge. One G forward per iteration (the cross-view release's
    # order): measured 1.2x faster per iteration than d_then_g on a 2-core CPU (1.43 vs 1.74 s at batch 4).
    return _build(
        data=dict(dataset="synth-city", num_classes=35, use_instance=True, load_size=(128, 64), num_workers=1),
        model=dict(ngf=16, ndf=16, spade_hidden=32, num_res_blocks=3),
        loss=dict(vgg=0.0, image_l1=1.0),
        train=dict(batch_size=4, lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, epochs_const=2, epochs_decay=1,
                   step_order="one_forward", sample_every=75, checkpoint_every=125),
    )


# Paper Table 3 (right): what each variant adds to the one before.
ABLATION_TEXT = {
    "S1": "global generator only",
    "S2": "+ local class-specific generator, fused by sum",
    "S3": "+ local generator fused by a conv",
    "S4": "+ class-specific discriminative loss",
    "S5": "+ weight-map fusion (full LGGAN)",
}


def ablation_variant(cfg: Config, variant: str) -> Config:
    """`cfg` as ablation step S1..S5 of paper Table 3 (right); everything else unchanged (returns a copy)."""
    if variant not in ABLATION_VARIANTS:
        raise ValueError(f"ablation variant {variant!r}: expected one of {', '.join(ABLATION_VARIANTS)}")
    step = ABLATION_VARIANTS.index(variant) + 1
    cfg = copy.deepcopy(cfg)
    cfg.model.use_local = step >= 2
    cfg.model.local_combine = "sum" if step == 2 else "conv"
    cfg.loss.class_ce = (cfg.loss.class_ce or 1.0) if step >= 4 else 0.0
    cfg.model.use_weight_map = step >= 5
    if step == 1:
        cfg.loss.local_l1 = 0.0  # no local branch, nothing to reconstruct
    return cfg


def _load_size(size: int) -> int:
    """The release resizes 256 px panels to 286 and 64 px panels to 72 before cropping."""
    return {256: 286, 64: 72}.get(size, round(size * 286 / 256))


def _crossview(dataset: str, size: int, direction: str, batch_size: int, epochs: tuple[int, int]) -> Config:
    """X/train_*.sh: vanilla GAN (BCE) with pix2pix PatchGANs D_i and D_s, L1 100, VGG 10 (raw input), TV 1e-6 as a
    sum, normal(0, 0.02) init, Adam (0.5, 0.999) at 2e-4, pix2pix's lr decay, one G forward per iteration."""
    cfg = _build(
        # The release's training transform: resize to 286 (72 for 64 px) and random-crop back to the panel size.
        data=dict(dataset=dataset, num_classes=6, use_instance=False, load_size=(_load_size(size), _load_size(size)),
                  crop_size=(size, size), flip=False, direction=direction, test_crop="random"),
        model=dict(task="crossview", ngf=64, ndf=64, num_res_blocks=9, local_combine="sum", num_d=1, d_layers=3,
                   discriminator="pix2pix", init="normal", init_gain=0.02),
        loss=dict(gan_mode="vanilla", gan=1.0, feat_match=0.0, vgg=10.0, vgg_input="raw", class_ce=0.0,
                  local_l1=100.0, image_l1=100.0, tv=1e-6, tv_reduction="sum"),
        train=dict(batch_size=batch_size, epochs_const=epochs[0], epochs_decay=epochs[1]),
    )
    return apply_recipe(cfg, "release")


def _synth_views() -> Config:
    # The built-in synthetic towns at 64 px with small widths: 12 epochs (about 6,000 images) take about 10 minutes
    # on a 2-core CPU. VGG is off for the same reason as in `synth`.
    cfg = _crossview("synth-views", 64, "a2g", 4, (8, 4))
    cfg.model.ngf = 16
    cfg.model.ndf = 16
    cfg.model.num_res_blocks = 3
    cfg.loss.vgg = 0.0
    cfg.data.num_workers = 1
    cfg.data.test_crop = "center"
    cfg.train.sample_every = 250
    cfg.train.checkpoint_every = 500
    return cfg


def _custom() -> Config:
    """A user's own dataset (`data.dataset=custom`: ROOT/{train,val}/{images,labels[,instances]}, matched by stem).

    The semantic release's recipe (hinge + feature matching 10 + VGG 10 + class CE 1 + local L1 1, TTUR, the lr
    dropping each epoch over the second half) at half the release's widths (ngf = ndf = 32, SPADE hidden 64: about
    a quarter of the compute of ngf 64), 256x256 images, batch 4, 50 + 50 epochs. data.num_classes is left unset:
    the number of classes of the label maps must come from the user (--set data.num_classes=N).
    """
    return _semantic_release("custom", None, False, data=dict(load_size=(256, 256)),
                             model=dict(ngf=32, ndf=32, spade_hidden=64),
                             train=dict(batch_size=4, epochs_const=50, epochs_decay=50))


# The presets as a table: name -> what builds it. What each follows (README "Presets"):
#   synth, synth-views              ours: small widths on the built-in data, minutes on a 2-core CPU
#   custom                          the semantic release's recipe at half its widths, for a user's own dataset
#   cityscapes, ade20k, coco-stuff  the semantic release (S/train_*.sh; coco-stuff: SPADE's data settings)
#   S1 .. S5                        paper Table 3 (right): the ablation variants of synth
#   dayton-*, cvusa                 the cross-view release (X/train_*.sh): panel size, direction, batch, epochs
PRESETS: dict[str, Any] = {
    "synth": _synth,
    "custom": _custom,
    "cityscapes": _cityscapes,
    "ade20k": _ade20k,
    "coco-stuff": _coco_stuff,
    "S1": lambda: ablation_variant(_synth(), "S1"),
    "S2": lambda: ablation_variant(_synth(), "S2"),
    "S3": lambda: ablation_variant(_synth(), "S3"),
    "S4": lambda: ablation_variant(_synth(), "S4"),
    "S5": lambda: ablation_variant(_synth(), "S5"),
    "dayton-a2g": lambda: _crossview("crossview", 256, "a2g", 4, (20, 15)),
    "dayton-g2a": lambda: _crossview("crossview", 256, "g2a", 4, (20, 15)),
    "dayton-a2g-64": lambda: _crossview("crossview", 64, "a2g", 16, (50, 50)),
    "dayton-g2a-64": lambda: _crossview("crossview", 64, "g2a", 16, (50, 50)),
    "cvusa": lambda: _crossview("crossview", 256, "a2g", 4, (15, 15)),
    "synth-views": _synth_views,
}


def get_preset(name: str) -> Config:
    """Returns a fresh Config for a named preset."""
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r}: unknown preset (known: {', '.join(PRESETS)})")
    cfg = PRESETS[name]()
    cfg.preset = name
    validate(cfg, partial=True)  # a preset may leave fields to the user (missing_fields); a run checks them
    return cfg
