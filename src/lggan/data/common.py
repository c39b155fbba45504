"""Shared pieces of the semantic-image-synthesis datasets.

* file discovery and pairing helpers that *collect* problems instead of
  stopping at the first one (so ``inspect`` can list them all);
* cheap start-up validation from PIL headers (size, mode) without decoding pixels;
* decoding with clear errors naming the file (truncated data, bad label values);
* :class:`SemanticDataset`, the base class every dataset format builds on;
* batch helpers: :func:`collate_semantic`, :func:`instance_edges`,
  :func:`make_semantic_input` (the SPADE/LGGAN generator input).

A sample is a dict ``{"label": LongTensor [H, W], "instance": LongTensor [H, W] | None,
"image": float [3, H, W] in [-1, 1], "path": str}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..images import UnsupportedImageMode, photo_rgb
from .palette import COLOUR_LABEL_MODES, LabelPalette, colour_label_hint, label_image_values
from .transforms import SemanticTransform, Size

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Label / instance maps hold ids, so they must decode to a single integer channel...
INDEX_MAP_MODES = frozenset({"L", "P", "I", "I;16", "I;16L", "I;16B"})
# ...stored losslessly: JPEG (or lossy WebP) noise turns ids into other, valid-looking ids. PIL cannot tell a
# lossless WebP from a lossy one without decoding, so WebP is refused too.
LOSSLESS_INDEX_FORMATS = frozenset({"PNG", "BMP", "TIFF"})
LOSSY_TIFF_COMPRESSIONS = frozenset({"jpeg", "tiff_jpeg", "webp"})
MAX_ISSUES_IN_MESSAGE = 20


@dataclass(frozen=True)
class SamplePaths:
    """Files that make one sample."""

    image: Path
    label: Path
    instance: Path | None = None


@dataclass(frozen=True)
class DataIssue:
    """One problem with the data on disk: the file (or folder) and what is wrong."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DatasetError(ValueError):
    """Bad data on disk; ``issues`` lists every problem found.

    Constructible from the message alone and picklable with its issues, so it survives being re-raised
    from a DataLoader worker (which rebuilds it as ``DatasetError(text)``) or a process pool (pickle).
    """

    def __init__(self, message: str, issues: Sequence[DataIssue] = ()) -> None:
        super().__init__(message)
        self.issues = list(issues)

    def __reduce__(self) -> tuple:
        return type(self), (str(self), self.issues)


def file_error(path: Path, message: str) -> DatasetError:
    """One bad file: ``DatasetError("PATH: message")`` carrying that single issue."""
    return DatasetError(f"{path}: {message}", [DataIssue(path, message)])


def raise_for_issues(issues: Sequence[DataIssue], context: str) -> None:
    """Raise one :class:`DatasetError` listing (up to 20 of) ``issues``; no-op if empty."""
    if not issues:
        return
    shown = "\n".join(f"  - {issue}" for issue in issues[:MAX_ISSUES_IN_MESSAGE])
    more = len(issues) - MAX_ISSUES_IN_MESSAGE
    tail = f"\n  ... and {more} more (run `lggan data inspect` for the full list)" if more > 0 else ""
    raise DatasetError(f"{context}: {len(issues)} problem(s) found:\n{shown}{tail}", issues)


@dataclass(frozen=True)
class LabelSpec:
    """How raw label-file values map to one-hot channels.

    ``lut[raw] = channel`` for valid raw values and ``-1`` for invalid ones;
    raw values ``>= len(lut)`` are invalid as well.
    """

    dataset: str
    num_classes: int
    lut: np.ndarray
    valid_desc: str
    class_names: tuple[str, ...]
    palette: np.ndarray
    dontcare_index: int | None = None

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{self.dataset}: {len(self.class_names)} class names for {self.num_classes} classes")
        if self.palette.shape != (self.num_classes, 3) or self.palette.dtype != np.uint8:
            raise ValueError(f"{self.dataset}: palette must be uint8 [{self.num_classes}, 3]")

    def map_raw(self, raw: np.ndarray) -> np.ndarray:
        """Raw label values -> channel indices (int64), ``-1`` where the raw value is invalid."""
        raw = np.asarray(raw).astype(np.int64, copy=False)
        clipped = np.clip(raw, 0, len(self.lut) - 1)
        mapped = self.lut[clipped]
        mapped[(raw < 0) | (raw >= len(self.lut))] = -1
        return mapped


