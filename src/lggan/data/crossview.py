"""Cross-view image translation data (Dayton / CVUSA / SVA released format), read as the LGGAN release reads it.

Each sample is one RGB image of square H x H panels side by side:

* 6 panels (e.g. 1536x256, the LGGAN release): A aerial photo | B street photo | C aerial colour segmentation |
  D street colour segmentation | E aerial class mask | F street class mask. Masks are gray, value ``10 * k`` for
  class ``k = 1..6``; any other value is void.
* 4 panels (e.g. 1024x256, the SelectionGAN release): A | B | C | D only. Class masks then come from a colour
  segmentation panel and a palette of its colours (:class:`MaskPalette`, ``data.palette``).

The release's transform (X/data/aligned_dataset.py), which :class:`CrossViewDataset` reproduces:

1. every panel, class masks included, is resized to ``load_size`` x ``load_size`` with PIL's bicubic filter;
2. one crop offset per sample, shared by all panels, is drawn from ``[0, load_size - crop_size - 1]`` (pix2pix's
   ``random.randint(0, load - fine - 1)``: the largest offset ``load - crop`` is never drawn);
3. values are scaled to [-1, 1];
4. class masks: the first channel of the resized mask panel (0..255) compared by exact equality with ``10 * k``.
   Values matching no code (void 0, JPEG noise such as 19 or 41, bicubic-blended edges such as 45) are in no mask.

Class indices in this module are 0-based (``k - 1``); void is 255.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from lggan.images import photo_rgb

__all__ = [
    "BUILTIN_PALETTES",
    "CROSSVIEW_CLASS_NAMES",
    "CROSSVIEW_GROUPS",
    "CROSSVIEW_NUM_CLASSES",
    "CROSSVIEW_PALETTE",
    "IMAGE_EXTENSIONS",
    "PANEL_NAMES",
    "TEST_CROPS",
    "VOID_LABEL",
    "CrossViewDataError",
    "CrossViewDataset",
    "MaskPalette",
    "builtin_palette",
    "class_masks",
    "collate_crossview",
    "colorize_label",
    "crop_offset",
    "default_load_size",
    "first_channel",
    "is_blank_panel",
    "join_panels",
    "label_to_gray",
    "list_crossview_files",
    "load_palette_json",
    "mask_from_color",
    "mask_from_gray",
    "read_crossview_image",
    "read_crossview_inputs",
    "resolve_palette",
    "split_panels",
    "view_label",
]

VOID_LABEL = 255
GRAY_STEP = 10
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
PANEL_NAMES = ("A", "B", "C", "D", "E", "F")
TEST_CROPS = ("center", "random")  # data.test_crop

# The 6 classes of the Dayton/CVUSA family, each a group of Cityscapes colours.
# The first colour of a group is its representative (used for colourising).
CROSSVIEW_CLASS_NAMES: tuple[str, ...] = (
    "vehicle",
    "flat",
    "small_object",
    "structure",
    "sky",
    "vegetation",
)
CROSSVIEW_GROUPS: tuple[tuple[tuple[str, tuple[int, int, int]], ...], ...] = (
    (
        ("car", (0, 0, 142)),
        ("truck", (0, 0, 70)),
        ("bus", (0, 60, 100)),
        ("train", (0, 80, 100)),
        ("motorcycle", (0, 0, 230)),
        ("bicycle", (119, 11, 32)),
    ),
    (("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)), ("terrain", (152, 251, 152))),
    (
        ("pole", (153, 153, 153)),
        ("traffic light", (250, 170, 30)),
        ("traffic sign", (220, 220, 0)),
        ("person", (220, 20, 60)),
        ("rider", (255, 0, 0)),
    ),
    (("building", (70, 70, 70)), ("wall", (102, 102, 156)), ("fence", (190, 153, 153))),
    (("sky", (70, 130, 180)),),
    (("vegetation", (107, 142, 35)),),
)
CROSSVIEW_NUM_CLASSES = len(CROSSVIEW_GROUPS)
CROSSVIEW_PALETTE = np.array([group[0][1] for group in CROSSVIEW_GROUPS], dtype=np.uint8)
CROSSVIEW_PALETTE.setflags(write=False)

View = Literal["aerial", "street"]
VIEWS: tuple[str, ...] = ("aerial", "street")
# The panel each view's class map is read from: gray mask panels (6-panel files) or colour segmentations.
_MASK_PANEL = {"aerial": "E", "street": "F"}
_COLOUR_PANEL = {"aerial": "C", "street": "D"}
PALETTE_PANELS = ("mask", "colour")


class CrossViewDataError(ValueError):
    """A cross-view file or folder is malformed (the message names it)."""


# --------------------------------------------------------------------------- panels


def split_panels(array: np.ndarray, path: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """Split an ``[H, n*H(, C)]`` image into its square panels ``{"A": ..., ...}``.

    ``n`` must be 4 or 6; the panels are views into ``array`` (no copy).
    """
    where = f"{path}: " if path is not None else ""
    if array.ndim not in (2, 3):
        raise CrossViewDataError(f"{where}expected an [H, W] or [H, W, C] image, got shape {tuple(array.shape)}")
    height, width = array.shape[:2]
    if height == 0 or width % height != 0 or width // height not in (4, 6):
        raise CrossViewDataError(
            f"{where}size {width}x{height} is not 4 or 6 square panels side by side "
            f"(width must be 4*H or 6*H, e.g. 1024x256 or 1536x256)"
        )
    count = width // height
    return {PANEL_NAMES[i]: array[:, i * height : (i + 1) * height] for i in range(count)}


def join_panels(panels: dict[str, np.ndarray]) -> np.ndarray:
    """Inverse of :func:`split_panels`: concatenate panels A.. in order along the width."""
    count = 6 if "E" in panels or "F" in panels else 4
    missing = [name for name in PANEL_NAMES[:count] if name not in panels]
    if missing:
        raise ValueError(f"join_panels: missing panels {missing} (need A..{PANEL_NAMES[count - 1]})")
    arrays = [np.asarray(panels[name]) for name in PANEL_NAMES[:count]]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim < 2 or arrays[0].shape[0] != arrays[0].shape[1]:
        raise ValueError(f"join_panels: panels must be equal square arrays, got shapes {sorted(shapes)}")
    return np.concatenate(arrays, axis=1)


# --------------------------------------------------------------------------- masks


def first_channel(panel: np.ndarray, what: str) -> np.ndarray:
    """``[H, W]`` or the first channel of ``[H, W, C]`` (the release reads only channel 0 of the mask panel)."""
    values = np.asarray(panel)
    if values.ndim == 3:
        values = values[..., 0]
    if values.ndim != 2:
        raise ValueError(f"{what} must be [H, W] or [H, W, C], got shape {tuple(np.shape(panel))}")
    return values


def mask_from_gray(gray: np.ndarray, num_classes: int = CROSSVIEW_NUM_CLASSES, tol: float = 0) -> np.ndarray:
    """Decode a gray class mask (``10*k`` for class ``k = 1..num_classes``) to uint8 labels ``[H, W]``.

    As the release: only the first channel of ``[H, W, C]`` is read, and ``tol = 0`` means exact equality, so
    JPEG noise (19, 21, ...) and blended edges (45) are void. A value within ``tol`` of ``10*k`` gives label
    ``k - 1``; everything else gives :data:`VOID_LABEL`.
    """
    if not 1 <= num_classes <= 255 // GRAY_STEP:
        raise ValueError(f"num_classes must be in 1..{255 // GRAY_STEP} for gray masks, got {num_classes}")
    if not 0 <= tol < GRAY_STEP / 2:
        raise ValueError(f"tol must be in [0, {GRAY_STEP / 2}) so class bins do not overlap, got {tol}")
    values = first_channel(gray, "gray mask").astype(np.float32)
    code = np.rint(values / GRAY_STEP)
    ok = (code >= 1) & (code <= num_classes) & (np.abs(values - GRAY_STEP * code) <= tol)
    return np.where(ok, code - 1, VOID_LABEL).astype(np.uint8)


def _nearest_colour(rgb: np.ndarray, colours: np.ndarray, tolerance: float) -> np.ndarray:
    """Index ``[H, W]`` of the nearest of ``colours [P, 3]`` (RGB Euclidean, in integers); -1 beyond tolerance."""
    pixels = np.asarray(rgb)
    if pixels.ndim != 3 or pixels.shape[-1] < 3:
        raise ValueError(f"colour segmentation must be [H, W, 3], got shape {tuple(pixels.shape)}")
    flat = pixels[..., :3].reshape(-1, 1, 3).astype(np.int32)  # [N, 1, 3]
    dist2 = ((flat - colours[None].astype(np.int32)) ** 2).sum(axis=-1)  # [N, P] squared distances
    nearest = dist2.argmin(axis=1)
    ok = dist2[np.arange(dist2.shape[0]), nearest] <= tolerance * tolerance
    return np.where(ok, nearest, -1).reshape(pixels.shape[:2])


def _group_colors(groups: Sequence[Sequence[tuple[str, Sequence[int]]]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten colour groups to ``colors [P, 3] int32`` and ``class_of [P] uint8``."""
    colors = np.array([rgb for group in groups for _, rgb in group], dtype=np.int32).reshape(-1, 3)
    class_of = np.array([k for k, group in enumerate(groups) for _ in group], dtype=np.uint8)
    return colors, class_of


