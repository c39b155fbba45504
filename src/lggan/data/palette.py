"""Colour palettes: drawing label maps in colours and reading colour label maps as label values.

* Class colour tables ``uint8 [C, 3]`` (a dataset's ``palette``, :func:`make_palette`) and :func:`colorize_label`,
  which draws class indices in them (sample grids, results pages, the demo's canvas).
* :class:`LabelPalette`, colour -> label value, for every colour label map lggan reads: the colour label images of a
  semantic dataset (exact colours -> the label ids its label files hold) and the class-map panels of cross-view files
  (nearest colour within a tolerance -> 0-based classes, void elsewhere). Built in (:func:`builtin_label_palette`),
  from a JSON file (:func:`load_label_palette_json`), or either by name (:func:`resolve_label_palette`, what
  ``--palette`` and ``data.palette`` take).

The built-in palettes are registered by the modules that hold their colours (:func:`register_builtin_palette`): the
dataset modules import this one, never the other way round, and importing ``lggan.data`` registers them all.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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
    outside: tuple[int, int, int] | None = None,
) -> torch.Tensor | np.ndarray:
    """Map class indices to colours.

    Args:
        label: integer map ``[H, W]`` or ``[B, H, W]`` (torch or numpy).
        palette: ``uint8 [num_classes, 3]``.
        channels_first: return ``[..., 3, H, W]`` (torch image layout) instead of ``[..., H, W, 3]``.
        outside: the colour of values outside the palette (cross-view void, ids a model does not know); None: such a
            value is an error.

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
    count = table.shape[0]
    if outside is not None:
        # One more colour at index `count` for every value outside 0..count-1.
        extra = np.asarray(outside, dtype=np.uint8).reshape(1, 3)
        if is_tensor:
            table = torch.cat([table, torch.as_tensor(extra, device=label.device)])
            index = label.long()
            index = torch.where((index >= 0) & (index < count), index, count)
        else:
            table = np.concatenate([table, extra])
            index = label.astype(np.int64)
            index = np.where((index >= 0) & (index < count), index, count)
    else:
        empty = (label.numel() if is_tensor else label.size) == 0
        low, high = (0, 0) if empty else (int(label.min()), int(label.max()))
        if low < 0 or high >= count:
            raise ValueError(f"label values span [{low}, {high}] but the palette has only {count} colours")
        index = label.long() if is_tensor else label
    colours = table[index]
    if is_tensor:
        return colours.movedim(-1, -3).contiguous() if channels_first else colours
    return np.ascontiguousarray(np.moveaxis(colours, -1, -3)) if channels_first else colours


