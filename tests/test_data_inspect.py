"""Dataset inspection: exact pixel frequencies, size ranges, and every problem listed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lggan.data import format_report, generate_synth_city, inspect_dataset


def save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def pair(root: Path, stem: str, label: np.ndarray, image_size: tuple[int, int] | None = None) -> tuple[Path, Path]:
    w, h = image_size or (label.shape[1], label.shape[0])
    image = save(np.full((h, w, 3), 128, np.uint8), root / "images" / f"{stem}.png")
    return image, save(label, root / "labels" / f"{stem}.png")


def test_custom_frequencies_exact(tmp_path: Path) -> None:
    a = np.zeros((4, 8), np.uint8)
    a[:, :2] = 2  # 8 pixels of class 2
    a[0, 7] = 255  # 1 don't-care pixel
    b = np.ones((6, 10), np.uint8)  # 60 pixels of class 1
    pair(tmp_path, "a", a)
    pair(tmp_path, "b", b)
    report = inspect_dataset(tmp_path, "custom", num_classes=3, dontcare=255)
    assert report.ok and report.num_pairs == 2 and report.num_classes == 4
    assert report.pixel_counts == [23, 60, 8, 1]
    assert report.class_names == ["class_0", "class_1", "class_2", "dontcare"]
    assert report.pixel_percent == pytest.approx([100 * c / 92 for c in (23, 60, 8, 1)])
    assert report.min_size == (8, 4) and report.max_size == (10, 6)
    text = format_report(report)
    assert "custom at" in text and "2 pairs, 4 classes" in text
    assert any(line.split() == ["1", "class_1", "60", "65.217"] for line in text.splitlines())
    assert "no problems found" in text


def test_custom_infers_num_classes(tmp_path: Path) -> None:
    label = np.array([[0, 4], [4, 255]], np.uint8)
    pair(tmp_path, "only", label)
    report = inspect_dataset(tmp_path, "custom", dontcare=255)
    assert report.num_classes == 6 and report.pixel_counts == [1, 0, 0, 0, 2, 1]
    assert any("inferred 5" in note for note in report.notes)


def test_every_problem_is_listed(tmp_path: Path) -> None:
    ok = pair(tmp_path, "ok", np.zeros((4, 8), np.uint8))
    _, bad_value = pair(tmp_path, "bad_value", np.full((4, 8), 9, np.uint8))
    _, small = pair(tmp_path, "small", np.zeros((2, 8), np.uint8), image_size=(8, 4))
    lonely = save(np.full((4, 8, 3), 1, np.uint8), tmp_path / "images" / "lonely.png")
    orphan = save(np.zeros((4, 8), np.uint8), tmp_path / "labels" / "orphan.png")
    noisy, _ = pair(tmp_path, "truncated", np.zeros((32, 64), np.uint8))
    save(np.random.default_rng(0).integers(0, 255, (32, 64, 3), dtype=np.uint8), noisy)
    noisy.write_bytes(noisy.read_bytes()[:200])
    report = inspect_dataset(tmp_path, "custom", num_classes=3)
    problems = "\n".join(report.problems)
    assert len(report.problems) == 5, problems
    assert f"{bad_value}: label values [9] outside the valid range 0..2 for custom (32 pixels)" in problems
    assert f"{small}: label size 8x2 does not match image small.png size 8x4" in problems
    assert f"{lonely}: image without label" in problems
    assert f"{orphan}: label without image" in problems
    assert f"{noisy}: cannot decode image" in problems
    assert ok[0].exists() and not report.ok
    assert report.pixel_counts[0] == 32 + 16 + 32 * 64  # invalid values are not counted
    assert "5 problem(s):" in format_report(report)


def test_cityscapes_all_splits_and_missing_split(tmp_path: Path) -> None:
    generate_synth_city(tmp_path / "c", num_train=2, num_val=1, size=(32, 16), seed=0, progress=False)
    report = inspect_dataset(tmp_path / "c", "cityscapes")
    assert [s.split for s in report.splits] == ["train", "val"] and report.num_pairs == 3
    assert report.ok and report.num_classes == 35 and report.class_names[7] == "road"
    assert sum(report.pixel_counts) == 3 * 32 * 16 and report.pixel_counts[7] > 0
    assert report.splits[0].has_instance and report.min_size == report.max_size == (32, 16)
    missing = inspect_dataset(tmp_path / "c", "cityscapes", split="test")
    assert not missing.ok and "leftImg8bit/test does not exist" in missing.problems[0]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inspect_dataset(tmp_path / "nothing", "cityscapes")
    with pytest.raises(ValueError, match="only apply to the custom dataset"):
        inspect_dataset(tmp_path / "c", "cityscapes", num_classes=3)


def test_ade20k_parent_root_and_coco_dontcare(tmp_path: Path) -> None:
    base = tmp_path / "ade" / "ADEChallengeData2016"
    save(np.zeros((4, 4, 3), np.uint8), base / "images/validation/x.jpg")
    save(np.array([[0, 150, 150, 3]] * 4, np.uint8), base / "annotations/validation/x.png")
    report = inspect_dataset(tmp_path / "ade", "ade20k")
    assert [s.split for s in report.splits] == ["validation"] and report.ok
    assert report.pixel_counts[0] == 4 and report.pixel_counts[150] == 8 and report.pixel_counts[3] == 4
    coco = tmp_path / "coco"
    save(np.zeros((2, 2, 3), np.uint8), coco / "train_img/y.jpg")
    save(np.array([[255, 255], [181, 200]], np.uint8), coco / "train_label/y.png")
    report = inspect_dataset(coco, "coco-stuff", split="train")
    assert report.pixel_counts[182] == 2 and report.pixel_counts[181] == 1
    assert len(report.problems) == 1 and "label values [200]" in report.problems[0]
    assert "unlabeled" in format_report(report)
