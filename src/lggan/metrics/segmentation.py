"""Segmentation-based scores (LGGAN Table 3): segment generated images, compare with the input label maps.

Protocol (SPADE / LGGAN): a segmentation network labels each generated image; the prediction is compared
with the ground-truth label map in the network's training-id space. The confusion matrix is summed over
the whole set; IoU_c = TP / (TP + FP + FN); mIoU = mean over classes with a defined IoU (nanmean).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS
from torch import nn

from lggan.config import LabelProtocol, choices
from lggan.images import IMAGENET_MEAN, IMAGENET_STD
from lggan.metrics.files import (
    batch_by_shape,
    image_size,
    list_images,
    load_image_uint8,
    load_label_map,
    one_line,
    pair_by_name,
    resize_image,
    uint8_to_unit,
)
from lggan.progress import progress_bar

IGNORE_INDEX = 255
LABEL_PROTOCOLS = choices(LabelProtocol)

# Cityscapes label id -> train id (19 classes); ids whose train id is 255 or -1 are ignored.
_CITYSCAPES_MAX_ID = max(label.id for label in _CITYSCAPES_LABELS)
CITYSCAPES_CLASS_NAMES = tuple(
    label.name for label in sorted(_CITYSCAPES_LABELS, key=lambda lab: lab.trainId) if 0 <= label.trainId < 255
)

ADE20K_CLASS_NAMES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)  # fmt: skip

LABEL_PROTOCOL_TEXT = {
    "cityscapes": "Cityscapes label ids -> 19 train ids (cityscapesscripts.helpers.labels); others -> ignore 255",
    "ade20k": "ADE20K labels 1..150 -> 0..149 (label - 1); 0 (other) -> ignore 255",
    "identity": "labels used as class indices 0..C-1; the ignore index -> 255",
}


def _cityscapes_lut() -> torch.Tensor:
    """Lookup table label id (0..33) -> train id, 255 for ignored ids."""
    lut = torch.full((_CITYSCAPES_MAX_ID + 1,), IGNORE_INDEX, dtype=torch.long)
    for label in _CITYSCAPES_LABELS:
        if label.id >= 0 and 0 <= label.trainId < 255:
            lut[label.id] = label.trainId
    return lut


_CITYSCAPES_LUT = _cityscapes_lut()


def _reject_out_of_range(labels: torch.Tensor, valid: torch.Tensor, what: str) -> None:
    """Error naming the label values that the protocol does not know."""
    if not bool(valid.all()):
        bad = torch.unique(labels[~valid])[:10].tolist()
        raise ValueError(f"label values {bad} are not valid {what}")


def cityscapes_to_train_ids(labels: torch.Tensor) -> torch.Tensor:
    """Cityscapes label ids -> train ids 0..18; unlabeled/void ids and license plate (-1) -> 255."""
    labels = labels.long()
    _reject_out_of_range(labels, (labels >= -1) & (labels <= _CITYSCAPES_MAX_ID), "Cityscapes label ids (-1..33)")
    lut = _CITYSCAPES_LUT.to(labels.device)
    return torch.where(labels >= 0, lut[labels.clamp(min=0)], IGNORE_INDEX)


def ade20k_to_train_ids(labels: torch.Tensor) -> torch.Tensor:
    """ADE20K (SceneParsing) labels 1..150 -> 0..149; 0 -> 255."""
    labels = labels.long()
    _reject_out_of_range(labels, (labels >= 0) & (labels <= len(ADE20K_CLASS_NAMES)), "ADE20K labels (0..150)")
    return torch.where(labels > 0, labels - 1, IGNORE_INDEX)


def identity_to_train_ids(
    labels: torch.Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> torch.Tensor:
    """Labels already are class indices 0..C-1; `ignore_index` (if any) -> 255."""
    labels = labels.long()
    ignored = labels == ignore_index if ignore_index is not None else torch.zeros_like(labels, dtype=torch.bool)
    in_range = (labels >= 0) & (labels < num_classes)
    _reject_out_of_range(labels, in_range | ignored, f"class indices for {num_classes} classes (ignore {ignore_index})")
    return torch.where(ignored, IGNORE_INDEX, labels)


def map_labels(
    labels: torch.Tensor, protocol: str, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> torch.Tensor:
    """Raw label map -> training ids with 255 = ignore, under the named label protocol."""
    if protocol == "cityscapes":
        return cityscapes_to_train_ids(labels)
    if protocol == "ade20k":
        return ade20k_to_train_ids(labels)
    if protocol == "identity":
        return identity_to_train_ids(labels, num_classes, ignore_index)
    raise ValueError(f"label_protocol must be one of {LABEL_PROTOCOLS}, got {protocol!r}")


def default_class_names(protocol: str, num_classes: int) -> tuple[str, ...]:
    """Dataset class names for the known protocols, else class_0..class_{C-1}."""
    known = {"cityscapes": CITYSCAPES_CLASS_NAMES, "ade20k": ADE20K_CLASS_NAMES}.get(protocol)
    if known is not None and len(known) == num_classes:
        return known
    return tuple(f"class_{i}" for i in range(num_classes))


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Confusion counts [C,C] (rows: ground truth, columns: prediction) over non-ignored pixels."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction and label shapes differ: {list(pred.shape)} vs {list(target.shape)}")
    valid = target != ignore_index
    t, p = target[valid].long(), pred[valid].long()
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"ground-truth ids must be in [0, {num_classes}) or {ignore_index}")
    if p.numel() and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"predicted ids must be in [0, {num_classes})")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).view(num_classes, num_classes)


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """IoU = diag / (row + col - diag) per class, float64; NaN where a class is absent from GT and prediction."""
    conf = confusion.to(torch.float64)
    tp = conf.diagonal()
    union = conf.sum(dim=1) + conf.sum(dim=0) - tp
    return tp / union  # 0/0 -> NaN by IEEE rules


def _finite_or_none(value: float) -> float | None:
    """JSON-safe float: NaN -> None."""
    return None if math.isnan(value) else value


def segmentation_summary(confusion: torch.Tensor, total_pixels: int, class_names: Sequence[str]) -> dict:
    """mIoU, both pixel-accuracy conventions and per-class IoU from a dataset-level confusion matrix."""
    iou = iou_per_class(confusion)
    correct = int(confusion.diagonal().sum().item())
    valid = int(confusion.sum().item())
    return {
        "miou": _finite_or_none(100.0 * torch.nanmean(iou).item()),
        "pixel_accuracy": _finite_or_none(100.0 * correct / total_pixels if total_pixels else math.nan),
        "pixel_accuracy_valid": _finite_or_none(100.0 * correct / valid if valid else math.nan),
        "per_class_iou": {name: _finite_or_none(100.0 * v) for name, v in zip(class_names, iou.tolist(), strict=True)},
        "num_classes_present": int((~iou.isnan()).sum().item()),
        "num_pixels": int(total_pixels),
        "num_valid_pixels": valid,
    }


class Segmenter:
    """A segmentation network plus its input normalisation and label space; predicts from [0,1] RGB."""

    def __init__(
        self,
        module: nn.Module,
        num_classes: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        input_range: tuple[float, float] = (0.0, 1.0),
        class_names: Sequence[str] | None = None,
        label_protocol: str = "identity",
        ignore_index: int | None = IGNORE_INDEX,
        source: str = "",
    ) -> None:
        if label_protocol not in LABEL_PROTOCOLS:
            raise ValueError(f"label_protocol must be one of {LABEL_PROTOCOLS}, got {label_protocol!r}")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"mean/std need 3 entries each with std > 0, got mean={mean} std={std}")
        names = tuple(class_names) if class_names is not None else default_class_names(label_protocol, num_classes)
        if len(names) != num_classes or len(set(names)) != len(names):
            raise ValueError(f"class_names needs {num_classes} distinct names, got {len(names)}: {list(names)[:10]}")
        self.module = module.eval()
        self.num_classes = num_classes
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.class_names = names
        self.label_protocol = label_protocol
        self.ignore_index = ignore_index
        self.source = source

    def to(self, device: str | torch.device) -> "Segmenter":
        """Move the network to `device`."""
        self.module = self.module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """Device of the network parameters (CPU if it has none)."""
        return next(self.module.parameters(), torch.empty(0)).device

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """[0,1] RGB -> network input: rescale to input_range, then (x - mean) / std."""
        low, high = self.input_range
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images * (high - low) + low - mean) / std

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores [B,C,H,W] at the input size (bilinear upsampling if the network outputs less)."""
        if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(f"images: expected float [B,3,H,W] in [0,1], got {images.dtype} {list(images.shape)}")
        out = self.module(self.normalise(images.to(self.device)))
        if isinstance(out, dict):
            out = out["out"]  # torchvision segmentation models return {'out': ..., 'aux': ...}
        elif isinstance(out, (tuple, list)):
            out = out[0]
        if out.dim() != 4 or out.shape[1] != self.num_classes:
            raise ValueError(f"segmenter output must be [B,{self.num_classes},h,w], got {list(out.shape)}")
        if out.shape[-2:] != images.shape[-2:]:
            out = F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return out

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class ids [B,H,W] (long) of images [B,3,H,W] in [0,1]."""
        return self.logits(images).argmax(dim=1)

    def protocol(self) -> dict:
        """JSON description of the network, normalisation and label space."""
        return {
            "segmenter": self.source,
            "num_classes": self.num_classes,
            "input": f"[0,1] RGB rescaled to {list(self.input_range)}, then (x - mean) / std",
            "mean": list(self.mean),
            "std": list(self.std),
            "label_protocol": self.label_protocol,
            "ignore_index": self.ignore_index,
        }


def load_torchscript_segmenter(
    path: str | os.PathLike,
    num_classes: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    input_range: tuple[float, float] = (0.0, 1.0),
    class_names: Sequence[str] | None = None,
    label_protocol: str = "identity",
    ignore_index: int | None = IGNORE_INDEX,
    device: str | torch.device = "cpu",
) -> Segmenter:
    """TorchScript segmentation network (e.g. a scripted DRN-D-105 / UperNet-101) with its input normalisation.

    The network maps normalised [B,3,H,W] to logits [B,C,h,w] (or a tuple / {'out': ...} holding them).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"segmenter: TorchScript file {file} does not exist")
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.export, but it is how the reference segmenters ship.
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*is deprecated", category=FutureWarning)
            module = torch.jit.load(str(file), map_location=device)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ValueError(f"segmenter: {file} is not a loadable TorchScript module: {one_line(exc)}") from None
    return Segmenter(
        module,
        num_classes,
        mean,
        std,
        input_range,
        class_names,
        label_protocol,
        ignore_index,
        source=f"TorchScript {file}",
    )


