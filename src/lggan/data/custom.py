"""A user's own dataset: a folder of photos and a folder of label PNGs matched by file stem.

Layout (folder names overridable with ``image_dir``/``label_dir``/``instance_dir``,
relative to ``ROOT`` or absolute)::

    ROOT/<split>/images/*.{jpg,png,...}     or, with split=None,   ROOT/images/...
    ROOT/<split>/labels/*.png                                       ROOT/labels/...
    ROOT/<split>/instances/*.png  (optional)                        ROOT/instances/...

Label values must be ``0..num_classes-1``. If the data has a "don't care"
value (e.g. 255), pass it as ``dontcare``: it must lie outside that range and
is mapped to the extra channel ``num_classes``, so the dataset then has
``num_classes + 1`` one-hot channels.

Colour label images (RGB PNGs) are read through ``palette``: a built-in name
(``lggan.data.palette.LABEL_PALETTE_NAMES``) or a JSON file mapping colours to
label values (:func:`lggan.data.palette.load_label_palette_json`); an unknown
colour is an error naming the file, the colour and a pixel where it is.
Single-channel label maps may sit beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .common import (
    IMAGE_EXTENSIONS,
    Discovery,
    LabelSpec,
    SemanticDataset,
    identity_lut,
    pair_folders_by_stem,
    require_dir,
)
from .palette import LabelPalette, make_palette, resolve_label_palette
from .transforms import Size

MAX_LABEL_VALUE = 65535  # labels are 8- or 16-bit PNGs
DEFAULT_DIRS = {"image": "images", "label": "labels", "instance": "instances"}


def custom_label_spec(
    num_classes: int | None, dontcare: int | None, class_names: Sequence[str] | None = None,
    label_palette: LabelPalette | None = None,
) -> LabelSpec:
    """Label mapping for ``num_classes`` classes plus an optional don't-care value (-> channel ``num_classes``).

    With the ``label_palette`` the colour label images are read through, each class is drawn in its colour there and
    named by it (when the palette names it and ``class_names`` is not given).
    """
    if num_classes is None:
        raise ValueError("num_classes is required for a custom dataset (label values 0..num_classes-1)")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or not 1 <= num_classes <= MAX_LABEL_VALUE:
        raise ValueError(f"num_classes must be an integer in 1..{MAX_LABEL_VALUE}, got {num_classes!r}")
    extra: dict[int, int] = {}
    channels = num_classes
    if dontcare is not None:
        is_int = isinstance(dontcare, int) and not isinstance(dontcare, bool)
        if not is_int or not num_classes <= dontcare <= MAX_LABEL_VALUE:
            raise ValueError(
                f"dontcare must be an integer in {num_classes}..{MAX_LABEL_VALUE} (outside the class values "
                f"0..{num_classes - 1}), got {dontcare!r}"
            )
        extra[dontcare] = num_classes
        channels = num_classes + 1
    known = label_palette.names if label_palette is not None else {}
    names = list(class_names) if class_names is not None else [known.get(i, f"class_{i}") for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} entries but num_classes is {num_classes}")
    if dontcare is not None:
        names.append("dontcare")
    valid = f"0..{num_classes - 1}" + (f" or {dontcare} (don't care)" if dontcare is not None else "")
    return LabelSpec(
        dataset="custom",
        num_classes=channels,
        lut=identity_lut(num_classes, extra),
        valid_desc=valid,
        class_names=tuple(names),
        palette=_class_colours(channels, num_classes if dontcare is not None else None, label_palette),
        dontcare_index=num_classes if dontcare is not None else None,
    )


def _class_colours(channels: int, dontcare_index: int | None, label_palette: LabelPalette | None) -> np.ndarray:
    """uint8 [channels, 3]: the label palette's colour of each class id, generic colours where it has none."""
    colours = make_palette(channels, dontcare_index=dontcare_index)
    if label_palette is not None:
        for c in range(channels if dontcare_index is None else dontcare_index):
            colour = label_palette.colour_of(c)
            if colour is not None:
                colours[c] = colour
    return colours


