"""Places365 AlexNet classifier used by the cross-view IS / accuracy / KL scores (SelectionGAN protocol)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
import torchvision.transforms.functional as TF
from torch import nn

from lggan.images import IMAGENET_MEAN, IMAGENET_STD
from lggan.metrics.files import load_weights_file, one_line, resolve_weights_file

PLACES365_WEIGHTS_FILE = "alexnet_places365.pth.tar"
PLACES365_NUM_CLASSES = 365
RESIZE_SHORTER = 256
CROP = 224
_SOURCE = "the Places365-CNN AlexNet checkpoint released by the Places365 authors (MIT CSAIL)"

PLACES365_PROTOCOL = {
    "classifier": "torchvision alexnet(num_classes=365) with Places365 weights",
    "preprocess": (
        f"[0,1] RGB; resize shorter side to {RESIZE_SHORTER} (bilinear, antialias=True); centre crop {CROP}; "
        "ImageNet mean/std normalisation"
    ),
    "probabilities": "softmax over the 365 logits",
}


def _strip_module(key: str) -> str:
    """Drop DataParallel 'module' components anywhere in a key ('features.module.0.weight' -> 'features.0.weight')."""
    return ".".join(part for part in key.split(".") if part != "module")


def load_places365_state_dict(
    path: str | os.PathLike, arg_name: str = "places365_weights"
) -> dict[str, torch.Tensor]:
    """Read a Places365 AlexNet checkpoint ({'state_dict': ...} or a bare state dict), 'module.' stripped.

    The file is loaded with torch.load(weights_only=True): the released checkpoint holds plain tensors, and
    anything else in a pickle could run code when loaded.
    """
    checkpoint = load_weights_file(path, arg_name)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{arg_name}: {path} is neither a state dict nor a dict with a 'state_dict' entry")
    return {_strip_module(key): value for key, value in state.items()}


def resolve_places365_weights(weights: str | os.PathLike | None = None, arg_name: str = "places365_weights") -> Path:
    """Local AlexNet-Places365 checkpoint: `weights`, else torch.hub.get_dir()/checkpoints/<file>; never downloads."""
    return resolve_weights_file(weights, PLACES365_WEIGHTS_FILE, arg_name, _SOURCE)


def load_places365_alexnet(
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    arg_name: str = "places365_weights",
) -> nn.Module:
    """AlexNet-Places365 in eval mode from `weights` or torch.hub.get_dir()/checkpoints/alexnet_places365.pth.tar.

    The model's `weights_path` attribute names the file (for the protocol record).
    """
    path = resolve_places365_weights(weights, arg_name)
    model = torchvision.models.alexnet(num_classes=PLACES365_NUM_CLASSES)
    state = load_places365_state_dict(path, arg_name)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"{arg_name}: {path} does not match torchvision alexnet(num_classes=365): {one_line(exc)}"
        ) from None
    model.weights_path = str(path)
    return model.to(device).eval().requires_grad_(False)


def places365_preprocess(images: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] in [0,1] -> normalised [B,3,224,224] AlexNet input."""
    resized = TF.resize(images, RESIZE_SHORTER, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    cropped = TF.center_crop(resized, [CROP, CROP])
    return TF.normalize(cropped, IMAGENET_MEAN, IMAGENET_STD)


@torch.no_grad()
def places365_probs(images: torch.Tensor, model: nn.Module, batch_size: int = 64) -> torch.Tensor:
    """Softmax class probabilities [N,365] (float64, CPU) of images [N,3,H,W] in [0,1]."""
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images: expected float [N,3,H,W] in [0,1], got {images.dtype} {list(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        batch = places365_preprocess(images[start : start + batch_size].to(device=device, dtype=torch.float32))
        chunks.append(torch.softmax(model(batch).to(torch.float64), dim=1).cpu())
    return torch.cat(chunks)
