"""Cross-view image translation data (Dayton / CVUSA / SVA released format), read as the LGGAN release reads it.

Each sample is one RGB image of square H x H panels side by side:

* 6 panels (e.g. 1536x256, the LGGAN release): A aerial photo | B street photo | C aerial colour segmentation |
  D street colour segmentation | E aerial class mask | F street class mask. Masks are gray, value ``10 * k`` for
  class ``k = 1..6``; any other value is void.
* 4 panels (e.g. 1024x256, the SelectionGAN release): A | B | C | D only. Class masks then come from a colour
  segmentation panel and a class palette of its colours (:class:`lggan.data.palette.LabelPalette`, ``data.palette``).

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

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from lggan.config import CropMode, Direction, choices
from lggan.images import photo_rgb

from .palette import VOID_LABEL, LabelPalette, first_channel, register_builtin_palette, resolve_label_palette

__all__ = [
    "CROSSVIEW_CLASS_NAMES",
    "CROSSVIEW_GROUPS",
    "CROSSVIEW_NUM_CLASSES",
    "CROSSVIEW_PALETTE",
    "IMAGE_EXTENSIONS",
    "PANEL_NAMES",
    "DIRECTIONS",
    "TEST_CROPS",
    "VOID_LABEL",
    "CrossViewDataError",
    "CrossViewDataset",
    "class_masks",
    "collate_crossview",
    "crop_offset",
    "default_load_size",
    "is_blank_panel",
    "join_panels",
    "label_to_gray",
    "list_crossview_files",
    "map_panel",
    "mask_from_color",
    "mask_from_gray",
    "palette_settings",
    "read_crossview_image",
    "read_crossview_inputs",
    "resolve_palette",
    "split_panels",
    "view_label",
]

GRAY_STEP = 10
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
PANEL_NAMES = ("A", "B", "C", "D", "E", "F")
TEST_CROPS = choices(CropMode)  # data.test_crop
DIRECTIONS = choices(Direction)  # data.direction

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


def _group_colors(groups: Sequence[Sequence[tuple[str, Sequence[int]]]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten colour groups to ``colors [P, 3] uint8`` and ``class_of [P] int64``."""
    colors = np.array([rgb for group in groups for _, rgb in group], dtype=np.uint8).reshape(-1, 3)
    class_of = np.array([k for k, group in enumerate(groups) for _ in group], dtype=np.int64)
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
    return LabelPalette("colour groups", colors, class_of, tolerance=float(tolerance)).labels(rgb).astype(np.uint8)


# --------------------------------------------------------------------------- palettes


def map_panel(palette: LabelPalette, view: str) -> str:
    """"E"/"F" or "C"/"D": the panel holding ``view``'s class map under ``palette`` (its ``panels``)."""
    if view not in VIEWS:
        raise ValueError(f"view must be 'aerial' or 'street', got {view!r}")
    return (_MASK_PANEL if palette.panels == "mask" else _COLOUR_PANEL)[view]


def palette_settings(palette: LabelPalette) -> dict[str, Any]:
    """JSON-ready settings of a class palette (for evaluation protocols and reports)."""
    return {"name": palette.name, "kind": palette.kind, "panels": palette.panels, "tolerance": palette.tolerance,
            "colours": palette.colours.tolist(), "classes": [int(k) for k in palette.ids]}


def _gray_palette(num_classes: int) -> LabelPalette:
    # The release's codes: class k (1-based) is gray 10*k, compared exactly on the first channel.
    if not 1 <= num_classes <= 255 // GRAY_STEP:
        raise ValueError(f"palette lggan-gray: num_classes must be in 1..{255 // GRAY_STEP}, got {num_classes}")
    codes = GRAY_STEP * np.arange(1, num_classes + 1, dtype=np.uint8)
    return LabelPalette("lggan-gray", np.repeat(codes[:, None], 3, axis=1), np.arange(num_classes, dtype=np.int64),
                        tolerance=0.0, kind="gray", panels="mask")


def _cityscapes_palette(num_classes: int) -> LabelPalette:
    colours, classes = _group_colors(CROSSVIEW_GROUPS)
    names = tuple(name for group in CROSSVIEW_GROUPS for name, _ in group)
    classes = _check_palette_classes(classes, num_classes, "cityscapes-groups")
    return LabelPalette("cityscapes-groups", colours, classes, tolerance=40.0, panels="colour", colour_names=names)


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


def _selectiongan_palette(num_classes: int) -> LabelPalette:
    colours = np.array([rgb for _, rgb, _ in _SELECTIONGAN_CVUSA], dtype=np.uint8)
    classes = np.array([CROSSVIEW_CLASS_NAMES.index(c) for _, _, c in _SELECTIONGAN_CVUSA], dtype=np.int64)
    classes = _check_palette_classes(classes, num_classes, "selectiongan-cvusa")
    return LabelPalette("selectiongan-cvusa", colours, classes, tolerance=_SELECTIONGAN_TOLERANCE, panels="colour",
                        colour_names=tuple(n for n, _, _ in _SELECTIONGAN_CVUSA))


