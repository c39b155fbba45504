"""Cross-view image translation data (Dayton / CVUSA / SVA released format).

Each sample is one RGB image of square H x H panels side by side:

* 6 panels (e.g. 1536x256): A aerial photo | B street photo | C aerial colour
  segmentation | D street colour segmentation | E aerial class mask | F street
  class mask. Masks are gray, value ``10 * k`` for class ``k = 1..6``; any
  other value is void. JPEG files (CVUSA) carry compression noise, so a value
  within ``tol`` (default 4) of ``10 * k`` counts as class ``k``.
* 4 panels (e.g. 1024x256, SelectionGAN release): A | B | C | D only. Class
  masks are then derived from the colour segmentations by the nearest
  Cityscapes palette colour within ``color_tolerance`` (RGB Euclidean).

Class indices in this module are 0-based (``k - 1``); void is 255.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

__all__ = [
    "CROSSVIEW_CLASS_NAMES",
    "CROSSVIEW_GROUPS",
    "CROSSVIEW_NUM_CLASSES",
    "CROSSVIEW_PALETTE",
    "IMAGE_EXTENSIONS",
    "PANEL_NAMES",
    "VOID_LABEL",
    "CrossViewDataError",
    "CrossViewDataset",
    "CrossViewReport",
    "class_masks",
    "collate_crossview",
    "colorize_label",
    "default_load_size",
    "format_crossview_report",
    "inspect_crossview",
    "join_panels",
    "label_to_gray",
    "list_crossview_files",
    "mask_from_color",
    "mask_from_gray",
    "read_crossview_image",
    "split_panels",
    "view_label",
]

VOID_LABEL = 255
GRAY_STEP = 10
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
PANEL_NAMES = ("A", "B", "C", "D", "E", "F")

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
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # JPEG (BT.601) luma weights


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


def mask_from_gray(gray: np.ndarray, num_classes: int = CROSSVIEW_NUM_CLASSES, tol: float = 4) -> np.ndarray:
    """Decode a gray class mask (``10*k`` for class ``k = 1..num_classes``) to uint8 labels.

    ``gray`` is ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3+]``. RGB is reduced to
    JPEG luma (BT.601 weights): JPEG keeps luma at full resolution, so this
    undoes the chroma bleeding from a neighbouring colour panel. Values within
    ``tol`` of ``10*k`` give label ``k - 1``; everything else gives :data:`VOID_LABEL`.
    """
    if not 1 <= num_classes <= 255 // GRAY_STEP:
        raise ValueError(f"num_classes must be in 1..{255 // GRAY_STEP} for gray masks, got {num_classes}")
    if not 0 <= tol < GRAY_STEP / 2:
        raise ValueError(f"tol must be in [0, {GRAY_STEP / 2}) so class bins do not overlap, got {tol}")
    values = np.asarray(gray, dtype=np.float32)
    if values.ndim == 3 and values.shape[-1] >= 3:
        values = values[..., :3] @ _LUMA
    elif values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim != 2:
        raise ValueError(f"gray mask must be [H, W] or [H, W, C], got shape {tuple(np.shape(gray))}")
    code = np.rint(values / GRAY_STEP)
    ok = (code >= 1) & (code <= num_classes) & (np.abs(values - GRAY_STEP * code) <= tol)
    return np.where(ok, code - 1, VOID_LABEL).astype(np.uint8)


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
    pixels = np.asarray(rgb)
    if pixels.ndim != 3 or pixels.shape[-1] < 3:
        raise ValueError(f"colour segmentation must be [H, W, 3], got shape {tuple(pixels.shape)}")
    colors, class_of = _group_colors(groups)
    flat = pixels[..., :3].reshape(-1, 1, 3).astype(np.int32)  # [N, 1, 3]
    dist2 = ((flat - colors[None]) ** 2).sum(axis=-1)  # [N, P] squared distances
    nearest = dist2.argmin(axis=1)
    ok = dist2[np.arange(dist2.shape[0]), nearest] <= tolerance * tolerance
    label = np.where(ok, class_of[nearest], VOID_LABEL).astype(np.uint8)
    return label.reshape(pixels.shape[:2])


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


def _is_blank(panel: np.ndarray) -> bool:
    """True for an (almost) all-black panel, e.g. CVUSA's missing aerial segmentation."""
    return int(panel.max(initial=0)) <= 8


