"""Built-in compact segmenter for mIoU / accuracy on datasets without a published segmentation network.

Trained on real photos of a dataset (samples: {'image': float [3,H,W] in [-1,1], 'label': long [H,W]}),
saved as one safetensors file whose header metadata holds the JSON description (classes, label mapping,
input normalisation), and loaded back as a `Segmenter` for `segmentation_scores_from_folders`.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lggan.io import atomic_write_bytes
from lggan.metrics.files import one_line
from lggan.progress import progress_bar
from lggan.metrics.segmentation import (
    IGNORE_INDEX,
    LABEL_PROTOCOL_TEXT,
    Segmenter,
    default_class_names,
    map_labels,
)

FORMAT_NAME = "lggan-compact-segmenter"
FORMAT_VERSION = 1
METADATA_KEY = "lggan_segmenter"
# Dataset images are in [-1,1]; the Segmenter feeds (x01 - 0.5) / 0.5, i.e. the same range.
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm + ReLU; padding keeps the size at stride 1."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of x to ref's spatial size (odd sizes allowed)."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class CompactSegmenter(nn.Module):
    """Compact FPN-style segmenter: 4 stride-2 stages, dilated context at 1/16, additive top-down path,
    and a full-resolution detail branch so thin classes (poles, signs) keep their edges.

    Most compute runs at 1/2 resolution or below, so it trains in minutes on a CPU at 256x128.
    """

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        if num_classes < 1 or width < 1:
            raise ValueError(f"num_classes and width must be >= 1, got {num_classes} and {width}")
        w = width
        self.num_classes, self.width = num_classes, width
        self.detail = _conv_bn_relu(3, 8)  # [B,8,H,W]
        self.enc1 = nn.Sequential(_conv_bn_relu(3, w, 2), _conv_bn_relu(w, w))  # [B,w,H/2,W/2]
        self.enc2 = nn.Sequential(_conv_bn_relu(w, 2 * w, 2), _conv_bn_relu(2 * w, 2 * w))  # H/4
        self.enc3 = nn.Sequential(_conv_bn_relu(2 * w, 4 * w, 2), _conv_bn_relu(4 * w, 4 * w))  # H/8
        # H/16 with dilations 2 and 4: receptive field wide enough for scene layout (sky above road).
        self.enc4 = nn.Sequential(
            _conv_bn_relu(4 * w, 8 * w, 2),
            _conv_bn_relu(8 * w, 8 * w, dilation=2),
            _conv_bn_relu(8 * w, 8 * w, dilation=4),
        )
        # 1x1 lateral projections let coarse features be added to the finer skip, then one 3x3 conv refines.
        self.lat4 = nn.Conv2d(8 * w, 4 * w, 1)
        self.dec3 = _conv_bn_relu(4 * w, 4 * w)
        self.lat3 = nn.Conv2d(4 * w, 2 * w, 1)
        self.dec2 = _conv_bn_relu(2 * w, 2 * w)
        self.lat2 = nn.Conv2d(2 * w, w, 1)
        self.dec1 = _conv_bn_relu(w, w)
        self.head = nn.Conv2d(w + 8, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] normalised images -> class logits [B,C,H,W]."""
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d3 = self.dec3(e3 + _upsample_to(self.lat4(e4), e3))
        d2 = self.dec2(e2 + _upsample_to(self.lat3(d3), e2))
        d1 = self.dec1(e1 + _upsample_to(self.lat2(d2), e1))
        return self.head(torch.cat([_upsample_to(d1, x), self.detail(x)], dim=1))


def segmenter_metadata(
    model: CompactSegmenter,
    class_names: Sequence[str] | None = None,
    label_protocol: str = "identity",
    ignore_index: int | None = IGNORE_INDEX,
    training: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """JSON-serialisable description stored with the weights (classes, label mapping, normalisation)."""
    names = list(class_names or default_class_names(label_protocol, model.num_classes))
    if len(names) != model.num_classes:
        raise ValueError(f"class_names has {len(names)} entries for {model.num_classes} classes")
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "architecture": {"name": "CompactSegmenter", "num_classes": model.num_classes, "width": model.width},
        "num_classes": model.num_classes,
        "class_names": names,
        "label_protocol": label_protocol,
        "label_mapping": LABEL_PROTOCOL_TEXT[label_protocol],
        "ignore_index": ignore_index,
        "normalisation": {"input_range": [0.0, 1.0], "mean": list(INPUT_MEAN), "std": list(INPUT_STD)},
        "training": training or {},
    }


