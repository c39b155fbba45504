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


def test_colour_label_maps_through_a_palette_for_every_dataset_kind(tmp_path: Path) -> None:
    """--palette applies to every semantic kind: the counts are those of the id maps drawn in its colours, and the
    report says which data.num_classes the palette's ids need and which ids share a colour."""
    from lggan.data.palette import builtin_label_palette

    city = builtin_label_palette("cityscapes")
    ids = np.array([[7, 7, 26, 0], [24, 1, 18, 17]], np.int64)  # 1 shares 0's black, 18 shares 17's grey
    colour = np.stack([city.colour_of(int(v)) for v in ids.ravel()]).reshape(2, 4, 3)
    pair(tmp_path / "custom", "a", colour)
    report = inspect_dataset(tmp_path / "custom", "custom", num_classes=34, palette="cityscapes")
    assert report.ok, report.problems
    counts = np.bincount([0, 0, 7, 7, 26, 24, 17, 17], minlength=34)  # as read: 1 -> 0, 18 -> 17
    assert report.pixel_counts == counts.tolist()
    # The classes take the palette's names (and colours).
    assert report.class_names[7] == "road" and report.class_names[26] == "car" and report.class_names[24] == "person"
    notes = "\n".join(report.notes)
    assert "needs data.num_classes=34 (largest id + 1) and data.palette=cityscapes" in notes
    assert "ids 1, 2, 3, 4 share colour (0, 0, 0) with id 0 and are read as 0" in notes
    assert "id 18 shares colour (153, 153, 153) with id 17 and is read as 17" in notes
    # Without the palette the same files are problems that say to pass it.
    bare = inspect_dataset(tmp_path / "custom", "custom", num_classes=34)
    assert not bare.ok and "pass --palette" in bare.problems[0]
    # The Cityscapes kind: colour gtFine maps read as their label ids.
    generate_synth_city(tmp_path / "c", num_train=1, num_val=1, size=(32, 16), seed=0, progress=False)
    plain = inspect_dataset(tmp_path / "c", "cityscapes")
    for f in (tmp_path / "c" / "gtFine").rglob("*_gtFine_labelIds.png"):
        raw = np.asarray(Image.open(f)).astype(np.int64)
        Image.fromarray(np.stack([city.colour_of(int(v)) for v in raw.ravel()]).reshape(*raw.shape, 3)).save(f)
    coloured = inspect_dataset(tmp_path / "c", "cityscapes", palette="cityscapes")
    assert coloured.ok and coloured.pixel_counts == plain.pixel_counts
    with pytest.raises(ValueError, match="--palette 'nope': neither a built-in palette"):
        inspect_dataset(tmp_path / "c", "cityscapes", palette="nope")


def test_data_inspect_cli_takes_palette_for_custom_data(tmp_path: Path, capsys) -> None:
    from lggan.cli import main
    from lggan.data.palette import builtin_label_palette

    colours = builtin_label_palette("ade20k").colours
    label = np.stack([colours[1], colours[5]])[None].repeat(2, axis=0)  # [2, 2, 3]
    pair(tmp_path, "x", np.ascontiguousarray(label))
    assert main(["data", "inspect", str(tmp_path), "--dataset", "custom", "--palette", "ade20k"]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "data.palette=ade20k" in out