def mask_from_color(
    rgb: np.ndarray,
    tolerance: float = 40.0,
    groups: Sequence[Sequence[tuple[str, Sequence[int]]]] = CROSSVIEW_GROUPS,
) -> np.ndarray:
    """Labels from a colour segmentation: nearest palette colour within ``tolerance``, else void.

    ``rgb`` is ``[H, W, 3]``; distances are RGB Euclidean, computed exactly in
    integers. Returns uint8 ``[H, W]`` with the group index or :data:`VOID_LABEL`.
    """
    if tolerance < 0 or not math.isfinite(tolerance):
        raise ValueError(f"color tolerance must be a finite value >= 0, got {tolerance}")
    colors, class_of = _group_colors(groups)
    index = _nearest_colour(rgb, colors, tolerance)
    return np.where(index >= 0, class_of[index], VOID_LABEL).astype(np.uint8)


# --------------------------------------------------------------------------- palettes


@dataclass(frozen=True, eq=False)
class MaskPalette:
    """How a panel's pixel values become class labels (``data.palette``).

    kind "gray": the first channel compared with ``colours[:, 0]`` (|v - code| <= tolerance; 0 = exact, the
    release). kind "rgb": the nearest of ``colours`` in RGB (Euclidean) within ``tolerance``. ``classes[p]`` is
    the 0-based class of colour ``p`` (:data:`VOID_LABEL` for a colour that means "no class"). ``panels`` says
    which panels carry the class maps: "mask" (E aerial / F street, 6-panel files only) or "colour" (C / D).
    """

    name: str
    kind: Literal["gray", "rgb"]
    colours: np.ndarray  # [P, 3] int32
    classes: np.ndarray  # [P] uint8, 0-based or VOID_LABEL
    tolerance: float
    panels: Literal["mask", "colour"]
    colour_names: tuple[str, ...] = ()

    def panel_name(self, view: str) -> str:
        """"E"/"F" or "C"/"D": the panel holding ``view``'s class map under this palette."""
        if view not in VIEWS:
            raise ValueError(f"view must be 'aerial' or 'street', got {view!r}")
        return (_MASK_PANEL if self.panels == "mask" else _COLOUR_PANEL)[view]

    def colour_index(self, panel: np.ndarray) -> np.ndarray:
        """Index ``[H, W]`` into ``colours`` of every pixel of ``panel``; -1 where no colour is within tolerance."""
        if self.kind == "rgb":
            return _nearest_colour(panel, self.colours, self.tolerance)
        values = first_channel(panel, f"palette {self.name}: mask panel").astype(np.int32)
        dist = np.abs(values[..., None] - self.colours[:, 0])  # [H, W, P]
        nearest = dist.argmin(axis=-1)
        ok = np.take_along_axis(dist, nearest[..., None], -1)[..., 0] <= self.tolerance
        return np.where(ok, nearest, -1)

    def labels(self, panel: np.ndarray) -> np.ndarray:
        """uint8 labels ``[H, W]`` (0-based classes, :data:`VOID_LABEL` elsewhere) of a panel ``[H, W(, 3)]``."""
        index = self.colour_index(panel)
        lut = np.append(self.classes, np.uint8(VOID_LABEL))  # index -1 -> the appended void
        return lut[index].astype(np.uint8)

    def colour_label(self, p: int) -> str:
        """Readable name of palette entry ``p``: its colour, its name (if any) and its class."""
        colour = int(self.colours[p, 0]) if self.kind == "gray" else ",".join(str(int(v)) for v in self.colours[p])
        name = f" {self.colour_names[p]}" if p < len(self.colour_names) and self.colour_names[p] else ""
        k = int(self.classes[p])
        target = "void" if k == VOID_LABEL else (
            CROSSVIEW_CLASS_NAMES[k] if k < len(CROSSVIEW_CLASS_NAMES) else f"class {k + 1}")
        return f"{colour}{name} -> {target}"

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings (for evaluation protocols and reports)."""
        return {"name": self.name, "kind": self.kind, "panels": self.panels, "tolerance": self.tolerance,
                "colours": self.colours.tolist(), "classes": [int(k) for k in self.classes]}


def _gray_palette(num_classes: int) -> MaskPalette:
    # The release's codes: class k (1-based) is gray 10*k, compared exactly on the first channel.
    if not 1 <= num_classes <= 255 // GRAY_STEP:
        raise ValueError(f"palette lggan-gray: num_classes must be in 1..{255 // GRAY_STEP}, got {num_classes}")
    codes = GRAY_STEP * np.arange(1, num_classes + 1, dtype=np.int32)
    return MaskPalette("lggan-gray", "gray", np.repeat(codes[:, None], 3, axis=1),
                       np.arange(num_classes, dtype=np.uint8), 0.0, "mask")


def _cityscapes_palette(num_classes: int) -> MaskPalette:
    colours, classes = _group_colors(CROSSVIEW_GROUPS)
    names = tuple(name for group in CROSSVIEW_GROUPS for name, _ in group)
    classes = _check_palette_classes(classes, num_classes, "cityscapes-groups")
    return MaskPalette("cityscapes-groups", "rgb", colours, classes, 40.0, "colour", names)


# SelectionGAN's CVUSA street maps (its conversion script, scripts/convert_sematic_map_dayton.txt, which in fact reads
# cvusa/streetview/annotations): CVUSA annotation 0 sky -> black, 1 man-made -> blue, 2 road -> red, anything else
# (vegetation) -> green. The aerial map panel of those files is an all-black placeholder.
# Which LGGAN class each of these means is our reading, not a released fact: the LGGAN release ships CVUSA only with
# its own gray masks. sky -> "sky" (gray 50), man-made -> "structure" (building/wall/fence, gray 40; CVUSA's
# man-made also covers vehicles and poles, which have no colour of their own here), road -> "flat" (road/sidewalk/
# terrain, gray 20), vegetation -> "vegetation" (gray 60). A JSON palette file (data.palette=FILE) sets another mapping.
_SELECTIONGAN_CVUSA = (
    ("sky", (0, 0, 0), "sky"),
    ("man-made", (0, 0, 255), "structure"),
    ("road", (255, 0, 0), "flat"),
    ("vegetation", (0, 255, 0), "vegetation"),
)
# Nearest-colour tolerance for these JPEG files: the palette colours are >= 255 apart, so 100 keeps JPEG noise
# (tens of levels) and rejects chroma-blended edges (e.g. (128, 128, 0) between red and green, 181 from both).
_SELECTIONGAN_TOLERANCE = 100.0


def _selectiongan_palette(num_classes: int) -> MaskPalette:
    colours = np.array([rgb for _, rgb, _ in _SELECTIONGAN_CVUSA], dtype=np.int32)
    classes = np.array([CROSSVIEW_CLASS_NAMES.index(c) for _, _, c in _SELECTIONGAN_CVUSA], dtype=np.uint8)
    classes = _check_palette_classes(classes, num_classes, "selectiongan-cvusa")
    return MaskPalette("selectiongan-cvusa", "rgb", colours, classes, _SELECTIONGAN_TOLERANCE, "colour",
                       tuple(n for n, _, _ in _SELECTIONGAN_CVUSA))


BUILTIN_PALETTES = {
    "lggan-gray": _gray_palette,
    "cityscapes-groups": _cityscapes_palette,
    "selectiongan-cvusa": _selectiongan_palette,
}


def _check_palette_classes(classes: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    bad = [int(k) for k in classes if k != VOID_LABEL and k >= num_classes]
    if bad:
        raise ValueError(f"palette {where}: classes {bad} do not exist with {num_classes} classes")
    return classes.astype(np.uint8)


def builtin_palette(name: str, num_classes: int = CROSSVIEW_NUM_CLASSES) -> MaskPalette:
    """A built-in palette by name (see :data:`BUILTIN_PALETTES`)."""
    if name not in BUILTIN_PALETTES:
        raise ValueError(f"palette {name!r}: unknown (built-in: {', '.join(BUILTIN_PALETTES)}; or a JSON file)")
    return BUILTIN_PALETTES[name](num_classes)


def load_palette_json(path: str | os.PathLike[str], num_classes: int = CROSSVIEW_NUM_CLASSES) -> MaskPalette:
    """A palette from a JSON file.

    ``{"colours": [[r, g, b], ...], "classes": [k, ...], "tolerance": N, "panels": "colour"}``: ``classes`` are
    1-based like the release's gray codes (class k = gray 10*k; 1..num_classes) and 0 means void; ``tolerance``
    is the RGB Euclidean distance within which the nearest colour counts (default 0); ``panels`` is "colour"
    (the C/D colour segmentations, the default) or "mask" (the E/F mask panels of 6-panel files). Optional:
    ``"names": [...]`` one name per colour, ``"name"``. Errors name the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read palette JSON ({' '.join(str(exc).split())})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: palette JSON must be an object with 'colours' and 'classes'")
    unknown = sorted(set(data) - {"colours", "classes", "tolerance", "panels", "names", "name"})
    if unknown:
        raise ValueError(f"{path}: unknown palette keys {unknown} (known: colours, classes, tolerance, panels, "
                         "names, name)")
    colours, classes = data.get("colours"), data.get("classes")
    try:
        colours = np.array(colours, dtype=np.int64)
        classes = np.array(classes, dtype=np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: 'colours' must be [[r, g, b], ...] and 'classes' a list of integers") from None
    if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) == 0 or colours.min() < 0 or colours.max() > 255:
        raise ValueError(f"{path}: 'colours' must be a non-empty list of [r, g, b] with values 0..255")
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
    zero_based = np.where(classes == 0, VOID_LABEL, classes - 1).astype(np.uint8)
    return MaskPalette(str(data.get("name", path.name)), "rgb", colours.astype(np.int32), zero_based,
                       float(tolerance), panels, tuple(str(n) for n in names))


