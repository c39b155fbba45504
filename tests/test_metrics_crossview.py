"""Pixel-level cross-view metrics: SSIM / PSNR / SD (SelectionGAN conventions) and the textbook variants."""

import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from lggan.metrics.crossview import (
    CROSSVIEW_CAP_DB,
    psnr_crossview,
    psnr_standard,
    sharpness_difference,
    ssim_crossview,
    ssim_standard,
)


def _rand(*shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, dtype=torch.float64)


def _window() -> np.ndarray:
    ax = np.arange(11) - 5.0
    g = np.exp(-(ax**2) / (2 * 1.5**2))
    w = np.outer(g, g)
    return w / w.sum()


def _ssim_reference(a: np.ndarray, b: np.ndarray, peak: float, mode: str) -> float:
    """Independent SSIM of two 2-D arrays via scipy.signal.convolve2d."""
    w = _window()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = convolve2d(a, w, mode), convolve2d(b, w, mode)
    var_a = convolve2d(a * a, w, mode) - mu_a**2
    var_b = convolve2d(b * b, w, mode) - mu_b**2
    cov = convolve2d(a * b, w, mode) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def test_cap_value() -> None:
    assert CROSSVIEW_CAP_DB == pytest.approx(10 * math.log10(255**2 / 1e-4))
    assert CROSSVIEW_CAP_DB == pytest.approx(88.1308036, abs=1e-6)


def test_identical_images_give_perfect_scores() -> None:
    x = _rand(2, 3, 16, 20)
    assert torch.allclose(ssim_crossview(x, x), torch.ones(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(ssim_standard(x, x), torch.ones(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(psnr_crossview(x, x), torch.full((2,), CROSSVIEW_CAP_DB, dtype=torch.float64))
    assert torch.allclose(sharpness_difference(x, x), torch.full((2,), CROSSVIEW_CAP_DB, dtype=torch.float64))
    assert torch.allclose(psnr_standard(x, x), torch.full((2,), 100.0, dtype=torch.float64))


def test_constant_shift_psnr() -> None:
    real = torch.full((1, 3, 8, 8), 0.25)
    fake = real + 0.1  # squared error 0.01 everywhere
    expected = 10 * math.log10(255**2 / (128**2 * 0.01))
    assert psnr_crossview(fake, real).item() == pytest.approx(expected, abs=1e-5)
    assert psnr_standard(fake, real).item() == pytest.approx(20.0, abs=1e-5)
    # The released scaling is the standard PSNR plus 20 log10(255/128).
    diff = psnr_crossview(fake, real) - psnr_standard(fake, real)
    assert diff.item() == pytest.approx(20 * math.log10(255 / 128), abs=1e-9)


def test_sd_hand_computed_pair() -> None:
    real = torch.zeros(1, 3, 3, 4, dtype=torch.float64)
    real[0, 0, 1] = torch.tensor([0.0, 0.5, 0.25, 0.0])
    fake = torch.zeros_like(real)
    # Interior pixels (1,1), (1,2): gx = 0.5, 0.25; gy = 0.5, 0.25 -> S = 1.5, over 3*H*W = 36.
    expected = 10 * math.log10(255**2 / (128**2 * 1.5 / 36))
    assert sharpness_difference(fake, real).item() == pytest.approx(expected, abs=1e-9)
    assert sharpness_difference(real, fake).item() == pytest.approx(expected, abs=1e-9)
    # Pixels never touched by an interior gradient (last row, last column, top-left corner) change nothing.
    moved = real.clone()
    moved[..., 2, :] = 0.9
    moved[..., :, 3] = 0.7
    moved[..., 0, 0] = 0.3
    assert sharpness_difference(fake, moved).item() == pytest.approx(expected, abs=1e-9)


def test_ssim_crossview_matches_full_convolution_reference() -> None:
    real, fake = _rand(2, 3, 16, 21), _rand(2, 3, 16, 21)
    luma = np.array([0.299, 0.587, 0.114])
    ours = ssim_crossview(fake, real)
    for i in range(2):
        y_real = 255 * np.tensordot(luma, real[i].numpy(), axes=1)
        y_fake = 255 * np.tensordot(luma, fake[i].numpy(), axes=1)
        assert ours[i].item() == pytest.approx(_ssim_reference(y_fake, y_real, 255.0, "full"), abs=1e-10)


def test_ssim_crossview_sees_luma_only() -> None:
    real = _rand(1, 3, 16, 16, low=0.2, high=0.8)
    # A chroma shift with zero luma: 0.299 * 0.587 - 0.587 * 0.299 = 0.
    fake = real + 0.1 * torch.tensor([0.587, -0.299, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    assert ssim_crossview(fake, real).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim_standard(fake, real).item() < 0.999
    assert psnr_crossview(fake, real).item() < CROSSVIEW_CAP_DB


def test_ssim_standard_matches_valid_reference() -> None:
    real, fake = _rand(1, 3, 15, 18), _rand(1, 3, 15, 18)
    expected = np.mean([_ssim_reference(fake[0, c].numpy(), real[0, c].numpy(), 1.0, "valid") for c in range(3)])
    assert ssim_standard(fake, real).item() == pytest.approx(expected, abs=1e-10)


def test_ssim_standard_constant_images_closed_form() -> None:
    # Constant images: variances and covariance vanish, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    fake, real = torch.full((1, 3, 12, 12), 0.2), torch.full((1, 3, 12, 12), 0.4)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.4 + c1) / (0.2**2 + 0.4**2 + c1)
    assert ssim_standard(fake, real).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("fn", [ssim_crossview, psnr_crossview, sharpness_difference, ssim_standard, psnr_standard])
def test_bad_inputs_are_rejected(fn) -> None:
    good = torch.rand(1, 3, 12, 12)
    with pytest.raises(ValueError, match="shapes differ"):
        fn(good, torch.rand(1, 3, 12, 13))
    with pytest.raises(ValueError, match=r"fake: values must lie in \[0,1\]"):
        fn(good * 2 - 1.5, good)
    with pytest.raises(ValueError, match=r"real: expected shape \[B,3,H,W\]"):
        fn(good, good[:, :1])
    with pytest.raises(TypeError, match="fake: expected a float tensor"):
        fn((good * 255).to(torch.uint8), good)


def test_small_images_rejected_where_undefined() -> None:
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_standard(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="at least 3x3"):
        sharpness_difference(torch.rand(1, 3, 2, 8), torch.rand(1, 3, 2, 8))
