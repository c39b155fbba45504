"""Built-in synthetic city: scene content, determinism, Cityscapes layout, atomic generation, cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lggan.data import CityscapesDataset, build_semantic_dataset, collate_semantic, make_semantic_input
from lggan.data import synthetic as synth
from lggan.data.synthetic import (
    default_synth_city_root,
    ensure_synth_city,
    format_synth_summary,
    generate_synth_city,
    layout_scene,
    render_photo,
    render_scene,
    scene_rng,
    summarize_synth_city,
)

SMALL = (96, 48)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_official_cityscapes_ids() -> None:
    ids = {"ROAD": 7, "SIDEWALK": 8, "BUILDING": 11, "WALL": 12, "FENCE": 13, "POLE": 17, "TRAFFIC_LIGHT": 19,
           "TRAFFIC_SIGN": 20, "VEGETATION": 21, "TERRAIN": 22, "SKY": 23, "PERSON": 24, "CAR": 26}  # fmt: skip
    assert {name: getattr(synth, name) for name in ids} == ids


def test_render_scene_is_deterministic_and_seeds_differ() -> None:
    a = render_scene(rng(3), SMALL)
    b = render_scene(rng(3), SMALL)
    c = render_scene(rng(4), SMALL)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[2], c[2])
    label, instance, image = a
    assert label.dtype == np.uint8 and label.shape == (48, 96)
    assert instance.dtype == np.int32 and instance.shape == (48, 96)
    assert image.dtype == np.uint8 and image.shape == (48, 96, 3)


def test_scene_content_and_instance_encoding() -> None:
    allowed = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 26}
    seen: set[int] = set()
    for seed in range(12):
        label, instance, _ = render_scene(rng(seed), (256, 128))
        values = set(np.unique(label).tolist())
        assert values <= allowed
        assert {7, 23} <= values  # every street has road and sky
        seen |= values
        things = np.isin(label, [24, 26])
        # instances: id * 1000 + k for cars/persons, the plain label id elsewhere
        assert np.array_equal(instance[things] // 1000, label[things].astype(np.int32))
        assert np.array_equal(instance[~things], label[~things].astype(np.int32))
    # the small objects LGGAN cares about all show up across a handful of scenes
    assert {17, 19, 20, 24, 26} <= seen


def test_perspective_far_objects_are_smaller_and_higher() -> None:
    heights, bottoms = [], []
    for seed in range(20):
        layout = layout_scene(rng(seed), (256, 128))
        for inst in np.unique(layout.instance[layout.label == 26]):
            rows = np.nonzero((layout.instance == inst).any(axis=1))[0]
            if rows.max() < 127 and rows.min() > 0:  # fully inside the frame
                heights.append(rows.max() - rows.min() + 1)
                bottoms.append(rows.max() + 0.5 - layout.camera.horizon)
    assert len(heights) > 20
    # screen height shrinks towards the horizon: strong positive correlation
    assert np.corrcoef(heights, bottoms)[0, 1] > 0.8


def test_objects_are_in_front_of_the_ground() -> None:
    layout = layout_scene(rng(7), (256, 128))
    cam = layout.camera
    rows = (np.arange(128) + 0.5)[:, None]
    z_ground = np.where(rows > cam.horizon, cam.focal * cam.cam_height / np.maximum(rows - cam.horizon, 1e-3), np.inf)
    objects = np.isin(layout.label, [17, 19, 20, 24, 26])
    assert objects.any()
    assert (layout.depth <= np.broadcast_to(z_ground, layout.depth.shape) + 1e-3)[objects].all()


def test_same_layout_renders_different_photos_with_texture() -> None:
    layout = layout_scene(rng(11), (256, 128))
    first, second = render_photo(layout, rng(1)), render_photo(layout, rng(2))
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 8
    # appearance is not a colour lookup: pixels of one class vary inside an image
    for class_id in (7, 11, 23):
        pixels = first[layout.label == class_id].astype(float)
        if len(pixels) > 50:
            assert pixels.std(axis=0).mean() > 3


def test_generate_layout_files_and_loader(tmp_path: Path) -> None:
    out = tmp_path / "city"
    summary = generate_synth_city(out, num_train=3, num_val=2, size=SMALL, seed=5, workers=1, progress=False)
    assert summary["num_train"] == 3 and summary["size"] == [96, 48] and "road" in summary["classes"]
    name = "synth_000002_000019"
    assert (out / f"leftImg8bit/train/synth/{name}_leftImg8bit.png").is_file()
    assert (out / f"gtFine/train/synth/{name}_gtFine_labelIds.png").is_file()
    assert (out / "gtFine/val/synth/synth_000001_000019_gtFine_instanceIds.png").is_file()
    assert not (out / "gtFine/val/synth/synth_000002_000019_gtFine_instanceIds.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp folder renamed away
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)

    ds = CityscapesDataset(out, "train", load_size=None)
    assert len(ds) == 3 and ds.num_classes == 35 and ds.has_instance
    sample = ds[2]
    label, instance, image = render_scene(scene_rng(5, "train", 2), SMALL)
    assert np.array_equal(sample["label"].numpy(), label)
    assert np.array_equal(sample["instance"].numpy(), instance)
    assert np.array_equal(((sample["image"].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy(), image)
    batch = collate_semantic([ds[0], ds[1]])
    assert make_semantic_input(batch["label"], ds.num_classes, batch["instance"]).shape == (2, 36, 48, 96)

    via_factory = build_semantic_dataset("synth-city", out, "val")
    assert len(via_factory) == 2 and via_factory[0]["label"].shape == (48, 96)  # native size by default
    assert summarize_synth_city(out)["seed"] == 5
    text = format_synth_summary(summary)
    assert "3 train + 2 val images of 96x48, seed 5" in text and "road" in text


def test_generation_is_deterministic_across_runs_and_workers(tmp_path: Path) -> None:
    kwargs = dict(num_train=4, num_val=2, size=(64, 32), progress=False)
    generate_synth_city(tmp_path / "a", seed=1, workers=1, **kwargs)
    generate_synth_city(tmp_path / "b", seed=1, workers=2, **kwargs)
    generate_synth_city(tmp_path / "c", seed=2, workers=1, **kwargs)
    a, b, c = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b"), tree_bytes(tmp_path / "c")
    assert len(a) == 18 and a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a if "leftImg8bit" in k)
    # the same index in train and val is a different scene
    assert a["leftImg8bit/train/synth/synth_000000_000019_leftImg8bit.png"] != a[
        "leftImg8bit/val/synth/synth_000000_000019_leftImg8bit.png"
    ]


def test_generation_refuses_to_clobber_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "city"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists and is not empty"):
        generate_synth_city(out, num_train=1, num_val=0, size=(32, 16), progress=False)
    # --force (overwrite) replaces only a synthetic city: this folder is somebody else's.
    with pytest.raises(FileExistsError, match="is not a dataset lggan generated"):
        generate_synth_city(out, num_train=1, num_val=1, size=(32, 16), progress=False, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    generate_synth_city(out, num_train=2, num_val=1, size=(32, 16), progress=False)
    generate_synth_city(out, num_train=1, num_val=1, size=(32, 16), progress=False, overwrite=True)
    assert summarize_synth_city(out)["num_train"] == 1

    def broken(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(synth, "_generate_image", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_synth_city(tmp_path / "never", num_train=2, num_val=0, size=(32, 16), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city"]  # no partial output, no temp folder


def _interrupt_at_image_3(job: tuple) -> np.ndarray:
    """Stands in for the image worker (module level, so the pool can pickle it): Ctrl-C arrives at image 3."""
    if job[2] == 3:
        raise KeyboardInterrupt
    return np.zeros(256, np.int64)


def test_interrupt_in_worker_pool_keeps_the_old_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "city"
    generate_synth_city(out, num_train=2, num_val=1, size=(32, 16), seed=1, workers=0, progress=False)
    before = tree_bytes(out)
    monkeypatch.setattr(synth, "_generate_image", _interrupt_at_image_3)
    with pytest.raises(KeyboardInterrupt):
        generate_synth_city(out, num_train=8, num_val=0, size=(32, 16), seed=2, workers=2, progress=False,
                            overwrite=True)
    assert tree_bytes(out) == before and summarize_synth_city(out)["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city"]  # the temp folder went with the interrupt


def test_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_train must be a non-negative integer"):
        generate_synth_city(tmp_path / "x", num_train=-1, progress=False)
    with pytest.raises(ValueError, match="num_train \\+ num_val must be at least 1"):
        generate_synth_city(tmp_path / "x", num_train=0, num_val=0, progress=False)
    with pytest.raises(ValueError, match="size must be at least 8x8"):
        generate_synth_city(tmp_path / "x", size=(4, 4), progress=False)
    with pytest.raises(FileNotFoundError, match="not a generated synthetic city"):
        summarize_synth_city(tmp_path)


def test_ensure_generates_once_in_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGGAN_CACHE", str(tmp_path / "cache"))
    root = default_synth_city_root(num_train=2, num_val=1, size=(32, 16), seed=3)
    assert root.parent == tmp_path / "cache" and root.name == "synth_city_v1_32x16_train2_val1_seed3"
    made = ensure_synth_city(num_train=2, num_val=1, size=(32, 16), seed=3, progress=False)
    assert made == root and (root / "synth_city.json").is_file()
    stamp = os.stat(root / "synth_city.json").st_mtime_ns

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not regenerate")

    monkeypatch.setattr(synth, "generate_synth_city", fail)
    assert ensure_synth_city(num_train=2, num_val=1, size=(32, 16), seed=3) == root
    assert os.stat(root / "synth_city.json").st_mtime_ns == stamp
    with pytest.raises(ValueError, match="holds a synthetic city with"):
        ensure_synth_city(root, num_train=5, num_val=1, size=(32, 16), seed=3)


def test_dataset_yields_float_images_in_range(tmp_path: Path) -> None:
    generate_synth_city(tmp_path / "c", num_train=2, num_val=1, size=(64, 32), seed=0, progress=False)
    ds = build_semantic_dataset("synth-city", tmp_path / "c", "train", crop_size=(32, 32), flip=True, seed=1)
    sample = ds[1]
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 32, 32)
    assert sample["image"].min() >= -1 and sample["image"].max() <= 1
