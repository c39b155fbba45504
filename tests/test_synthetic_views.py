"""Synthetic cross-view towns: determinism, scene/class-map consistency, on-disk dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lggan.data.crossview import (
    CrossViewDataset,
    mask_from_color,
    mask_from_gray,
    read_crossview_image,
    split_panels,
)
from lggan.data.inspect import inspect_crossview
from lggan.data.synthetic_views import (
    MATERIAL_CLASS,
    MATERIAL_SEG_COLOR,
    default_synth_views_root,
    ensure_synth_views,
    generate_synth_views,
    render_views,
)

VEHICLE, FLAT, SMALL, STRUCTURE, SKY, VEGETATION = range(6)
SIZE = 64
SEEDS = range(6)


@pytest.fixture(scope="module")
def renders() -> list[dict]:
    return [render_views(np.random.default_rng(seed), SIZE) for seed in SEEDS]


def test_render_is_deterministic_per_rng_state():
    first = render_views(np.random.default_rng(11), 48)
    again = render_views(np.random.default_rng(11), 48)
    other = render_views(np.random.default_rng(12), 48)
    for key in "ABCDEF":
        assert first[key].shape == (48, 48, 3) and first[key].dtype == np.uint8
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["A"], other["A"]) and not np.array_equal(first["B"], other["B"])
    assert not np.array_equal(first["aerial_label"], other["aerial_label"])


def test_town_does_not_depend_on_render_size():
    small = render_views(np.random.default_rng(5), 32)
    large = render_views(np.random.default_rng(5), 64)
    # Same scene: sampling the 64 px class maps at the 32 px pixel centres mostly agrees.
    for key in ("aerial_label", "street_label"):
        agree = (large[key][1::2, 1::2] == small[key]).mean()
        assert agree > 0.85, (key, agree)


def test_panels_encode_the_same_class_maps(renders):
    for panels in renders:
        for label_key, seg, mask in (("aerial_label", "C", "E"), ("street_label", "D", "F")):
            label = panels[label_key]
            assert label.max() <= 5  # no void anywhere
            np.testing.assert_array_equal(mask_from_gray(panels[mask]), label)
            np.testing.assert_array_equal(mask_from_color(panels[seg]), label)
    # Grass is flat ground drawn with the terrain colour, sidewalks with the road colour.
    assert tuple(MATERIAL_SEG_COLOR[2]) == (152, 251, 152) and MATERIAL_CLASS[2] == FLAT
    assert tuple(MATERIAL_SEG_COLOR[1]) == (128, 64, 128) and MATERIAL_CLASS[1] == FLAT


def test_sky_only_in_street_view_above_the_horizon(renders):
    for panels in renders:
        street, aerial = panels["street_label"], panels["aerial_label"]
        rows = np.arange(SIZE)[:, None] + 0.5
        assert not (aerial == SKY).any()
        assert (street == SKY).any()
        assert not ((street == SKY) & (rows > panels["horizon"])).any()
        # Nothing floats: in every column the sky is one run starting at the top row.
        sky = street == SKY
        first_non_sky = np.argmin(sky, axis=0)
        assert (sky.sum(axis=0) == np.where(sky.all(axis=0), SIZE, first_non_sky)).all()
        # Right below the horizon the far ground or an object is visible, never sky.
        assert not sky[SIZE // 2 :].any()


def test_street_camera_stands_on_the_road(renders):
    for panels in renders:
        street, aerial = panels["street_label"], panels["aerial_label"]
        # Street view: the bottom row is road (flat ground), at least around the centre.
        assert (street[-1, SIZE // 4 : 3 * SIZE // 4] == FLAT).all()
        assert (street[-4:] == FLAT).mean() > 0.8
        # Aerial view is centred on the camera: the middle pixels are road.
        centre = aerial[SIZE // 2 - 1 : SIZE // 2 + 1, SIZE // 2 - 1 : SIZE // 2 + 1]
        assert (centre == FLAT).all()


def test_class_fractions_are_plausible(renders):
    aerial = np.stack([np.bincount(p["aerial_label"].ravel(), minlength=6) for p in renders]) / SIZE**2
    street = np.stack([np.bincount(p["street_label"].ravel(), minlength=6) for p in renders]) / SIZE**2
    mean_a, mean_s = aerial.mean(0), street.mean(0)
    assert 0.4 < mean_a[FLAT] < 0.9 and 0.05 < mean_a[STRUCTURE] < 0.45
    assert 0.0 < mean_a[VEHICLE] < 0.1 and 0.0 < mean_a[VEGETATION] < 0.3
    assert 0.1 < mean_s[SKY] < 0.5 and 0.25 < mean_s[FLAT] < 0.6
    assert mean_s[STRUCTURE] + mean_s[VEGETATION] > 0.1
    # Every street view has both sky and ground; aerial views hold several classes.
    assert (street[:, SKY] > 0).all() and (street[:, FLAT] > 0.2).all()
    assert ((aerial > 0).sum(1) >= 3).all()


def test_photos_follow_the_class_maps(renders):
    for panels in renders:
        street, photo = panels["street_label"], panels["B"].astype(float)
        sky, ground = street == SKY, (street == FLAT) & (np.arange(SIZE)[:, None] >= SIZE * 3 // 4)
        # Sky is bluer than the near ground; photos are textured, not flat fills.
        blue = photo[..., 2] - photo[..., :2].mean(-1)
        assert blue[sky].mean() > blue[ground].mean() + 10
        assert photo[ground].std(0).mean() > 2.0
    assert not np.array_equal(renders[0]["B"], renders[1]["B"])


def test_generate_writes_loadable_deterministic_dataset(tmp_path):
    root = tmp_path / "views"
    summary = generate_synth_views(root, num_train=3, num_test=2, size=32, seed=7, workers=0, progress=False)
    assert summary["num_train"] == 3 and summary["size"] == 32 and summary["seconds"] > 0
    assert sum(summary["class_fraction"]["street"]) == pytest.approx(1.0)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["views"]  # no temp folder left behind
    assert json.loads((root / "synth_views.json").read_text())["seed"] == 7

    # The file for (seed, split, index) is exactly what render_views draws from that seed.
    expected = render_views(np.random.default_rng([7, 1, 1]), 32)
    panels = split_panels(read_crossview_image(root / "test" / "000001.png"))
    for key in "ABCDEF":
        np.testing.assert_array_equal(panels[key], expected[key])
    item = CrossViewDataset(root, "test", "a2g")[1]
    np.testing.assert_array_equal(item["label"].numpy(), expected["street_label"])
    np.testing.assert_array_equal(np.rint((item["image"].permute(1, 2, 0).numpy() + 1) * 127.5), expected["B"])
    assert CrossViewDataset(root, "train", "g2a", flip=True)[2]["input"].shape == (6, 32, 32)

    report = inspect_crossview(root)
    assert report.num_files == 5 and report.formats == {"6-panel": 5} and report.void_total == 0
    assert not report.problems and report.class_pixels["aerial"][SKY] == 0

    # Same seed, two worker processes: identical files. Existing targets are refused unless overwrite.
    twin = tmp_path / "twin"
    generate_synth_views(twin, num_train=3, num_test=2, size=32, seed=7, workers=2, progress=False)
    for name in ("train/000002.png", "test/000000.png"):
        np.testing.assert_array_equal(read_crossview_image(twin / name), read_crossview_image(root / name))
    with pytest.raises(FileExistsError, match="views"):
        generate_synth_views(root, num_train=1, num_test=1, size=32, workers=0, progress=False)
    generate_synth_views(root, num_train=1, num_test=1, size=32, seed=8, workers=0, progress=False, overwrite=True)
    assert len(list((root / "train").iterdir())) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twin", "views"]


def test_ensure_uses_cache_and_refuses_foreign_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("LGGAN_CACHE", str(tmp_path / "cache"))
    root = default_synth_views_root(32, 2, 1, 3)
    assert root.parent == tmp_path / "cache" and "32px" in root.name and "seed3" in root.name
    made = ensure_synth_views(size=32, num_train=2, num_test=1, seed=3, workers=0, progress=False)
    assert made == root and len(list((root / "train").glob("*.png"))) == 2
    stamp = (root / "train" / "000000.png").stat().st_mtime_ns
    assert ensure_synth_views(size=32, num_train=2, num_test=1, seed=3, workers=0, progress=False) == root
    assert (root / "train" / "000000.png").stat().st_mtime_ns == stamp  # reused, not regenerated
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with pytest.raises(FileExistsError, match="foreign.*not a complete"):
        ensure_synth_views(foreign, size=32, num_train=2, num_test=1, workers=0, progress=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"size": 8}, "size"), ({"num_train": -1}, "num_train"), ({"num_train": 0, "num_test": 0}, "num_train"),
     ({"seed": -2}, "seed"), ({"workers": -1}, "workers")],  # fmt: skip
)
def test_generate_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synth_views(tmp_path / "x", **{"workers": 0, "progress": False, **kwargs})
    assert not (tmp_path / "x").exists()
