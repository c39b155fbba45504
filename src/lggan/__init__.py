"""lggan: LGGAN (Tang et al., CVPR 2020) for semantic image synthesis and cross-view image translation."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_generator", "__version__"]


def load_generator(path: Any, device: Any = "auto", use_ema: bool = True, **options: Any) -> Any:
    """Loads a trained or converted generator; see `lggan.generate.load_generator` (amp, channels_last, ...)."""
    from .generate import load_generator as _load

    return _load(path, device, use_ema, **options)