def resolve_palette(spec: str | os.PathLike[str] | MaskPalette | None, num_panels: int,
                    num_classes: int = CROSSVIEW_NUM_CLASSES, where: str | os.PathLike[str] | None = None
                    ) -> MaskPalette:
    """The palette for a file of ``num_panels`` panels.

    ``spec`` None: the release's gray codes ("lggan-gray") for 6-panel files, the Cityscapes colour groups
    ("cityscapes-groups") for 4-panel files. A name of :data:`BUILTIN_PALETTES`, a JSON file (:func:`load_palette_json`)
    or a :class:`MaskPalette` otherwise. A palette reading the mask panels cannot serve a 4-panel file (``where``
    names the file in that error).
    """
    if isinstance(spec, MaskPalette):
        palette = spec
    elif spec is None:
        palette = builtin_palette("lggan-gray" if num_panels == 6 else "cityscapes-groups", num_classes)
    elif str(spec) in BUILTIN_PALETTES:
        palette = builtin_palette(str(spec), num_classes)
    elif Path(spec).is_file():
        palette = load_palette_json(spec, num_classes)
    else:
        raise ValueError(f"data.palette {str(spec)!r}: neither a built-in palette ({', '.join(BUILTIN_PALETTES)}) "
                         "nor an existing JSON file")
    if palette.panels == "mask" and num_panels != 6:
        prefix = f"{where}: " if where is not None else ""
        raise CrossViewDataError(f"{prefix}palette {palette.name} reads the gray mask panels E/F, but the file has "
                                 f"{num_panels} panels (set data.palette to a colour palette, e.g. selectiongan-cvusa)")
    return palette


