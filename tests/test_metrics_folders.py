"""score_image_folders: pairing, size checks, each metric family end to end, and the markdown table."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from lggan.metrics.classifier_scores import classification_accuracy, inception_scores, kl_score
from lggan.metrics.crossview import psnr_crossview, sharpness_difference, ssim_crossview, ssim_standard
from lggan.metrics.files import batch_by_shape, write_json_atomic
from lggan.metrics.folders import format_markdown_table, score_image_folders
from lggan.metrics.places365 import PLACES365_WEIGHTS_FILE, places365_probs


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _load(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float() / 255


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for i in range(5):
        real = rng.integers(0, 256, size=(16, 20, 3), dtype=np.uint8)
        noise = rng.integers(-20, 21, size=real.shape)
        _save(tmp_path / "real" / f"{i}.jpg" if i == 0 else tmp_path / "real" / f"{i}.png", real)
        _save(tmp_path / "gen" / f"{i}.png", np.clip(real.astype(int) + noise, 0, 255).astype(np.uint8))
    return tmp_path / "gen", tmp_path / "real"


def _stack(folder: Path) -> torch.Tensor:
    return torch.stack([_load(p) for p in sorted(folder.iterdir(), key=lambda p: p.stem)])


def test_pixel_metrics_match_direct_computation(folders: tuple[Path, Path]) -> None:
    gen_dir, real_dir = folders
    out = score_image_folders(gen_dir, real_dir, metrics=["ssim", "psnr", "sd", "ssim_standard"], batch_size=2)
    gen, real = _stack(gen_dir), _stack(real_dir)
    assert out["num_images"] == 5
    assert out["ssim"] == pytest.approx(ssim_crossview(gen, real).mean().item(), rel=1e-9)
    assert out["psnr"] == pytest.approx(psnr_crossview(gen, real).mean().item(), rel=1e-9)
    assert out["sd"] == pytest.approx(sharpness_difference(gen, real).mean().item(), rel=1e-9)
    assert out["ssim_standard"] == pytest.approx(ssim_standard(gen, real).mean().item(), rel=1e-9)
    assert "luma" in out["protocol"]["metrics"]["ssim"]
    json.dumps(out, allow_nan=False)


def test_suffix_pairing_in_one_folder(tmp_path: Path) -> None:
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    for name in ("a", "b"):
        _save(tmp_path / "mixed" / f"{name}_fake_B.png", image)
        _save(tmp_path / "mixed" / f"{name}_real_B.png", image)
    _save(tmp_path / "mixed" / "a_real_A.png", image)  # other files without the suffixes are skipped
    out = score_image_folders(
        tmp_path / "mixed", tmp_path / "mixed", ["psnr"], generated_suffix="_fake_B", real_suffix="_real_B"
    )
    assert out["num_images"] == 2 and out["psnr"] == pytest.approx(88.1308036, abs=1e-6)


def test_resize_real_and_recursive_listing(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    real = rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8)
    _save(tmp_path / "real" / "city" / "a.png", real)  # nested like Cityscapes
    _save(tmp_path / "gen" / "a.png", rng.integers(0, 256, size=(16, 20, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="no image files"):
        score_image_folders(tmp_path / "gen", tmp_path / "real", ["psnr"])
    with pytest.raises(ValueError, match="differ in size"):
        score_image_folders(tmp_path / "gen", tmp_path / "real", ["psnr"], recursive=True)
    out = score_image_folders(tmp_path / "gen", tmp_path / "real", ["psnr"], recursive=True, resize_real=True)
    # Antialiased bilinear resizing follows PIL's bilinear filter (up to rounding).
    _save(tmp_path / "pil" / "a.png", np.array(Image.fromarray(real).resize((20, 16), Image.BILINEAR)))
    expected = psnr_crossview(_load(tmp_path / "gen" / "a.png")[None], _load(tmp_path / "pil" / "a.png")[None])
    assert out["psnr"] == pytest.approx(expected.item(), abs=0.05)
    assert "resized" in out["protocol"]["real_images"]


def test_pairing_and_size_errors(folders: tuple[Path, Path]) -> None:
    gen_dir, real_dir = folders
    _save(gen_dir / "extra.png", np.zeros((16, 20, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="1 generated without a match in real_dir: extra"):
        score_image_folders(gen_dir, real_dir, ["ssim"])
    (gen_dir / "extra.png").unlink()
    _save(gen_dir / "3.png", np.zeros((16, 18, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"1 image pairs differ in size \(HxW\): 3.png 16x18 vs 3.png 16x20"):
        score_image_folders(gen_dir, real_dir, ["ssim"])
    with pytest.raises(ValueError, match="metrics: unknown \\['lpips'\\]"):
        score_image_folders(gen_dir, real_dir, ["ssim", "lpips"])
    with pytest.raises(FileNotFoundError, match="real_dir: .* is not a directory"):
        score_image_folders(gen_dir, gen_dir / "nowhere", ["ssim"])


def _assert_close_with_none(actual: dict, expected: dict, rel: float) -> None:
    """Same keys; None (an empty selection, e.g. no confident pair) where expected is None, else approx equal.

    pytest.approx refuses None inside a mapping from pytest 9.2 on, so the two kinds are compared separately.
    """
    assert actual.keys() == expected.keys()
    missing = {k for k, v in expected.items() if v is None}
    assert {k for k, v in actual.items() if v is None} == missing
    assert {k: actual[k] for k in actual if k not in missing} == pytest.approx(
        {k: v for k, v in expected.items() if k not in missing}, rel=rel
    )


def test_classifier_metrics_end_to_end(folders: tuple[Path, Path], tmp_path: Path) -> None:
    gen_dir, real_dir = folders
    model = torchvision.models.alexnet(num_classes=365).eval()
    weights = tmp_path / PLACES365_WEIGHTS_FILE
    torch.save({"state_dict": {f"module.{k}": v.half() for k, v in model.state_dict().items()}}, weights)
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    out = score_image_folders(gen_dir, real_dir, ["inception_score", "accuracy", "kl"], places365_weights=weights)
    p_gen, p_real = places365_probs(_stack(gen_dir), model), places365_probs(_stack(real_dir), model)
    assert out["inception_score"]["generated"] == pytest.approx(inception_scores(p_gen), rel=1e-5)
    assert out["inception_score"]["real"] == pytest.approx(inception_scores(p_real), rel=1e-5)
    _assert_close_with_none(out["accuracy"], classification_accuracy(p_gen, p_real), rel=1e-5)
    assert out["kl"] == pytest.approx(kl_score(p_gen, p_real), rel=1e-4)
    assert out["protocol"]["places365"]["weights"] == str(weights)
    json.dumps(out, allow_nan=False)


class _MeanColour(nn.Module):
    """Stand-in feature extractor: mean colour and its square, [B,6]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.float().mean(dim=(2, 3)) / 255
        return torch.cat([mean, mean**2], dim=1)