def view_label(
    panels: dict[str, np.ndarray],
    view: View,
    color_tolerance: float = 40.0,
    gray_tolerance: float = 4,
) -> np.ndarray:
    """Class labels ``[H, W]`` uint8 of one view: gray mask (E/F) if present, else colour seg (C/D)."""
    if view not in ("aerial", "street"):
        raise ValueError(f"view must be 'aerial' or 'street', got {view!r}")
    mask_panel, color_panel = ("E", "C") if view == "aerial" else ("F", "D")
    if mask_panel in panels:
        return mask_from_gray(panels[mask_panel], CROSSVIEW_NUM_CLASSES, gray_tolerance)
    return mask_from_color(panels[color_panel], color_tolerance)


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
            return np.asarray(image.convert("RGB"))
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


def _resize(array: np.ndarray, size: int, resample: Image.Resampling) -> np.ndarray:
    if array.shape[0] == size and array.shape[1] == size:
        return array
    return np.asarray(Image.fromarray(np.ascontiguousarray(array)).resize((size, size), resample))


class CrossViewDataset(Dataset):
    """Cross-view pairs from ``root/split/*.{png,jpg}`` in the 4- or 6-panel format.

    ``direction="a2g"``: input = concat(A aerial, D street colour seg), target B,
    labels from F (or D). ``"g2a"``: input = concat(B, C), target A, labels from
    E (or C). ``panel_size`` is the files' native panel size (inferred from the
    first file when None; every file must match). Training (``train`` defaults
    to ``split == "train"``) resizes to ``load_size`` (default 286 for 256, 72 for
    64) and random-crops ``crop_size`` (default ``panel_size``) with one shared
    draw (and optional shared horizontal flip) for every panel; evaluation
    resizes straight to ``crop_size``. Photos use bicubic, colour segmentations
    and labels nearest, so class masks stay exact.

    Items: ``input [6,H,W]``, ``cond_image [3,H,W]``, ``semantic [3,H,W]``,
    ``image [3,H,W]`` (all float in [-1, 1]), ``label [H,W]`` long (0..5, void
    255), ``path`` str.
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
        color_tolerance: float = 40.0,
    ) -> None:
        if direction not in ("a2g", "g2a"):
            raise ValueError(f"direction must be 'a2g' or 'g2a', got {direction!r}")
        if color_tolerance < 0 or not math.isfinite(color_tolerance):
            raise ValueError(f"color_tolerance must be a finite value >= 0, got {color_tolerance}")
        self.root = Path(root)
        self.split = split
        self.direction = direction
        self.train = split == "train" if train is None else bool(train)
        self.flip = bool(flip)
        self.color_tolerance = float(color_tolerance)
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
        self.load_size = (load or default_load_size(self.crop_size)) if self.train else self.crop_size
        if self.load_size < self.crop_size:
            raise ValueError(f"load_size ({self.load_size}) must be >= crop_size ({self.crop_size})")

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
        # a2g: aerial photo + street seg -> street photo; g2a: the mirror image.
        if self.direction == "a2g":
            cond, target, semantic, view = panels["A"], panels["B"], panels["D"], "street"
        else:
            cond, target, semantic, view = panels["B"], panels["A"], panels["C"], "aerial"
        label = view_label(panels, view, self.color_tolerance)  # [P, P] uint8

        size = self.load_size
        cond = _resize(cond, size, Image.Resampling.BICUBIC)
        target = _resize(target, size, Image.Resampling.BICUBIC)
        semantic = _resize(semantic, size, Image.Resampling.NEAREST)
        label = _resize(label, size, Image.Resampling.NEAREST)

        # One shared crop/flip draw for every panel keeps them pixel-aligned.
        crop = self.crop_size
        top = left = 0
        flip = False
        if self.train:
            top = int(torch.randint(0, size - crop + 1, ()).item())
            left = int(torch.randint(0, size - crop + 1, ()).item())
            flip = self.flip and bool(torch.rand(()) < 0.5)
        arrays = []
        for array in (cond, target, semantic, label):
            array = array[top : top + crop, left : left + crop]
            arrays.append(array[:, ::-1] if flip else array)
        cond, target, semantic, label = arrays

        cond_t, semantic_t = _to_unit_range(cond), _to_unit_range(semantic)
        return {
            "input": torch.cat([cond_t, semantic_t], dim=0),
            "cond_image": cond_t,
            "semantic": semantic_t,
            "image": _to_unit_range(target),
            "label": torch.from_numpy(label.astype(np.int64)),
            "path": str(path),
        }


def read_crossview_inputs(
    path: str | os.PathLike[str], direction: str = "a2g", size: int | None = None, color_tolerance: float = 40.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator inputs of one panel file at test time: (concat(I_a, S_g colour) [6,S,S] in [-1,1], label [S,S]).

    Same wiring as :class:`CrossViewDataset` (a2g: A + D, target masks of the street view; g2a: B + C, aerial).
    """
    if direction not in ("a2g", "g2a"):
        raise ValueError(f"direction must be 'a2g' or 'g2a', got {direction!r}")
    panels = split_panels(read_crossview_image(path), path)
    if direction == "a2g":
        cond, semantic, view = panels["A"], panels["D"], "street"
    else:
        cond, semantic, view = panels["B"], panels["C"], "aerial"
    label = view_label(panels, view, color_tolerance)
    if size is not None and size != cond.shape[0]:
        cond = _resize(cond, size, Image.Resampling.BICUBIC)
        semantic = _resize(semantic, size, Image.Resampling.NEAREST)
        label = _resize(label, size, Image.Resampling.NEAREST)
    x = torch.cat([_to_unit_range(cond), _to_unit_range(semantic)], dim=0)
    return x, torch.from_numpy(label.astype(np.int64))