def identity_lut(num_values: int, extra: Mapping[int, int] | None = None) -> np.ndarray:
    """LUT where raw values ``0..num_values-1`` map to themselves, plus ``extra`` raw->channel entries."""
    size = max([num_values, *(raw + 1 for raw in (extra or {}))])
    lut = np.full(size, -1, dtype=np.int64)
    lut[:num_values] = np.arange(num_values)
    for raw, channel in (extra or {}).items():
        lut[raw] = channel
    return lut


# --------------------------------------------------------------------------- files


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a directory, else raise FileNotFoundError naming it."""
    if not path.is_dir():
        if path.exists():
            raise FileNotFoundError(f"{what} {path} is not a directory")
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path


def list_files(folder: Path, suffixes: Iterable[str]) -> list[Path]:
    """Sorted regular files in ``folder`` whose name ends with one of ``suffixes`` (case-insensitive)."""
    wanted = tuple(s.lower() for s in suffixes)
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(wanted)
    )


def index_by_key(
    files: Iterable[Path], key_of: Callable[[Path], str | None]
) -> tuple[dict[str, Path], list[DataIssue]]:
    """Map each file to its pairing key; files whose key is ``None`` are skipped, duplicates reported."""
    indexed: dict[str, Path] = {}
    issues: list[DataIssue] = []
    for path in files:
        key = key_of(path)
        if key is None:
            continue
        if key in indexed:
            issues.append(DataIssue(path, f"duplicate name: {indexed[key].name} has the same stem"))
            continue
        indexed[key] = path
    return indexed, issues


def pair_files(
    images: Mapping[str, Path],
    labels: Mapping[str, Path],
    instances: Mapping[str, Path] | None,
    *,
    label_where: str,
    image_where: str,
    instance_where: str = "",
) -> tuple[list[SamplePaths], list[DataIssue]]:
    """Join image, label (and instance) files on their keys; report every unmatched file."""
    pairs: list[SamplePaths] = []
    issues: list[DataIssue] = []
    for key in sorted(images):
        label = labels.get(key)
        instance = instances.get(key) if instances is not None else None
        if label is None:
            issues.append(DataIssue(images[key], f"image without label (no matching label in {label_where})"))
        if instances is not None and instance is None:
            issues.append(DataIssue(images[key], f"image without instance map (none in {instance_where})"))
        if label is not None and (instances is None or instance is not None):
            pairs.append(SamplePaths(images[key], label, instance))
    for key in sorted(set(labels) - set(images)):
        issues.append(DataIssue(labels[key], f"label without image (no matching image in {image_where})"))
    if instances is not None:
        for key in sorted(set(instances) - set(images)):
            issues.append(DataIssue(instances[key], f"instance map without image (no matching image in {image_where})"))
    return pairs, issues


def pair_folders_by_stem(
    image_dir: Path,
    label_dir: Path,
    instance_dir: Path | None = None,
    image_suffixes: Iterable[str] = (".jpg", ".jpeg", ".png"),
) -> tuple[list[SamplePaths], list[DataIssue], bool]:
    """Pairs a folder of images with a folder of label PNGs (and instance PNGs, if that folder exists) by file stem.

    Returns (pairs, every issue found, whether instance maps were used).
    """
    images, issues = index_by_key(list_files(image_dir, image_suffixes), lambda p: p.stem)
    labels, more = index_by_key(list_files(label_dir, [".png"]), lambda p: p.stem)
    issues += more
    instances = None
    if instance_dir is not None and instance_dir.is_dir():
        instances, more = index_by_key(list_files(instance_dir, [".png"]), lambda p: p.stem)
        issues += more
    pairs, more = pair_files(images, labels, instances, label_where=str(label_dir), image_where=str(image_dir),
                             instance_where=str(instance_dir))
    return pairs, issues + more, instances is not None


def open_image(path: Path) -> Image.Image:
    """``Image.open(path)`` (header only); FileNotFoundError or DatasetError naming the file if it is unusable."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise file_error(path, "empty file (0 bytes)")
        return Image.open(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except DatasetError:
        raise
    except Exception as exc:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError...)
        raise file_error(path, f"unreadable image file ({exc})") from None


