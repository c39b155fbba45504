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

import numpy as np

from .common import (
    Discovery,
    LabelSpec,
    StandardLayoutDataset,
    identity_lut,
    pair_folders_by_stem,
    require_dir,
)
from .palette import palette_of_spec, register_builtin_palette
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


# The colour of each class 1..150 in the scene-parsing benchmark's colour table (color150, as its toolkit and the
# usual visualisers draw ADE20K label maps; road and skyscraper share (140, 140, 140) there). Value 0 ("other") is
# drawn black.
ADE20K_COLOURS: tuple[tuple[int, int, int], ...] = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80), (140, 140, 140),
    (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7), (150, 5, 61), (120, 120, 70),
    (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7), (204, 70, 3), (0, 102, 200),
    (61, 230, 250), (255, 6, 51), (11, 102, 255), (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220),
    (255, 9, 92), (112, 9, 255), (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10),
    (7, 255, 255), (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255), (140, 140, 140),
    (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0), (153, 255, 0), (0, 0, 255), (255, 71, 0),
    (0, 235, 255), (0, 173, 255), (31, 0, 255), (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255),
    (0, 255, 112), (0, 255, 133), (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255),
    (51, 255, 0), (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20), (255, 184, 184),
    (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194), (0, 255, 82), (0, 10, 255),
    (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255), (0, 255, 163), (255, 153, 0), (0, 255, 10),
    (255, 112, 0), (143, 255, 0), (82, 0, 255), (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255),
    (0, 255, 92), (184, 0, 255), (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0),
    (0, 224, 255), (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255), (255, 0, 122),
    (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255), (255, 255, 0), (0, 153, 255),
    (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0), (173, 0, 255), (0, 245, 255), (71, 0, 255),
    (122, 0, 255), (0, 255, 184), (0, 92, 255), (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194),
    (102, 255, 0), (92, 0, 255),
)  # fmt: skip


@lru_cache(maxsize=1)
def ade20k_label_spec() -> LabelSpec:
    return LabelSpec(
        dataset="ade20k",
        num_classes=ADE20K_NUM_CLASSES,
        lut=identity_lut(ADE20K_NUM_CLASSES),
        valid_desc=f"0..{ADE20K_NUM_CLASSES - 1}",
        class_names=ADE20K_CLASS_NAMES,
        palette=np.array([(0, 0, 0), *ADE20K_COLOURS], dtype=np.uint8),
        dontcare_index=0,
    )


# `--palette ade20k`: colour label images in the benchmark's colour table.
register_builtin_palette("ade20k", lambda: palette_of_spec(ade20k_label_spec()))


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