# The built-in class palettes of `data.palette` / `--palette` for cross-view data, in the order errors list them.
register_builtin_palette("lggan-gray", _gray_palette, classes=True)
register_builtin_palette("cityscapes-groups", _cityscapes_palette, classes=True)
register_builtin_palette("selectiongan-cvusa", _selectiongan_palette, classes=True)


def _check_palette_classes(classes: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    bad = [int(k) for k in classes if k != VOID_LABEL and k >= num_classes]
    if bad:
        raise ValueError(f"palette {where}: classes {bad} do not exist with {num_classes} classes")
    return classes.astype(np.int64)


def resolve_palette(spec: str | os.PathLike[str] | LabelPalette | None, num_panels: int,
                    num_classes: int = CROSSVIEW_NUM_CLASSES, where: str | os.PathLike[str] | None = None
                    ) -> LabelPalette:
    """The class palette for a file of ``num_panels`` panels.

    ``spec`` None: the release's gray codes ("lggan-gray") for 6-panel files, the Cityscapes colour groups
    ("cityscapes-groups") for 4-panel files; otherwise as :func:`lggan.data.palette.resolve_label_palette` resolves
    ``data.palette`` for ``num_classes`` classes. A palette reading the mask panels cannot serve a 4-panel file
    (``where`` names the file in that error).
    """
    default = "lggan-gray" if num_panels == 6 else "cityscapes-groups"
    palette = resolve_label_palette(default if spec is None else spec, "data.palette", num_classes)
    if palette.panels == "mask" and num_panels != 6:
        prefix = f"{where}: " if where is not None else ""
        raise CrossViewDataError(f"{prefix}palette {palette.name} reads the gray mask panels E/F, but the file has "
                                 f"{num_panels} panels (set data.palette to a colour palette, e.g. selectiongan-cvusa)")
    return palette


def label_to_gray(label: np.ndarray) -> np.ndarray:
    """Encode uint8 labels as the released gray mask (``10*(label+1)``, void -> 0)."""
    label = np.asarray(label)
    return np.where(label == VOID_LABEL, 0, GRAY_STEP * (label.astype(np.int32) + 1)).astype(np.uint8)


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
    palette: str | os.PathLike[str] | LabelPalette | None = None,
    path: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Class labels ``[H, W]`` uint8 of one view of a file's panels (at their size), read with ``palette``.

    ``palette`` None: the gray mask (E/F) of a 6-panel file, the colour segmentation (C/D) of a 4-panel one.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be 'aerial' or 'street', got {view!r}")
    pal = resolve_palette(palette, len(panels), where=path)
    return pal.labels(panels[map_panel(pal, view)]).astype(np.uint8)


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


def _transform(panels: dict[str, np.ndarray], direction: str, palette: LabelPalette, load_size: int, crop_size: int,
               top: int, left: int, flip: bool, path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The release's per-sample transform of a file's panels: bicubic resize, one shared crop, [-1, 1], masks."""
    cond_name, target_name, semantic_name, view = _wiring(direction)
    names = (cond_name, target_name, semantic_name, map_panel(palette, view))
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
    label = palette.labels(label_panel)  # [crop, crop] int64
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
        mask_palette: str | os.PathLike[str] | LabelPalette | None = None,
        test_crop: str = "center",
        seed: int = 0,
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be {' or '.join(map(repr, DIRECTIONS))}, got {direction!r}")
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

    def _make_palette(self, num_panels: int, where: Path | None = None) -> LabelPalette:
        pal = resolve_palette(self.mask_palette_spec, num_panels, self.num_classes,
                              where=where or self.files[0])
        if self.color_tolerance is not None and pal.kind == "rgb":
            pal = replace(pal, tolerance=float(self.color_tolerance))
        return pal

    def palette_for(self, num_panels: int, path: Path | None = None) -> LabelPalette:
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
            "mask_palette": {str(n): palette_settings(p) for n, p in sorted(self._palettes.items())},
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
    color_tolerance: float | None = None, mask_palette: str | os.PathLike[str] | LabelPalette | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generator inputs of one panel file for `lggan generate`: (concat(I_a, S_g) [6,S,S] in [-1,1], label [S,S]).

    Same wiring and transform as :class:`CrossViewDataset` with the whole panel: every panel bicubic-resized to
    ``size`` (default: the panel size), masks read with ``mask_palette`` after the resize.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be {' or '.join(map(repr, DIRECTIONS))}, got {direction!r}")
    panels = split_panels(read_crossview_image(path), path)
    palette = resolve_palette(mask_palette, len(panels), where=path)
    if color_tolerance is not None and palette.kind == "rgb":
        palette = replace(palette, tolerance=float(color_tolerance))
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