def lossy_format(img: Image.Image) -> str | None:
    """Name of ``img``'s file format if it may have altered pixel values (lossy or unknown), else ``None``."""
    if img.format not in LOSSLESS_INDEX_FORMATS:
        return img.format or "of unknown format"
    compression = img.info.get("compression")
    if img.format == "TIFF" and compression in LOSSY_TIFF_COMPRESSIONS:
        return f"TIFF with {compression} compression"
    return None


def index_map_problem(mode: str, lossy: str | None, role: str) -> str | None:
    """Why a file of PIL ``mode`` (and ``lossy`` format, see :func:`lossy_format`) cannot be a ``role`` map."""
    if lossy is not None:
        return (f"{role} map must be a lossless PNG, BMP or TIFF file, but the file is {lossy} "
                f"(lossy compression changes ids; re-save the original ids as PNG)")
    if mode not in INDEX_MAP_MODES:
        hint = f"; {colour_label_hint()}" if role == "label" and mode in COLOUR_LABEL_MODES else ""
        return f"{role} map must be a single-channel integer PNG, got PIL mode {mode}{hint}"
    return None


def read_header(path: Path) -> tuple[tuple[int, int], str, str | None]:
    """``((width, height), mode, lossy_format)`` from the file header only; errors name the file."""
    with open_image(path) as img:
        return img.size, img.mode, lossy_format(img)


def check_headers(pairs: Sequence[SamplePaths], colour_labels: bool = False) -> list[DataIssue]:
    """Check every file opens, label/instance maps are single-channel and sizes agree.

    colour_labels: label maps may also be colour images (RGB/RGBA, read through a palette), still stored losslessly.
    Only headers are read, so this is cheap even for thousands of large images.
    """
    issues: list[DataIssue] = []
    for pair in pairs:
        headers: dict[str, tuple[tuple[int, int], str, str | None]] = {}
        roles = {"image": pair.image, "label": pair.label, "instance": pair.instance}
        for role, path in roles.items():
            if path is None:
                continue
            try:
                headers[role] = read_header(path)
            except (ValueError, FileNotFoundError) as exc:
                issues.append(DataIssue(path, str(exc).removeprefix(f"{path}: ")))
        for role in ("label", "instance"):
            if role not in headers:
                continue
            size, mode, lossy = headers[role]
            colour = colour_labels and role == "label" and mode in COLOUR_LABEL_MODES
            problem = index_map_problem("L" if colour else mode, lossy, role)
            if problem is not None:
                issues.append(DataIssue(roles[role], problem))
            if "image" in headers and size != headers["image"][0]:
                image_size = _wxh(headers["image"][0])
                message = f"{role} size {_wxh(size)} does not match image {pair.image.name} size {image_size}"
                issues.append(DataIssue(roles[role], message))
    return issues


def _wxh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


# ------------------------------------------------------------------------- decoding


def _decode(path: Path, img: Image.Image, convert: Callable[[Image.Image], np.ndarray], what: str) -> np.ndarray:
    """``convert(img)`` (where PIL reads the pixels); DatasetError naming the file if they are truncated or corrupt."""
    try:
        return convert(img)
    except UnsupportedImageMode as exc:  # readable, but in a mode with no known range
        raise file_error(path, f"cannot read {what}: {exc}") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, zlib errors... for damaged data
        raise file_error(path, f"cannot decode {what}, file is truncated or corrupt ({exc})") from None


def load_image(path: Path) -> np.ndarray:
    """Decode an RGB photo as ``uint8 [H, W, 3]``; DatasetError (a ValueError) naming the file if broken."""
    with open_image(path) as img:
        # np.array makes a writable copy: torch.from_numpy needs one.
        return _decode(path, img, photo_rgb, "image")


