"""Confusion / IoU / accuracy, label-id protocols, TorchScript segmenters and the folder pipeline."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lggan.metrics.segmentation import (
    ADE20K_CLASS_NAMES,
    CITYSCAPES_CLASS_NAMES,
    Segmenter,
    ade20k_to_train_ids,
    cityscapes_to_train_ids,
    confusion_matrix,
    identity_to_train_ids,
    iou_per_class,
    load_torchscript_segmenter,
    map_labels,
    segmentation_scores_from_folders,
    segmentation_summary,
)

# torch 2.x marks TorchScript deprecated; the released segmenters are still distributed that way.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")

TARGET = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 0]])
PRED = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])


def test_confusion_matrix_by_hand() -> None:
    conf = confusion_matrix(PRED, TARGET, num_classes=4)
    expected = torch.tensor([[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert torch.equal(conf, expected)


def test_iou_and_accuracies_by_hand() -> None:
    conf = confusion_matrix(PRED, TARGET, num_classes=4)
    iou = iou_per_class(conf)
    # IoU = TP / (row + col - TP): class 0: 2/(3+3-2), class 1: 2/(2+3-2), class 2: 1/(2+1-1), class 3 absent.
    assert iou[:3].tolist() == pytest.approx([0.5, 2 / 3, 0.5])
    assert math.isnan(iou[3].item())
    summary = segmentation_summary(conf, total_pixels=TARGET.numel(), class_names=["a", "b", "c", "d"])
    assert summary["miou"] == pytest.approx(100 * (0.5 + 2 / 3 + 0.5) / 3)
    assert summary["pixel_accuracy"] == pytest.approx(100 * 5 / 8)  # ignored pixel counts as wrong
    assert summary["pixel_accuracy_valid"] == pytest.approx(100 * 5 / 7)
    assert summary["per_class_iou"]["b"] == pytest.approx(100 * 2 / 3) and summary["per_class_iou"]["d"] is None
    assert summary["num_classes_present"] == 3 and summary["num_valid_pixels"] == 7


def test_predicted_but_absent_class_has_zero_iou() -> None:
    conf = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), num_classes=3)
    iou = iou_per_class(conf)
    assert iou[0].item() == pytest.approx(0.5) and iou[1].item() == 0.0 and math.isnan(iou[2].item())


def test_confusion_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="ground-truth ids"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), num_classes=4)
    with pytest.raises(ValueError, match="predicted ids"):
        confusion_matrix(torch.tensor([9]), torch.tensor([0]), num_classes=4)
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_matrix(torch.zeros(2, 2), torch.zeros(2, 3), num_classes=4)


def test_cityscapes_train_ids() -> None:
    ids = torch.tensor([7, 26, -1, 0, 8, 24, 33, 1, 29])
    expected = torch.tensor([0, 13, 255, 255, 1, 11, 18, 255, 255])
    assert torch.equal(cityscapes_to_train_ids(ids), expected)
    assert len(CITYSCAPES_CLASS_NAMES) == 19 and CITYSCAPES_CLASS_NAMES[13] == "car"
    with pytest.raises(ValueError, match=r"\[34\] are not valid Cityscapes"):
        cityscapes_to_train_ids(torch.tensor([7, 34]))


def test_ade20k_and_identity_mappings() -> None:
    assert torch.equal(ade20k_to_train_ids(torch.tensor([0, 1, 150])), torch.tensor([255, 0, 149]))
    assert len(ADE20K_CLASS_NAMES) == 150 and ADE20K_CLASS_NAMES[0] == "wall"
    with pytest.raises(ValueError, match="ADE20K"):
        ade20k_to_train_ids(torch.tensor([151]))
    assert torch.equal(identity_to_train_ids(torch.tensor([0, 2, 255]), 3), torch.tensor([0, 2, 255]))
    assert torch.equal(identity_to_train_ids(torch.tensor([0, 2, 1]), 3, ignore_index=0), torch.tensor([255, 2, 1]))
    with pytest.raises(ValueError, match=r"\[3\] are not valid class indices"):
        identity_to_train_ids(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="label_protocol must be one of"):
        map_labels(torch.tensor([0]), "coco", 3)


class _Affine(nn.Module):
    """Logits = 1x1 conv of the input, optionally at half resolution."""

    def __init__(self, half: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.half = half

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.half:
            x = nn.functional.avg_pool2d(x, 2)
        return self.conv(x)


def _identity_affine(half: bool = False) -> nn.Module:
    module = _Affine(half)
    with torch.no_grad():
        module.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        module.conv.bias.zero_()
    return module


def test_torchscript_segmenter_normalisation(tmp_path: Path) -> None:
    path = tmp_path / "seg.pt"
    torch.jit.script(_identity_affine()).save(str(path))
    mean, std = (10.0, 20.0, 30.0), (2.0, 4.0, 5.0)
    seg = load_torchscript_segmenter(path, num_classes=3, mean=mean, std=std, input_range=(0.0, 255.0))
    images = torch.rand(2, 3, 6, 8)
    expected = (images * 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(seg.logits(images), expected, atol=1e-4)
    assert torch.equal(seg.predict(images), expected.argmax(dim=1))
    protocol = seg.protocol()
    assert protocol["mean"] == list(mean) and "TorchScript" in protocol["segmenter"]


def test_torchscript_segmenter_upsamples_and_checks_classes(tmp_path: Path) -> None:
    path = tmp_path / "half.pt"
    torch.jit.script(_identity_affine(half=True)).save(str(path))
    seg = load_torchscript_segmenter(path, num_classes=3, mean=(0, 0, 0), std=(1, 1, 1))
    assert seg.logits(torch.rand(1, 3, 8, 10)).shape == (1, 3, 8, 10)
    wrong = load_torchscript_segmenter(path, num_classes=5)
    with pytest.raises(ValueError, match=r"output must be \[B,5,h,w\]"):
        wrong.predict(torch.rand(1, 3, 8, 10))


def test_torchscript_loading_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        load_torchscript_segmenter(tmp_path / "missing.pt", num_classes=3)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.pt is not a loadable TorchScript"):
        load_torchscript_segmenter(junk, num_classes=3)


COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)


def _write_case(root: Path, name: str, pred_classes: np.ndarray, label_ids: np.ndarray) -> None:
    (root / "gen").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "city").mkdir(parents=True, exist_ok=True)
    Image.fromarray(COLOURS[pred_classes]).save(root / "gen" / f"{name}_leftImg8bit.png")
    Image.fromarray(label_ids.astype(np.uint8)).save(root / "labels" / "city" / f"{name}_gtFine_labelIds.png")
    Image.fromarray(COLOURS[pred_classes]).save(root / "labels" / "city" / f"{name}_gtFine_color.png")


def test_folder_pipeline_with_cityscapes_ids(tmp_path: Path) -> None:
    # Colour = class; the segmenter recovers classes exactly, so the score is the hand-made confusion.
    pred_a = np.array([[0, 0, 1, 1], [2, 2, 2, 0]])
    pred_b = np.array([[1, 1, 1, 1], [0, 0, 0, 0]])
    # Label ids: 7 road -> 0, 8 sidewalk -> 1, 11 building -> 2, 0 unlabeled -> ignore.
    ids_a = np.array([[7, 7, 8, 8], [11, 11, 0, 7]])
    ids_b = np.array([[8, 8, 7, 7], [7, 7, 7, 7]])
    _write_case(tmp_path, "aachen_000000_000019", pred_a, ids_a)
    _write_case(tmp_path, "aachen_000001_000019", pred_b, ids_b)
    seg = Segmenter(
        _identity_affine(),
        3,
        mean=(0, 0, 0),
        std=(1, 1, 1),
        label_protocol="cityscapes",
        class_names=["road", "sidewalk", "building"],
    )
    out = segmentation_scores_from_folders(
        tmp_path / "gen", tmp_path / "labels", seg, generated_suffix="_leftImg8bit", label_suffix="_gtFine_labelIds"
    )
    # Image a is right on its 7 valid pixels; image b predicts sidewalk on 2 road pixels.
    # road: TP 3+4, GT 3+6, pred 3+4 -> 7/9; sidewalk: TP 2+2, GT 2+2, pred 2+4 -> 4/6; building: 2/2.
    assert out["per_class_iou"]["road"] == pytest.approx(100 * 7 / 9)
    assert out["per_class_iou"]["sidewalk"] == pytest.approx(100 * 4 / 6)
    assert out["per_class_iou"]["building"] == pytest.approx(100.0)
    assert out["miou"] == pytest.approx(100 * (7 / 9 + 4 / 6 + 1) / 3)
    assert out["pixel_accuracy"] == pytest.approx(100 * 13 / 16)
    assert out["pixel_accuracy_valid"] == pytest.approx(100 * 13 / 15)
    assert out["num_images"] == 2 and out["protocol"]["eval_resolution"] == "generated image size"
    json.dumps(out, allow_nan=False)


def test_folder_pipeline_resizes_labels_nearest(tmp_path: Path) -> None:
    pred = np.array([[0, 1], [2, 2]])
    labels = np.kron(np.array([[0, 1], [2, 0]]), np.ones((3, 3), dtype=np.int64))  # 6x6 label map
    (tmp_path / "gen").mkdir()
    (tmp_path / "lab").mkdir()
    Image.fromarray(COLOURS[np.kron(pred, np.ones((2, 2), dtype=np.int64))]).save(tmp_path / "gen" / "x.png")
    Image.fromarray(labels.astype(np.uint8)).save(tmp_path / "lab" / "x.png")
    seg = Segmenter(_identity_affine(), 3, mean=(0, 0, 0), std=(1, 1, 1))
    out = segmentation_scores_from_folders(tmp_path / "gen", tmp_path / "lab", seg, eval_size=(2, 2))
    # At 2x2: labels [[0,1],[2,0]] vs prediction [[0,1],[2,2]] -> 3 of 4 correct.
    assert out["pixel_accuracy"] == pytest.approx(75.0)
    assert out["protocol"]["eval_resolution"] == [2, 2]


def test_folder_pipeline_errors(tmp_path: Path) -> None:
    (tmp_path / "gen").mkdir()
    (tmp_path / "lab").mkdir()
    Image.fromarray(COLOURS[np.zeros((4, 4), dtype=np.int64)]).save(tmp_path / "gen" / "a.png")
    Image.fromarray(COLOURS[np.zeros((4, 4), dtype=np.int64)]).save(tmp_path / "lab" / "a.png")  # RGB label map
    Image.fromarray(COLOURS[np.zeros((4, 4), dtype=np.int64)]).save(tmp_path / "gen" / "b.png")
    seg = Segmenter(_identity_affine(), 3, mean=(0, 0, 0), std=(1, 1, 1))
    with pytest.raises(ValueError, match=r"1 generated without a match in label_dir: b"):
        segmentation_scores_from_folders(tmp_path / "gen", tmp_path / "lab", seg)
    (tmp_path / "gen" / "b.png").unlink()
    with pytest.raises(ValueError, match="a.png has mode 'RGB'; expected a single-channel"):
        segmentation_scores_from_folders(tmp_path / "gen", tmp_path / "lab", seg)
    Image.fromarray(np.full((4, 4), 7, dtype=np.uint8)).save(tmp_path / "lab" / "a.png")
    with pytest.raises(ValueError, match=r"label_dir: .*a.png: label values \[7\]"):
        segmentation_scores_from_folders(tmp_path / "gen", tmp_path / "lab", seg)