def save_segmenter(
    model: CompactSegmenter,
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    label_protocol: str = "identity",
    ignore_index: int | None = IGNORE_INDEX,
    training: dict[str, Any] | None = None,
) -> None:
    """Write weights + JSON metadata (see segmenter_metadata) as one safetensors file, atomically."""
    metadata = segmenter_metadata(model, class_names, label_protocol, ignore_index, training)
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={METADATA_KEY: json.dumps(metadata)}))


def read_segmenter_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a saved built-in segmenter; clear errors for missing or foreign files."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"segmenter: {file} does not exist (train one with train_segmenter)")
    try:
        with safe_open(str(file), framework="pt") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"segmenter: {file} is not a safetensors file: {one_line(exc)}") from None
    if METADATA_KEY not in header:
        raise ValueError(f"segmenter: {file} has no {METADATA_KEY!r} metadata; not an lggan segmenter")
    try:
        metadata = json.loads(header[METADATA_KEY])
    except ValueError as exc:
        raise ValueError(f"segmenter: {file} has damaged {METADATA_KEY!r} metadata ({exc})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"segmenter: {file} has {METADATA_KEY!r} metadata that is not a JSON object")
    if metadata.get("format") != FORMAT_NAME or metadata.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"segmenter: {file} has format {metadata.get('format')!r} v{metadata.get('version')}, "
            f"expected {FORMAT_NAME!r} v{FORMAT_VERSION}"
        )
    return metadata


def load_segmenter(path: str | os.PathLike, device: str | torch.device = "cpu") -> Segmenter:
    """Built-in segmenter saved by train_segmenter / save_segmenter, wrapped with its normalisation."""
    metadata = read_segmenter_metadata(path)
    try:
        arch = metadata["architecture"]
        model = CompactSegmenter(arch["num_classes"], arch["width"])
        model.load_state_dict(load_file(str(path)))
        norm = metadata["normalisation"]
    except (KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        raise ValueError(f"segmenter: {Path(path)} does not hold the CompactSegmenter its metadata describes "
                         f"({type(exc).__name__}: {one_line(exc)[:300]})") from None
    return Segmenter(
        model.to(device),
        metadata["num_classes"],
        mean=norm["mean"],
        std=norm["std"],
        input_range=tuple(norm["input_range"]),
        class_names=metadata["class_names"],
        label_protocol=metadata["label_protocol"],
        ignore_index=metadata["ignore_index"],
        source=f"lggan CompactSegmenter {Path(path)}",
    )


def _collate(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack only 'image' and 'label' (other sample entries, e.g. a None instance map, are not batched)."""
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "label": torch.stack([torch.as_tensor(s["label"]) for s in samples]).long(),
    }


def _random_hflip(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each sample left-right with probability 1/2 (images [B,3,H,W], labels [B,H,W])."""
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
    return images, labels


def class_balance_weights(
    dataset: Dataset,
    num_classes: int,
    label_protocol: str = "identity",
    ignore_index: int | None = IGNORE_INDEX,
    max_samples: int = 64,
    seed: int = 0,
) -> torch.Tensor:
    """Cross-entropy class weights 1/sqrt(frequency) from up to max_samples labels, scaled to mean 1 per pixel.

    Rare classes (poles, signs, persons) would otherwise get almost no gradient in a short CPU schedule.
    Classes absent from the sample may still occur elsewhere: they get the largest weight seen (rarest class).
    """
    count = min(max_samples, len(dataset))  # type: ignore[arg-type]
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count]  # type: ignore[arg-type]
    pixels = torch.zeros(num_classes, dtype=torch.float64)
    for index in indices.tolist():
        ids = map_labels(torch.as_tensor(dataset[index]["label"]), label_protocol, num_classes, ignore_index)
        pixels += torch.bincount(ids[ids != IGNORE_INDEX].flatten(), minlength=num_classes).to(torch.float64)
    if pixels.sum() == 0:
        raise ValueError(f"dataset: the {count} sampled label maps hold no pixel of a training class")
    freq = pixels / pixels.sum()
    present = freq > 0
    weights = torch.zeros_like(freq)
    weights[present] = freq[present].rsqrt()
    weights = weights / (weights * freq).sum()
    weights[~present] = weights[present].max()
    return weights.to(torch.float32)


def _check_training_args(
    dataset: Dataset,
    num_classes: int,
    iterations: int,
    batch_size: int,
    lr: float,
    label_protocol: str,
    class_names: Sequence[str] | None,
) -> None:
    """Reject arguments that cannot train, before any time is spent."""
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("dataset: empty; train_segmenter needs real photos with label maps")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if label_protocol not in LABEL_PROTOCOL_TEXT:
        raise ValueError(f"label_protocol must be one of {tuple(LABEL_PROTOCOL_TEXT)}, got {label_protocol!r}")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} entries for {num_classes} classes")
    if iterations < 1 or batch_size < 1:
        raise ValueError(f"iterations and batch_size must be >= 1, got {iterations} and {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")