def load_index_map(path: Path, role: str = "label") -> np.ndarray:
    """Decode a single-channel, losslessly stored label/instance map as an integer array ``[H, W]``.

    DatasetError (a ValueError) naming the file if it is empty, truncated, corrupt, lossy (e.g. a JPEG
    named ``.png``) or not single-channel.
    """
    with open_image(path) as img:
        problem = index_map_problem(img.mode, lossy_format(img), role)
        if problem is not None:
            raise file_error(path, problem)
        # P-mode PNGs: the palette indices are the class ids, so no conversion.
        return _decode(path, img, np.array, f"{role} map")


def describe_invalid(raw: np.ndarray, mapped: np.ndarray, spec: LabelSpec) -> str:
    """Human message for label pixels whose raw value is invalid (``mapped < 0``)."""
    bad = mapped < 0
    values = np.unique(raw[bad])
    shown = ", ".join(str(int(v)) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    return (
        f"label values [{shown}] outside the valid range {spec.valid_desc} for {spec.dataset} "
        f"({int(bad.sum())} pixels)"
    )


def load_raw_label(path: Path, palette: LabelPalette | None = None) -> np.ndarray:
    """The label values of a label file ``int64 [H, W]``, as a single-channel file of its dataset holds them: a
    colour label image (RGB/RGBA, lossless) is turned into values through ``palette`` (an unknown colour is an error
    naming the file, the colour and a pixel where it is); single-channel maps are read as always."""
    if palette is not None:
        with open_image(path) as img:
            if img.mode in COLOUR_LABEL_MODES:
                problem = index_map_problem("L", lossy_format(img), "label")
                if problem is not None:
                    raise file_error(path, problem)
                rgb = _decode(path, img, lambda im: np.asarray(im.convert("RGB")), "label map")
                return label_image_values(rgb, palette, path)
    return load_index_map(path, "label").astype(np.int64)


def load_label(path: Path, spec: LabelSpec, palette: LabelPalette | None = None) -> np.ndarray:
    """Decode a label map and map raw values to channel indices ``int64 [H, W]``; ValueError on bad values.

    With a ``palette``, a colour label image (RGB/RGBA, lossless) is first turned into raw values through it (an
    unknown colour is an error naming the file, the colour and a pixel where it is); single-channel maps are read
    as always.
    """
    raw = load_raw_label(path, palette)
    mapped = spec.map_raw(raw)
    if (mapped < 0).any():
        raise file_error(path, describe_invalid(raw, mapped, spec))
    return mapped


# -------------------------------------------------------------------------- dataset


@dataclass
class Discovery:
    """Result of scanning one split on disk (before any pixel is decoded)."""

    root: Path
    split: str | None
    spec: LabelSpec
    has_instance: bool
    pairs: list[SamplePaths] = field(default_factory=list)
    issues: list[DataIssue] = field(default_factory=list)


class SemanticDataset(Dataset):
    """Base class: paired files + label mapping + joint transform.

    Subclasses implement :meth:`discover` (find and pair files of one split)
    and :meth:`available_splits`. Start-up checks pairing and file headers;
    label values are checked when a sample is loaded.

    Attributes:
        num_classes: number of one-hot channels (the generator input has
            ``num_classes + has_instance`` channels, see :attr:`input_channels`).
        has_instance: whether samples carry an instance map (-> edge channel).
        class_names: one name per channel.
        palette: ``uint8 [num_classes, 3]`` colours for visualisation.
        dontcare_index: channel that holds "unlabelled" pixels, if the dataset has one.
    """

    name = "semantic"
    default_load_size: Size | None = None
    # Colour -> label id palette for colour label images (custom datasets' `palette`); None: single-channel ids only.
    label_palette: LabelPalette | None = None

    def __init__(
        self,
        discovery: Discovery,
        *,
        load_size: Size | None = None,
        crop_size: Size | None = None,
        flip: bool = False,
        validate: bool = True,
        seed: int | None = None,
    ) -> None:
        context = f"{self.name} split {discovery.split!r} at {discovery.root}"
        raise_for_issues(discovery.issues, context)
        if not discovery.pairs:
            raise FileNotFoundError(f"{context}: no image/label pairs found (empty split)")
        self.root = discovery.root
        self.split = discovery.split
        self.label_spec = discovery.spec
        self.has_instance = discovery.has_instance
        self.pairs = list(discovery.pairs)
        self.transform = SemanticTransform(load_size, crop_size, flip)
        self.seed = seed
        self.epoch = 0
        if validate:
            raise_for_issues(check_headers(self.pairs, colour_labels=self.label_palette is not None), context)

    # Class-level API the subclasses provide.
    @classmethod
    def discover(cls, root: str | Path, split: str | None, **options: object) -> Discovery:
        raise NotImplementedError

    @classmethod
    def available_splits(cls, root: str | Path, **options: object) -> list[str | None]:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return self.label_spec.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.label_spec.class_names)

    @property
    def palette(self) -> np.ndarray:
        return self.label_spec.palette

    @property
    def dontcare_index(self) -> int | None:
        return self.label_spec.dontcare_index

    @property
    def input_channels(self) -> int:
        """Channels of :func:`make_semantic_input` for this dataset (one-hot + edge map)."""
        return self.num_classes + int(self.has_instance)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, pairs={len(self)}, "
            f"num_classes={self.num_classes}, has_instance={self.has_instance}, transform={self.transform})"
        )

    def set_epoch(self, epoch: int) -> None:
        """Change the random augmentation stream (only used when ``seed`` is set)."""
        self.epoch = int(epoch)

    def _generator_for(self, index: int) -> torch.Generator | None:
        # Seeding from (seed, epoch, index) makes augmentations independent of
        # DataLoader worker count and order.
        if self.seed is None or not self.transform.is_random:
            return None
        high, low = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed((int(high) << 32) | int(low))

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        index %= len(self)
        return self.get_sample(index, self._generator_for(index))

    def get_sample(self, index: int, generator: torch.Generator | None = None) -> dict:
        """Load and transform sample ``index`` using ``generator`` for the random draw."""
        paths = self.pairs[index]
        label = load_label(paths.label, self.label_spec, self.label_palette)
        image = load_image(paths.image)
        instance = load_index_map(paths.instance, "instance").astype(np.int64) if paths.instance else None
        height, width = image.shape[:2]
        for role, path, array in (("label", paths.label, label), ("instance", paths.instance, instance)):
            if array is not None and array.shape != (height, width):
                raise file_error(path, f"{role} size {array.shape[1]}x{array.shape[0]} does not match image "
                                       f"{paths.image.name} size {width}x{height}")
        label_t = torch.from_numpy(label)
        # uint8 [H, W, 3] -> float [3, H, W] in [-1, 1]
        image_t = torch.from_numpy(image).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
        instance_t = torch.from_numpy(instance) if instance is not None else None
        try:
            label_t, image_t, instance_t = self.transform(label_t, image_t, instance_t, generator)
        except ValueError as exc:
            raise ValueError(f"{paths.image}: {exc}") from None
        return {"label": label_t, "instance": instance_t, "image": image_t, "path": str(paths.image)}


