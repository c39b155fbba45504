"""Recipes: the optimiser settings of the released scripts and of the paper's text, per task (`train.recipe`)."""

from __future__ import annotations

from typing import Any

from .coercion import coerce
from .sections import Config
from .types import Recipe

RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    # S/train_*.sh run SPADE's TTUR: G lr 2e-4 / 2, D lr 2e-4 * 2, Adam betas hard-coded (0, 0.9); the lr drops once
    # per epoch after niter; the G step comes first and the D step regenerates the fakes with the updated G.
    ("semantic", "release"): dict(lr_g=1e-4, lr_d=4e-4, beta1=0.0, beta2=0.9, lr_schedule="spade",
                                  step_order="g_then_d"),
    # The paper (§4.2): Adam with beta1 0, beta2 0.999, no TTUR (GauGAN's lr 2e-4 for both).
    ("semantic", "paper"): dict(lr_g=2e-4, lr_d=2e-4, beta1=0.0, beta2=0.999, lr_schedule="spade",
                                step_order="g_then_d"),
    # X/train_*.sh: Adam (0.5, 0.999), lr 2e-4 for G and for D1+D2, pix2pix's "lambda" decay, one G forward.
    ("crossview", "release"): dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, lr_schedule="pix2pix",
                                   step_order="one_forward"),
    # The paper's cross-view text gives no other optimiser settings than the release's.
    ("crossview", "paper"): dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, lr_schedule="pix2pix",
                                 step_order="one_forward"),
}


def apply_recipe(cfg: Config, recipe: str) -> Config:
    """Fills the optimiser fields of `cfg.train` from a named recipe of its task ("custom" leaves them)."""
    coerce("train.recipe", recipe, Recipe)
    if recipe != "custom":
        for key, value in RECIPES[(cfg.model.task, recipe)].items():
            setattr(cfg.train, key, value)
    cfg.train.recipe = recipe
    return cfg


def recipe_still_holds(cfg: Config) -> bool:
    if cfg.train.recipe == "custom":
        return True
    values = RECIPES[(cfg.model.task, cfg.train.recipe)]
    return all(getattr(cfg.train, k) == v for k, v in values.items())