def collate_crossview(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors of :class:`CrossViewDataset` items; ``path`` becomes a list."""
    if not batch:
        raise ValueError("collate_crossview: empty batch")
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else list(values)
    return out


# --------------------------------------------------------------------------- inspect


@dataclass
class CrossViewReport:
    """Summary of a cross-view folder, from :func:`inspect_crossview`."""

    root: str
    splits: dict[str, int] = field(default_factory=dict)  # split -> number of image files
    num_files: int = 0
    formats: dict[str, int] = field(default_factory=dict)  # "6-panel" / "4-panel" -> files
    panel_sizes: dict[int, int] = field(default_factory=dict)  # panel px -> files
    class_names: tuple[str, ...] = CROSSVIEW_CLASS_NAMES
    # view ("aerial"/"street") -> labelled pixels per class
    class_pixels: dict[str, list[int]] = field(default_factory=dict)
    mask_pixels: int = 0  # all mask pixels counted (both views)
    void_pixels: dict[str, int] = field(default_factory=dict)  # file (relative to root) -> void pixels
    void_total: int = 0
    # view -> files whose colour segmentation is all black (CVUSA's aerial one), not counted as void
    blank_segmentations: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def class_frequency(self) -> dict[str, list[float]]:
        """Per view, the fraction of labelled pixels in each class."""
        out = {}
        for view, counts in self.class_pixels.items():
            total = sum(counts)
            out[view] = [c / total if total else 0.0 for c in counts]
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (panel sizes keyed by str)."""
        data = asdict(self)
        data["panel_sizes"] = {str(k): v for k, v in self.panel_sizes.items()}
        data["class_names"] = list(self.class_names)
        data["class_frequency"] = self.class_frequency()
        return data


def inspect_crossview(
    root: str | os.PathLike[str],
    split: str | None = None,
    color_tolerance: float = 40.0,
    gray_tolerance: float = 4,
    progress: bool = False,
) -> CrossViewReport:
    """Read every file of ``root/split`` (or of every existing train/test split) and report.

    Bad files (unreadable, wrong width, panel size differing from the majority)
    are listed in ``problems`` instead of raising; a missing root or split, or
    one with no images at all, raises naming the folder.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"{root_path}: dataset root not found")
    if split is None:
        splits = [s for s in ("train", "test") if (root_path / s).is_dir()]
        if not splits:
            raise FileNotFoundError(f"{root_path}: no train/ or test/ folder (expected ROOT/{{train,test}}/*.png|jpg)")
    else:
        splits = [split]

    report = CrossViewReport(root=str(root_path))
    report.class_pixels = {"aerial": [0] * CROSSVIEW_NUM_CLASSES, "street": [0] * CROSSVIEW_NUM_CLASSES}
    report.blank_segmentations = {"aerial": 0, "street": 0}
    files: list[tuple[str, Path]] = []
    for name in splits:
        try:
            files.extend((name, f) for f in list_crossview_files(root_path, name))
        except FileNotFoundError as exc:
            # An explicitly requested split must exist; with split=None an empty one is a finding.
            if split is not None:
                raise
            report.problems.append(str(exc))
    if not files:
        raise FileNotFoundError(f"{root_path}: no images in {', '.join(s + '/' for s in splits)}")
    report.splits = dict(Counter(s for s, _ in files))
    report.num_files = len(files)

    iterator: Any = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc="inspect", unit="file")
    sizes: Counter[int] = Counter()
    formats: Counter[str] = Counter()
    for _, path in iterator:
        name = path.relative_to(root_path).as_posix()
        try:
            panels = split_panels(read_crossview_image(path), name)
        except CrossViewDataError as exc:
            report.problems.append(str(exc) if name in str(exc) else f"{name}: {exc}")
            continue
        sizes[panels["A"].shape[0]] += 1
        formats[f"{len(panels)}-panel"] += 1
        void = 0
        for view, color_panel in (("aerial", "C"), ("street", "D")):
            has_gray = "E" in panels
            if not has_gray and _is_blank(panels[color_panel]):
                report.blank_segmentations[view] += 1
                continue
            label = view_label(panels, view, color_tolerance, gray_tolerance)
            counts = np.bincount(label.ravel(), minlength=256)
            for k in range(CROSSVIEW_NUM_CLASSES):
                report.class_pixels[view][k] += int(counts[k])
            void += int(label.size - counts[:CROSSVIEW_NUM_CLASSES].sum())
            report.mask_pixels += int(label.size)
        report.void_pixels[name] = void
        report.void_total += void

    report.panel_sizes = dict(sorted(sizes.items()))
    report.formats = dict(sorted(formats.items()))
    if len(sizes) > 1:
        report.problems.append(f"mixed panel sizes {dict(sizes)}: a dataset expects one panel size")
    if report.void_total and report.mask_pixels and report.void_total / report.mask_pixels > 0.05:
        report.problems.append(
            f"{100 * report.void_total / report.mask_pixels:.1f}% of mask pixels are void "
            f"(check the gray/colour tolerances or the file format)"
        )
    return report


def format_crossview_report(report: CrossViewReport, top_void: int = 10) -> str:
    """Human-readable text of a :class:`CrossViewReport`."""
    lines = [f"cross-view dataset: {report.root}"]
    split_text = ", ".join(f"{s} {n}" for s, n in report.splits.items())
    lines.append(f"files: {report.num_files} ({split_text})")
    lines.append("formats: " + (", ".join(f"{k} {v}" for k, v in report.formats.items()) or "none readable"))
    lines.append("panel sizes: " + (", ".join(f"{k}px {v}" for k, v in report.panel_sizes.items()) or "none"))
    freq = report.class_frequency()
    lines.append(f"class pixel frequency {'aerial':>8} {'street':>8}")
    for k, name in enumerate(report.class_names):
        lines.append(
            f"  {k + 1} {name:<16} {100 * freq['aerial'][k]:7.2f}% {100 * freq['street'][k]:7.2f}%"
        )
    share = 100 * report.void_total / report.mask_pixels if report.mask_pixels else 0.0
    with_void = {n: v for n, v in report.void_pixels.items() if v}
    lines.append(
        f"void pixels: {report.void_total} ({share:.3f}% of mask pixels) in {len(with_void)} of "
        f"{len(report.void_pixels)} files"
    )
    for name, count in sorted(with_void.items(), key=lambda kv: (-kv[1], kv[0]))[:top_void]:
        lines.append(f"  {name}: {count}")
    blank = {v: n for v, n in report.blank_segmentations.items() if n}
    if blank:
        lines.append("blank colour segmentations (no mask): " + ", ".join(f"{v} {n}" for v, n in blank.items()))
    lines.append(f"problems: {len(report.problems)}")
    lines.extend(f"  - {p}" for p in report.problems)
    return "\n".join(lines)