# ---------------------------------------------------------------------- batching


class StandardLayoutDataset(SemanticDataset):
    """A named dataset whose files sit in its published layout: built from (root, split) and the split's discovery."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        load_size: Size | None | str = "default",
        crop_size: Size | None = None,
        flip: bool = False,
        validate: bool = True,
        seed: int | None = None,
    ) -> None:
        # "default": the dataset's own size from the paper (class attribute default_load_size); None keeps files' size.
        size = type(self).default_load_size if load_size == "default" else load_size
        super().__init__(self.discover(root, split), load_size=size, crop_size=crop_size, flip=flip,
                         validate=validate, seed=seed)


def collate_semantic(samples: Sequence[Mapping]) -> dict:
    """Stack samples into ``label [B,H,W]``, ``instance [B,H,W] | None``, ``image [B,3,H,W]``, ``path list``."""
    if not samples:
        raise ValueError("collate_semantic: got an empty list of samples")
    paths = [str(s["path"]) for s in samples]
    shapes = {tuple(s["label"].shape) for s in samples}
    if len(shapes) > 1:
        detail = ", ".join(f"{p} {tuple(s['label'].shape)}" for p, s in zip(paths, samples))
        raise ValueError(f"collate_semantic: samples have different sizes ({detail}); set load_size or crop_size")
    with_instance = [s["instance"] is not None for s in samples]
    if any(with_instance) and not all(with_instance):
        missing = [p for p, has in zip(paths, with_instance) if not has]
        raise ValueError(f"collate_semantic: some samples have no instance map: {missing}")
    return {
        "label": torch.stack([s["label"] for s in samples]).long(),
        "instance": torch.stack([s["instance"] for s in samples]).long() if all(with_instance) else None,
        "image": torch.stack([s["image"] for s in samples]),
        "path": paths,
    }


def _as_bhw(tensor: torch.Tensor, name: str) -> torch.Tensor:
    if tensor.ndim == 4 and tensor.shape[1] == 1:
        tensor = tensor[:, 0]
    if tensor.ndim != 3:
        raise ValueError(f"{name} must be [B, H, W] (or [B, 1, H, W]), got shape {tuple(tensor.shape)}")
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer ids, got dtype {tensor.dtype}")
    return tensor


def instance_edges(instance: torch.Tensor) -> torch.Tensor:
    """Boundary map ``float [B, 1, H, W]`` of an instance map ``[B, H, W]``.

    A pixel is an edge (1.0) when any of its 4-neighbours has a different
    instance id. Computed on ``instance``'s device with tensor ops only.
    """
    instance = _as_bhw(instance, "instance")
    edge = torch.zeros(instance.shape, dtype=torch.bool, device=instance.device)
    horizontal = instance[:, :, 1:] != instance[:, :, :-1]  # [B, H, W-1]: pixel x differs from x+1
    vertical = instance[:, 1:, :] != instance[:, :-1, :]  # [B, H-1, W]: pixel y differs from y+1
    edge[:, :, 1:] |= horizontal
    edge[:, :, :-1] |= horizontal
    edge[:, 1:, :] |= vertical
    edge[:, :-1, :] |= vertical
    return edge.unsqueeze(1).float()


def one_hot_labels(label: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot ``[B, num_classes, H, W]`` of class indices ``[B, H, W]``; ValueError on out-of-range ids."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes <= 0:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    label = _as_bhw(label, "label")
    if label.numel():
        # Checked on the host so a bad id is a clear error, not a device-side assert in scatter_.
        low, high = (int(v) for v in torch.aminmax(label))
        if low < 0 or high >= num_classes:
            raise ValueError(f"label values must lie in [0, {num_classes}), found min {low} and max {high}")
    out = torch.zeros((label.shape[0], num_classes, *label.shape[1:]), dtype=dtype, device=label.device)
    return out.scatter_(1, label.long().unsqueeze(1), 1.0)


def make_semantic_input(
    label: torch.Tensor,
    num_classes: int,
    instance: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Generator input: one-hot labels, plus one instance-edge channel when ``instance`` is given.

    Args:
        label: class indices ``[B, H, W]`` in ``[0, num_classes)``.
        num_classes: number of one-hot channels (``dataset.num_classes``).
        instance: instance ids ``[B, H, W]`` or ``None``.

    Returns:
        ``[B, num_classes (+1), H, W]`` on ``label``'s device.
    """
    semantic = one_hot_labels(label, num_classes, dtype)
    if instance is None:
        return semantic
    instance = _as_bhw(instance, "instance")
    if instance.shape != semantic[:, 0].shape:
        raise ValueError(
            f"instance shape {tuple(instance.shape)} does not match label shape {tuple(semantic[:, 0].shape)}"
        )
    edges = instance_edges(instance.to(semantic.device)).to(dtype)
    return torch.cat([semantic, edges], dim=1)
