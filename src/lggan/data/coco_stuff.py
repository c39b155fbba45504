"""COCO-Stuff in the SPADE layout.

::

    ROOT/{train,val}_img/*.jpg
    ROOT/{train,val}_label/*.png    uint8, 0..181 = 91 thing + 91 stuff classes, 255 = unlabelled
    ROOT/{train,val}_inst/*.png     instance ids (optional: without this folder no edge channel)

255 ("don't care") is mapped to channel 182, giving 183 one-hot channels
(184 generator-input channels with the instance-edge map).
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
from .palette import make_palette, palette_of_spec, register_builtin_palette
from .transforms import Size

COCO_STUFF_RAW_CLASSES = 182
COCO_STUFF_DONTCARE_VALUE = 255
COCO_STUFF_NUM_CLASSES = 183  # 182 classes + "unlabelled" (raw 255) at channel 182
COCO_STUFF_DEFAULT_SIZE: Size = (256, 256)
_SPLITS = {"train": "train", "training": "train", "val": "val", "validation": "val"}

# Raw value v (0-based) is COCO category id v + 1; ids without annotations in
# COCO 2017 (street sign, hat, ...) keep their slot so indices line up.
_THINGS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe",
    "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "mirror", "dining table", "window", "desk", "toilet", "door", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "blender", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush",
)  # fmt: skip
_STUFF = (
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard",
    "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard",
    "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone",
    "floor-tile", "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass",
    "gravel", "ground-other", "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss",
    "mountain", "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other", "plastic",
    "platform", "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad",
    "sand", "sea", "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable", "wall-brick",
    "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other",
    "waterdrops", "window-blind", "window-other", "wood",
)  # fmt: skip
COCO_STUFF_CLASS_NAMES: tuple[str, ...] = (*_THINGS, *_STUFF, "unlabeled")


@lru_cache(maxsize=1)
def coco_stuff_label_spec() -> LabelSpec:
    dontcare = COCO_STUFF_NUM_CLASSES - 1
    return LabelSpec(
        dataset="coco-stuff",
        num_classes=COCO_STUFF_NUM_CLASSES,
        lut=identity_lut(COCO_STUFF_RAW_CLASSES, {COCO_STUFF_DONTCARE_VALUE: dontcare}),
        valid_desc=f"0..{COCO_STUFF_RAW_CLASSES - 1} or {COCO_STUFF_DONTCARE_VALUE} (don't care)",
        class_names=COCO_STUFF_CLASS_NAMES,
        palette=make_palette(COCO_STUFF_NUM_CLASSES, dontcare_index=dontcare),
        dontcare_index=dontcare,
    )


# `--palette coco-stuff`: colour label images in lggan's COCO-Stuff colours (black: don't care, raw 255).
register_builtin_palette("coco-stuff", lambda: palette_of_spec(coco_stuff_label_spec()))


def normalize_split(split: str) -> str:
    if split not in _SPLITS:
        raise ValueError(f"unknown COCO-Stuff split {split!r}; expected train or val")
    return _SPLITS[split]


class CocoStuffDataset(StandardLayoutDataset):
    """COCO-Stuff (SPADE layout): 183 channels, instance edges when ``<split>_inst/`` exists.

    Args:
        root: folder holding ``train_img/``, ``train_label/``, ``train_inst/`` (and ``val_*``).
        split: ``train`` or ``val``.
        load_size: ``(width, height)``, default 256x256; ``None`` keeps native sizes.
    """

    name = "coco-stuff"
    default_load_size = COCO_STUFF_DEFAULT_SIZE


    @classmethod
    def available_splits(cls, root: str | Path, **options: object) -> list[str | None]:
        root = require_dir(Path(root), "COCO-Stuff root")
        return [s for s in ("train", "val") if (root / f"{s}_img").is_dir() or (root / f"{s}_label").is_dir()]

    @classmethod
    def discover(cls, root: str | Path, split: str | None, **options: object) -> Discovery:
        root = require_dir(Path(root), "COCO-Stuff root")
        split = normalize_split(split or "train")
        image_dir = require_dir(root / f"{split}_img", "COCO-Stuff image folder")
        label_dir = require_dir(root / f"{split}_label", "COCO-Stuff label folder")
        instance_dir = root / f"{split}_inst"
        pairs, issues, has_instance = pair_folders_by_stem(image_dir, label_dir, instance_dir)
        return Discovery(root, split, coco_stuff_label_spec(), has_instance, pairs, issues)
