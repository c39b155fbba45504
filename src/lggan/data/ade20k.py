"""ADE20K scene parsing (``ADEChallengeData2016``) for semantic image synthesis.

::

    ROOT/images/{training,validation}/*.jpg
    ROOT/annotations/{training,validation}/*.png     uint8, 0 = other/unlabelled, 1..150 classes

``ROOT`` may be ``ADEChallengeData2016`` itself or its parent. All 151 values
become channels (0 is kept as a "don't care" channel, as in SPADE); there are
no instance maps, so the generator input has 151 channels.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .common import (
    Discovery,
    LabelSpec,
    StandardLayoutDataset,
    identity_lut,
    pair_folders_by_stem,
    require_dir,
)
from .palette import make_palette
from .transforms import Size

ADE20K_NUM_CLASSES = 151  # 150 object classes + 0 "other"
ADE20K_DEFAULT_SIZE: Size = (256, 256)
ADE20K_FOLDER = "ADEChallengeData2016"
_SPLITS = {"train": "training", "training": "training", "val": "validation", "validation": "validation"}

# Class names of the 150-class SceneParsing benchmark (objectInfo150), value 1..150.
ADE20K_CLASS_NAMES: tuple[str, ...] = (
    "other", "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow",
    "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower",
    "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair",
    "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship",
    "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel",
    "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket",
    "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip


@lru_cache(maxsize=1)
def ade20k_label_spec() -> LabelSpec:
    return LabelSpec(
        dataset="ade20k",
        num_classes=ADE20K_NUM_CLASSES,
        lut=identity_lut(ADE20K_NUM_CLASSES),
        valid_desc=f"0..{ADE20K_NUM_CLASSES - 1}",
        class_names=ADE20K_CLASS_NAMES,
        palette=make_palette(ADE20K_NUM_CLASSES, dontcare_index=0),
        dontcare_index=0,
    )


def resolve_ade20k_root(root: str | Path) -> Path:
    """Return the ``ADEChallengeData2016`` folder given it or its parent."""
    root = require_dir(Path(root), "ADE20K root")
    for candidate in (root, root / ADE20K_FOLDER):
        if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
            return candidate
    raise FileNotFoundError(
        f"ADE20K root {root}: expected images/ and annotations/ in it or in {root / ADE20K_FOLDER}"
    )


def normalize_split(split: str) -> str:
    """``train``/``val`` (or ``training``/``validation``) -> ADE20K folder name."""
    if split not in _SPLITS:
        raise ValueError(f"unknown ADE20K split {split!r}; expected train or val (training / validation)")
    return _SPLITS[split]


class ADE20KDataset(StandardLayoutDataset):
    """ADE20K images + annotations (151 channels, no instance maps).

    Args:
        root: ``ADEChallengeData2016`` or its parent.
        split: ``train``/``val`` (``training``/``validation`` also accepted).
        load_size: ``(width, height)``, default 256x256 as in the paper; ``None`` keeps native sizes.
    """

    name = "ade20k"
    default_load_size = ADE20K_DEFAULT_SIZE


    @classmethod
    def available_splits(cls, root: str | Path, **options: object) -> list[str | None]:
        base = resolve_ade20k_root(root)
        return [s for s in ("training", "validation") if (base / "images" / s).is_dir()]

    @classmethod
    def discover(cls, root: str | Path, split: str | None, **options: object) -> Discovery:
        base = resolve_ade20k_root(root)
        folder = normalize_split(split or "train")
        image_dir = require_dir(base / "images" / folder, "ADE20K image folder")
        label_dir = require_dir(base / "annotations" / folder, "ADE20K annotation folder")
        pairs, issues, _ = pair_folders_by_stem(image_dir, label_dir)
        return Discovery(base, folder, ade20k_label_spec(), False, pairs, issues)
