"""Pixel-level cross-view metrics (LGGAN Tables 1-2): SSIM, PSNR and SD as in the SelectionGAN / X-Fork scripts.

All functions take float images [B,3,H,W] in [0,1] (generated first, real second) and return one value
per image as a float64 tensor [B]; the protocols average these over the test set.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Released scripts: PSNR/SD use 255 as peak and 128^2 as the squared-error scale, with m floored at 1e-4.
_PEAK = 255.0
_ERROR_SCALE = 128.0**2
_MIN_ERROR = 1e-4
# Value of PSNR / SD for identical images under that floor: 10 log10(255^2 / 1e-4).
CROSSVIEW_CAP_DB = 10.0 * math.log10(_PEAK**2 / _MIN_ERROR)
# Textbook PSNR floors the MSE so identical images give a finite (JSON-safe) 100 dB at data_range 1.
STANDARD_PSNR_MIN_MSE = 1e-10

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_LUMA = (0.299, 0.587, 0.114)

CROSSVIEW_PIXEL_PROTOCOL = {
    "ssim": (
        "SelectionGAN/X-Fork convention: luma Y = 255*(0.299R+0.587G+0.114B) of [0,1] RGB; 11x11 Gaussian "
        "window sigma 1.5 (sum 1); K1=0.01 K2=0.03 L=255; biased (population) variances; 'full' convolution "
        "(zero padding 10 px, (H+10)x(W+10) map); mean of the whole map; averaged over images"
    ),
    "psnr": (
        "SelectionGAN/X-Fork convention: 10 log10(255^2 / max(m, 1e-4)), m = 128^2 * mean_{c,h,w}(fake-real)^2 "
        "on [0,1] RGB (= standard PSNR + 20 log10(255/128)); averaged over images"
    ),
    "sd": (
        "SelectionGAN/X-Fork sharpness difference: interior pixels, gx=|x[r,c]-x[r,c-1]|, gy=|x[r,c]-x[r-1,c]| "
        "on [0,1] RGB; S = sum_{c,interior} |gx_real-gx_fake| + |gy_real-gy_fake|; m = 128^2 S / (3HW); "
        "10 log10(255^2 / max(m, 1e-4)); averaged over images"
    ),
    "ssim_standard": (
        "textbook SSIM (Wang et al. 2004): RGB per channel, 11x11 Gaussian window sigma 1.5, K1=0.01 K2=0.03, "
        "data_range=1, 'valid' window positions only, mean over channels and map; averaged over images"
    ),
    "psnr_standard": (
        f"textbook PSNR: 10 log10(1 / max(mse, {STANDARD_PSNR_MIN_MSE})), data_range=1, mse over c,h,w of [0,1] "
        "RGB; averaged over images"
    ),
}


def check_image_pair(fake: torch.Tensor, real: torch.Tensor) -> None:
    """Validate generated/real batches: float [B,3,H,W], same shape, values in [0,1]."""
    for name, images in (("fake", fake), ("real", real)):
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            got = f"dtype {images.dtype}" if isinstance(images, torch.Tensor) else type(images).__name__
            raise TypeError(f"{name}: expected a float tensor [B,3,H,W] in [0,1], got {got}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"{name}: expected shape [B,3,H,W], got {list(images.shape)}")
        if images.numel() and (images.min() < -1e-6 or images.max() > 1 + 1e-6):
            raise ValueError(
                f"{name}: values must lie in [0,1], got [{images.min().item():.4g}, {images.max().item():.4g}]"
                " (map [-1,1] images with (x+1)/2)"
            )
    if fake.shape != real.shape:
        raise ValueError(f"fake and real shapes differ: {list(fake.shape)} vs {list(real.shape)}")


def gaussian_kernel_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian [size] (float64, sums to 1); the 2-D SSIM window is its outer product."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def _gaussian_filter(t: torch.Tensor, padding: int) -> torch.Tensor:
    """Per-channel 11x11 Gaussian filtering of [B,C,H,W] as two 1-D passes (the window is separable).

    Zero padding `padding` px per side: 0 = 'valid', 10 = 'full'. The window is symmetric, so this
    cross-correlation equals convolution.
    """
    channels = t.shape[1]
    g = gaussian_kernel_1d().to(device=t.device, dtype=t.dtype)
    t = F.conv2d(t, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), padding=(padding, 0), groups=channels)
    return F.conv2d(t, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), padding=(0, padding), groups=channels)


def rgb_to_luma255(images: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] in [0,1] -> luma [B,1,H,W] in [0,255] (float64, ITU-R BT.601 weights)."""
    weights = torch.tensor(_LUMA, dtype=torch.float64, device=images.device).view(1, 3, 1, 1)
    return 255.0 * (images.to(torch.float64) * weights).sum(dim=1, keepdim=True)


