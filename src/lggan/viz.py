"""Images for people: tensors in [-1, 1] to uint8, weight maps to heat images, sample grids to PNG."""

from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .data.palette import colorize_label
from .io import atomic_write


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] image [B,3,H,W] -> [0, 1], clamped."""
    return ((x.detach().float() + 1.0) / 2.0).clamp(0.0, 1.0)


def gray_to_rgb(w: torch.Tensor) -> torch.Tensor:
    """A weight map [B,1,H,W] in [0, 1] -> [B,3,H,W] gray image."""
    return w.detach().float().clamp(0.0, 1.0).expand(-1, 3, -1, -1)


def palette_to_rgb(label: torch.Tensor, palette: np.ndarray | torch.Tensor, ignore_color=(0, 0, 0)) -> torch.Tensor:
    """Class indices [B,H,W] -> colours [B,3,H,W] in [0, 1]; indices outside the palette get `ignore_color`."""
    return colorize_label(label, palette, channels_first=True, outside=ignore_color).float() / 255.0


def label_picture(label: torch.Tensor, palette: np.ndarray | torch.Tensor) -> np.ndarray:
    """Class indices [H,W] -> uint8 [H,W,3] in the palette's colours (indices outside it black), for a PNG."""
    return colorize_label(label.cpu(), palette, outside=(0, 0, 0)).numpy()


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


# Gap between tiles of a captioned grid, and the margin around the text of a caption.
GRID_PAD = 2
_CAPTION_MARGIN = 2
_ELLIPSIS = "..."


@lru_cache(maxsize=1)
def _caption_font():
    return ImageFont.load_default()


def caption_height() -> int:
    """Height in pixels of the caption band above each tile of `captioned_grid`."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    bottom = draw.textbbox((0, 0), "Ag|", font=_caption_font())[3]  # ascenders and descenders both counted
    return bottom + 2 * _CAPTION_MARGIN


def grid_layout(count: int, height: int, width: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """(grid height, width) and the top-left (y, x) of each tile's pixels in a `captioned_grid` of `count` tiles.

    Tiles fill ceil(sqrt(count)) columns row by row; each has its caption band directly above it.
    """
    cols = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / cols))
    band = caption_height()
    cell_h, cell_w = band + height, width
    size = (rows * (cell_h + GRID_PAD) + GRID_PAD, cols * (cell_w + GRID_PAD) + GRID_PAD)
    origins = [(GRID_PAD + (k // cols) * (cell_h + GRID_PAD) + band, GRID_PAD + (k % cols) * (cell_w + GRID_PAD))
               for k in range(count)]
    return size, origins


def _fit(draw, text: str, width: int) -> str:
    """`text`, cut and ended with '...' where it is wider than `width` pixels (a tile's width)."""
    font = _caption_font()
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + _ELLIPSIS, font=font) > width:
        text = text[:-1]
    return text + _ELLIPSIS if text else ""


def captioned_grid(tiles: list[np.ndarray], captions: list[str]) -> np.ndarray:
    """uint8 [H,W,3] tiles of one size in a grid (see `grid_layout`), each under its caption in PIL's default font.

    The tiles' pixels are copied unchanged (captions sit in their own band), so a grid can be read back exactly.
    No tiles: a caption-only image that says so.
    """
    if len(tiles) != len(captions):
        raise ValueError(f"captioned_grid: {len(tiles)} tiles but {len(captions)} captions")
    if not tiles:
        text = "no class present"
        draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        canvas = Image.new("RGB", (int(draw.textlength(text, font=_caption_font())) + 2 * _CAPTION_MARGIN,
                                   caption_height()), (255, 255, 255))
        ImageDraw.Draw(canvas).text((_CAPTION_MARGIN, _CAPTION_MARGIN), text, fill=(0, 0, 0), font=_caption_font())
        return np.asarray(canvas)
    h, w = tiles[0].shape[:2]
    if any(t.shape != (h, w, 3) or t.dtype != np.uint8 for t in tiles):
        raise ValueError(f"captioned_grid: every tile must be uint8 [{h}, {w}, 3]")
    (gh, gw), origins = grid_layout(len(tiles), h, w)
    grid = np.full((gh, gw, 3), 255, dtype=np.uint8)
    for tile, (y, x) in zip(tiles, origins):
        grid[y : y + h, x : x + w] = tile
    canvas = Image.fromarray(grid)
    draw = ImageDraw.Draw(canvas)
    for caption, (y, x) in zip(captions, origins):
        draw.text((x + _CAPTION_MARGIN, y - caption_height() + _CAPTION_MARGIN),
                  _fit(draw, caption, w - 2 * _CAPTION_MARGIN), fill=(0, 0, 0), font=_caption_font())
    return np.asarray(canvas).copy()


def image_strip(panels: list[np.ndarray], pad: int = GRID_PAD) -> np.ndarray:
    """uint8 [H,W,3] panels of one height side by side, `pad` white pixels between and around them."""
    h = panels[0].shape[0]
    if any(p.ndim != 3 or p.shape[0] != h or p.shape[2] != 3 or p.dtype != np.uint8 for p in panels):
        raise ValueError(f"image_strip: every panel must be uint8 [{h}, W, 3]")
    strip = np.full((h + 2 * pad, sum(p.shape[1] for p in panels) + pad * (len(panels) + 1), 3), 255, np.uint8)
    x = pad
    for p in panels:
        strip[pad : pad + h, x : x + p.shape[1]] = p
        x += p.shape[1] + pad
    return strip


def strip_panels(strip: np.ndarray, count: int, pad: int = GRID_PAD) -> list[np.ndarray]:
    """The `count` equal-width panels of an `image_strip`, read back."""
    h, w = strip.shape[0] - 2 * pad, (strip.shape[1] - pad * (count + 1)) // count
    return [strip[pad : pad + h, pad + k * (w + pad) : pad + k * (w + pad) + w] for k in range(count)]
