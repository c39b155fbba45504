"""File helpers for the evaluation protocols: image/label loading, folder pairing, weights lookup, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lggan.images import photo_rgb
from lggan.io import atomic_write_bytes, one_line

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

# How many names an error message lists before summarising the rest as a count.
_MAX_LISTED = 10


def _listing(names: Sequence[str]) -> str:
    """Comma-separated names, truncated with a count so errors stay readable on big folders."""
    shown = ", ".join(names[:_MAX_LISTED])
    rest = len(names) - _MAX_LISTED
    return shown + (f", ... ({rest} more)" if rest > 0 else "")


def list_images(directory: str | os.PathLike, arg_name: str = "directory", recursive: bool = False) -> list[Path]:
    """Sorted image files (by extension) in `directory` (and sub-folders if recursive); error when missing/empty."""
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"{arg_name}: {path} is not a directory")
    candidates = path.rglob("*") if recursive else path.iterdir()
    files = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"{arg_name}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
    return files


def load_image_uint8(path: str | os.PathLike) -> torch.Tensor:
    """RGB image file -> uint8 tensor [3,H,W] (grey/palette/alpha converted to RGB)."""
    try:
        with Image.open(path) as img:
            array = photo_rgb(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {one_line(exc)}") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def load_label_map(path: str | os.PathLike) -> torch.Tensor:
    """Single-channel label image (L, P, I or I;16) -> int64 tensor [H,W] of raw label values."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                raise ValueError(f"label map {path} has mode {img.mode!r}; expected a single-channel image")
            array = np.asarray(img, dtype=np.int64)
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read label map {path}: {one_line(exc)}") from None
    return torch.from_numpy(array)


def uint8_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0,1]."""
    return images.to(torch.float32) / 255.0


def unit_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0,1] -> uint8 (rounded, clamped)."""
    return (images.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float image [3,H,W] -> [3,*size], bilinear with antialiasing (PIL-like); unchanged when already that size."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True)[0]


def resize_uint8(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 image [3,H,W] -> uint8 [3,*size] via resize_image (rounded)."""
    return unit_to_uint8(resize_image(uint8_to_unit(image), size))


def batch_by_shape(items: Iterable[tuple[torch.Tensor, ...]], batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Stack consecutive tuples of tensors into batches of up to batch_size; a batch ends where any shape changes."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch: list[tuple[torch.Tensor, ...]] = []
    for item in items:
        if batch and (len(batch) == batch_size or [t.shape for t in item] != [t.shape for t in batch[0]]):
            yield tuple(torch.stack(group) for group in zip(*batch, strict=True))
            batch = []
        batch.append(item)
    if batch:
        yield tuple(torch.stack(group) for group in zip(*batch, strict=True))


def _keyed(paths: Sequence[Path], suffix: str, arg_name: str) -> dict[str, Path]:
    """Map name key (stem minus `suffix`) -> path for files whose stem ends with `suffix`; error on clashes."""
    keyed: dict[str, Path] = {}
    for path in paths:
        if not path.stem.endswith(suffix):
            continue
        key = path.stem[: len(path.stem) - len(suffix)]
        if key in keyed:
            raise ValueError(f"{arg_name}: {keyed[key]} and {path} have the same name key {key!r}")
        keyed[key] = path
    if not keyed:
        raise ValueError(f"{arg_name}: no image file name ends with the suffix {suffix!r}")
    return keyed


def pair_by_name(
    generated: Sequence[Path],
    real: Sequence[Path],
    generated_suffix: str = "",
    real_suffix: str = "",
    real_arg: str = "real_dir",
) -> list[tuple[Path, Path]]:
    """Pair files by stem minus optional suffixes (files lacking the suffix are skipped); error listing unmatched."""
    gen = _keyed(generated, generated_suffix, "generated_dir")
    ref = _keyed(real, real_suffix, real_arg)
    only_gen = sorted(set(gen) - set(ref))
    only_ref = sorted(set(ref) - set(gen))
    if only_gen or only_ref:
        parts = []
        if only_gen:
            parts.append(f"{len(only_gen)} generated without a match in {real_arg}: {_listing(only_gen)}")
        if only_ref:
            parts.append(f"{len(only_ref)} in {real_arg} without a generated match: {_listing(only_ref)}")
        raise ValueError("image folders do not pair by file name; " + "; ".join(parts))
    return [(gen[key], ref[key]) for key in sorted(gen)]


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only; ValueError naming the file if unreadable."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {one_line(exc)}") from None
    return height, width


def check_pair_sizes(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Error listing every pair whose generated and real images differ in size."""
    bad = []
    for gen, ref in pairs:
        gen_size, ref_size = image_size(gen), image_size(ref)
        if gen_size != ref_size:
            bad.append(f"{gen.name} {gen_size[0]}x{gen_size[1]} vs {ref.name} {ref_size[0]}x{ref_size[1]}")
    if bad:
        raise ValueError(f"{len(bad)} image pairs differ in size (HxW): {_listing(bad)}")


def resolve_weights_file(path: str | os.PathLike | None, file_name: str, arg_name: str, source: str) -> Path:
    """Explicit weights path, else torch.hub.get_dir()/checkpoints/<file_name>; clear error if absent (no download).

    arg_name is how the caller names the option (`--inception-weights` on the command line); the error names it,
    the expected file name and the cache folder.
    """
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    hub_path = hub_dir / file_name
    if path is not None:
        candidate = Path(path)
        if candidate.is_file():
            return candidate
        raise FileNotFoundError(
            f"{arg_name}: weights file {candidate} does not exist; expected {file_name} ({source}), or leave "
            f"{arg_name} out and put the file at {hub_path}"
        )
    if hub_path.is_file():
        return hub_path
    raise FileNotFoundError(
        f"{arg_name}: {file_name} not found in the cache folder {hub_dir}: put it at {hub_path} or pass "
        f"{arg_name} PATH ({source}); lggan never downloads weights"
    )


def load_weights_file(path: str | os.PathLike, arg_name: str) -> Any:
    """torch.load(weights_only=True) of a .pth/.pth.tar file: tensors and plain containers only, never code.

    A pickle that names any other Python object (which unpickling would call), a truncated, empty or foreign file
    all raise one ValueError naming the file.
    """
    import pickle
    import warnings

    file = Path(path)
    if file.is_file() and file.stat().st_size == 0:
        raise ValueError(f"{arg_name}: {file} is empty (0 bytes); expected a PyTorch weights file")
    try:
        with warnings.catch_warnings():
            # Files pickled with a newer protocol load fine; the error below says all a user needs to know.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message ends with the reason after advice on how to trust the file anyway; keep the reason.
        detail = str(exc).rsplit("WeightsUnpickler error:", 1)[-1]
        for advice in ("Please use", "Check the documentation"):
            detail = detail.split(advice, 1)[0]
        detail = " ".join(detail.split()).rstrip(" .") or type(exc).__name__
        raise ValueError(
            f"{arg_name}: {file} is not a plain PyTorch weights file ({detail}); lggan loads "
            "only tensors and plain containers (torch.load weights_only=True), since unpickling other objects "
            "could run code"
        ) from None
    except Exception as exc:  # torch.load raises many types (RuntimeError, EOFError, ...) for foreign bytes
        raise ValueError(f"{arg_name}: {file} cannot be read as a PyTorch weights file "
                         f"({type(exc).__name__}: {one_line(exc)})") from None


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write strict JSON (no NaN/Infinity) atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode("utf-8"))
