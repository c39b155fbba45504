"""train.recipe: the optimiser settings of the released scripts or of the paper's text, as each task declares them
(config/task_settings.py)."""

from __future__ import annotations

from .coercion import coerce
from .sections import Config
from .task_settings import TASK_SETTINGS
from .types import Recipe


def apply_recipe(cfg: Config, recipe: str) -> Config:
    """Fills the optimiser fields of `cfg.train` from a named recipe of its task ("custom" leaves them)."""
    coerce("train.recipe", recipe, Recipe)
    if recipe != "custom":
        for key, value in TASK_SETTINGS[cfg.model.task].recipes[recipe].items():
            setattr(cfg.train, key, value)
    cfg.train.recipe = recipe
    return cfg


def recipe_still_holds(cfg: Config) -> bool:
    if cfg.train.recipe == "custom":
        return True
    values = TASK_SETTINGS[cfg.model.task].recipes[cfg.train.recipe]
    return all(getattr(cfg.train, k) == v for k, v in values.items())
