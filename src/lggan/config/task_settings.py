"""What the config knows of each task (model.task): its datasets, its optimiser recipes (train.recipe) and the fields
only its networks read. lggan.tasks implements the tasks; validation and the recipes read this table, never a name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .types import CROSSVIEW_DATASETS, SEMANTIC_DATASETS, UPSAMPLINGS

if TYPE_CHECKING:
    from .sections import Config


@dataclass(frozen=True)
class TaskSettings:
    """One task's datasets, recipes and own fields (each "section.field" with the value that leaves it unused)."""

    datasets: tuple[str, ...]
    recipes: Mapping[str, Mapping[str, Any]]  # train.recipe (release, paper) -> the train fields it sets
    own_fields: Mapping[str, Any] = field(default_factory=dict)  # set under another task they would be ignored
    check: Callable[[Config], None] | None = None  # what else a config of this task must satisfy


def _spade_size(cfg: Config) -> None:
    """The SPADE global generator starts from a (W, H) / 2^n grid: the size must divide by 2^n."""
    w, h = cfg.data.crop_size or cfg.data.load_size
    step = 2 ** UPSAMPLINGS[cfg.model.num_upsampling_layers]
    if w % step or h % step:
        raise ValueError(
            f"data size {w}x{h}: the SPADE global generator with model.num_upsampling_layers="
            f"{cfg.model.num_upsampling_layers!r} needs width and height divisible by {step}"
        )


SEMANTIC = TaskSettings(
    datasets=SEMANTIC_DATASETS,
    recipes={
        # S/train_*.sh run SPADE's TTUR: G lr 2e-4 / 2, D lr 2e-4 * 2, Adam betas hard-coded (0, 0.9); the lr drops
        # once per epoch after niter; the G step comes first and the D step regenerates the fakes with the updated G.
        "release": dict(lr_g=1e-4, lr_d=4e-4, beta1=0.0, beta2=0.9, lr_schedule="spade", step_order="g_then_d"),
        # The paper (§4.2): Adam with beta1 0, beta2 0.999, no TTUR (GauGAN's lr 2e-4 for both).
        "paper": dict(lr_g=2e-4, lr_d=2e-4, beta1=0.0, beta2=0.999, lr_schedule="spade", step_order="g_then_d"),
    },
    own_fields={"model.local_groups": None, "model.num_upsampling_layers": "normal", "model.class_pool": "image",
                "loss.class_ce": 0.0},
    check=_spade_size,
)

CROSSVIEW = TaskSettings(
    datasets=CROSSVIEW_DATASETS,
    recipes={
        # X/train_*.sh: Adam (0.5, 0.999), lr 2e-4 for G and for D1+D2, pix2pix's "lambda" decay, one G forward.
        "release": dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, lr_schedule="pix2pix",
                        step_order="one_forward"),
        # The paper's cross-view text gives no other optimiser settings than the release's.
        "paper": dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, lr_schedule="pix2pix", step_order="one_forward"),
    },
    own_fields={"model.discriminator": "spade"},
)

# model.task -> its settings (config.TaskName declares the names; lggan.tasks.TASKS the implementations).
TASK_SETTINGS: dict[str, TaskSettings] = {"semantic": SEMANTIC, "crossview": CROSSVIEW}
# The task each dataset belongs to.
DATASET_TASK: dict[str, str] = {d: name for name, s in TASK_SETTINGS.items() for d in s.datasets}


def read_field(cfg: Config, name: str) -> Any:
    """The value of "section.field" in cfg."""
    section, key = name.split(".")
    return getattr(getattr(cfg, section), key)


def check_task_fields(cfg: Config) -> None:
    """The task's own checks; then fields that only other tasks' networks read must keep their neutral values (set,
    they would be silently ignored)."""
    task = cfg.model.task
    mine = TASK_SETTINGS[task]
    if mine.check is not None:
        mine.check(cfg)
    for other_name, other in TASK_SETTINGS.items():
        if other_name == task:
            continue
        for name, neutral in other.own_fields.items():
            value = read_field(cfg, name)
            if name not in mine.own_fields and value != neutral:
                raise ValueError(f"{name}={value!r} does not apply to model.task={task!r} (leave it at {neutral!r})")