def label_to_gray(label: np.ndarray) -> np.ndarray:
    """Encode uint8 labels as the released gray mask (``10*(label+1)``, void -> 0)."""
    label = np.asarray(label)
    return np.where(label == VOID_LABEL, 0, GRAY_STEP * (label.astype(np.int32) + 1)).astype(np.uint8)


def colorize_label(label: np.ndarray, palette: np.ndarray = CROSSVIEW_PALETTE) -> np.ndarray:
    """Colour labels ``[H, W]`` with ``palette [C, 3]``; void and out-of-range -> black."""
    label = np.asarray(label)
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = palette
    lut[VOID_LABEL] = 0
    return lut[label]


def is_blank_panel(panel: np.ndarray) -> bool:
    """True for an (almost) all-black panel ``[H, W, 3]``, e.g. the placeholder aerial map of SelectionGAN's CVUSA.

    JPEG's chroma upsampling bleeds a neighbouring panel's colours into the edge column, so up to 2 % of the
    pixels may be brighter than black.
    """
    values = np.asarray(panel)
    bright = (values.max(axis=-1) if values.ndim == 3 else values) > 16
    return bool(bright.mean() <= 0.02) if bright.size else True


def view_label(
    panels: dict[str, np.ndarray],
    view: View,
    palette: str | os.PathLike[str] | MaskPalette | None = None,
    path: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Class labels ``[H, W]`` uint8 of one view of a file's panels (at their size), read with ``palette``.

    ``palette`` None: the gray mask (E/F) of a 6-panel file, the colour segmentation (C/D) of a 4-panel one.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be 'aerial' or 'street', got {view!r}")
    pal = resolve_palette(palette, len(panels), where=path)
    return pal.labels(panels[pal.panel_name(view)])


def class_masks(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot class masks: ``label [B, H, W]`` long -> float ``[B, C, H, W]``; void -> all zeros."""
    if label.dim() != 3:
        raise ValueError(f"label must be [B, H, W], got shape {tuple(label.shape)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    label = label.long()
    valid = label < num_classes
    bad = ~valid & (label != VOID_LABEL) | (label < 0)
    if bool(bad.any()):
        raise ValueError(
            f"label has values outside 0..{num_classes - 1} and void {VOID_LABEL}: "
            f"{sorted(torch.unique(label[bad]).tolist())[:8]}"
        )
    onehot = torch.nn.functional.one_hot(torch.where(valid, label, 0), num_classes)  # [B, H, W, C]
    return onehot.permute(0, 3, 1, 2).to(torch.float32) * valid.unsqueeze(1)


# --------------------------------------------------------------------------- files


def read_crossview_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a cross-view file as RGB uint8 ``[H, W, 3]``; unreadable files raise naming the file."""
    try:
        with Image.open(path) as image:
            return photo_rgb(image)
    except FileNotFoundError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise CrossViewDataError(f"{path}: cannot read image ({exc})") from exc


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header only."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise CrossViewDataError(f"{path}: cannot read image ({exc})") from exc


def list_crossview_files(root: str | os.PathLike[str], split: str) -> list[Path]:
    """Sorted image files of ``root/split``; missing or empty folders raise naming the folder."""
    folder = Path(root) / split
    if not folder.is_dir():
        present = sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
        raise FileNotFoundError(
            f"{folder}: split folder not found (expected ROOT/{{train,test}}/*.png|jpg; "
            f"subfolders of {root}: {present or 'none'})"
        )
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"{folder}: no {'/'.join(IMAGE_EXTENSIONS)} images found (empty split folder)")
    return files


def default_load_size(crop_size: int) -> int:
    """Training resize before random crop: 286 for 256, 72 for 64 (ratio 286/256, rounded half up)."""
    return int(crop_size * 286 / 256 + 0.5)


def _positive_int(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def _to_unit_range(image: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` -> float ``[3, H, W]`` in [-1, 1]."""
    # astype copies, so read-only arrays from PIL and flipped (negative-stride) views are fine.
    return torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1).div_(127.5).sub_(1.0).contiguous()


def _resize_bicubic(array: np.ndarray, size: int) -> np.ndarray:
    """PIL bicubic resize of a uint8 panel ``[S, S, 3]`` to ``[size, size, 3]`` (the release's transforms.Resize)."""
    if array.shape[0] == size and array.shape[1] == size:
        return array  # PIL returns an unchanged copy at the same size
    return np.asarray(Image.fromarray(np.ascontiguousarray(array)).resize((size, size), Image.Resampling.BICUBIC))


def crop_offset(load_size: int, crop_size: int, mode: str, seed: int = 0, index: int = 0) -> tuple[int, int]:
    """(top, left) of the crop of a ``load_size`` square to ``crop_size``.

    "train": the release's draw, each of the two from [0, load - crop - 1] with torch's global RNG (seeded per
    DataLoader worker); "random": the same range, drawn from an RNG seeded by (``seed``, ``index``), so a test
    sample always gets the same crop; "center": ((load - crop) // 2, (load - crop) // 2).
    """
    if load_size < crop_size:
        raise ValueError(f"load_size ({load_size}) must be >= crop_size ({crop_size})")
    # pix2pix: random.randint(0, max(0, load - fine - 1)), both ends included.
    high = max(0, load_size - crop_size - 1)
    if mode == "train":
        top, left = (int(v) for v in torch.randint(0, high + 1, (2,)))
    elif mode == "random":
        # SeedSequence takes non-negative integers: fold a negative train.seed into 64 bits.
        rng = np.random.default_rng([int(seed) % 2**64, int(index)])
        top, left = (int(v) for v in rng.integers(0, high + 1, size=2))
    elif mode == "center":
        top = left = (load_size - crop_size) // 2
    else:
        raise ValueError(f"crop mode must be 'train' or one of {TEST_CROPS} (data.test_crop), got {mode!r}")
    return top, left


def _wiring(direction: str) -> tuple[str, str, str, str]:
    """(condition photo, target photo, condition colour map, view of the target's class map) panels."""
    # a2g: aerial photo + street seg -> street photo; g2a: the mirror image.
    return ("A", "B", "D", "street") if direction == "a2g" else ("B", "A", "C", "aerial")


def _transform(panels: dict[str, np.ndarray], direction: str, palette: MaskPalette, load_size: int, crop_size: int,
               top: int, left: int, flip: bool, path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The release's per-sample transform of a file's panels: bicubic resize, one shared crop, [-1, 1], masks."""
    cond_name, target_name, semantic_name, view = _wiring(direction)
    names = (cond_name, target_name, semantic_name, palette.panel_name(view))
    if palette.panels == "colour" and is_blank_panel(panels[names[3]]):
        # SelectionGAN's CVUSA files carry an all-black placeholder as aerial map: no class masks to read there.
        raise CrossViewDataError(f"{path}: the {view} map panel {names[3]} is blank (a placeholder), so it has no "
                                 f"class masks for direction {direction}")
    # Every panel, class masks included, is bicubic-resized: [P, P, 3] -> [L, L, 3].
    resized = [_resize_bicubic(panels[n], load_size) for n in names]
    out = []
    for array in resized:
        array = array[top : top + crop_size, left : left + crop_size]  # [crop, crop, 3], one offset for all
        out.append(array[:, ::-1] if flip else array)
    cond, target, semantic, label_panel = out
    # Masks from the resized, cropped panel: blended edge values match no code and become void (as released).
    label = palette.labels(label_panel)  # [crop, crop] uint8
    cond_t, semantic_t = _to_unit_range(cond), _to_unit_range(semantic)
    return {
        "input": torch.cat([cond_t, semantic_t], dim=0),  # [6, crop, crop]
        "cond_image": cond_t,
        "semantic": semantic_t,
        "image": _to_unit_range(target),
        "label": torch.from_numpy(label.astype(np.int64)),
    }


class CrossViewDataset(Dataset):
    """Cross-view pairs from ``root/split/*.{png,jpg}`` in the 4- or 6-panel format, transformed as released.

    ``direction="a2g"``: input = concat(A aerial, D street colour seg), target B, labels of the street view
    (F, or D under a colour palette). ``"g2a"``: input = concat(B, C), target A, labels of the aerial view (E / C).
    ``panel_size`` is the files' native panel size (inferred from the first file when None; every file must match).

    Every panel, class masks included, is bicubic-resized to ``load_size`` and cropped to ``crop_size`` (default
    ``panel_size``) at one offset shared by all panels; masks compare the resized mask panel with the palette
    (exact gray codes by default). Training (``train`` defaults to ``split == "train"``): ``load_size`` defaults
    to 286 for 256 (72 for 64), the offset is drawn from [0, load - crop - 1] as pix2pix does, and ``flip`` flips
    every panel together (the release would flip only A and B; its scripts pass --no_flip). Evaluation:
    ``load_size`` defaults to ``crop_size`` (the whole panel); ``test_crop`` "random" is the release's random
    test crop, drawn from an RNG seeded by (``seed``, item index) so it is reproducible; "center" crops the middle.

    ``palette``: see :func:`resolve_palette` (``data.palette``); ``color_tolerance`` overrides the tolerance of
    a colour palette.

    Items: ``input [6,H,W]``, ``cond_image [3,H,W]``, ``semantic [3,H,W]``, ``image [3,H,W]`` (all float in
    [-1, 1]), ``label [H,W]`` long (0..num_classes-1, void 255), ``path`` str.
    """

    num_classes: int = CROSSVIEW_NUM_CLASSES
    class_names: tuple[str, ...] = CROSSVIEW_CLASS_NAMES
    palette: np.ndarray = CROSSVIEW_PALETTE

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        direction: str = "a2g",
        panel_size: int | None = None,
        load_size: int | None = None,
        crop_size: int | None = None,
        flip: bool = False,
        train: bool | None = None,
        color_tolerance: float | None = None,
        mask_palette: str | os.PathLike[str] | MaskPalette | None = None,
        test_crop: str = "center",
        seed: int = 0,
    ) -> None:
        if direction not in ("a2g", "g2a"):
            raise ValueError(f"direction must be 'a2g' or 'g2a', got {direction!r}")
        if color_tolerance is not None and (color_tolerance < 0 or not math.isfinite(color_tolerance)):
            raise ValueError(f"color_tolerance must be a finite value >= 0, got {color_tolerance}")
        if test_crop not in TEST_CROPS:
            raise ValueError(f"test_crop (data.test_crop) must be one of {TEST_CROPS}, got {test_crop!r}")
        self.root = Path(root)
        self.split = split
        self.direction = direction
        self.train = split == "train" if train is None else bool(train)
        self.flip = bool(flip) and self.train
        self.color_tolerance = color_tolerance
        self.test_crop = test_crop
        self.seed = int(seed)
        self.mask_palette_spec = mask_palette
        self.files = list_crossview_files(self.root, split)

        panel_size = _positive_int("panel_size", panel_size)
        width, height = _image_size(self.files[0])
        if height == 0 or width % height != 0 or width // height not in (4, 6):
            raise CrossViewDataError(
                f"{self.files[0]}: size {width}x{height} is not 4 or 6 square panels side by side"
            )
        if panel_size is not None and height != panel_size:
            raise CrossViewDataError(f"{self.files[0]}: panel size {height} px, but panel_size={panel_size}")
        self.panel_size = height
        self.crop_size = _positive_int("crop_size", crop_size) or self.panel_size
        load = _positive_int("load_size", load_size)
        self.load_size = load or (default_load_size(self.crop_size) if self.train else self.crop_size)
        if self.load_size < self.crop_size:
            raise ValueError(f"load_size ({self.load_size}) must be >= crop_size ({self.crop_size})")
        # Palette per panel count; the first file's is resolved now, so a bad data.palette fails at construction.
        self._palettes = {width // height: self._make_palette(width // height)}

    def _make_palette(self, num_panels: int, where: Path | None = None) -> MaskPalette:
        pal = resolve_palette(self.mask_palette_spec, num_panels, self.num_classes,
                              where=where or self.files[0])
        if self.color_tolerance is not None and pal.kind == "rgb":
            pal = MaskPalette(pal.name, pal.kind, pal.colours, pal.classes, float(self.color_tolerance), pal.panels,
                              pal.colour_names)
        return pal

    def palette_for(self, num_panels: int, path: Path | None = None) -> MaskPalette:
        """The mask palette of a file with ``num_panels`` panels (errors name ``path``)."""
        if num_panels not in self._palettes:
            self._palettes[num_panels] = self._make_palette(num_panels, path)
        return self._palettes[num_panels]

    @property
    def crop_mode(self) -> str:
        """"train" (random crops from the global RNG) or the evaluation crop ("center" / "random", seeded)."""
        return "train" if self.train else self.test_crop

    def protocol(self) -> dict[str, Any]:
        """How items are made, JSON-ready (recorded by `lggan evaluate`)."""
        return {
            "resize": "bicubic (PIL), every panel including the class masks",
            "panel_size": self.panel_size,
            "load_size": self.load_size,
            "crop_size": self.crop_size,
            "crop": self.crop_mode,
            "crop_offset_range": [0, max(0, self.load_size - self.crop_size - 1)],
            "crop_seed": self.seed if self.crop_mode == "random" else None,
            "flip": self.flip,
            "direction": self.direction,
            "mask_palette": {str(n): p.describe() for n, p in sorted(self._palettes.items())},
        }

    def __len__(self) -> int:
        return len(self.files)

    def _read_panels(self, path: Path) -> dict[str, np.ndarray]:
        panels = split_panels(read_crossview_image(path), path)
        size = panels["A"].shape[0]
        if size != self.panel_size:
            raise CrossViewDataError(
                f"{path}: panel size {size} px differs from the dataset's {self.panel_size} px "
                f"(from {self.files[0].name})"
            )
        return panels

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        panels = self._read_panels(path)
        palette = self.palette_for(len(panels), path)
        top, left = crop_offset(self.load_size, self.crop_size, self.crop_mode, self.seed, index)
        flip = self.flip and bool(torch.rand(()) < 0.5)
        item = _transform(panels, self.direction, palette, self.load_size, self.crop_size, top, left, flip, path)
        item["path"] = str(path)
        return item


def read_crossview_inputs(
    path: str | os.PathLike[str], direction: str = "a2g", size: int | None = None,
    color_tolerance: float | None = None, mask_palette: str | os.PathLike[str] | MaskPalette | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generator inputs of one panel file for `lggan generate`: (concat(I_a, S_g) [6,S,S] in [-1,1], label [S,S]).

    Same wiring and transform as :class:`CrossViewDataset` with the whole panel: every panel bicubic-resized to
    ``size`` (default: the panel size), masks read with ``mask_palette`` after the resize.
    """
    if direction not in ("a2g", "g2a"):
        raise ValueError(f"direction must be 'a2g' or 'g2a', got {direction!r}")
    panels = split_panels(read_crossview_image(path), path)
    palette = resolve_palette(mask_palette, len(panels), where=path)
    if color_tolerance is not None and palette.kind == "rgb":
        palette = MaskPalette(palette.name, palette.kind, palette.colours, palette.classes, float(color_tolerance),
                              palette.panels, palette.colour_names)
    size = _positive_int("size", size) or panels["A"].shape[0]
    item = _transform(panels, direction, palette, size, size, 0, 0, False, path)
    return item["input"], item["label"]


def collate_crossview(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors of :class:`CrossViewDataset` items; ``path`` becomes a list."""
    if not batch:
        raise ValueError("collate_crossview: empty batch")
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else list(values)
    return out