def _resolve(root: Path, base: Path, given: str | Path | None, default: str) -> tuple[Path, bool]:
    """Folder for one role and whether the user named it explicitly."""
    if given is None:
        return base / default, False
    path = Path(given)
    return (path if path.is_absolute() else root / path), True


class CustomDataset(SemanticDataset):
    """Photos + label PNGs (+ optional instance PNGs) matched by file stem.

    Args:
        root: dataset folder.
        split: sub-folder of ``root`` holding ``images/``, ``labels/``; ``None`` for a flat layout.
        num_classes: number of real classes (label values ``0..num_classes-1``).
        dontcare: raw label value meaning "unlabelled", mapped to channel ``num_classes``.
        image_dir, label_dir, instance_dir: override the folder names (relative to ``root`` or absolute).
        class_names: optional names of the ``num_classes`` classes.
        palette: colour -> label value palette for colour label images (a name, a JSON file or a LabelPalette);
            ``None``: label maps must be single-channel.
        load_size: ``(width, height)``; ``None`` (default) keeps native sizes, which must then agree to batch.
    """

    name = "custom"
    default_load_size = None

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        num_classes: int | None = None,
        dontcare: int | None = None,
        image_dir: str | Path | None = None,
        label_dir: str | Path | None = None,
        instance_dir: str | Path | None = None,
        class_names: Sequence[str] | None = None,
        palette: str | Path | LabelPalette | None = None,
        load_size: Size | None = None,
        crop_size: Size | None = None,
        flip: bool = False,
        validate: bool = True,
        seed: int | None = None,
    ) -> None:
        self.label_palette = resolve_label_palette(palette, "custom dataset palette")
        discovery = self.discover(
            root,
            split,
            num_classes=num_classes,
            dontcare=dontcare,
            image_dir=image_dir,
            label_dir=label_dir,
            instance_dir=instance_dir,
            class_names=class_names,
            label_palette=self.label_palette,
        )
        super().__init__(discovery, load_size=load_size, crop_size=crop_size, flip=flip, validate=validate, seed=seed)

    @classmethod
    def available_splits(cls, root: str | Path, **options: object) -> list[str | None]:
        root = require_dir(Path(root), "custom dataset root")
        if options.get("image_dir") is not None or options.get("label_dir") is not None:
            return [None]
        splits: list[str | None] = sorted(
            p.name
            for p in root.iterdir()
            if p.is_dir() and (p / DEFAULT_DIRS["image"]).is_dir() and (p / DEFAULT_DIRS["label"]).is_dir()
        )
        return splits or [None]

    @classmethod
    def discover(cls, root: str | Path, split: str | None, **options: object) -> Discovery:
        root = require_dir(Path(root), "custom dataset root")
        spec = custom_label_spec(options.get("num_classes"), options.get("dontcare"), options.get("class_names"),
                                 options.get("label_palette"))
        explicit = options.get("image_dir") is not None and options.get("label_dir") is not None
        base = root
        if split is not None and not explicit:
            base = root / split
            if not base.is_dir():
                raise FileNotFoundError(
                    f"custom dataset split folder {base} does not exist; for a flat layout "
                    f"({root}/images, {root}/labels) use split=None, or pass image_dir and label_dir"
                )
        image_dir, _ = _resolve(root, base, options.get("image_dir"), DEFAULT_DIRS["image"])
        label_dir, _ = _resolve(root, base, options.get("label_dir"), DEFAULT_DIRS["label"])
        instance_dir, instance_named = _resolve(root, base, options.get("instance_dir"), DEFAULT_DIRS["instance"])
        require_dir(image_dir, "custom image folder")
        require_dir(label_dir, "custom label folder")
        if instance_named:
            require_dir(instance_dir, "custom instance folder")
        pairs, issues, has_instance = pair_folders_by_stem(image_dir, label_dir, instance_dir, IMAGE_EXTENSIONS)
        return Discovery(root, split, spec, has_instance, pairs, issues)