def train_segmenter(
    dataset: Dataset,
    out_path: str | os.PathLike,
    num_classes: int,
    iterations: int = 1000,
    batch_size: int = 8,
    lr: float = 3e-3,
    device: str | torch.device = "cpu",
    progress: bool = True,
    label_protocol: str = "identity",
    ignore_index: int | None = IGNORE_INDEX,
    class_names: Sequence[str] | None = None,
    width: int = 16,
    class_balance: bool = True,
    seed: int = 0,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Train a CompactSegmenter (Adam, poly LR decay, cross-entropy ignoring 255, random h-flips) and save it.

    dataset samples are dicts with 'image' float [3,H,W] in [-1,1] and 'label' long [H,W] of raw labels,
    mapped to training ids with `label_protocol` (see segmentation.map_labels). class_balance weights the
    loss by class_balance_weights. Returns a training summary (also stored in the file's metadata).
    """
    _check_training_args(dataset, num_classes, iterations, batch_size, lr, label_protocol, class_names)
    weights = None
    if class_balance:
        weights = class_balance_weights(dataset, num_classes, label_protocol, ignore_index, seed=seed).to(device)
    torch.manual_seed(seed)
    model = CompactSegmenter(num_classes, width).to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda it: (1.0 - it / iterations) ** 0.9)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(dataset) >= batch_size,  # type: ignore[arg-type]
        num_workers=num_workers,
        collate_fn=_collate,
        generator=torch.Generator().manual_seed(seed),
    )
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    tail = max(1, iterations // 10)  # report accuracy over the last 10% of iterations
    correct = counted = 0
    loss_value = float("nan")
    start = time.perf_counter()
    bar = progress_bar(range(iterations), desc="training segmenter", enabled=progress)
    for it in bar:
        batch = next(batches)
        labels = map_labels(batch["label"], label_protocol, num_classes, ignore_index)
        images, labels = _random_hflip(batch["image"].to(device, torch.float32), labels.to(device))
        logits = model(images)
        loss = F.cross_entropy(logits, labels, weight=weights, ignore_index=IGNORE_INDEX)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        loss_value = loss.item()
        if it >= iterations - tail:
            valid = labels != IGNORE_INDEX
            correct += int((logits.argmax(dim=1)[valid] == labels[valid]).sum().item())
            counted += int(valid.sum().item())
        bar.set_postfix(loss=f"{loss_value:.3f}")
    training = {
        "iterations": iterations,
        "batch_size": batch_size,
        "lr": lr,
        "schedule": "poly 0.9",
        "class_weights": weights.tolist() if weights is not None else None,
        "dataset_size": len(dataset),  # type: ignore[arg-type]
        "final_loss": loss_value,
        "train_pixel_accuracy_last_10pct": 100.0 * correct / counted if counted else None,
        "seconds": time.perf_counter() - start,
    }
    model.eval()
    save_segmenter(model, out_path, class_names, label_protocol, ignore_index, training)
    return {**training, "path": str(out_path)}
