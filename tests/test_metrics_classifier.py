"""Classifier scores (IS, accuracy, KL) on hand-made distributions, and the Places365 AlexNet pipeline."""

import math
from pathlib import Path

import pytest
import torch
import torchvision

from lggan.metrics.classifier_scores import (
    classification_accuracy,
    inception_score,
    inception_scores,
    keep_top_k,
    kl_score,
    per_pair_kl,
)
from lggan.metrics.places365 import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PLACES365_WEIGHTS_FILE,
    load_places365_alexnet,
    places365_preprocess,
    places365_probs,
)


def _one_hot(classes: list[int], num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(classes), num_classes).to(torch.float64)


def _is_reference(rows: list[list[float]]) -> float:
    """exp(mean_i sum_y p ln(p / pbar)) in plain Python."""
    n, k = len(rows), len(rows[0])
    p_bar = [sum(r[y] for r in rows) / n for y in range(k)]
    kl = [sum(r[y] * math.log(r[y] / p_bar[y]) for y in range(k) if r[y] > 0) for r in rows]
    return math.exp(sum(kl) / n)


def test_is_of_one_hot_uniform_classes_is_class_count() -> None:
    assert inception_score(_one_hot([0, 1, 2, 3, 0, 1, 2, 3], 6)) == pytest.approx(4.0, abs=1e-12)
    assert inception_score(_one_hot([5, 5, 5], 6)) == pytest.approx(1.0, abs=1e-12)


def test_is_of_unbalanced_one_hot() -> None:
    # pbar = (2/3, 1/3): KL = ln 1.5, ln 1.5, ln 3 -> IS = (1.5^2 * 3)^(1/3).
    assert inception_score(_one_hot([0, 0, 1], 2)) == pytest.approx(6.75 ** (1 / 3), abs=1e-12)


def test_keep_top_k_sets_others_to_floor_without_renormalising() -> None:
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=torch.float64)
    expected = torch.tensor([[0.7, 1e-9, 1e-9], [1e-9, 1e-9, 0.6]], dtype=torch.float64)
    assert torch.equal(keep_top_k(p, 1), expected)
    kept2 = keep_top_k(p, 2)
    assert torch.equal(kept2, torch.tensor([[0.7, 0.2, 1e-9], [1e-9, 0.3, 0.6]], dtype=torch.float64))
    with pytest.raises(ValueError, match="k must be in"):
        keep_top_k(p, 4)


def test_top_k_inception_scores_by_hand() -> None:
    rows = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]
    p = torch.tensor(rows, dtype=torch.float64)
    top1_rows = [[0.7, 1e-9, 1e-9], [1e-9, 1e-9, 0.6]]
    top2_rows = [[0.7, 0.2, 1e-9], [1e-9, 0.3, 0.6]]
    assert inception_score(p) == pytest.approx(_is_reference(rows), rel=1e-12)
    assert inception_score(p, top_k=1) == pytest.approx(_is_reference(top1_rows), rel=1e-12)
    assert inception_score(p, top_k=2) == pytest.approx(_is_reference(top2_rows), rel=1e-12)
    # With 3 classes "top5" keeps everything, so it equals "all".
    scores = inception_scores(p)
    assert scores["top5"] == pytest.approx(scores["all"], rel=1e-12)
    assert scores["top1"] == pytest.approx(_is_reference(top1_rows), rel=1e-12)


def _ranked(order: list[int], top: float) -> list[float]:
    """Distribution over len(order) classes: mass `top` on order[0], the rest strictly decreasing along order."""
    weights = [len(order) - rank for rank in range(1, len(order))]
    row = [0.0] * len(order)
    row[order[0]] = top
    for cls, weight in zip(order[1:], weights, strict=True):
        row[cls] = (1 - top) * weight / sum(weights)
    return row


def _first(cls: int) -> list[int]:
    return [cls] + [c for c in range(7) if c != cls]


def test_accuracy_on_hand_made_pairs() -> None:
    real = torch.tensor(
        [_ranked(_first(2), 0.9), _ranked(_first(4), 0.6), _ranked(_first(1), 0.4), _ranked(_first(0), 0.45)],
        dtype=torch.float64,
    )
    gen = torch.tensor(
        [
            _ranked(_first(2), 0.5),  # top-1 hit
            _ranked([0, 1, 4, 2, 3, 5, 6], 0.5),  # real class 4 ranked 3rd: top-5 hit only
            _ranked([0, 2, 3, 4, 5, 1, 6], 0.5),  # real class 1 ranked 6th: miss
            _ranked(_first(0), 0.3),  # top-1 hit
        ],
        dtype=torch.float64,
    )
    acc = classification_accuracy(gen, real)
    assert acc["top1_all"] == pytest.approx(50.0)
    assert acc["top5_all"] == pytest.approx(75.0)
    # Confident pairs (max p_real > 0.5) are the first two.
    assert acc["num_confident"] == 2
    assert acc["top1_confident"] == pytest.approx(50.0)
    assert acc["top5_confident"] == pytest.approx(100.0)
    none_confident = classification_accuracy(gen[2:], real[2:])
    assert none_confident["num_confident"] == 0 and none_confident["top1_confident"] is None


