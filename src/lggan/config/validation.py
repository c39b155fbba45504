"""Checks of a whole config before any work starts, and what changed between two configs (`--resume`)."""

from __future__ import annotations

import copy
import json
import typing
from typing import Annotated, Any, Literal

from .coercion import coerce
from .sections import ARCHITECTURE_FIELDS, SECTION_NAMES, Config
from .task_settings import DATASET_TASK, check_task_fields
from .types import Range, field_range


def _flatten(d: dict[str, Any]) -> dict[str, Any]:
    """{"model": {"ngf": 64}} -> {"model.ngf": 64}, values normalised as JSON stores them (tuples -> lists)."""
    flat: dict[str, Any] = {}
    for section, values in json.loads(json.dumps(d)).items():
        if isinstance(values, dict):
            flat.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            flat[section] = values
    return flat


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields whose value differs between two config dicts: {"train.lr": (old, new)} (absent = None)."""
    a, b = _flatten(old), _flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def architecture_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The changes among ARCHITECTURE_FIELDS (a prefix ending in "." covers its whole section)."""
    return {k: v for k, v in config_changes(old, new).items()
            if any(k.startswith(f) if f.endswith(".") else k == f for f in ARCHITECTURE_FIELDS)}


def missing_fields(cfg: Config) -> list[str]:
    """Fields a preset leaves for the user to set (the `custom` preset: data.num_classes)."""
    return ["data.num_classes"] if cfg.data.num_classes is None else []


def validate(cfg: Config, partial: bool = False) -> None:
    """Rejects inconsistent settings early, with the field's name.

    partial: fields still to be set by the user (`missing_fields`, e.g. the `custom` preset's data.num_classes) are
    allowed, and the checks that need them are skipped; a config that a run uses is validated in full.
    """
    if cfg.data.num_classes is None:
        if not partial:
            raise ValueError(
                f"data.num_classes is not set: the {cfg.data.dataset} dataset needs the number of classes of its "
                "label maps: --set data.num_classes=N (label values 0..N-1; N + 1 with data.dontcare), or "
                "data.num_classes in --config")
        cfg = copy.deepcopy(cfg)
        cfg.data.num_classes = max(2, cfg.model.local_groups or 2)  # a stand-in: the other fields are still checked
    for section in (cfg.data, cfg.model, cfg.loss, cfg.train):
        for name, tp in typing.get_type_hints(type(section), include_extras=True).items():
            full, value = f"{SECTION_NAMES[type(section)]}.{name}", getattr(section, name)
            bare = typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp
            if typing.get_origin(bare) is Literal:
                coerce(full, value, bare)
            check_range(full, value, field_range(tp))
    if cfg.train.eval_every and not cfg.train.eval_segmenter:
        raise ValueError(f"train.eval_every={cfg.train.eval_every} needs train.eval_segmenter (a .safetensors file "
                         "from `lggan train-segmenter`)")
    if DATASET_TASK[cfg.data.dataset] != cfg.model.task:
        raise ValueError(
            f"data.dataset={cfg.data.dataset!r} does not fit model.task={cfg.model.task!r} "
            f"(it is a {DATASET_TASK[cfg.data.dataset]} dataset)"
        )
    check_task_fields(cfg)  # the task's own checks and fields (config/task_settings.py)
    groups = cfg.model.local_groups
    if groups is not None and groups > cfg.data.num_classes:
        raise ValueError(f"model.local_groups={groups}: must be between 2 and data.num_classes="
                         f"{cfg.data.num_classes} (or none: one group per class)")
    if cfg.train.compile and cfg.train.activation_checkpointing:
        # The recompute guard (spectral norm's u, v and BN statistics updated once) runs in eager mode only; under
        # torch.compile the recompute happens inside the compiled graph, where it has not been verified.
        raise ValueError("train.compile=true: not supported together with train.activation_checkpointing=true "
                         "(set one of them to false)")


def check_range(name: str, value: Any, allowed: Range | None) -> None:
    """Raises `NAME=VALUE: must be ...` when a number (or any number of a size tuple) lies outside `allowed`."""
    if allowed is None or value is None:
        return
    for v in value if isinstance(value, tuple) else (value,):
        if not allowed.holds(v):
            kind = "an integer" if isinstance(v, int) else "a finite number"
            shown = "x".join(map(str, value)) if isinstance(value, tuple) else value
            raise ValueError(f"{name}={shown}: must be {kind} {allowed.text()}")
