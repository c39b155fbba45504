"""Cross-view data (Dayton / CVUSA / SVA format): panel parsing, masks, wiring, transforms, errors, inspect."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from lggan.data.crossview import (
    CROSSVIEW_GROUPS,
    CROSSVIEW_PALETTE,
    VOID_LABEL,
    CrossViewDataError,
    CrossViewDataset,
    class_masks,
    collate_crossview,
    default_load_size,
    join_panels,
    label_to_gray,
    mask_from_color,
    mask_from_gray,
    split_panels,
)
from lggan.data.inspect import format_crossview_report, inspect_crossview
from lggan.data.palette import colorize_label

# Distinct photo colours per class (and void = 255), so a photo "is a function of" its class map.
PHOTO_A = np.zeros((256, 3), np.uint8)
PHOTO_A[:6] = [[10, 20, 30], [200, 40, 40], [40, 200, 40], [40, 40, 200], [220, 220, 60], [90, 10, 160]]
PHOTO_A[VOID_LABEL] = [128, 128, 128]
PHOTO_B = 255 - PHOTO_A


def _colour_map(label: np.ndarray) -> np.ndarray:
    """The colour segmentation of a class map: the classes' representative colours, void black."""
    return colorize_label(label, CROSSVIEW_PALETTE, outside=(0, 0, 0))


def _gray3(label: np.ndarray) -> np.ndarray:
    return np.repeat(label_to_gray(label)[..., None], 3, axis=-1)


