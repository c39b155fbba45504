"""Images for people: tensors in [-1, 1] to uint8, weight maps to heat images, sample grids to PNG."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from .io import atomic_write


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] image [B,3,H,W] -> [0, 1], clamped."""
    return ((x.detach().float() + 1.0) / 2.0).clamp(0.0, 1.0)


def gray_to_rgb(w: torch.Tensor) -> torch.Tensor:
    """A weight map [B,1,H,W] in [0, 1] -> [B,3,H,W] gray image."""
    return w.detach().float().clamp(0.0, 1.0).expand(-1, 3, -1, -1)


def palette_to_rgb(label: torch.Tensor, palette: np.ndarray | torch.Tensor, ignore_color=(0, 0, 0)) -> torch.Tensor:
    """Class indices [B,H,W] -> colours [B,3,H,W] in [0, 1]; indices outside the palette get `ignore_color`."""
    pal = torch.as_tensor(np.asarray(palette), dtype=torch.float32, device=label.device) / 255.0  # [C,3]
    pal = torch.cat([pal, torch.tensor([ignore_color], dtype=torch.float32, device=label.device) / 255.0])
    idx = label.long().clone()
    idx[(idx < 0) | (idx >= pal.shape[0] - 1)] = pal.shape[0] - 1
    return pal[idx].permute(0, 3, 1, 2).contiguous()


def make_grid(columns: list[torch.Tensor], pad: int = 2) -> np.ndarray:
    """Columns of [B,3,H,W] images in [0, 1] -> one uint8 [B*(H+pad), n*(W+pad), 3] grid, a row per sample."""
    b, _, h, w = columns[0].shape
    grid = np.full((b * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for j, col in enumerate(columns):
        if col.shape[0] != b or col.shape[-2:] != (h, w):
            col = torch.nn.functional.interpolate(col.float(), size=(h, w), mode="nearest")
        arr = (col.detach().float().cpu().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for i in range(b):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = arr[i]
    return grid


def save_png(array: np.ndarray, path: str | os.PathLike) -> None:
    """Writes a uint8 [H,W,3] or [H,W] array as PNG through a temp file + rename."""
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"), suffix=".png")


def tensor_to_uint8(img: torch.Tensor) -> np.ndarray:
    """One [3,H,W] image in [-1, 1] -> uint8 [H,W,3]."""
    return (to_unit(img).cpu() * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