def _resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[H,W] label map -> [*size] with 'nearest-exact' (pixel-centre) sampling, values unchanged."""
    if tuple(labels.shape) == size:
        return labels
    resized = F.interpolate(labels[None, None].to(torch.float64), size=size, mode="nearest-exact")
    return resized[0, 0].round().long()


def _eval_pairs(
    pairs: Sequence[tuple[Path, Path]],
    eval_size: tuple[int, int] | None,
    to_train_ids: Callable[[torch.Tensor], torch.Tensor],
    label_sizes: Mapping[Path, tuple[int, int]] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(image [3,H,W] in [0,1], train ids [H,W]) per pair, both at the eval size: eval_size, else the size
    label_sizes gives the pair's label file, else the image's own."""
    for image_path, label_path in pairs:
        image = uint8_to_unit(load_image_uint8(image_path))
        size = eval_size or (label_sizes or {}).get(label_path) or (image.shape[-2], image.shape[-1])
        try:
            label = to_train_ids(_resize_labels(load_label_map(label_path), size))
        except ValueError as exc:
            raise ValueError(f"label_dir: {label_path}: {exc}") from exc
        yield resize_image(image, size), label


def paired_sizes(image_dir: str | os.PathLike, label_dir: str | os.PathLike, image_suffix: str = "",
                 label_suffix: str = "") -> dict[Path, tuple[int, int]]:
    """Label file -> (H, W) of the image in image_dir it pairs with (read from the headers only)."""
    pairs = pair_by_name(list_images(image_dir, "generated_dir"), list_images(label_dir, "label_dir", recursive=True),
                         image_suffix, label_suffix, real_arg="label_dir")
    return {label: image_size(image) for image, label in pairs}