def _blocky(rng: np.random.Generator, size: int, block: int, high: int = 6) -> np.ndarray:
    """Random class map of ``block``-px squares, classes 0..high-1, uint8 [size, size]."""
    cells = rng.integers(0, high, (-(-size // block),) * 2)
    return np.kron(cells, np.ones((block, block), np.int64))[:size, :size].astype(np.uint8)


def _aligned_sample(label: np.ndarray, panels: int = 6) -> np.ndarray:
    """A sample whose every panel is a function of the same class map (aerial == street layout)."""
    seg = _colour_map(label)
    parts = {"A": PHOTO_A[label], "B": PHOTO_B[label], "C": seg, "D": seg}
    if panels == 6:
        parts.update(E=_gray3(label), F=_gray3(label))
    return join_panels(parts)


def _save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    """[-1, 1] float [3, H, W] -> uint8 [H, W, 3] (exact inverse of the loader's scaling)."""
    return np.rint((t.permute(1, 2, 0).numpy() + 1.0) * 127.5).astype(np.uint8)


# --------------------------------------------------------------------------- pure helpers


def test_split_and_join_panels_round_trip():
    rng = np.random.default_rng(0)
    for count in (4, 6):
        array = rng.integers(0, 256, (8, 8 * count, 3), dtype=np.uint8)
        panels = split_panels(array)
        assert list(panels) == list("ABCDEF"[:count])
        for i, name in enumerate(panels):
            np.testing.assert_array_equal(panels[name], array[:, 8 * i : 8 * (i + 1)])
        np.testing.assert_array_equal(join_panels(panels), array)


@pytest.mark.parametrize("width", [8 * 5, 8 * 3, 8 * 7, 8 * 6 + 1])
def test_split_panels_rejects_wrong_width_naming_the_file(width):
    with pytest.raises(CrossViewDataError, match=r"odd\.png.*not 4 or 6 square panels"):
        split_panels(np.zeros((8, width, 3), np.uint8), "odd.png")


def test_mask_from_gray_codes_exact_first_channel_and_void():
    gray = np.array([[10, 20, 30, 40, 50, 60], [14, 6, 56, 64, 15, 45], [0, 5, 65, 70, 200, 255]], np.uint8)
    label = mask_from_gray(gray)
    np.testing.assert_array_equal(label[0], [0, 1, 2, 3, 4, 5])
    # The release compares exactly: JPEG noise (14, 6, 56, 64) and blends (15, 45) are void, as is everything else.
    assert (label[1:] == VOID_LABEL).all()
    # An explicit tolerance (not the release) takes values within 4 of 10k; 15 / 45 stay void (halfway).
    np.testing.assert_array_equal(mask_from_gray(gray[1:2], tol=4)[0], [0, 0, 5, 5, VOID_LABEL, VOID_LABEL])
    # Fewer classes: codes above num_classes are void.
    np.testing.assert_array_equal(mask_from_gray(gray[:1], num_classes=3)[0], [0, 1, 2, 255, 255, 255])
    # Only the first channel is read (F * 127.5 + 127.5, channel 0): the others do not matter.
    rgb = np.array([[[40, 90, 200], [37, 40, 40], [60, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(mask_from_gray(rgb)[0], [3, VOID_LABEL, 5])
    np.testing.assert_array_equal(mask_from_gray(np.stack([gray] * 3, -1)), label)
    with pytest.raises(ValueError, match="tol"):
        mask_from_gray(gray, tol=5)


def test_mask_from_color_groups_every_palette_colour():
    colours = [rgb for group in CROSSVIEW_GROUPS for _, rgb in group]
    classes = [k for k, group in enumerate(CROSSVIEW_GROUPS) for _ in group]
    rgb = np.array(colours, np.uint8)[None]  # [1, 19, 3]
    np.testing.assert_array_equal(mask_from_color(rgb)[0], classes)
    # JPEG-like drift within the tolerance keeps the class; far colours and black are void.
    shifted = np.clip(rgb.astype(int) + [12, -9, 10], 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(mask_from_color(shifted)[0], classes)
    assert (mask_from_color(shifted, tolerance=5)[0] == VOID_LABEL).all()
    odd = np.array([[[0, 0, 0], [255, 255, 255], [60, 200, 255]]], np.uint8)
    assert (mask_from_color(odd) == VOID_LABEL).all()
    # The palette's representative colours give back their own class.
    np.testing.assert_array_equal(mask_from_color(CROSSVIEW_PALETTE[None])[0], np.arange(6))


def test_class_masks_one_hot_and_void():
    label = torch.tensor([[[0, 5, 255], [2, 2, 1]]])  # [1, 2, 3]
    masks = class_masks(label, 6)
    assert masks.shape == (1, 6, 2, 3) and masks.dtype == torch.float32
    assert masks[0, :, 0, 2].sum() == 0  # void -> all zero
    np.testing.assert_array_equal(masks.sum(1)[0].numpy(), [[1, 1, 0], [1, 1, 1]])
    assert masks[0, 5, 0, 1] == 1 and masks[0, 2, 1, 0] == 1 and masks[0, 1, 1, 2] == 1
    np.testing.assert_array_equal(masks.argmax(1)[0, 1].numpy(), [2, 2, 1])
    with pytest.raises(ValueError, match="outside 0..5"):
        class_masks(torch.tensor([[[6]]]), 6)
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        class_masks(torch.zeros(3, 3, dtype=torch.long), 6)


# --------------------------------------------------------------------------- dataset wiring


def _constant_sample(panels: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every panel a different constant, so each output can be traced to its panel."""
    size = 8
    fill = {
        "A": (255, 0, 128),
        "B": (0, 255, 64),
        "C": tuple(CROSSVIEW_PALETTE[3]),  # aerial seg: structure
        "D": tuple(CROSSVIEW_PALETTE[4]),  # street seg: sky
        "E": (10, 10, 10),  # aerial mask: class 1 -> 0
        "F": (30, 30, 30),  # street mask: class 3 -> 2
    }
    parts = {k: np.full((size, size, 3), v, np.uint8) for k, v in list(fill.items())[:panels]}
    return join_panels(parts), {k: np.array(v, np.uint8) for k, v in fill.items()}


@pytest.mark.parametrize("panels", [6, 4])
@pytest.mark.parametrize("direction", ["a2g", "g2a"])
def test_direction_wiring(tmp_path, panels, direction):
    array, fill = _constant_sample(panels)
    path = _save(tmp_path / "test" / "s.png", array)
    item = CrossViewDataset(tmp_path, "test", direction=direction)[0]
    cond, target, seg = ("A", "B", "D") if direction == "a2g" else ("B", "A", "C")
    expected_label = {("a2g", 6): 2, ("g2a", 6): 0, ("a2g", 4): 4, ("g2a", 4): 3}[(direction, panels)]
    assert item["path"] == str(path)
    assert item["input"].shape == (6, 8, 8) and item["label"].dtype == torch.long
    # Values, not only shapes: 255 -> 1, 0 -> -1, 128 -> 0.5/127.5.
    np.testing.assert_allclose(item["cond_image"][:, 0, 0].numpy(), fill[cond] / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_allclose(item["image"][:, 3, 5].numpy(), fill[target] / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_allclose(item["semantic"][:, 7, 7].numpy(), fill[seg] / 127.5 - 1.0, atol=1e-6)
    assert torch.equal(item["input"][:3], item["cond_image"])
    assert torch.equal(item["input"][3:], item["semantic"])
    assert (item["label"] == expected_label).all()
    assert item["input"].min() >= -1 and item["input"].max() <= 1


def test_four_panel_masks_follow_target_colour_segmentation(tmp_path):
    rng = np.random.default_rng(1)
    aerial, street = _blocky(rng, 16, 4), _blocky(rng, 16, 4)
    # JPEG-like drift on the street colour map stays within the default tolerance of 40.
    drift = rng.integers(-15, 16, (16, 16, 3))
    street_seg = np.clip(_colour_map(street).astype(int) + drift, 0, 255).astype(np.uint8)
    array = join_panels({"A": PHOTO_A[aerial], "B": PHOTO_B[street], "C": _colour_map(aerial), "D": street_seg})
    _save(tmp_path / "test" / "x.png", array)
    a2g = CrossViewDataset(tmp_path, "test", "a2g")[0]
    g2a = CrossViewDataset(tmp_path, "test", "g2a")[0]
    np.testing.assert_array_equal(a2g["label"].numpy(), street)
    np.testing.assert_array_equal(g2a["label"].numpy(), aerial)
    # A tight tolerance turns the drifted colours void.
    tight = CrossViewDataset(tmp_path, "test", "a2g", color_tolerance=3.0)[0]["label"]
    assert (tight == VOID_LABEL).float().mean() > 0.5


def test_jpeg_six_panel_masks_are_exact_matches_like_the_release(tmp_path):
    rng = np.random.default_rng(2)
    size, block = 60, 10  # blocks not on the 8 px JPEG grid, so edges ring
    codes = _blocky(rng, size, block, high=8)  # 6, 7 -> void (gray 0 and 200)
    label = np.where(codes >= 6, VOID_LABEL, codes).astype(np.uint8)
    gray = label_to_gray(label)
    gray[codes == 7] = 200
    photo = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    seg = _colour_map(label)
    gray3 = np.repeat(gray[..., None], 3, -1)
    path = _save(tmp_path / "train" / "noisy.jpg", join_panels(dict(A=photo, B=photo, C=seg, D=seg, E=gray3, F=gray3)),
                 quality=95)  # fmt: skip
    decoded = split_panels(np.asarray(Image.open(path).convert("RGB")))
    assert np.abs(decoded["F"].astype(int) - gray3).max() > 0  # the file really is noisy
    for direction, panel in (("a2g", "F"), ("g2a", "E")):
        item = CrossViewDataset(tmp_path, "train", direction, train=False)[0]
        parsed = item["label"].numpy()
        first = decoded[panel][..., 0]
        # Exactly the release's rule on the decoded file: class k where channel 0 == 10k, void elsewhere.
        expected = np.full((size, size), VOID_LABEL, np.uint8)
        for k in range(6):
            expected[first == 10 * (k + 1)] = k
        np.testing.assert_array_equal(parsed, expected)
        noisy = (first != gray) & (label != VOID_LABEL)
        # JPEG noise is void; rarely a ringing value hits another code exactly (the release has such false matches).
        assert noisy.sum() > 50 and (parsed[noisy] == VOID_LABEL).mean() > 0.9
        clean = (first == gray) & (label != VOID_LABEL)
        np.testing.assert_array_equal(parsed[clean], label[clean])
    report = inspect_crossview(tmp_path)
    exact_void = sum(int((mask_from_gray(decoded[p]) == VOID_LABEL).sum()) for p in "EF")
    assert report.void_pixels["train/noisy.jpg"] == report.void_total == exact_void
    # Void values are reported per first-channel value: the 200s and the 0s are there with their counts.
    assert set(list(report.void_colours)[:2]) == {"0", "200"}
    assert report.void_colours["200"] >= 0.5 * 2 * (codes == 7).sum()
    assert sum(report.void_colours.values()) == report.void_total


# --------------------------------------------------------------------------- transforms


def _find_crop(label: np.ndarray, full: np.ndarray) -> tuple[int, int, bool] | None:
    """(top, left, flipped) such that ``label`` is that crop of ``full``, or None."""
    crop = label.shape[0]
    for flipped in (False, True):
        for top in range(full.shape[0] - crop + 1):
            for left in range(full.shape[1] - crop + 1):
                window = full[top : top + crop, left : left + crop]
                if np.array_equal(window[:, ::-1] if flipped else window, label):
                    return top, left, flipped
    return None


def test_train_crop_and_flip_keep_panels_aligned(tmp_path):
    rng = np.random.default_rng(3)
    full = _blocky(rng, 32, 3)
    _save(tmp_path / "train" / "a.png", _aligned_sample(full))
    dataset = CrossViewDataset(tmp_path, "train", "a2g", load_size=32, crop_size=20, flip=True)
    assert dataset.train and dataset.load_size == 32
    seen = set()
    for _ in range(12):
        item = dataset[0]
        label = item["label"].numpy().astype(np.uint8)
        placement = _find_crop(label, full)
        assert placement is not None, "label is not a (flipped) crop of the file's mask"
        seen.add(placement)
        # Every panel went through the same crop/flip: photos and colour seg match the label.
        np.testing.assert_array_equal(_to_uint8(item["image"]), PHOTO_B[label])
        np.testing.assert_array_equal(_to_uint8(item["cond_image"]), PHOTO_A[label])
        np.testing.assert_array_equal(_to_uint8(item["semantic"]), _colour_map(label))
    assert len({(t, l) for t, l, _ in seen}) > 1
    assert {f for _, _, f in seen} == {False, True}


def test_train_resize_is_bicubic_for_every_panel_masks_included(tmp_path):
    rng = np.random.default_rng(4)
    full = _blocky(rng, 32, 8)
    array = _aligned_sample(full)
    _save(tmp_path / "train" / "a.png", array)
    panels = split_panels(array)
    dataset = CrossViewDataset(tmp_path, "train", "g2a", load_size=40, crop_size=32)

    def bicubic(panel):
        return np.asarray(Image.fromarray(panel).resize((40, 40), Image.Resampling.BICUBIC))

    resized = {k: bicubic(v) for k, v in panels.items()}
    torch.manual_seed(0)
    for _ in range(4):
        item = dataset[0]
        target = _to_uint8(item["image"])  # g2a target = aerial photo A
        placement = _find_crop(target[..., 0], resized["A"][..., 0])
        assert placement is not None and not placement[2]
        top, left, _ = placement
        window = (slice(top, top + 32), slice(left, left + 32))
        np.testing.assert_array_equal(target, resized["A"][window])
        np.testing.assert_array_equal(_to_uint8(item["cond_image"]), resized["B"][window])
        np.testing.assert_array_equal(_to_uint8(item["semantic"]), resized["C"][window])  # colour map: bicubic too
        np.testing.assert_array_equal(item["label"].numpy(), mask_from_gray(resized["E"][window]))
        label = item["label"].numpy()
        assert (label == VOID_LABEL).any()  # blended edges of the resized mask are void, as released
        inner = ndimage.maximum_filter(full, 3) == ndimage.minimum_filter(full, 3)
        assert (label != VOID_LABEL).mean() > 0.6 and inner.any()


def test_eval_whole_panel_or_centre_crop_deterministically(tmp_path):
    rng = np.random.default_rng(5)
    full = _blocky(rng, 32, 4)
    array = _aligned_sample(full)
    _save(tmp_path / "test" / "a.png", array)
    same = CrossViewDataset(tmp_path, "test")
    assert not same.train and same.load_size == same.crop_size == 32
    np.testing.assert_array_equal(same[0]["label"].numpy(), full)
    # Evaluation at another size: the whole panel bicubic-resized (load_size defaults to crop_size).
    half = CrossViewDataset(tmp_path, "test", crop_size=16, flip=True)
    first, second = half[0], half[0]
    f16 = np.asarray(Image.fromarray(split_panels(array)["F"]).resize((16, 16), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(first["label"].numpy(), mask_from_gray(f16))
    assert all(torch.equal(first[k], second[k]) for k in ("input", "image", "label"))
    # An explicit load_size at evaluation: resize to it, then the middle crop.
    centre = CrossViewDataset(tmp_path, "test", load_size=40, crop_size=32)
    f40 = np.asarray(Image.fromarray(split_panels(array)["F"]).resize((40, 40), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(centre[0]["label"].numpy(), mask_from_gray(f40[4:36, 4:36]))


def test_default_load_and_crop_sizes(tmp_path):
    assert default_load_size(256) == 286 and default_load_size(64) == 72
    _save(tmp_path / "train" / "a.png", _aligned_sample(_blocky(np.random.default_rng(6), 64, 8)))
    dataset = CrossViewDataset(tmp_path, "train")
    assert (dataset.panel_size, dataset.load_size, dataset.crop_size) == (64, 72, 64)
    item = dataset[0]
    assert item["image"].shape == (3, 64, 64) and item["label"].shape == (64, 64)
    assert CrossViewDataset.num_classes == 6 and len(dataset.class_names) == 6
    assert dataset.palette.shape == (6, 3) and dataset.palette.dtype == np.uint8


def test_collate_stacks_tensors_and_lists_paths(tmp_path):
    rng = np.random.default_rng(7)
    for name in ("a", "b", "c"):
        _save(tmp_path / "test" / f"{name}.png", _aligned_sample(_blocky(rng, 16, 4)))
    dataset = CrossViewDataset(tmp_path, "test")
    batch = collate_crossview([dataset[i] for i in range(3)])
    assert batch["input"].shape == (3, 6, 16, 16) and batch["label"].shape == (3, 16, 16)
    assert [Path(p).name for p in batch["path"]] == ["a.png", "b.png", "c.png"]
    assert torch.equal(batch["label"][1], dataset[1]["label"])
    masks = class_masks(batch["label"], dataset.num_classes)
    assert torch.equal(masks.argmax(1), batch["label"]) and (masks.sum(1) == 1).all()


# --------------------------------------------------------------------------- bad input


def test_empty_and_missing_folders_are_named(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError, match=r"train.*no .*images"):
        CrossViewDataset(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"test.*not found"):
        CrossViewDataset(tmp_path, "test")


def test_wrong_width_and_unreadable_files_are_named(tmp_path):
    _save(tmp_path / "train" / "a_good.png", _aligned_sample(_blocky(np.random.default_rng(8), 16, 4)))
    _save(tmp_path / "train" / "b_wide.png", np.zeros((16, 16 * 5, 3), np.uint8))
    (tmp_path / "train" / "c_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    dataset = CrossViewDataset(tmp_path, "train")
    dataset[0]
    with pytest.raises(CrossViewDataError, match=r"b_wide\.png.*80x16.*not 4 or 6"):
        dataset[1]
    with pytest.raises(CrossViewDataError, match=r"c_broken\.png.*cannot read"):
        dataset[2]
    # The first file decides the panel size, so a bad first file fails at construction.
    (tmp_path / "train" / "a_good.png").unlink()
    with pytest.raises(CrossViewDataError, match=r"b_wide\.png"):
        CrossViewDataset(tmp_path, "train")


def test_late_file_errors_survive_dataloader_workers_and_pickling(tmp_path):
    good = _save(tmp_path / "test" / "a_good.png", _aligned_sample(_blocky(np.random.default_rng(3), 16, 4)))
    wide = _save(tmp_path / "test" / "b_wide.png", np.zeros((16, 16 * 5, 3), np.uint8))
    cut = _save(tmp_path / "test" / "c_cut.png", np.random.default_rng(4).integers(0, 255, (16, 96, 3), np.uint8))
    cut.write_bytes(cut.read_bytes()[:600])  # header intact, pixel data cut
    (tmp_path / "test" / "d_empty.png").write_bytes(b"")
    dataset = CrossViewDataset(tmp_path, "test")  # only the first file is read at construction
    batches = iter(torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=1, collate_fn=lambda b: b[0]))
    outcomes = []
    for _ in range(len(dataset)):
        try:
            outcomes.append(next(batches))
        except CrossViewDataError as exc:  # re-raised by torch in the main process, rebuilt from its text
            outcomes.append(exc)
    assert next(batches, None) is None
    assert outcomes[0]["path"] == str(good)
    expected = [(wide, "size 80x16 is not 4 or 6 square panels"), (cut, "cannot read image"),
                (tmp_path / "test" / "d_empty.png", "cannot read image")]
    for outcome, (path, message) in zip(outcomes[1:], expected):
        assert type(outcome) is CrossViewDataError and f"{path}: {message}" in str(outcome), outcome
    with pytest.raises(CrossViewDataError) as info:
        dataset[1]
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is CrossViewDataError and str(again) == str(info.value) and str(wide) in str(again)


def test_mismatched_panel_size_and_bad_arguments(tmp_path):
    rng = np.random.default_rng(9)
    _save(tmp_path / "test" / "a.png", _aligned_sample(_blocky(rng, 16, 4)))
    _save(tmp_path / "test" / "b.png", _aligned_sample(_blocky(rng, 32, 4)))
    dataset = CrossViewDataset(tmp_path, "test")
    with pytest.raises(CrossViewDataError, match=r"b\.png.*32 px.*16 px"):
        dataset[1]
    with pytest.raises(CrossViewDataError, match=r"a\.png.*panel_size=32"):
        CrossViewDataset(tmp_path, "test", panel_size=32)
    with pytest.raises(ValueError, match="direction"):
        CrossViewDataset(tmp_path, "test", direction="up")
    with pytest.raises(ValueError, match="load_size"):
        CrossViewDataset(tmp_path, "test", train=True, load_size=8, crop_size=16)
    with pytest.raises(ValueError, match="crop_size"):
        CrossViewDataset(tmp_path, "test", crop_size=0)


# --------------------------------------------------------------------------- inspect


def test_inspect_counts_formats_classes_void_and_problems(tmp_path):
    rng = np.random.default_rng(10)
    first, second = _blocky(rng, 16, 4), _blocky(rng, 16, 4)
    second[:1] = VOID_LABEL  # 16 void pixels in each of its two masks
    _save(tmp_path / "train" / "a.png", _aligned_sample(first))
    _save(tmp_path / "train" / "b.png", _aligned_sample(second))
    street = _blocky(rng, 16, 4)  # CVUSA-like 4-panel file: blank aerial segmentation
    cvusa = join_panels({"A": PHOTO_A[street], "B": PHOTO_B[street], "C": np.zeros((16, 16, 3), np.uint8),
                         "D": _colour_map(street)})  # fmt: skip
    _save(tmp_path / "test" / "c.png", cvusa)
    _save(tmp_path / "test" / "d.png", np.zeros((16, 40, 3), np.uint8))

    report = inspect_crossview(tmp_path)
    assert report.num_files == 4 and report.splits == {"train": 2, "test": 2}
    assert report.formats == {"4-panel": 1, "6-panel": 2} and report.panel_sizes == {16: 3}
    expected_aerial = np.bincount(np.concatenate([first.ravel(), second.ravel()]), minlength=256)[:6]
    expected_street = expected_aerial + np.bincount(street.ravel(), minlength=6)[:6]
    assert report.class_pixels["aerial"] == expected_aerial.tolist()
    assert report.class_pixels["street"] == expected_street.tolist()
    assert report.void_pixels == {"train/a.png": 0, "train/b.png": 32, "test/c.png": 0}
    assert report.void_total == 32 and report.blank_segmentations == {"aerial": 1, "street": 0}
    assert len(report.problems) == 1 and "test/d.png" in report.problems[0]
    assert report.class_frequency()["street"] == pytest.approx(list(expected_street / expected_street.sum()))
    json.dumps(report.as_dict())

    text = format_crossview_report(report)
    for needle in ("files: 4 (train 2, test 2)", "6-panel 2", "16px 3", "train/b.png: 32", "test/d.png", "vehicle"):
        assert needle in text
    only_train = inspect_crossview(tmp_path, "train")
    assert only_train.num_files == 2 and not only_train.problems
    with pytest.raises(FileNotFoundError, match="val"):
        inspect_crossview(tmp_path, "val")
    # A mostly-void dataset is flagged.
    _save(tmp_path / "other" / "train" / "v.png", _aligned_sample(np.full((16, 16), VOID_LABEL, np.uint8)))
    flagged = inspect_crossview(tmp_path / "other")
    assert flagged.void_total == 512 and any("100.0% of mask pixels are void" in p for p in flagged.problems)
