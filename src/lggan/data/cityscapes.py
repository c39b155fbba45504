"""Cityscapes in its official layout (also read by the built-in synthetic city).

::

    ROOT/leftImg8bit/{train,val,test}/<city>/<name>_leftImg8bit.png
    ROOT/gtFine/{train,val,test}/<city>/<name>_gtFine_labelIds.png     uint8 label ids 0..33
    ROOT/gtFine/{train,val,test}/<city>/<name>_gtFine_instanceIds.png  16-bit; id*1000+k for
                                                                        instances, else the label id

Label ids are used directly as channel indices (as SPADE/LGGAN do): 35
channels, i.e. ids 0..33 plus channel 34, the slot of "license plate" whose
official id is -1 and which never appears in labelIds files. With the
instance-edge channel the generator input has 36 channels.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS

from .common import (
    Discovery,
    LabelSpec,
    StandardLayoutDataset,
    identity_lut,
    index_by_key,
    list_files,
    pair_files,
    require_dir,
)
from .palette import palette_of_spec, register_builtin_palette
from .transforms import Size

CITYSCAPES_NUM_CLASSES = 35  # ids 0..33 + the license-plate slot (official id -1) at channel 34
CITYSCAPES_MAX_LABEL_ID = 33  # largest id that occurs in *_gtFine_labelIds.png
LICENSE_PLATE_CHANNEL = 34
CITYSCAPES_DEFAULT_SIZE: Size = (512, 256)
CITYSCAPES_SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"training": "train", "validation": "val"}

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"


def _channel_of(label_id: int) -> int:
    return LICENSE_PLATE_CHANNEL if label_id < 0 else label_id


@lru_cache(maxsize=1)
def cityscapes_label_spec() -> LabelSpec:
    """Names and colours per channel from ``cityscapesscripts.helpers.labels``."""
    names = [""] * CITYSCAPES_NUM_CLASSES
    palette = np.zeros((CITYSCAPES_NUM_CLASSES, 3), dtype=np.uint8)
    for entry in CITYSCAPES_LABELS:
        channel = _channel_of(entry.id)
        names[channel] = entry.name
        palette[channel] = entry.color
    return LabelSpec(
        dataset="cityscapes",
        num_classes=CITYSCAPES_NUM_CLASSES,
        lut=identity_lut(CITYSCAPES_MAX_LABEL_ID + 1),
        valid_desc=f"0..{CITYSCAPES_MAX_LABEL_ID} (labelIds)",
        class_names=tuple(names),
        palette=palette,
        dontcare_index=None,
    )


# `--palette cityscapes`: colour label images in the official colours.
register_builtin_palette("cityscapes", lambda: palette_of_spec(cityscapes_label_spec()))


def cityscapes_train_id_lut(ignore_index: int = 255) -> np.ndarray:
    """``int64 [35]``: channel (label id) -> trainId (0..18), ``ignore_index`` for classes not evaluated."""
    lut = np.full(CITYSCAPES_NUM_CLASSES, ignore_index, dtype=np.int64)
    for entry in CITYSCAPES_LABELS:
        if 0 <= entry.trainId < 255:
            lut[_channel_of(entry.id)] = entry.trainId
    return lut


def normalize_split(split: str) -> str:
    """Accept ``train/val/test`` (and ``training/validation``)."""
    name = _SPLIT_ALIASES.get(split, split)
    if name not in CITYSCAPES_SPLITS:
        raise ValueError(f"unknown Cityscapes split {split!r}; expected one of {', '.join(CITYSCAPES_SPLITS)}")
    return name


def _key_by_suffix(suffix: str):
    def key_of(path: Path) -> str | None:
        return f"{path.parent.name}/{path.name[: -len(suffix)]}" if path.name.endswith(suffix) else None

    return key_of


class CityscapesDataset(StandardLayoutDataset):
    """Cityscapes ``labelIds`` + ``instanceIds`` + ``leftImg8bit`` photos.

    Args:
        root: folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: ``train``, ``val`` or ``test``.
        load_size: ``(width, height)`` to resize to (default 512x256 as in the paper); ``None`` keeps 2048x1024.
        crop_size, flip: random crop / horizontal flip (see :class:`SemanticTransform`).
        validate: check pairing and file headers at start-up.
        seed: seed the augmentations per (seed, epoch, index).
    """

    name = "cityscapes"
    default_load_size = CITYSCAPES_DEFAULT_SIZE


    @classmethod
    def available_splits(cls, root: str | Path, **options: object) -> list[str | None]:
        root = require_dir(Path(root), "Cityscapes root")
        require_dir(root / "leftImg8bit", "Cityscapes image folder")
        return [s for s in CITYSCAPES_SPLITS if (root / "leftImg8bit" / s).is_dir()]

    @classmethod
    def discover(cls, root: str | Path, split: str | None, **options: object) -> Discovery:
        root = require_dir(Path(root), "Cityscapes root")
        split = normalize_split(split or "train")
        image_split = require_dir(root / "leftImg8bit" / split, "Cityscapes image folder")
        label_split = require_dir(root / "gtFine" / split, "Cityscapes label folder")
        image_files: list[Path] = []
        label_files: list[Path] = []
        for city in sorted(p for p in image_split.iterdir() if p.is_dir()):
            image_files += list_files(city, [IMAGE_SUFFIX])
        for city in sorted(p for p in label_split.iterdir() if p.is_dir()):
            label_files += list_files(city, [LABEL_SUFFIX, INSTANCE_SUFFIX])
        images, issues = index_by_key(image_files, _key_by_suffix(IMAGE_SUFFIX))
        labels, more = index_by_key(label_files, _key_by_suffix(LABEL_SUFFIX))
        issues += more
        instances, more = index_by_key(label_files, _key_by_suffix(INSTANCE_SUFFIX))
        issues += more
        pairs, more = pair_files(
            images,
            labels,
            instances,
            label_where=f"{label_split}/<city>/*{LABEL_SUFFIX}",
            image_where=f"{image_split}/<city>/*{IMAGE_SUFFIX}",
            instance_where=f"{label_split}/<city>/*{INSTANCE_SUFFIX}",
        )
        issues += more
        return Discovery(root, split, cityscapes_label_spec(), True, pairs, issues)