def _ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float, padding: int) -> torch.Tensor:
    """SSIM map of [B,C,H,W] float64 images, per channel with a Gaussian window; padding 0 = valid, 10 = full."""
    channels = x.shape[1]
    # Filter the five moment images in one grouped pass: [B,5C,H,W] -> mu_x, mu_y, E[x^2], E[y^2], E[xy].
    moments = _gaussian_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), padding)
    mu_x, mu_y, xx, yy, xy = moments.split(channels, dim=1)
    var_x = xx - mu_x**2
    var_y = yy - mu_y**2
    cov_xy = xy - mu_x * mu_y
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return numerator / denominator


def ssim_crossview(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM, SelectionGAN/X-Fork convention (luma 0-255, 'full' convolution); [B] float64."""
    check_image_pair(fake, real)
    ssim_map = _ssim_map(rgb_to_luma255(fake), rgb_to_luma255(real), _PEAK, padding=SSIM_WINDOW - 1)
    return ssim_map.mean(dim=(1, 2, 3))


def ssim_standard(fake: torch.Tensor, real: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image textbook SSIM (RGB, Gaussian 11/1.5, valid positions, data_range); [B] float64."""
    check_image_pair(fake, real)
    if min(fake.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"ssim_standard needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {fake.shape[-2]}x{fake.shape[-1]}"
        )
    ssim_map = _ssim_map(fake.to(torch.float64), real.to(torch.float64), data_range, padding=0)
    return ssim_map.mean(dim=(1, 2, 3))


def _crossview_db(error: torch.Tensor) -> torch.Tensor:
    """10 log10(255^2 / max(m, 1e-4)), the released scripts' decibel mapping."""
    return 10.0 * torch.log10(_PEAK**2 / error.clamp(min=_MIN_ERROR))


def psnr_crossview(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR, SelectionGAN/X-Fork convention (m = 128^2 * MSE on [0,1]); [B] float64."""
    check_image_pair(fake, real)
    mse = ((fake.to(torch.float64) - real.to(torch.float64)) ** 2).mean(dim=(1, 2, 3))
    return _crossview_db(_ERROR_SCALE * mse)


def psnr_standard(fake: torch.Tensor, real: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image textbook PSNR 10 log10(data_range^2 / MSE), MSE floored at 1e-10; [B] float64."""
    check_image_pair(fake, real)
    mse = ((fake.to(torch.float64) - real.to(torch.float64)) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse.clamp(min=STANDARD_PSNR_MIN_MSE))


def _interior_gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward absolute differences at interior pixels: gx, gy each [B,3,H-2,W-2]."""
    centre = images[..., 1:-1, 1:-1]
    gx = (centre - images[..., 1:-1, :-2]).abs()
    gy = (centre - images[..., :-2, 1:-1]).abs()
    return gx, gy


def sharpness_difference(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-image sharpness difference (SD), SelectionGAN/X-Fork convention; [B] float64."""
    check_image_pair(fake, real)
    height, width = fake.shape[-2:]
    if height < 3 or width < 3:
        raise ValueError(f"sharpness_difference needs images of at least 3x3, got {height}x{width}")
    fgx, fgy = _interior_gradients(fake.to(torch.float64))
    rgx, rgy = _interior_gradients(real.to(torch.float64))
    total = ((rgx - fgx).abs() + (rgy - fgy).abs()).sum(dim=(1, 2, 3))
    return _crossview_db(_ERROR_SCALE * total / (3.0 * height * width))


PIXEL_METRICS = {
    "ssim": ssim_crossview,
    "psnr": psnr_crossview,
    "sd": sharpness_difference,
    "ssim_standard": ssim_standard,
    "psnr_standard": psnr_standard,
}
