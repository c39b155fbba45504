"""Full check and statistics of a dataset on disk (``lggan data inspect``): semantic datasets
(:func:`inspect_dataset`) and cross-view panel files (:func:`inspect_crossview`).

Unlike dataset start-up (pairing + headers only), inspection decodes every
file, so it finds truncated files and out-of-range label values too, and it
collects *every* problem instead of stopping at the first.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import progress_bar

from .ade20k import ade20k_label_spec
from .cityscapes import cityscapes_label_spec
from .coco_stuff import coco_stuff_label_spec
from .common import LabelSpec, SamplePaths, describe_invalid, load_image, load_index_map, load_raw_label
from .crossview import (
    CROSSVIEW_CLASS_NAMES,
    CROSSVIEW_NUM_CLASSES,
    VIEWS,
    CrossViewDataError,
    is_blank_panel,
    list_crossview_files,
    map_panel,
    read_crossview_image,
    resolve_palette,
    split_panels,
)
from .custom import MAX_LABEL_VALUE, custom_label_spec
from .palette import VOID_LABEL, LabelPalette, first_channel, palette_summary, resolve_label_palette

Size = tuple[int, int]


@dataclass
class SplitReport:
    """Statistics of one split. Sizes are ``(width, height)``; ``min_size`` holds the smallest
    width and the smallest height seen (possibly from different images), likewise ``max_size``."""

    split: str | None
    num_pairs: int = 0
    has_instance: bool = False
    min_size: Size | None = None
    max_size: Size | None = None
    pixel_counts: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class DatasetReport:
    """Result of :func:`inspect_dataset`."""

    dataset: str
    root: str
    num_classes: int
    class_names: list[str]
    splits: list[SplitReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    general_problems: list[str] = field(default_factory=list)

    @property
    def num_pairs(self) -> int:
        return sum(s.num_pairs for s in self.splits)

    @property
    def min_size(self) -> Size | None:
        sizes = [s.min_size for s in self.splits if s.min_size is not None]
        return (min(w for w, _ in sizes), min(h for _, h in sizes)) if sizes else None

    @property
    def max_size(self) -> Size | None:
        sizes = [s.max_size for s in self.splits if s.max_size is not None]
        return (max(w for w, _ in sizes), max(h for _, h in sizes)) if sizes else None

    @property
    def pixel_counts(self) -> list[int]:
        totals = np.zeros(self.num_classes, np.int64)
        for split in self.splits:
            totals += np.asarray(split.pixel_counts, np.int64)
        return totals.tolist()

    @property
    def pixel_percent(self) -> list[float]:
        counts = np.asarray(self.pixel_counts, np.float64)
        total = counts.sum()
        return (100.0 * counts / total).tolist() if total else [0.0] * self.num_classes

    @property
    def problems(self) -> list[str]:
        return self.general_problems + [p for s in self.splits for p in s.problems]

    @property
    def ok(self) -> bool:
        return not self.problems


def _dataset_class(name: str):
    # Imported here: the package __init__ imports this module.
    from . import SEMANTIC_DATASETS, SYNTH_CITY, normalize_dataset_name

    key = normalize_dataset_name(name)
    return key, SEMANTIC_DATASETS["cityscapes" if key == SYNTH_CITY else key]


def inspect_dataset(
    root: str | Path | None,
    dataset: str,
    split: str | None = None,
    num_classes: int | None = None,
    dontcare: int | None = None,
    *,
    image_dir: str | Path | None = None,
    label_dir: str | Path | None = None,
    instance_dir: str | Path | None = None,
    max_pairs: int | None = None,
    palette: str | Path | LabelPalette | None = None,
    progress: bool = False,
) -> DatasetReport:
    """Decode every pair of ``split`` (all splits present when ``None``) and report statistics and problems.

    Args:
        root: dataset folder (for ``synth-city``, ``None`` means the default cache folder).
        dataset: ``cityscapes``, ``ade20k``, ``coco-stuff``, ``custom`` or ``synth-city``.
        num_classes, dontcare: custom datasets; if ``num_classes`` is omitted it is inferred
            from the largest label value (and reported in ``notes``).
        image_dir, label_dir, instance_dir: custom folder overrides.
        max_pairs: only look at the first ``max_pairs`` pairs of each split.
        palette: read colour label images through it (a name of LABEL_PALETTE_NAMES, a JSON file or a
            LabelPalette); single-channel label files are read as always.
        progress: show a progress bar.

    Raises:
        FileNotFoundError: the root folder does not exist.
        ValueError: unknown dataset / split name or invalid ``num_classes``/``dontcare``.
    """
    key, dataset_cls = _dataset_class(dataset)
    label_palette = resolve_label_palette(palette, "--palette")
    if root is None:
        if key != "synth-city":
            raise ValueError(f"root is required to inspect dataset {key}")
        from .synthetic import default_synth_city_root

        root = default_synth_city_root()
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset root {root} does not exist")
    options: dict[str, object] = {}
    infer_classes = False
    if key == "custom":
        infer_classes = num_classes is None
        # A provisional one-class spec lets discovery run; the real one is built from the data below.
        options = {"num_classes": 1 if infer_classes else num_classes, "dontcare": None if infer_classes else dontcare,
                   "image_dir": image_dir, "label_dir": label_dir, "instance_dir": instance_dir}  # fmt: skip
    elif any(v is not None for v in (num_classes, dontcare, image_dir, label_dir, instance_dir)):
        raise ValueError(f"num_classes, dontcare and the folder options only apply to the custom dataset, not {key}")

    if infer_classes and dontcare is not None:
        if not isinstance(dontcare, int) or isinstance(dontcare, bool) or not 0 <= dontcare <= MAX_LABEL_VALUE:
            raise ValueError(f"dontcare must be an integer in 0..{MAX_LABEL_VALUE}, got {dontcare!r}")
    # Argument errors before scanning.
    spec = None if infer_classes else _label_spec(key, num_classes, dontcare, label_palette)

    splits = [split] if split is not None else dataset_cls.available_splits(root, **options)
    report_splits: list[SplitReport] = []
    raw_totals: list[np.ndarray] = []
    general: list[str] = []
    if not splits:
        general.append(f"{root}: no splits found")
    for name in splits:
        try:
            discovery = dataset_cls.discover(root, name, **options)
        except FileNotFoundError as exc:
            report_splits.append(SplitReport(name, problems=[str(exc)]))
            raw_totals.append(np.zeros(1, np.int64))
            continue
        pairs = discovery.pairs[:max_pairs] if max_pairs is not None else discovery.pairs
        split_report = SplitReport(discovery.split, num_pairs=len(discovery.pairs), has_instance=discovery.has_instance)
        split_report.problems += [str(issue) for issue in discovery.issues]
        if not discovery.pairs:
            split_report.problems.append(f"{root} split {discovery.split!r}: no image/label pairs found (empty split)")
        raw_totals.append(_scan_pairs(pairs, spec, split_report, progress, label_palette))
        report_splits.append(split_report)

    notes: list[str] = []
    if infer_classes:
        combined = _sum_counts(raw_totals)
        values = np.nonzero(combined)[0]
        values = values[values != dontcare] if dontcare is not None else values
        inferred = int(values.max()) + 1 if len(values) else 1
        spec = custom_label_spec(inferred, dontcare if dontcare is None or dontcare >= inferred else None,
                                 label_palette=label_palette)
        notes.append(f"num_classes not given: inferred {inferred} from the largest label value")
        if dontcare is not None and dontcare < inferred:
            notes.append(f"dontcare {dontcare} lies inside 0..{inferred - 1} and was treated as a class")
    for split_report, raw in zip(report_splits, raw_totals):
        split_report.pixel_counts = _class_counts(raw, spec).tolist()
    if max_pairs is not None:
        notes.append(f"only the first {max_pairs} pairs of each split were decoded")
    if label_palette is not None:
        notes += palette_summary(label_palette)
    return DatasetReport(
        dataset=key,
        root=str(root),
        num_classes=spec.num_classes,
        class_names=list(spec.class_names),
        splits=report_splits,
        notes=notes,
        general_problems=general,
    )


def _label_spec(key: str, num_classes: int | None, dontcare: int | None,
                label_palette: LabelPalette | None = None) -> LabelSpec:
    """Label mapping of dataset ``key`` (custom: from the arguments, named and coloured by its label palette)."""
    if key == "custom":
        return custom_label_spec(num_classes, dontcare, label_palette=label_palette)
    specs = {"ade20k": ade20k_label_spec, "coco-stuff": coco_stuff_label_spec}
    return specs.get(key, cityscapes_label_spec)()


def _sum_counts(arrays: list[np.ndarray]) -> np.ndarray:
    length = max((len(a) for a in arrays), default=1)
    total = np.zeros(length, np.int64)
    for array in arrays:
        total[: len(array)] += array
    return total


def _class_counts(raw_counts: np.ndarray, spec: LabelSpec) -> np.ndarray:
    """Pixels per channel from pixels per raw value (invalid raw values are not counted)."""
    channels = spec.map_raw(np.arange(len(raw_counts)))
    valid = channels >= 0
    return np.bincount(channels[valid], weights=raw_counts[valid], minlength=spec.num_classes).astype(np.int64)


def _scan_pairs(pairs: list[SamplePaths], spec: LabelSpec | None, report: SplitReport, progress: bool,
                palette: LabelPalette | None = None) -> np.ndarray:
    """Decode each pair; record sizes and problems in ``report``; return pixel counts per raw label value."""
    raw_counts = np.zeros(256, np.int64)
    min_w = min_h = None
    max_w = max_h = 0
    for pair in progress_bar(pairs, desc=f"inspect {report.split}", unit="pair", enabled=progress):
        image = label = instance = None
        try:
            image = load_image(pair.image)
        except (ValueError, FileNotFoundError) as exc:
            report.problems.append(str(exc))
        try:
            label = load_raw_label(pair.label, palette)
        except (ValueError, FileNotFoundError) as exc:
            report.problems.append(str(exc))
        if pair.instance is not None:
            try:
                instance = load_index_map(pair.instance, "instance")
            except (ValueError, FileNotFoundError) as exc:
                report.problems.append(str(exc))
        if image is not None:
            height, width = image.shape[:2]
            min_w = width if min_w is None else min(min_w, width)
            min_h = height if min_h is None else min(min_h, height)
            max_w, max_h = max(max_w, width), max(max_h, height)
            for role, path, array in (("label", pair.label, label), ("instance", pair.instance, instance)):
                if array is not None and array.shape != (height, width):
                    report.problems.append(
                        f"{path}: {role} size {array.shape[1]}x{array.shape[0]} does not match image "
                        f"{pair.image.name} size {width}x{height}"
                    )
        if label is not None:
            if spec is not None:
                mapped = spec.map_raw(label)
                if (mapped < 0).any():
                    report.problems.append(f"{pair.label}: {describe_invalid(label, mapped, spec)}")
            # PNG values are never negative; clip only guards bincount against odd decoders.
            counts = np.bincount(np.clip(label.ravel(), 0, None))
            if len(counts) > len(raw_counts):
                raw_counts = np.concatenate([raw_counts, np.zeros(len(counts) - len(raw_counts), np.int64)])
            raw_counts[: len(counts)] += counts
    if min_w is not None:
        report.min_size, report.max_size = (min_w, min_h), (max_w, max_h)
    return raw_counts


def format_report(report: DatasetReport) -> str:
    """Readable multi-line report: splits, sizes, class frequency table, problems."""
    def size(value: Size | None) -> str:
        return f"{value[0]}x{value[1]}" if value else "-"

    lines = [f"{report.dataset} at {report.root}: {report.num_pairs} pairs, {report.num_classes} classes"]
    lines.append(f"  {'split':<12} {'pairs':>7}  {'min WxH':>11}  {'max WxH':>11}  instances")
    for split in report.splits:
        lines.append(
            f"  {str(split.split):<12} {split.num_pairs:>7}  {size(split.min_size):>11}  {size(split.max_size):>11}  "
            f"{'yes' if split.has_instance else 'no'}"
        )
    if len(report.splits) > 1:
        lines.append(f"  {'all':<12} {report.num_pairs:>7}  {size(report.min_size):>11}  {size(report.max_size):>11}")
    lines.append("")
    lines.append(f"  {'id':>4}  {'class':<24} {'pixels':>15} {'%':>8}")
    for index, (name, pixels, percent) in enumerate(zip(report.class_names, report.pixel_counts, report.pixel_percent)):
        lines.append(f"  {index:>4}  {name[:24]:<24} {pixels:>15,} {percent:>8.3f}")
    for note in report.notes:
        lines.append(f"note: {note}")
    problems = report.problems
    lines.append("")
    if problems:
        lines.append(f"{len(problems)} problem(s):")
        lines.extend(f"  - {p}" for p in problems)
    else:
        lines.append("no problems found")
    return "\n".join(lines)


# --------------------------------------------------------------------------- cross-view data

# Void share of the mask pixels above which `inspect` lists a problem: exact matching leaves about 9 % of the
# released CVUSA masks void (JPEG noise), which is how the release reads them; far more means a wrong palette.
VOID_PROBLEM_SHARE = 0.25
VOID_NOTE_SHARE = 0.05
# Void RGB colours are counted per channel rounded to this step, so JPEG noise around one colour lands in one bin.
VOID_COLOUR_STEP = 32


def _void_colour_keys(panel: np.ndarray, void: np.ndarray, palette: LabelPalette) -> Counter[str]:
    """How many void pixels of each value: the first channel (gray palettes) or the rounded RGB colour."""
    if palette.kind == "gray":
        values = first_channel(panel, "mask panel")[void]
        return Counter({str(v): int(n) for v, n in zip(*np.unique(values, return_counts=True))})
    rgb = np.asarray(panel)[..., :3][void].astype(np.int32)  # [N, 3]
    binned = np.minimum(255, VOID_COLOUR_STEP * np.rint(rgb / VOID_COLOUR_STEP)).astype(np.int32)
    colours, counts = np.unique(binned, axis=0, return_counts=True)
    return Counter({",".join(str(int(v)) for v in c): int(n) for c, n in zip(colours, counts)})


def _entry_name(palette: LabelPalette, p: int) -> str:
    """Readable name of class palette entry ``p``: its colour, its name (if any) and its class."""
    colour = int(palette.colours[p, 0]) if palette.kind == "gray" else ",".join(str(int(v)) for v in palette.colours[p])
    name = f" {palette.colour_names[p]}" if p < len(palette.colour_names) and palette.colour_names[p] else ""
    k = int(palette.ids[p])
    target = "void" if k == VOID_LABEL else (
        CROSSVIEW_CLASS_NAMES[k] if k < len(CROSSVIEW_CLASS_NAMES) else f"class {k + 1}")
    return f"{colour}{name} -> {target}"


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
    # format ("6-panel"/"4-panel") -> name of the mask palette its files were read with
    palettes: dict[str, str] = field(default_factory=dict)
    # palette entry ("10 -> vehicle", "0,0,255 man-made -> structure") -> pixels matched to it
    palette_pixels: dict[str, int] = field(default_factory=dict)
    # void pixels per value: first-channel value (gray palettes) or RGB rounded to VOID_COLOUR_STEP ("255,255,0")
    void_colours: dict[str, int] = field(default_factory=dict)
    # view -> files whose colour segmentation is all black (CVUSA's aerial one), not counted as void
    blank_segmentations: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

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
    color_tolerance: float | None = None,
    gray_tolerance: float | None = None,
    progress: bool = False,
    mask_palette: str | os.PathLike[str] | LabelPalette | None = None,
) -> CrossViewReport:
    """Read every file of ``root/split`` (or of every existing train/test split) and report.

    Masks are read at the files' own size with ``mask_palette`` (see :func:`resolve_palette`; the tolerances
    override the palette's). Void pixels are counted per file and per value (:attr:`CrossViewReport.void_colours`),
    so a colour missing from the palette shows up. Bad files (unreadable, wrong width, panel size differing from
    the majority) are listed in ``problems`` instead of raising; a missing root or split, or one with no images at
    all, raises naming the folder.
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
    report.class_pixels = {view: [0] * CROSSVIEW_NUM_CLASSES for view in VIEWS}
    report.blank_segmentations = {view: 0 for view in VIEWS}
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

    palettes: dict[int, LabelPalette] = {}

    def palette_for(num_panels: int, name: str) -> LabelPalette:
        if num_panels not in palettes:
            pal = resolve_palette(mask_palette, num_panels, where=name)
            override = color_tolerance if pal.kind == "rgb" else gray_tolerance
            if override is not None:
                pal = replace(pal, tolerance=float(override))
            palettes[num_panels] = pal
        return palettes[num_panels]

    iterator: Any = files
    if progress:
        iterator = progress_bar(files, desc="inspect", unit="file")
    sizes: Counter[int] = Counter()
    formats: Counter[str] = Counter()
    matched: Counter[str] = Counter()
    void_colours: Counter[str] = Counter()
    for _, path in iterator:
        name = path.relative_to(root_path).as_posix()
        try:
            panels = split_panels(read_crossview_image(path), name)
            palette = palette_for(len(panels), name)
        except CrossViewDataError as exc:
            report.problems.append(str(exc) if name in str(exc) else f"{name}: {exc}")
            continue
        sizes[panels["A"].shape[0]] += 1
        formats[f"{len(panels)}-panel"] += 1
        report.palettes[f"{len(panels)}-panel"] = palette.name
        void = 0
        for view in VIEWS:
            panel = panels[map_panel(palette, view)]
            if palette.panels == "colour" and is_blank_panel(panel):
                # An all-black map panel is a placeholder (SelectionGAN's CVUSA aerial map), not a class map.
                report.blank_segmentations[view] += 1
                continue
            index = palette.colour_index(panel)  # [H, W], -1 = void
            label = np.append(palette.ids, VOID_LABEL)[index]
            counts = np.bincount(label.ravel(), minlength=256)
            for k in range(CROSSVIEW_NUM_CLASSES):
                report.class_pixels[view][k] += int(counts[k])
            for p, n in enumerate(np.bincount(index.ravel() + 1, minlength=len(palette.ids) + 1)[1:]):
                if n:
                    matched[_entry_name(palette, p)] += int(n)
            is_void = label == VOID_LABEL
            void += int(is_void.sum())
            void_colours.update(_void_colour_keys(panel, is_void, palette))
            report.mask_pixels += int(label.size)
        report.void_pixels[name] = void
        report.void_total += void

    report.panel_sizes = dict(sorted(sizes.items()))
    report.formats = dict(sorted(formats.items()))
    report.palette_pixels = dict(matched.most_common())
    report.void_colours = dict(void_colours.most_common())
    if len(sizes) > 1:
        report.problems.append(f"mixed panel sizes {dict(sizes)}: a dataset expects one panel size")
    share = report.void_total / report.mask_pixels if report.mask_pixels else 0.0
    if share > VOID_NOTE_SHARE:
        top = ", ".join(f"{k} ({v})" for k, v in list(report.void_colours.items())[:3])
        text = f"{100 * share:.1f}% of mask pixels are void (most frequent void values: {top})"
        if share > VOID_PROBLEM_SHARE:
            hint = " (check the file format or the palette: data.palette / --palette"
            if "4-panel" in report.formats and mask_palette is None:
                hint += "; SelectionGAN's CVUSA files need selectiongan-cvusa"
            report.problems.append(text + hint + ")")
        else:
            report.notes.append(text + "; the release reads its masks by exact match and leaves these out too")
    return report


