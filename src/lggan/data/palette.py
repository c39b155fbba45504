"""Colour palettes: colourising label maps (sample grids, reports) and reading colour label images as label ids."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import LabelPaletteName, choices


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


# --------------------------------------------------------------------------- colour label images -> label ids

# The built-in colour palettes of `--palette` (lggan generate, custom datasets, load_generator(...)(palette=...)):
# the colours lggan draws each dataset's label maps in (its sample grids, prediction strips). Cityscapes: the
# official colours of cityscapesscripts; ADE20K and COCO-Stuff: lggan's own class colours (`make_palette`).
LABEL_PALETTE_NAMES = choices(LabelPaletteName)
# PIL modes of a colour label image (the alpha channel of RGBA is ignored).
COLOUR_LABEL_MODES = frozenset({"RGB", "RGBA"})
# Label values a palette may produce: what an 8- or 16-bit single-channel label PNG can hold.
MAX_LABEL_ID = 65535
# How many unknown colours an error lists.
_MAX_COLOURS_LISTED = 5


def _colour_keys(rgb: np.ndarray) -> np.ndarray:
    """int64 key r*65536 + g*256 + b of every colour of an ``[..., 3]`` array."""
    rgb = rgb.astype(np.int64, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@dataclass(frozen=True, eq=False)
class LabelPalette:
    """Colour -> label id of colour label images: ``colours[p]`` (uint8 ``[P, 3]``, all different) is written for
    the label value ``ids[p]``, the value a single-channel label file of that dataset holds there (so the dataset's
    usual mapping, e.g. COCO-Stuff's 255 -> don't care, applies afterwards). Colours are matched exactly."""

    name: str
    colours: np.ndarray  # uint8 [P, 3]
    ids: np.ndarray  # int64 [P]
    # id -> the other ids drawn in its colour, which a colour image therefore reads as that id (Cityscapes 0 <- 1..4)
    merged: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # id -> class name, where the palette knows one (built-in palettes; a JSON file's optional "names")
    names: dict[int, str] = field(default_factory=dict)

    def colour_of(self, label_id: int) -> np.ndarray | None:
        """uint8 [3]: the colour drawn for `label_id` (also for an id merged into another's colour), None if the
        palette has none."""
        label_id = next((kept for kept, others in self.merged.items() if label_id in others), label_id)
        where = np.flatnonzero(self.ids == label_id)
        return self.colours[where[0]] if len(where) else None

    def __post_init__(self) -> None:
        keys = _colour_keys(self.colours)
        if len(np.unique(keys)) != len(keys):
            raise ValueError(f"palette {self.name}: a colour is listed twice")

    def to_ids(self, rgb: np.ndarray, where: str | os.PathLike = "label") -> np.ndarray:
        """int64 label ids ``[H, W]`` of a colour image ``uint8 [H, W, 3]`` (or ``[H, W, 4]``: alpha ignored).

        ValueError naming ``where``, the first unknown colour and its pixel (x, y) when a colour is not in the palette.
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
            raise ValueError(f"{where}: a colour label image must be [H, W, 3], got shape {tuple(rgb.shape)}")
        keys = _colour_keys(rgb[..., :3])
        order = np.argsort(_colour_keys(self.colours))
        known = _colour_keys(self.colours)[order]
        pos = np.clip(np.searchsorted(known, keys), 0, len(known) - 1)
        found = known[pos] == keys
        if not found.all():
            y, x = (int(v) for v in np.argwhere(~found)[0])
            r, g, b = (int(v) for v in rgb[y, x, :3])
            unknown = np.unique(keys[~found])
            more = (f" ({int((~found).sum())} pixels in {len(unknown)} colours are not in it)"
                    if (~found).sum() > 1 else "")
            raise ValueError(f"{where}: colour ({r}, {g}, {b}) at x={x},y={y} is not in the {self.name} palette{more}")
        return self.ids[order][pos]

    def to_json(self) -> dict:
        """The JSON form `load_label_palette_json` reads."""
        out = {"name": self.name, "colours": self.colours.tolist(), "ids": [int(i) for i in self.ids]}
        if self.names:
            out["names"] = {str(k): v for k, v in sorted(self.names.items())}
        return out


def _palette_of_spec(name: str, spec) -> LabelPalette:
    """Each valid raw label value of a LabelSpec with the colour of its channel; a colour shared by several values
    (Cityscapes' black ids 0-4, pole/polegroup) stands for the smallest of them."""
    raw = np.flatnonzero(np.asarray(spec.lut) >= 0)
    colours = np.asarray(spec.palette, dtype=np.uint8)[np.asarray(spec.lut)[raw]]
    _, first, group = np.unique(_colour_keys(colours), return_index=True, return_inverse=True)
    merged = {int(raw[f]): tuple(int(v) for v in raw[group == g] if v != raw[f]) for g, f in enumerate(first)}
    first = np.sort(first)
    names = {int(r): spec.class_names[int(spec.lut[r])] for r in raw}
    return LabelPalette(name, colours[first], raw[first].astype(np.int64), {k: v for k, v in merged.items() if v},
                        names)


def palette_summary(palette: LabelPalette) -> list[str]:
    """What a dataset read through `palette` holds, in lines for `data inspect`: its ids, the data.num_classes a
    custom dataset of these ids needs, and which ids a colour image cannot tell apart."""
    top = int(palette.ids.max())
    lines = [f"palette {palette.name}: {len(palette.ids)} colours -> label ids {int(palette.ids.min())}..{top}; a "
             f"custom dataset of these colour maps needs data.num_classes={top + 1} (largest id + 1) and "
             f"data.palette={palette.name}"]
    for kept, others in sorted(palette.merged.items()):
        colour = ", ".join(str(int(v)) for v in palette.colour_of(kept))
        ids = (f"ids {', '.join(map(str, others))} share" if len(others) > 1 else f"id {others[0]} shares")
        lines.append(f"palette {palette.name}: {ids} colour ({colour}) with id {kept} and "
                     f"{'are' if len(others) > 1 else 'is'} read as {kept}")
    return lines


def builtin_label_palette(name: str) -> LabelPalette:
    """A palette of LABEL_PALETTE_NAMES: the colours lggan draws that dataset's label maps in."""
    if name == "cityscapes":
        from .cityscapes import cityscapes_label_spec as spec
    elif name == "ade20k":
        from .ade20k import ade20k_label_spec as spec
    elif name == "coco-stuff":
        from .coco_stuff import coco_stuff_label_spec as spec
    else:
        raise ValueError(f"--palette {name!r}: unknown (built-in: {', '.join(LABEL_PALETTE_NAMES)}; or a JSON file)")
    return _palette_of_spec(name, spec())


def _parse_colour(text: object, path: Path) -> list[int]:
    """'#rrggbb' or 'r,g,b' -> [r, g, b]."""
    s = str(text).strip()
    try:
        if s.startswith("#") and len(s) == 7:
            return [int(s[i : i + 2], 16) for i in (1, 3, 5)]
        parts = [int(v) for v in s.strip("()[] ").split(",")]
        if len(parts) == 3:
            return parts
    except ValueError:
        pass
    raise ValueError(f"{path}: colour key {text!r} is not '#rrggbb' or 'r,g,b'")


def load_label_palette_json(path: str | os.PathLike) -> LabelPalette:
    """A palette from a JSON file; errors name the file.

    ``{"name": "mine", "colours": [[r, g, b], ...], "ids": [id, ...]}`` (one label id per colour), or
    ``{"colours": {"#rrggbb": id, "r,g,b": id, ...}}``. Ids are the values a single-channel label file would hold
    (0..65535); colours must differ; ``name`` (optional) is used in messages; ``names`` (optional,
    ``{"id": "class name", ...}``) names the classes a custom dataset's sample grids, demo and reports show.
    """
    path = Path(path)

    def no_duplicate_keys(pairs: list) -> dict:
        # json.loads would keep the last of two equal keys: a colour listed twice would silently take one id.
        seen = [k for k, _ in pairs]
        twice = next((k for k in seen if seen.count(k) > 1), None)
        if twice is not None:
            raise ValueError(f"{path}: key {twice!r} is listed more than once")
        return dict(pairs)

    try:
        data = json.loads(path.read_text(), object_pairs_hook=no_duplicate_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read palette JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict) or "colours" not in data:
        raise ValueError(f"{path}: palette JSON must be an object with 'colours' (and 'ids' when 'colours' is a list)")
    unknown = sorted(set(data) - {"name", "colours", "ids", "names"})
    if unknown:
        raise ValueError(f"{path}: unknown palette keys {unknown} (known: name, colours, ids, names)")
    names = _class_names(data.get("names", {}), path)
    colours, ids = data["colours"], data.get("ids")
    if isinstance(colours, dict):
        if ids is not None:
            raise ValueError(f"{path}: 'ids' goes with a list of 'colours'; a 'colours' object maps colour -> id "
                             "itself")
        ids = list(colours.values())
        colours = [_parse_colour(k, path) for k in colours]
    def integer(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    # Every id and colour component an integer as written: 1.5 or "3" would otherwise be truncated or cast.
    if not isinstance(ids, list) or not all(integer(i) for i in ids):
        bad = next((i for i in ids if not integer(i)), ids) if isinstance(ids, list) else ids
        raise ValueError(f"{path}: label ids must be integers, got {bad!r}")
    if not isinstance(colours, list) or not all(isinstance(c, list) and all(integer(v) for v in c) for c in colours):
        raise ValueError(f"{path}: 'colours' must be [[r, g, b], ...] of integers 0..255")
    try:
        colours_arr = np.array(colours, dtype=np.int64)
        ids_arr = np.array(ids, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{path}: 'colours' must be [[r, g, b], ...] and 'ids' a list of integers") from None
    if colours_arr.ndim != 2 or colours_arr.shape[1] != 3 or len(colours_arr) == 0 or colours_arr.min() < 0 \
            or colours_arr.max() > 255:
        raise ValueError(f"{path}: 'colours' must be a non-empty list of [r, g, b] with values 0..255")
    if ids_arr.shape != (len(colours_arr),) or any(isinstance(i, bool) for i in ids):
        raise ValueError(f"{path}: 'ids' must give one integer label id per colour ({len(colours_arr)})")
    if ids_arr.min() < 0 or ids_arr.max() > MAX_LABEL_ID:
        raise ValueError(f"{path}: label ids must be 0..{MAX_LABEL_ID}, got {ids_arr.min()}..{ids_arr.max()}")
    keys, counts = np.unique(_colour_keys(colours_arr), return_counts=True)
    if (counts > 1).any():
        k = int(keys[counts > 1][0])
        raise ValueError(f"{path}: colour ({k >> 16}, {(k >> 8) & 255}, {k & 255}) is listed more than once")
    return LabelPalette(str(data.get("name", path.name)), colours_arr.astype(np.uint8), ids_arr, names=names)


def _class_names(given: object, path: Path) -> dict[int, str]:
    """A palette JSON's "names" object {"id": "name"} -> {id: name}; errors name the file."""
    if not isinstance(given, dict):
        raise ValueError(f"{path}: 'names' must be an object {{\"id\": \"class name\", ...}}")
    names: dict[int, str] = {}
    for key, value in given.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) <= MAX_LABEL_ID) or not isinstance(value, str) \
                or not value.strip():
            raise ValueError(f"{path}: names entry {key!r}: {value!r}: expected a label id 0..{MAX_LABEL_ID} and a "
                             "non-empty name")
        names[int(key)] = value.strip()
    return names


def resolve_label_palette(spec: str | os.PathLike | LabelPalette | None, what: str = "--palette"
                          ) -> LabelPalette | None:
    """None, a LabelPalette, a name of LABEL_PALETTE_NAMES or a JSON file -> the palette (None stays None)."""
    if spec is None or isinstance(spec, LabelPalette):
        return spec
    if str(spec) in LABEL_PALETTE_NAMES:
        return builtin_label_palette(str(spec))
    if Path(spec).is_file():
        return load_label_palette_json(spec)
    raise ValueError(f"{what} {str(spec)!r}: neither a built-in palette ({', '.join(LABEL_PALETTE_NAMES)}) nor an "
                     "existing JSON file")


def colour_label_hint() -> str:
    """What to do about a colour label image read without a palette (the end of that error message)."""
    return (f"a colour label image needs a palette to turn its colours into class ids: pass --palette NAME|FILE.json "
            f"(built-in: {', '.join(LABEL_PALETTE_NAMES)}; custom datasets: data.palette)")


def label_image_values(image: Image.Image | np.ndarray, palette: LabelPalette | None,
                       where: str | os.PathLike = "label") -> np.ndarray:
    """The label values (as a single-channel label file holds them) of a PIL image or array.

    Single-channel images / ``[H, W]`` arrays are the values themselves; colour images (PIL RGB/RGBA, or uint8
    ``[H, W, 3]`` arrays) are converted through ``palette``, which they require (ValueError naming ``where``).
    """
    if isinstance(image, Image.Image):
        if image.mode in COLOUR_LABEL_MODES:
            if palette is None:
                raise ValueError(f"{where}: PIL mode {image.mode}: {colour_label_hint()}")
            return palette.to_ids(np.asarray(image.convert("RGB")), where)
        if image.mode not in ("L", "P", "I", "I;16", "I;16L", "I;16B", "1"):
            raise ValueError(f"{where}: a label image must be single-channel ids or a colour image, got PIL mode "
                             f"{image.mode}")
        return np.array(image).astype(np.int64)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        if palette is None:
            raise ValueError(f"{where}: an array of shape {tuple(array.shape)}: {colour_label_hint()}")
        if array.dtype != np.uint8:
            raise ValueError(f"{where}: a colour label array must be uint8, got {array.dtype}")
        return palette.to_ids(array, where)
    if array.ndim != 2:
        raise ValueError(f"{where}: a label map must be [H, W] ids or [H, W, 3] colours, got shape "
                         f"{tuple(array.shape)}")
    return array.astype(np.int64)
