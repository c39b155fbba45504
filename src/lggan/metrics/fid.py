"""FID and KID on TF-Inception pool3 features (LGGAN Table 3), via torch-fidelity's InceptionV3 port."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import scipy.linalg
import torch
from torch import nn

from lggan.progress import progress_bar
from lggan.metrics.files import (
    batch_by_shape,
    list_images,
    load_image_uint8,
    load_weights_file,
    one_line,
    resolve_weights_file,
)

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
FEATURE_LAYER = "2048"
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_DEGREE = 3
KID_COEF0 = 1.0
SEED = 2020  # torch-fidelity's default rng_seed, so KID subsets match its draws
FID_EPS = 1e-6

# A feature extractor maps uint8 images [B,3,H,W] to features [B,D].
FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]

TF_INCEPTION_PROTOCOL = {
    "feature_extractor": "torch-fidelity FeatureExtractorInceptionV3 (TF Inception 2015-12-05 port), pool3 2048-d",
    "input": "uint8 RGB [B,3,H,W]",
    "resize": (
        "torch-fidelity interpolate_bilinear_2d_like_tensorflow1x to 299x299, align_corners=False, "
        "no antialiasing (TF1 bilinear)"
    ),
    "normalisation": "(x - 128) / 128",
}


def _inception_source() -> str:
    """Where the TF-Inception weights come from (the URL torch-fidelity itself would use)."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return f"torch-fidelity's converted TF-Inception weights, released at {URL_INCEPTION_V3}"


def resolve_inception_weights(weights: str | os.PathLike | None = None, arg_name: str = "inception_weights") -> Path:
    """Local TF-Inception weights: `weights`, else torch.hub.get_dir()/checkpoints/<file>; never downloads."""
    return resolve_weights_file(weights, INCEPTION_WEIGHTS_FILE, arg_name, _inception_source())


def load_inception_state_dict(path: str | os.PathLike, arg_name: str = "inception_weights") -> dict[str, torch.Tensor]:
    """The TF-Inception state dict of `path`, loaded with torch.load(weights_only=True) (tensors only, no code)."""
    state = load_weights_file(path, arg_name)
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(f"{arg_name}: {path} is not a state dict of tensors (expected {INCEPTION_WEIGHTS_FILE})")
    return state


def _tensors_only_stream(state: dict[str, torch.Tensor]) -> io.BytesIO:
    """An in-memory torch.save of a state dict that is known to hold only tensors.

    torch-fidelity's InceptionV3 constructor loads its weights itself, with torch.load(weights_only=False). Given
    this stream rather than the user's file, that unpickler only ever sees what torch.save wrote for plain
    tensors, so it cannot run code from the file.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


class InceptionPool3(nn.Module):
    """uint8 [B,3,H,W] -> pool3 features [B,2048] through torch-fidelity's TF-compatible InceptionV3."""

    def __init__(self, weights_path: str | os.PathLike, arg_name: str = "inception_weights") -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.weights_path = str(weights_path)
        state = load_inception_state_dict(weights_path, arg_name)
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=_tensors_only_stream(state)
            )
        except RuntimeError as exc:  # load_state_dict: missing/unexpected keys or shape mismatches
            raise ValueError(
                f"{arg_name}: {weights_path} does not fit torch-fidelity's InceptionV3 ({one_line(exc)[:300]})"
            ) from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)[0]


def build_inception_extractor(
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    arg_name: str = "inception_weights",
) -> InceptionPool3:
    """TF-Inception pool3 extractor from a local weights file (see resolve_inception_weights)."""
    return InceptionPool3(resolve_inception_weights(weights, arg_name), arg_name).to(device)


def _extractor_device(extractor: FeatureExtractor) -> torch.device:
    """Device of the extractor's parameters (CPU for parameter-less callables)."""
    if isinstance(extractor, nn.Module):
        for param in extractor.parameters():
            return param.device
    return torch.device("cpu")


@torch.no_grad()
def extract_features(batches: Iterable[torch.Tensor], extractor: FeatureExtractor) -> np.ndarray:
    """Run uint8 batches through the extractor; features [N,D] float64."""
    device = _extractor_device(extractor)
    chunks = []
    for batch in batches:
        if batch.dtype != torch.uint8 or batch.dim() != 4 or batch.shape[1] != 3:
            raise ValueError(f"feature extraction expects uint8 [B,3,H,W], got {batch.dtype} {list(batch.shape)}")
        chunks.append(extractor(batch.to(device)).to(torch.float64).cpu().numpy())
    if not chunks:
        raise ValueError("feature extraction got no images")
    return np.concatenate(chunks)


def folder_features(
    paths: Sequence[Path], extractor: FeatureExtractor, batch_size: int = 32, progress: bool = False, desc: str = ""
) -> np.ndarray:
    """Features [N,D] of image files, loaded as uint8 in batches."""
    batches = (batch for (batch,) in batch_by_shape(((load_image_uint8(p),) for p in paths), batch_size))
    return extract_features(progress_bar(batches, desc=desc, unit="batch", enabled=progress, leave=False), extractor)


