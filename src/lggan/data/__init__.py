"""Semantic-image-synthesis datasets (Cityscapes, ADE20K, COCO-Stuff, custom, synthetic city).

Use :func:`build_semantic_dataset` to get a dataset by name; every dataset
yields dicts ``{"label", "instance", "image", "path"}`` (see
:mod:`lggan.data.common`) and exposes ``num_classes``, ``has_instance``,
``class_names`` and ``palette``. Batch with :func:`collate_semantic` and turn
a batch into the generator input with :func:`make_semantic_input`.
"""

from __future__ import annotations

from pathlib import Path

from .ade20k import ADE20K_NUM_CLASSES, ADE20KDataset
from .cityscapes import CITYSCAPES_NUM_CLASSES, CityscapesDataset, cityscapes_train_id_lut
from .coco_stuff import COCO_STUFF_NUM_CLASSES, CocoStuffDataset
from .common import (
    DataIssue,
    DatasetError,
    LabelSpec,
    SemanticDataset,
    collate_semantic,
    instance_edges,
    make_semantic_input,
    one_hot_labels,
)
from .crossview import (
    CROSSVIEW_CLASS_NAMES,
    CROSSVIEW_PALETTE,
    CrossViewDataError,
    CrossViewDataset,
    class_masks,
    collate_crossview,
    read_crossview_inputs,
)
from .custom import CustomDataset
from .inspect import (
    DatasetReport,
    SplitReport,
    format_crossview_report,
    format_report,
    inspect_crossview,
    inspect_dataset,
)
from .palette import LabelPalette, colorize_label, make_palette
from .synthetic import (
    default_synth_city_root,
    ensure_synth_city,
    format_synth_summary,
    generate_synth_city,
    is_synth_city,
    render_scene,
    summarize_synth_city,
)
from .synthetic_views import default_synth_views_root, ensure_synth_views, generate_synth_views, render_views
from .transforms import SemanticTransform, parse_size
from .. import config as _config

SEMANTIC_DATASETS: dict[str, type[SemanticDataset]] = {
    "cityscapes": CityscapesDataset,
    "ade20k": ADE20KDataset,
    "coco-stuff": CocoStuffDataset,
    "custom": CustomDataset,
}
SYNTH_CITY = "synth-city"  # Cityscapes layout, generated on demand
_ALIASES = {"cocostuff": "coco-stuff", "coco": "coco-stuff", "ade": "ade20k", "synthcity": SYNTH_CITY,
            "synthetic": SYNTH_CITY}  # fmt: skip
# The names are declared once, in the config; each has its reader here (synth-city: the Cityscapes reader).
DATASET_NAMES = _config.SEMANTIC_DATASETS
NATIVE = "native"  # load_size value meaning "keep the files' size"


def normalize_dataset_name(name: str) -> str:
    """Canonical dataset name (``coco_stuff`` -> ``coco-stuff``); ValueError listing choices if unknown."""
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key.replace("-", ""), key)
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    return key


def _synth_city_root(root: str | Path | None) -> Path:
    """The folder a ``synth-city`` dataset reads: generated only into the cache, never into a given path.

    A mistyped ``--data`` must fail, not silently train on a freshly generated city. A given folder is
    read in the Cityscapes layout whether or not it was generated (a generated one has that layout too).
    """
    if root is None:
        return ensure_synth_city(None)
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"--data {root}: no such folder (leave --data out to use the generated synthetic city)")
    return root