def test_fid_kid_with_injected_extractor(folders: tuple[Path, Path]) -> None:
    gen_dir, real_dir = folders
    out = score_image_folders(gen_dir, real_dir, ["fid", "kid"], feature_extractor=_MeanColour(), kid_subsets=3)
    assert out["fid"] >= -1e-9 and out["kid"]["subset_size"] == 5
    assert out["protocol"]["distribution"]["feature_extractor"] == "injected _MeanColour"
    same = score_image_folders(real_dir, real_dir, ["fid"], feature_extractor=_MeanColour())
    assert abs(same["fid"]) < 1e-9 and "kid" not in same


def test_batch_by_shape_splits_on_size_change() -> None:
    a, b = torch.zeros(3, 4, 4), torch.zeros(3, 4, 5)
    items = [(a, a), (a, a), (a, a), (b, a), (a, a)]
    shapes = [tuple(x.shape) for x, _ in batch_by_shape(items, batch_size=2)]
    assert shapes == [(2, 3, 4, 4), (1, 3, 4, 4), (1, 3, 4, 5), (1, 3, 4, 4)]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        list(batch_by_shape(items, batch_size=0))


def test_markdown_table(tmp_path: Path) -> None:
    result = {"num_images": 3, "ssim": 0.51234, "kl": {"score": 2.5, "std": 0.25}, "miou": None, "protocol": {"x": 1}}
    table = format_markdown_table(result)
    assert table.splitlines() == [
        "| metric | value |",
        "| --- | ---: |",
        "| num_images | 3 |",
        "| ssim | 0.5123 |",
        "| kl.score | 2.5000 |",
        "| kl.std | 0.2500 |",
        "| miou | n/a |",
    ]
    both = format_markdown_table({"LGGAN": result, "baseline": {"ssim": 0.4, "protocol": {}}})
    assert both.splitlines()[0] == "| metric | LGGAN | baseline |"
    assert "| kl.score | 2.5000 | n/a |" in both.splitlines()
    write_json_atomic(result, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == result
    with pytest.raises(ValueError):
        write_json_atomic({"x": float("nan")}, tmp_path / "bad.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