def feature_statistics(features: np.ndarray, name: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D,D] (np.cov, ddof 1) of features [N,D]."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 feature vectors [N,D] for a covariance, got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = FID_EPS
) -> float:
    """|mu1-mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)); eps*I added to both covariances if the sqrt is not finite."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"inconsistent Gaussian statistics: mu {mu1.shape}/{mu2.shape}, sigma {sigma1.shape}/{sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Singular product (e.g. fewer samples than dimensions): regularise both covariances.
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # Round-off can leave tiny imaginary parts; a large one means the statistics are broken.
        max_imag = np.max(np.abs(np.diagonal(covmean).imag))
        if max_imag > 1e-3:
            raise ValueError(f"matrix square root has imaginary component {max_imag:.3g}; covariances are invalid")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = KID_DEGREE, gamma: float | None = None, coef0: float = KID_COEF0
) -> np.ndarray:
    """k(x, y) = (gamma <x, y> + coef0)^degree, gamma = 1/D by default; [Nx,Ny]."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD^2: off-diagonal means of K_xx and K_yy minus twice the mean of K_xy (m x m kernels)."""
    m = k_xx.shape[0]
    off_xx = k_xx.sum() - np.trace(k_xx)
    off_yy = k_yy.sum() - np.trace(k_yy)
    return float((off_xx + off_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    gen_features: np.ndarray,
    real_features: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = SEED,
) -> dict[str, float | int]:
    """KID: mean/std (ddof 0) of unbiased polynomial-kernel MMD^2 over random subsets (size clipped to set size)."""
    n_gen, n_real = len(gen_features), len(real_features)
    size = min(subset_size, n_gen, n_real)
    if size < 2:
        raise ValueError(f"KID needs at least 2 generated and 2 real images, got {n_gen} and {n_real}")
    if subsets < 1:
        raise ValueError(f"kid_subsets must be >= 1, got {subsets}")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = gen_features[rng.choice(n_gen, size, replace=False)]
        y = real_features[rng.choice(n_real, size, replace=False)]
        values[i] = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y))
    return {"mean": float(values.mean()), "std": float(values.std()), "subsets": subsets, "subset_size": size}


def fid_kid_from_features(
    gen_features: np.ndarray,
    real_features: np.ndarray,
    kid: bool = True,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    seed: int = SEED,
) -> dict:
    """FID (and KID) between generated and real feature sets, with the settings in 'protocol'."""
    if gen_features.shape[1:] != real_features.shape[1:]:
        raise ValueError(f"feature dimensions differ: {gen_features.shape} vs {real_features.shape}")
    mu_g, sigma_g = feature_statistics(gen_features, "generated features")
    mu_r, sigma_r = feature_statistics(real_features, "real features")
    result: dict = {
        "fid": frechet_distance(mu_g, sigma_g, mu_r, sigma_r),
        "num_generated": int(len(gen_features)),
        "num_real": int(len(real_features)),
    }
    protocol = {
        "fid": f"Frechet distance of Gaussians (np.cov, ddof 1); scipy.linalg.sqrtm, eps {FID_EPS} if singular",
        "feature_dim": int(gen_features.shape[1]),
    }
    if kid:
        result["kid"] = kernel_inception_distance(gen_features, real_features, kid_subsets, kid_subset_size, seed)
        protocol["kid"] = (
            f"unbiased MMD^2, polynomial kernel degree {KID_DEGREE}, gamma 1/d, coef0 {KID_COEF0}; "
            f"{kid_subsets} subsets of size min({kid_subset_size}, set sizes), numpy RandomState({seed})"
        )
    result["protocol"] = protocol
    return result


def extractor_protocol(extractor: FeatureExtractor) -> dict:
    """Protocol entries describing the feature extractor actually used."""
    if isinstance(extractor, InceptionPool3):
        return {**TF_INCEPTION_PROTOCOL, "weights": extractor.weights_path}
    return {"feature_extractor": f"injected {type(extractor).__name__}", "input": "uint8 RGB [B,3,H,W]"}


def fid_kid_from_folders(
    generated_dir: str | os.PathLike,
    real_dir: str | os.PathLike,
    inception_weights: str | os.PathLike | None = None,
    extractor: FeatureExtractor | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    kid: bool = True,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    seed: int = SEED,
    recursive: bool = False,
    progress: bool = False,
) -> dict:
    """FID/KID between two image folders (unpaired, any sizes); `extractor` overrides the TF-Inception network."""
    generated = list_images(generated_dir, "generated_dir", recursive)
    real = list_images(real_dir, "real_dir", recursive)
    if extractor is None:
        extractor = build_inception_extractor(inception_weights, device)
    gen_features = folder_features(generated, extractor, batch_size, progress, "generated features")
    real_features = folder_features(real, extractor, batch_size, progress, "real features")
    result = fid_kid_from_features(gen_features, real_features, kid, kid_subsets, kid_subset_size, seed)
    result["protocol"].update(extractor_protocol(extractor))
    return result
