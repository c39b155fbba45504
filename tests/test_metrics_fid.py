"""Frechet distance, KID and the folder -> features -> FID/KID pipeline (TF-Inception loading included)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_kid import kid_features_to_metric

from lggan.metrics.fid import (
    INCEPTION_WEIGHTS_FILE,
    InceptionPool3,
    build_inception_extractor,
    feature_statistics,
    fid_kid_from_features,
    fid_kid_from_folders,
    frechet_distance,
    kernel_inception_distance,
    mmd2_unbiased,
    polynomial_kernel,
)


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.5 * np.eye(d)


def test_frechet_distance_diagonal_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 9.0])
    # |dmu|^2 = 5; sum (sqrt s1 - sqrt s2)^2 = 1 + 1 + 0.
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(7.0, abs=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_matches_eigenvalue_formula() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = _spd(rng, 5), _spd(rng, 5)
    # Tr sqrt(S1 S2) = sum of square roots of the (positive) eigenvalues of S1 S2.
    tr_covmean = np.sum(np.sqrt(np.linalg.eigvals(s1 @ s2).astype(complex)).real)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_sampled_gaussians() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(loc=[0.0, 0.0], scale=[1.0, 2.0], size=(20000, 2))
    y = rng.normal(loc=[1.0, 0.0], scale=[1.0, 1.0], size=(20000, 2))
    fd = frechet_distance(*feature_statistics(x), *feature_statistics(y))
    assert fd == pytest.approx(1.0 + (2.0 - 1.0) ** 2, abs=0.1)


def test_frechet_distance_singular_covariances() -> None:
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(4, 10))  # rank-3 covariance in 10 dimensions
    mu, sigma = feature_statistics(feats)
    fd = frechet_distance(mu, sigma, mu, sigma)
    assert np.isfinite(fd) and abs(fd) < 1e-3
    with pytest.raises(ValueError, match="inconsistent"):
        frechet_distance(mu, sigma, mu[:3], sigma)


def test_feature_statistics() -> None:
    feats = np.array([[1.0, 2.0], [3.0, 6.0]])
    mu, sigma = feature_statistics(feats)
    assert np.allclose(mu, [2.0, 4.0])
    assert np.allclose(sigma, [[2.0, 4.0], [4.0, 8.0]])  # ddof 1
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(feats[:1])


def test_mmd_by_hand() -> None:
    x, y = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
    # k(a,b) = (ab + 1)^3: off-diagonal Kxx sum 2, Kyy 54; Kxy sum 1 + 1 + 8 + 27 = 37.
    assert polynomial_kernel(x, y).tolist() == [[1.0, 1.0], [8.0, 27.0]]
    mmd = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y))
    assert mmd == pytest.approx(56 / 2 - 2 * 37 / 4)
    # Subsets clipped to the set size (2) always hold the whole sets.
    kid = kernel_inception_distance(x, y, subsets=3, subset_size=1000)
    assert kid == {"mean": pytest.approx(9.5), "std": pytest.approx(0.0), "subsets": 3, "subset_size": 2}


def test_kid_matches_torch_fidelity() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 16)), rng.normal(0.3, 1.0, size=(40, 16))
    ours = kernel_inception_distance(x, y, subsets=10, subset_size=20, seed=2020)
    ref = kid_features_to_metric(
        torch.from_numpy(x), torch.from_numpy(y), kid_subsets=10, kid_subset_size=20, rng_seed=2020, verbose=False
    )
    assert ours["mean"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-10)
    assert ours["std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-10)


def test_fid_kid_from_features_protocol() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(25, 4))
    out = fid_kid_from_features(x, y, kid_subsets=5)
    assert out["fid"] == pytest.approx(frechet_distance(*feature_statistics(x), *feature_statistics(y)))
    assert out["kid"]["subset_size"] == 25 and out["num_generated"] == 30
    assert "degree 3" in out["protocol"]["kid"] and out["protocol"]["feature_dim"] == 4
    assert "kid" not in fid_kid_from_features(x, y, kid=False)


class _TinyExtractor(nn.Module):
    """Random conv net standing in for Inception: uint8 [B,3,H,W] -> [B,8]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.uint8
        return torch.tanh(self.conv(x.float() / 127.5 - 1)).mean(dim=(2, 3))


def _write_images(folder: Path, count: int, size: tuple[int, int], seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(folder / f"img_{i:02d}.png")


def test_fid_kid_from_folders_with_injected_extractor(tmp_path: Path) -> None:
    _write_images(tmp_path / "gen", 12, (20, 24), seed=0)
    _write_images(tmp_path / "real", 10, (20, 24), seed=1)
    extractor = _TinyExtractor()
    out = fid_kid_from_folders(tmp_path / "gen", tmp_path / "real", extractor=extractor, batch_size=5, kid_subsets=4)
    with torch.no_grad():

        def feats(folder: Path) -> np.ndarray:
            images = [torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1) for p in sorted(folder.iterdir())]
            return extractor(torch.stack(images)).double().numpy()

        gen, real = feats(tmp_path / "gen"), feats(tmp_path / "real")
    assert out["fid"] == pytest.approx(frechet_distance(*feature_statistics(gen), *feature_statistics(real)), rel=1e-6)
    assert out["kid"]["mean"] == pytest.approx(kernel_inception_distance(gen, real, subsets=4)["mean"], rel=1e-6)
    assert out["protocol"]["feature_extractor"] == "injected _TinyExtractor"
    same = fid_kid_from_folders(tmp_path / "gen", tmp_path / "gen", extractor=extractor, kid=False)
    assert abs(same["fid"]) < 1e-6


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torch-fidelity's InceptionV3 with random weights, saved as a state dict (fp16 to stay small)."""

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True):  # build the layers without real weights
            return None

    folder = tmp_path_factory.mktemp("inception")
    empty = folder / "empty.pth"
    torch.save({}, empty)
    net = _Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    path = folder / INCEPTION_WEIGHTS_FILE
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, path)
    return path


def test_inception_extractor_built_from_given_file(random_inception_weights: Path) -> None:
    extractor = build_inception_extractor(random_inception_weights)
    assert isinstance(extractor, InceptionPool3) and extractor.weights_path == str(random_inception_weights)
    state = torch.load(random_inception_weights)
    assert torch.equal(extractor.net.Conv2d_1a_3x3.conv.weight, state["Conv2d_1a_3x3.conv.weight"].float())
    features = extractor((torch.rand(2, 3, 32, 40) * 255).to(torch.uint8))
    assert features.shape == (2, 2048) and torch.isfinite(features).all()


def test_inception_weights_from_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, random_inception_weights: Path
) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / INCEPTION_WEIGHTS_FILE).symlink_to(random_inception_weights)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert build_inception_extractor().weights_path == str(tmp_path / "checkpoints" / INCEPTION_WEIGHTS_FILE)


def test_inception_missing_weights_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=INCEPTION_WEIGHTS_FILE) as info:
        build_inception_extractor()
    assert str(tmp_path / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE) in str(info.value)
    _write_images(tmp_path / "images", 2, (8, 8), seed=0)
    with pytest.raises(FileNotFoundError, match="inception_weights: .*missing.pth does not exist"):
        fid_kid_from_folders(tmp_path / "images", tmp_path / "images", inception_weights=tmp_path / "missing.pth")