def build_semantic_dataset(
    name: str,
    root: str | Path | None,
    split: str | None,
    *,
    load_size: tuple[int, int] | str | None = None,
    crop_size: tuple[int, int] | str | None = None,
    flip: bool = False,
    num_classes: int | None = None,
    dontcare: int | None = None,
    image_dir: str | Path | None = None,
    label_dir: str | Path | None = None,
    instance_dir: str | Path | None = None,
    palette: str | Path | None = None,
    validate: bool = True,
    seed: int | None = None,
) -> SemanticDataset:
    """Create a semantic dataset by name.

    Args:
        name: ``cityscapes``, ``ade20k``, ``coco-stuff``, ``custom`` or ``synth-city``.
        root: dataset folder. For ``synth-city`` ``None`` means the default cache
            folder, generated on first use (see :func:`ensure_synth_city`); a given
            folder must exist (FileNotFoundError otherwise) and is read as Cityscapes.
        split: ``train``/``val`` (``test`` for Cityscapes); ``None`` only for a flat custom folder.
        load_size: ``(width, height)`` or ``"WxH"``; ``None`` = dataset default (Cityscapes 512x256,
            ADE20K / COCO-Stuff 256x256, custom and synth-city native), ``"native"`` = no resize.
        crop_size: random crop ``(width, height)`` after resizing, or ``None``.
        flip: random horizontal flip.
        num_classes, dontcare, image_dir, label_dir, instance_dir: custom datasets only.
        palette: custom datasets only: colour label images are read through this palette (a name of
            ``lggan.data.palette.LABEL_PALETTE_NAMES`` or a JSON file).
        validate: check pairing and file headers at start-up.
        seed: make augmentations reproducible per (seed, epoch, index).
    """
    key = normalize_dataset_name(name)
    custom_options = {"num_classes": num_classes, "dontcare": dontcare, "image_dir": image_dir,
                      "label_dir": label_dir, "instance_dir": instance_dir, "palette": palette}  # fmt: skip
    if key != "custom":
        given = [option for option, value in custom_options.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply to the custom dataset, not {key}")
    if key == SYNTH_CITY:
        root = _synth_city_root(root)
        dataset_cls: type[SemanticDataset] = CityscapesDataset
        default_size = None
    else:
        if root is None:
            raise ValueError(f"root is required for dataset {key}")
        dataset_cls = SEMANTIC_DATASETS[key]
        default_size = dataset_cls.default_load_size
    if isinstance(load_size, str) and load_size.strip().lower() == NATIVE:
        size = None
    elif load_size is None:
        size = default_size
    else:
        size = parse_size(load_size, "load_size")
    shared = dict(load_size=size, crop_size=parse_size(crop_size, "crop_size"), flip=flip, validate=validate,
                  seed=seed)  # fmt: skip
    if key == "custom":
        return CustomDataset(root, split, **custom_options, **shared)
    if split is None:
        raise ValueError(f"split is required for dataset {key} (e.g. 'train' or 'val')")
    return dataset_cls(root, split, **shared)


def label_spec_for(name: str, num_channels: int | None, dontcare: int | None = None,
                   label_palette: LabelPalette | None = None) -> LabelSpec:
    """The raw-value -> channel mapping of a dataset, given the generator's one-hot channel count.

    For custom data the channels are the label files' classes plus one for the don't-care value, if any, named and
    coloured by the label palette its colour label images are read through (`data.palette`), if any.
    num_channels None: the dataset's own count (custom data needs it).
    """
    from .inspect import _label_spec

    key = normalize_dataset_name(name)
    key = "cityscapes" if key == SYNTH_CITY else key
    if num_channels is None and key == "custom":
        raise ValueError("a custom dataset's label mapping needs its number of classes (--num-classes)")
    classes = None if num_channels is None else num_channels - (1 if (key == "custom" and dontcare is not None) else 0)
    spec = _label_spec(key, classes if key == "custom" else None, dontcare, label_palette)
    if num_channels is not None and spec.num_classes != num_channels:
        raise ValueError(f"data.num_classes={num_channels} does not match the {key} dataset "
                         f"({spec.num_classes} classes)")
    return spec


__all__ = [
    "label_spec_for",
    "CROSSVIEW_CLASS_NAMES",
    "CROSSVIEW_PALETTE",
    "CrossViewDataError",
    "CrossViewDataset",
    "class_masks",
    "collate_crossview",
    "format_crossview_report",
    "inspect_crossview",
    "read_crossview_inputs",
    "default_synth_views_root",
    "ensure_synth_views",
    "generate_synth_views",
    "render_views",
    "ADE20K_NUM_CLASSES",
    "CITYSCAPES_NUM_CLASSES",
    "COCO_STUFF_NUM_CLASSES",
    "DATASET_NAMES",
    "ADE20KDataset",
    "CityscapesDataset",
    "CocoStuffDataset",
    "CustomDataset",
    "DataIssue",
    "DatasetError",
    "DatasetReport",
    "SemanticDataset",
    "SemanticTransform",
    "SplitReport",
    "build_semantic_dataset",
    "cityscapes_train_id_lut",
    "collate_semantic",
    "colorize_label",
    "default_synth_city_root",
    "ensure_synth_city",
    "format_report",
    "format_synth_summary",
    "generate_synth_city",
    "inspect_dataset",
    "instance_edges",
    "is_synth_city",
    "make_palette",
    "make_semantic_input",
    "normalize_dataset_name",
    "one_hot_labels",
    "render_scene",
    "summarize_synth_city",
]