def _colour_keys(rgb: np.ndarray) -> np.ndarray:
    """int64 key r*65536 + g*256 + b of every colour of an ``[..., 3]`` array."""
    rgb = rgb.astype(np.int64, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def nearest_colour(image: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index int64 ``[H, W]`` of each pixel's nearest of ``colours [P, 3]`` (the first on ties), its squared RGB
    distance int64 ``[H, W]``) of an image ``[H, W, 3]`` (channels past the third, e.g. alpha, are ignored).

    Exact, in integers, and computed once per distinct colour of the image.
    """
    rgb = np.asarray(image)[..., :3].astype(np.int64)
    shape = rgb.shape[:-1]
    if rgb.size and (rgb.min() < 0 or rgb.max() > 255):
        distinct, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    else:  # 8-bit colours: one int64 key each, far faster to sort than rows
        keys, inverse = np.unique(_colour_keys(rgb).ravel(), return_inverse=True)
        distinct = np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], 1)
    table = np.asarray(colours).reshape(-1, 3).astype(np.int64)
    index = np.empty(len(distinct), np.int64)
    dist2 = np.empty(len(distinct), np.int64)
    for start in range(0, len(distinct), 4096):  # bounded memory for photos with many colours: [4096, P] at once
        d2 = ((distinct[start : start + 4096, None, :] - table[None]) ** 2).sum(-1)
        index[start : start + 4096] = d2.argmin(1)
        dist2[start : start + 4096] = d2.min(1)
    return index[inverse.ravel()].reshape(shape), dist2[inverse.ravel()].reshape(shape)


def first_channel(panel: np.ndarray, what: str) -> np.ndarray:
    """``[H, W]`` or the first channel of ``[H, W, C]`` (a gray class mask: the release reads only channel 0)."""
    values = np.asarray(panel)
    if values.ndim == 3:
        values = values[..., 0]
    if values.ndim != 2:
        raise ValueError(f"{what} must be [H, W] or [H, W, C], got shape {tuple(np.shape(panel))}")
    return values


# --------------------------------------------------------------------------- colour label maps -> label values

# The built-in label-id palettes of `--palette` (lggan generate, custom datasets, load_generator(...)(palette=...)):
# the colours lggan draws each dataset's label maps in (its sample grids, prediction strips). Cityscapes: the
# official colours of cityscapesscripts; ADE20K: the scene-parsing benchmark's; COCO-Stuff: lggan's own
# (`make_palette`).
LABEL_PALETTE_NAMES = choices(LabelPaletteName)
# PIL modes of a colour label image (the alpha channel of RGBA is ignored).
COLOUR_LABEL_MODES = frozenset({"RGB", "RGBA"})
# Label values a palette may produce: what an 8- or 16-bit single-channel label PNG can hold.
MAX_LABEL_ID = 65535
# The value of a pixel no colour of a class palette is near (cross-view void).
VOID_LABEL = 255
# How a class palette compares a pixel with its colours: RGB distance, or the first channel only (gray class masks).
PaletteKind = Literal["rgb", "gray"]
# Which panels of a cross-view file a class palette reads: the gray masks E/F or the colour segmentations C/D.
PalettePanels = Literal["mask", "colour"]
PALETTE_PANELS = choices(PalettePanels)


@dataclass(frozen=True, eq=False)
class LabelPalette:
    """Colour -> label value of colour label maps: ``colours[p]`` (uint8 ``[P, 3]``) stands for ``ids[p]``.

    A label-id palette (``tolerance`` None) reads the colour label images of a semantic dataset: colours, each listed
    once, are matched exactly, ``ids`` are the values a single-channel label file of that dataset holds there (so its
    usual mapping, e.g. COCO-Stuff's 255 -> don't care, applies afterwards), and a colour not in the palette is an
    error. A class palette (``tolerance`` a distance) reads the class maps of cross-view files: each pixel takes the
    nearest colour within ``tolerance`` (kind "rgb": RGB Euclidean; "gray": ``|first channel - colours[p, 0]|``),
    ``ids`` are 0-based classes, and a pixel with no colour that near (JPEG noise, blended edges) is
    :data:`VOID_LABEL`, as is a colour whose id is :data:`VOID_LABEL`.
    """

    name: str
    colours: np.ndarray  # uint8 [P, 3]
    ids: np.ndarray  # int64 [P]
    # id -> the other ids drawn in its colour, which a colour image therefore reads as that id (Cityscapes 0 <- 1..4)
    merged: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # id -> class name, where the palette knows one (built-in palettes; a JSON file's optional "names")
    names: dict[int, str] = field(default_factory=dict)
    tolerance: float | None = None
    kind: PaletteKind = "rgb"
    panels: PalettePanels = "colour"  # class palettes: the panels of a cross-view file holding the class maps
    colour_names: tuple[str, ...] = ()  # class palettes: a name per colour, where known

    def __post_init__(self) -> None:
        # Exact matching needs every colour once; the nearest colour of a class palette is the first of equal ones.
        keys = _colour_keys(self.colours)
        if self.tolerance is None and len(np.unique(keys)) != len(keys):
            raise ValueError(f"palette {self.name}: a colour is listed twice")

    def colour_of(self, label_id: int) -> np.ndarray | None:
        """uint8 [3]: the colour drawn for `label_id` (also for an id merged into another's colour), None if the
        palette has none."""
        label_id = next((kept for kept, others in self.merged.items() if label_id in others), label_id)
        where = np.flatnonzero(self.ids == label_id)
        return self.colours[where[0]] if len(where) else None

    def colour_index(self, image: np.ndarray, where: str | os.PathLike = "label") -> np.ndarray:
        """Index ``[H, W]`` into ``colours`` of every pixel of ``image``, -1 where no colour matches.

        ``image``: uint8 ``[H, W, 3]`` (``[H, W, 4]``: alpha ignored); a gray class palette also takes ``[H, W]``.
        """
        if self.tolerance is None:
            rgb = np.asarray(image)
            if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
                raise ValueError(f"{where}: a colour label image must be [H, W, 3], got shape {tuple(rgb.shape)}")
            keys = _colour_keys(rgb[..., :3])
            order = np.argsort(_colour_keys(self.colours))
            known = _colour_keys(self.colours)[order]
            pos = np.clip(np.searchsorted(known, keys), 0, len(known) - 1)
            return np.where(known[pos] == keys, order[pos], -1)
        if self.kind == "gray":
            values = first_channel(image, f"palette {self.name}: mask panel").astype(np.int32)
            dist = np.abs(values[..., None] - self.colours[:, 0].astype(np.int32))  # [H, W, P]
            nearest = dist.argmin(axis=-1)
            ok = np.take_along_axis(dist, nearest[..., None], -1)[..., 0] <= self.tolerance
            return np.where(ok, nearest, -1)
        pixels = np.asarray(image)
        if pixels.ndim != 3 or pixels.shape[-1] < 3:
            raise ValueError(f"colour segmentation must be [H, W, 3], got shape {tuple(pixels.shape)}")
        index, dist2 = nearest_colour(pixels, self.colours)
        return np.where(dist2 <= self.tolerance * self.tolerance, index, -1)

    def labels(self, image: np.ndarray, where: str | os.PathLike = "label") -> np.ndarray:
        """int64 label values ``[H, W]`` of a colour image (see :meth:`colour_index`).

        Label-id palettes: a ValueError naming ``where``, the first unknown colour and its pixel (x, y) when a colour
        is not in the palette. Class palettes: :data:`VOID_LABEL` where no colour is near.
        """
        index = self.colour_index(image, where)
        found = index >= 0
        if self.tolerance is None and not found.all():
            rgb = np.asarray(image)
            y, x = (int(v) for v in np.argwhere(~found)[0])
            r, g, b = (int(v) for v in rgb[y, x, :3])
            unknown = np.unique(_colour_keys(rgb[..., :3])[~found])
            more = (f" ({int((~found).sum())} pixels in {len(unknown)} colours are not in it)"
                    if (~found).sum() > 1 else "")
            raise ValueError(f"{where}: colour ({r}, {g}, {b}) at x={x},y={y} is not in the {self.name} palette{more}")
        return np.append(self.ids, VOID_LABEL)[index]  # index -1 (class palettes only) -> the appended void

    def to_json(self) -> dict:
        """The JSON form `load_label_palette_json` reads (a label-id palette)."""
        out = {"name": self.name, "colours": self.colours.tolist(), "ids": [int(i) for i in self.ids]}
        if self.names:
            out["names"] = {str(k): v for k, v in sorted(self.names.items())}
        return out


def palette_of_spec(spec) -> LabelPalette:
    """The label-id palette a dataset's LabelSpec draws its label maps in, named after the dataset: each valid raw
    label value with the colour of its channel; a colour shared by several values (Cityscapes' black ids 0-4,
    pole/polegroup) stands for the smallest of them."""
    raw = np.flatnonzero(np.asarray(spec.lut) >= 0)
    colours = np.asarray(spec.palette, dtype=np.uint8)[np.asarray(spec.lut)[raw]]
    _, first, group = np.unique(_colour_keys(colours), return_index=True, return_inverse=True)
    merged = {int(raw[f]): tuple(int(v) for v in raw[group == g] if v != raw[f]) for g, f in enumerate(first)}
    first = np.sort(first)
    names = {int(r): spec.class_names[int(spec.lut[r])] for r in raw}
    return LabelPalette(spec.dataset, colours[first], raw[first].astype(np.int64),
                        {k: v for k, v in merged.items() if v}, names)


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


# --------------------------------------------------------------------------- built-in palettes

# name -> factory, filled by the modules holding the colours: label-id palettes (LABEL_PALETTE_NAMES) are built from
# nothing, cross-view class palettes for a number of classes.
_LABEL_ID_PALETTES: dict[str, Callable[[], LabelPalette]] = {}
_CLASS_PALETTES: dict[str, Callable[[int], LabelPalette]] = {}


def register_builtin_palette(name: str, factory: Callable, *, classes: bool = False) -> None:
    """Make `name` a built-in palette: ``factory()`` builds a label-id palette (one of LABEL_PALETTE_NAMES), or with
    ``classes`` ``factory(num_classes)`` a cross-view class palette."""
    if not classes and name not in LABEL_PALETTE_NAMES:
        raise ValueError(f"label-id palette {name!r}: not one of LABEL_PALETTE_NAMES "
                         f"({', '.join(LABEL_PALETTE_NAMES)})")
    (_CLASS_PALETTES if classes else _LABEL_ID_PALETTES)[name] = factory


def builtin_palette_names(classes: bool = False) -> tuple[str, ...]:
    """The names of the built-in label-id palettes, or with ``classes`` of the cross-view class palettes."""
    return tuple(_CLASS_PALETTES) if classes else LABEL_PALETTE_NAMES


def builtin_label_palette(name: str, num_classes: int | None = None) -> LabelPalette:
    """A built-in palette by name.

    ``num_classes`` None: a label-id palette of LABEL_PALETTE_NAMES, the colours lggan draws that dataset's label maps
    in. A number: a cross-view class palette (:func:`builtin_palette_names` ``(classes=True)``) for that many classes.
    """
    if num_classes is None:
        if name not in _LABEL_ID_PALETTES:
            raise ValueError(f"--palette {name!r}: unknown (built-in: {', '.join(LABEL_PALETTE_NAMES)}; or a JSON "
                             "file)")
        return _LABEL_ID_PALETTES[name]()
    if name not in _CLASS_PALETTES:
        raise ValueError(f"palette {name!r}: unknown (built-in: {', '.join(_CLASS_PALETTES)}; or a JSON file)")
    return _CLASS_PALETTES[name](num_classes)


# --------------------------------------------------------------------------- palette JSON files

# The keys of the two JSON forms, in the order errors list them.
_LABEL_ID_KEYS = ("name", "colours", "ids", "names")
_CLASS_KEYS = ("colours", "classes", "tolerance", "panels", "names", "name")


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


def _read_json(path: Path, unique_keys: bool) -> object:
    """The parsed file; with ``unique_keys`` a key written twice in one object is an error (json.loads would keep the
    last: a colour listed twice would silently take one id)."""

    def no_duplicate_keys(pairs: list) -> dict:
        seen = [k for k, _ in pairs]
        twice = next((k for k in seen if seen.count(k) > 1), None)
        if twice is not None:
            raise ValueError(f"{path}: key {twice!r} is listed more than once")
        return dict(pairs)

    try:
        return json.loads(path.read_text(), object_pairs_hook=no_duplicate_keys if unique_keys else None)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read palette JSON ({' '.join(str(exc).split())})") from None


def _check_keys(data: dict, known: tuple[str, ...], path: Path) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown palette keys {unknown} (known: {', '.join(known)})")


def _check_colour_table(colours: np.ndarray, path: Path) -> None:
    if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) == 0 or colours.min() < 0 or colours.max() > 255:
        raise ValueError(f"{path}: 'colours' must be a non-empty list of [r, g, b] with values 0..255")


def load_label_palette_json(path: str | os.PathLike, num_classes: int | None = None) -> LabelPalette:
    """A palette from a JSON file; errors name the file.

    Label-id palettes (``num_classes`` None): ``{"name": "mine", "colours": [[r, g, b], ...], "ids": [id, ...]}`` (one
    label id per colour), or ``{"colours": {"#rrggbb": id, "r,g,b": id, ...}}``. Ids are the values a single-channel
    label file would hold (0..65535); colours must differ; ``name`` (optional) is used in messages; ``names``
    (optional, ``{"id": "class name", ...}``) names the classes a custom dataset's sample grids, demo and reports show.

    Cross-view class palettes (``num_classes`` the number of classes): ``{"colours": [[r, g, b], ...], "classes":
    [k, ...], "tolerance": N, "panels": "colour"}``: ``classes`` are 1-based like the release's gray codes (class k =
    gray 10*k; 1..num_classes) and 0 means void; ``tolerance`` is the RGB Euclidean distance within which the nearest
    colour counts (default 0); ``panels`` is "colour" (the C/D colour segmentations, the default) or "mask" (the E/F
    mask panels of 6-panel files). Optional: ``"names": [...]`` one name per colour, ``"name"``.
    """
    path = Path(path)
    if num_classes is None:
        return _label_id_palette(_read_json(path, unique_keys=True), path)
    return _class_palette(_read_json(path, unique_keys=False), path, num_classes)


def _label_id_palette(data: object, path: Path) -> LabelPalette:
    if not isinstance(data, dict) or "colours" not in data:
        raise ValueError(f"{path}: palette JSON must be an object with 'colours' (and 'ids' when 'colours' is a list)")
    _check_keys(data, _LABEL_ID_KEYS, path)
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
    _check_colour_table(colours_arr, path)
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


def _class_palette(data: object, path: Path, num_classes: int) -> LabelPalette:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: palette JSON must be an object with 'colours' and 'classes'")
    _check_keys(data, _CLASS_KEYS, path)
    try:
        colours = np.array(data.get("colours"), dtype=np.int64)
        classes = np.array(data.get("classes"), dtype=np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: 'colours' must be [[r, g, b], ...] and 'classes' a list of integers") from None
    _check_colour_table(colours, path)
    if classes.shape != (len(colours),):
        raise ValueError(f"{path}: 'classes' must give one class per colour ({len(colours)}), got {classes.tolist()}")
    if classes.min() < 0 or classes.max() > num_classes:
        raise ValueError(f"{path}: 'classes' must be 1..{num_classes} (0 = void), got {classes.tolist()}")
    tolerance = data.get("tolerance", 0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) \
            or tolerance < 0:
        raise ValueError(f"{path}: 'tolerance' must be a number >= 0, got {tolerance!r}")
    panels = data.get("panels", "colour")
    if panels not in PALETTE_PANELS:
        raise ValueError(f"{path}: 'panels' must be one of {PALETTE_PANELS}, got {panels!r}")
    names = data.get("names", [])
    if not isinstance(names, list) or (names and len(names) != len(colours)):
        raise ValueError(f"{path}: 'names' must list one name per colour ({len(colours)})")
    zero_based = np.where(classes == 0, VOID_LABEL, classes - 1).astype(np.int64)
    return LabelPalette(str(data.get("name", path.name)), colours.astype(np.uint8), zero_based,
                        tolerance=float(tolerance), panels=panels, colour_names=tuple(str(n) for n in names))


def resolve_label_palette(spec: str | os.PathLike | LabelPalette | None, what: str = "--palette",
                          num_classes: int | None = None) -> LabelPalette | None:
    """None, a LabelPalette, a built-in name or a JSON file -> the palette (None stays None).

    ``num_classes`` None: a label-id palette (LABEL_PALETTE_NAMES, the JSON file's label-id form); a number: a
    cross-view class palette for that many classes (see :func:`builtin_label_palette`, :func:`load_label_palette_json`).
    """
    if spec is None or isinstance(spec, LabelPalette):
        return spec
    names = builtin_palette_names(classes=num_classes is not None)
    if str(spec) in names:
        return builtin_label_palette(str(spec), num_classes)
    if Path(spec).is_file():
        return load_label_palette_json(spec, num_classes)
    raise ValueError(f"{what} {str(spec)!r}: neither a built-in palette ({', '.join(names)}) nor an existing JSON "
                     "file")


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
            return palette.labels(np.asarray(image.convert("RGB")), where)
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
        return palette.labels(array, where)
    if array.ndim != 2:
        raise ValueError(f"{where}: a label map must be [H, W] ids or [H, W, 3] colours, got shape "
                         f"{tuple(array.shape)}")
    return array.astype(np.int64)
