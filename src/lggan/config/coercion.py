"""Values from JSON, YAML or the command line as a field's declared type (one-line errors naming the field)."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal

def size_arg(text: str) -> tuple[int, int]:
    """argparse type of every WIDTHxHEIGHT option (--size, --eval-size): positive integers."""
    import argparse

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 256x128, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return w, h


def coerce(name: str, value: Any, tp: Any) -> Any:
    """Converts a JSON value (or a string from the command line) to the field's declared type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{name}={value}: must be one of {', '.join(map(str, args))}")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(name, value, a)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"{name}: cannot be {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.lower().replace("x", ",").split(",") if v]
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{name}={value}: must be {len(args)} values like 256x128")
        return tuple(coerce(name, v, a) for v, a in zip(value, args))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{name}={value}: must be true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"{name}={value}: must be an integer")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value}: must be an integer") from None
        if not math.isfinite(f) or f != int(f):
            raise ValueError(f"{name}={value}: must be a finite integer")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value}: must be a number") from None
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}={value}: must be a string")
        return value
    return value


def set_field(obj: Any, full_name: str, key: str, value: Any) -> None:
    hints = typing.get_type_hints(type(obj))
    if key not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(obj))
        raise ValueError(f"config: unknown field {full_name!r} (known: {known})")
    setattr(obj, key, coerce(full_name, value, hints[key]))
