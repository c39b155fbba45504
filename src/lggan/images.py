"""Photos in any mode PIL opens, as 8-bit RGB by their real range: one reader for datasets, metrics and cross-view."""

from __future__ import annotations

import numpy as np
from PIL import Image

# ImageNet's per-channel mean and std of RGB in [0, 1]: the input normalisation of torchvision's ImageNet networks
# (VGG19 of the perceptual loss, AlexNet-Places365, the default of a TorchScript segmenter).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# PIL's 16-bit integer modes (one grey channel; "I" is how some PNG readers give 16-bit grey).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class UnsupportedImageMode(ValueError):
    """A photo whose pixel mode has no known 8-bit reading (the message names the mode)."""


def photo_rgb(img: Image.Image) -> np.ndarray:
    """``uint8 [H, W, 3]`` of a photo. 8-bit modes (grey, palette, alpha, CMYK, ...) convert as PIL converts them;
    16-bit grey is scaled from [0, 65535] (PIL's own conversion clips it, so most of a 16-bit photo reads white);
    float and other modes whose range is unknown are refused (UnsupportedImageMode, naming the mode)."""
    if img.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(img).astype(np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise UnsupportedImageMode(f"mode {img.mode} with values outside 0..65535 ({grey.min()}..{grey.max()}): not a "
                             "16-bit photo; save it as an 8- or 16-bit image")
        # Round to nearest: 65535 -> 255, 257 k -> k.
        eight = ((grey * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(eight[..., None], 3, axis=-1)
    if img.mode == "F" or img.mode.startswith("I;") or img.mode.startswith("F;"):
        raise UnsupportedImageMode(f"mode {img.mode} (floating-point or unusual integer pixels) has no known range: save the "
                         "photo as an 8- or 16-bit image")
    return np.array(img.convert("RGB"))
