"""A config from the outside: `--set section.field=value` overrides and --config JSON/YAML files."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..io import one_line
from .coercion import set_field
from .recipes import apply_recipe, recipe_still_holds
from .sections import Config, upgrade_legacy
from .validation import validate


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Applies `section.field=value` strings (the CLI's --set) to a copy of cfg."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected section.field=value, e.g. train.batch_size=8")
        name, value = item.split("=", 1)
        parts = name.strip().split(".")
        if len(parts) != 2 or not dataclasses.is_dataclass(getattr(cfg, parts[0], None)):
            raise ValueError(f"--set {item!r}: expected section.field with section in data, model, loss, train")
        if name.strip() == "train.recipe":  # a recipe fills its fields now; later --set items refine them
            apply_recipe(cfg, value.strip())
            continue
        set_field(getattr(cfg, parts[0]), name.strip(), parts[1], value.strip())
    if not recipe_still_holds(cfg):
        cfg.train.recipe = "custom"  # the config says so when a field of the recipe was changed
    validate(cfg)
    return cfg


CONFIG_SECTIONS = ("data", "model", "loss", "train")
YAML_SUFFIXES = (".yaml", ".yml")
MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; this bounds the work of reading a wrong file
MAX_MESSAGE_CHARS = 300  # a parser's message quoted in an error: one line, cut to this


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The sections of a --config file: JSON, or YAML (.yaml/.yml, needs PyYAML), e.g. {"train": {"batch_size": 8}}.

    Any subset of the sections and fields of config.json; a "preset" key names the preset to start from.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--config {p}: no such file")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"--config {p}: {p.stat().st_size:,} bytes; a config file is at most "
                         f"{MAX_CONFIG_BYTES:,} bytes")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--config {p}: cannot be read ({one_line(e, MAX_MESSAGE_CHARS)})") from None
    if p.suffix.lower() in YAML_SUFFIXES:
        try:
            import yaml
        except ImportError:
            raise ValueError(f"--config {p}: reading YAML needs the PyYAML package, which is not installed "
                             "(pip install pyyaml), or write the file as JSON") from None
        try:
            # Aliases (*name) are refused before anything is built: nested ones expand exponentially (a few hundred
            # bytes can stand for gigabytes), and a config has no use for them.
            if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
                raise ValueError(f"--config {p}: YAML aliases (*name) are not supported; write the values out")
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"--config {p}: not valid YAML ({one_line(e, MAX_MESSAGE_CHARS)})") from None
    else:
        try:
            data = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as e:
            hint = " (YAML files need the suffix .yaml or .yml)" if p.suffix.lower() != ".json" else ""
            raise ValueError(f"--config {p}: not valid JSON ({one_line(e, MAX_MESSAGE_CHARS)}){hint}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {p}: expected a mapping of sections ({', '.join(CONFIG_SECTIONS)}), got "
                         f"{type(data).__name__}")
    for section, values in data.items():
        if section == "preset":
            if not isinstance(values, str):
                raise ValueError(f"--config {p}: preset: expected a preset name, got {values!r}")
            continue
        if section not in CONFIG_SECTIONS:
            raise ValueError(f"--config {p}: unknown section {section!r} (known: {', '.join(CONFIG_SECTIONS)}, "
                             "preset)")
        if not isinstance(values, dict):
            raise ValueError(f"--config {p}: section {section!r}: expected a mapping of field: value, got "
                             f"{values!r}")
    return data


def apply_config_file(cfg: Config, path: str | os.PathLike) -> Config:
    """Applies the sections of a --config file to a copy of cfg (the CLI: after --preset, before --set).

    Fields are applied as --set applies them (typed and checked); train.recipe first, so that the file's other
    train fields refine it. The result is not validated yet: `apply_overrides` does that once at the end.
    """
    data = upgrade_legacy(read_config_file(path))
    cfg = copy.deepcopy(cfg)
    try:
        train = data.get("train") or {}
        if "recipe" in train:
            apply_recipe(cfg, train["recipe"])
        for section, values in data.items():
            if section == "preset":
                continue
            for key, value in values.items():
                if section == "train" and key == "recipe":
                    continue
                set_field(getattr(cfg, section), f"{section}.{key}", key, value)
    except ValueError as e:
        raise ValueError(f"--config {path}: {str(e).removeprefix('config: ')}") from None
    if not recipe_still_holds(cfg):
        cfg.train.recipe = "custom"
    return cfg
