"""Colour palettes and colourising of label maps (for sample grids and reports)."""

from __future__ import annotations

import numpy as np
import torch


def bit_palette(count: int) -> np.ndarray:
    """Deterministic, well-separated colours ``uint8 [count, 3]``; entry 0 is black.

    Spreads the bits of the index over the three channels, most significant
    colour bit first (the classic PASCAL VOC colour-map scheme), so neighbouring
    indices get very different colours.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    index = np.arange(count, dtype=np.int64)
    colours = np.zeros((count, 3), dtype=np.int64)
    remaining = index.copy()
    for bit in range(8):
        for channel in range(3):
            colours[:, channel] |= ((remaining >> channel) & 1) << (7 - bit)
        remaining >>= 3
    return colours.astype(np.uint8)


def make_palette(num_classes: int, dontcare_index: int | None = None) -> np.ndarray:
    """Palette ``uint8 [num_classes, 3]`` for a dataset without official colours.

    Class ``i`` gets ``bit_palette`` colour ``i + 1`` (never black), except
    ``dontcare_index`` which is black, so "unlabelled" reads as empty in a grid.
    """
    if num_classes <= 0:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    palette = bit_palette(num_classes + 1)[1:].copy()
    if dontcare_index is not None:
        if not 0 <= dontcare_index < num_classes:
            raise ValueError(f"dontcare_index {dontcare_index} outside [0, {num_classes})")
        palette[dontcare_index] = 0
    return palette


def colorize_label(
    label: torch.Tensor | np.ndarray,
    palette: torch.Tensor | np.ndarray,
    *,
    channels_first: bool = False,
) -> torch.Tensor | np.ndarray:
    """Map class indices to colours.

    Args:
        label: integer map ``[H, W]`` or ``[B, H, W]`` (torch or numpy).
        palette: ``uint8 [num_classes, 3]``.
        channels_first: return ``[..., 3, H, W]`` (torch image layout) instead of ``[..., H, W, 3]``.

    Returns:
        uint8 colours of the same kind as ``label`` (tensor on ``label``'s device, or array).
    """
    is_tensor = isinstance(label, torch.Tensor)
    if label.ndim not in (2, 3):
        raise ValueError(f"label must be [H, W] or [B, H, W], got shape {tuple(label.shape)}")
    if is_tensor:
        if label.dtype.is_floating_point or label.dtype == torch.bool:
            raise ValueError(f"label must hold integer class indices, got dtype {label.dtype}")
        table = torch.as_tensor(np.asarray(palette), dtype=torch.uint8, device=label.device)
    else:
        label = np.asarray(label)
        if not np.issubdtype(label.dtype, np.integer):
            raise ValueError(f"label must hold integer class indices, got dtype {label.dtype}")
        table = np.asarray(palette, dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 3:
        raise ValueError(f"palette must be [num_classes, 3], got shape {tuple(table.shape)}")
    empty = (label.numel() if is_tensor else label.size) == 0
    low, high = (0, 0) if empty else (int(label.min()), int(label.max()))
    if low < 0 or high >= table.shape[0]:
        raise ValueError(
            f"label values span [{low}, {high}] but the palette has only {table.shape[0]} colours"
        )
    if is_tensor:
        colours = table[label.long()]
        return colours.movedim(-1, -3).contiguous() if channels_first else colours
    colours = table[label]
    return np.ascontiguousarray(np.moveaxis(colours, -1, -3)) if channels_first else colours