def format_crossview_report(report: CrossViewReport, top_void: int = 10) -> str:
    """Human-readable text of a :class:`CrossViewReport`."""
    lines = [f"cross-view dataset: {report.root}"]
    split_text = ", ".join(f"{s} {n}" for s, n in report.splits.items())
    lines.append(f"files: {report.num_files} ({split_text})")
    lines.append("formats: " + (", ".join(f"{k} {v}" for k, v in report.formats.items()) or "none readable"))
    lines.append("panel sizes: " + (", ".join(f"{k}px {v}" for k, v in report.panel_sizes.items()) or "none"))
    if report.palettes:
        lines.append("mask palettes: " + ", ".join(f"{k} {v}" for k, v in report.palettes.items()))
    freq = report.class_frequency()
    lines.append(f"class pixel frequency {'aerial':>8} {'street':>8}")
    for k, name in enumerate(report.class_names):
        lines.append(
            f"  {k + 1} {name:<16} {100 * freq['aerial'][k]:7.2f}% {100 * freq['street'][k]:7.2f}%"
        )
    if report.palette_pixels:
        lines.append("pixels per palette colour:")
        lines.extend(f"  {k}: {v}" for k, v in report.palette_pixels.items())
    share = 100 * report.void_total / report.mask_pixels if report.mask_pixels else 0.0
    with_void = {n: v for n, v in report.void_pixels.items() if v}
    lines.append(
        f"void pixels: {report.void_total} ({share:.3f}% of mask pixels) in {len(with_void)} of "
        f"{len(report.void_pixels)} files"
    )
    for name, count in sorted(with_void.items(), key=lambda kv: (-kv[1], kv[0]))[:top_void]:
        lines.append(f"  {name}: {count}")
    if report.void_colours:
        lines.append("void pixels per value (gray: first channel; colour: RGB rounded to "
                     f"{VOID_COLOUR_STEP}):")
        lines.extend(f"  {k}: {v}" for k, v in list(report.void_colours.items())[:top_void])
    blank = {v: n for v, n in report.blank_segmentations.items() if n}
    if blank:
        lines.append("blank colour segmentations (no mask): " + ", ".join(f"{v} {n}" for v, n in blank.items()))
    lines.extend(f"note: {n}" for n in report.notes)
    lines.append(f"problems: {len(report.problems)}")
    lines.extend(f"  - {p}" for p in report.problems)
    return "\n".join(lines)