def test_kl_on_known_distributions() -> None:
    gen = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    real = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert torch.allclose(per_pair_kl(gen, real), torch.tensor([0.0, kl], dtype=torch.float64), atol=1e-12)
    score = kl_score(gen, real)
    assert score["score"] == pytest.approx(math.exp(kl / 2), rel=1e-12)
    assert score["std"] == pytest.approx(kl / 2, rel=1e-12)  # ddof 0 of {0, kl}


def test_kl_clamps_zero_probabilities() -> None:
    gen = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    real = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    expected = -math.log(1e-12) + 1e-12 * math.log(1e-12)
    assert per_pair_kl(gen, real).item() == pytest.approx(expected, rel=1e-12)


def test_probability_validation() -> None:
    with pytest.raises(ValueError, match="gen_probs: row 0 sums to 0.5"):
        classification_accuracy(torch.tensor([[0.25, 0.25]]), torch.tensor([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="shapes differ"):
        kl_score(torch.full((2, 2), 0.5), torch.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="non-negative"):
        inception_score(torch.tensor([[1.5, -0.5]]))


@pytest.fixture(scope="module")
def places_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random AlexNet-365 saved like the released file: {'state_dict': {'module.' keys}} (fp16 to stay small)."""
    torch.manual_seed(1)
    model = torchvision.models.alexnet(num_classes=365)
    state = {k: v.half() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("places") / PLACES365_WEIGHTS_FILE
    torch.save({"epoch": 90, "arch": "alexnet", "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path, state


def test_places365_loading_strips_module_prefix(places_weights) -> None:
    path, state = places_weights
    model = load_places365_alexnet(path)
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key].float()), key


def test_places365_loading_accepts_dataparallel_features(tmp_path: Path, places_weights) -> None:
    _, state = places_weights
    renamed = {k.replace("features.", "features.module."): v for k, v in state.items()}
    path = tmp_path / "alt.pth.tar"
    torch.save({"state_dict": renamed}, path)
    model = load_places365_alexnet(path)
    assert torch.equal(model.features[0].weight, state["features.0.weight"].float())


def test_places365_missing_weights_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=PLACES365_WEIGHTS_FILE) as info:
        load_places365_alexnet()
    assert str(tmp_path / "hub" / "checkpoints" / PLACES365_WEIGHTS_FILE) in str(info.value)
    with pytest.raises(FileNotFoundError, match="places365_weights: .*nope.pth.tar does not exist"):
        load_places365_alexnet(tmp_path / "nope.pth.tar")


def test_places365_weights_from_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, places_weights) -> None:
    path, state = places_weights
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / PLACES365_WEIGHTS_FILE).symlink_to(path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = load_places365_alexnet()
    assert torch.equal(model.classifier[6].bias, state["classifier.6.bias"].float())


def test_places365_rejects_wrong_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "bad.pth.tar"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(ValueError, match="does not match torchvision alexnet"):
        load_places365_alexnet(path)


def test_places365_preprocess_constant_image() -> None:
    images = torch.full((2, 3, 40, 50), 0.6)
    out = places365_preprocess(images)
    assert out.shape == (2, 3, 224, 224)
    expected = (0.6 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[0, :, 100, 100], expected, atol=1e-5)


def test_places365_probs_end_to_end(places_weights) -> None:
    path, _ = places_weights
    model = load_places365_alexnet(path)
    images = torch.rand(3, 3, 48, 64)
    probs = places365_probs(images, model, batch_size=2)
    assert probs.shape == (3, 365) and probs.dtype == torch.float64
    assert torch.allclose(probs.sum(dim=1), torch.ones(3, dtype=torch.float64))
    with torch.no_grad():
        direct = torch.softmax(model(places365_preprocess(images)).double(), dim=1)
    assert torch.allclose(probs, direct, atol=1e-6)
    # The math runs on the network output.
    assert inception_score(probs) >= 1.0 - 1e-9