def segmentation_scores_from_folders(
    generated_dir: str | os.PathLike,
    label_dir: str | os.PathLike,
    segmenter: Segmenter,
    label_protocol: str | None = None,
    ignore_index: int | None = None,
    eval_size: tuple[int, int] | None = None,
    batch_size: int = 8,
    generated_suffix: str = "",
    label_suffix: str = "",
    progress: bool = False,
    label_sizes: Mapping[Path, tuple[int, int]] | None = None,
    on_batch: Callable[[list[Path], torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> dict:
    """mIoU / pixel accuracy of `segmenter` on generated images against the label maps paired by file name.

    Label files are searched recursively (Cityscapes keeps them in city folders); e.g. generated_suffix
    '_leftImg8bit' and label_suffix '_gtFine_labelIds' pair Cityscapes names. eval_size (H, W) resizes images
    (bilinear) and labels (nearest); default: each generated image's own size, labels resized to it. label_sizes
    (label file -> (H, W), from `paired_sizes`) sets the size per label file instead: the real photos scored at
    their generated partners' sizes. on_batch(image files, images [B,3,H,W], target train ids [B,H,W], predicted
    train ids [B,H,W]) sees every batch as scored (a results page draws and scores each image from it).
    """
    protocol = label_protocol or segmenter.label_protocol
    ignore = segmenter.ignore_index if ignore_index is None else ignore_index
    generated = list_images(generated_dir, "generated_dir")
    label_files = list_images(label_dir, "label_dir", recursive=True)
    pairs = pair_by_name(generated, label_files, generated_suffix, label_suffix, real_arg="label_dir")
    num_classes = segmenter.num_classes
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    total_pixels = 0
    samples = _eval_pairs(pairs, eval_size, lambda raw: map_labels(raw, protocol, num_classes, ignore), label_sizes)
    batches = batch_by_shape(samples, batch_size)
    done = 0
    for images, target in progress_bar(batches, desc="segmenting", unit="batch", enabled=progress, leave=False):
        predicted = segmenter.predict(images).cpu()
        confusion += confusion_matrix(predicted, target, num_classes)
        total_pixels += target.numel()
        if on_batch is not None:  # batches keep the pairs' order
            on_batch([image for image, _ in pairs[done : done + len(images)]], images, target, predicted)
        done += len(images)
    result = segmentation_summary(confusion, total_pixels, segmenter.class_names)
    result["num_images"] = len(pairs)
    result["protocol"] = {
        **segmenter.protocol(),
        "label_protocol": protocol,
        "label_mapping": LABEL_PROTOCOL_TEXT[protocol],
        "ignore_index": ignore if protocol == "identity" else None,
        "eval_resolution": list(eval_size) if eval_size else "generated image size" if label_sizes is None else
        "the generated partner's size (per label file)",
        "image_resize": "bilinear, antialias=True (only when the size differs)",
        "label_resize": "nearest-exact (only when the size differs)",
        "confusion": "summed over the set; rows ground truth, columns prediction; ignore 255 excluded",
        "iou": "diag / (row + col - diag); mIoU = nanmean over classes (absent from GT and prediction -> NaN)",
        "pixel_accuracy": "correct / all pixels (ignored count as wrong)",
        "pixel_accuracy_valid": "correct / non-ignored pixels",
        "units": "percent",
    }
    return result
