"""Semantic datasets: loaders on tiny datasets in their real layouts, transforms, batching, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lggan.data import (
    ADE20KDataset,
    CityscapesDataset,
    CocoStuffDataset,
    CustomDataset,
    DatasetError,
    SemanticTransform,
    build_semantic_dataset,
    collate_semantic,
    colorize_label,
    instance_edges,
    make_palette,
    make_semantic_input,
    normalize_dataset_name,
    parse_size,
)

W, H = 64, 32


def colour_of(label: np.ndarray) -> np.ndarray:
    """Photo colour as a fixed function of the label, so alignment can be checked after transforms."""
    label = label.astype(np.int64)
    return np.stack([(label * 37) % 256, (label * 91 + 40) % 256, (label * 13 + 200) % 256], -1).astype(np.uint8)


def block_label(rng: np.random.Generator, values: np.ndarray, block: int = 8, size=(W, H)) -> np.ndarray:
    """Label map of ``block x block`` squares drawn from ``values``."""
    w, h = size
    coarse = rng.choice(values, size=(h // block, w // block))
    return np.kron(coarse, np.ones((block, block), dtype=coarse.dtype))


def save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_cityscapes(root: Path, split: str = "train", n: int = 3, seed: int = 0) -> list[dict]:
    """Tiny Cityscapes: 2 cities, labelIds 0..33, instanceIds with car/person instances."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        city = "aachen" if i % 2 == 0 else "bremen"
        name = f"{city}_{i:06d}_000019"
        label = block_label(rng, np.arange(34)).astype(np.uint8)
        instance = label.astype(np.uint16)
        instance[label == 26] = 26000 + i
        instance[:8, :8] = 24001  # a person instance in the corner
        label[:8, :8] = 24
        image = save(colour_of(label), root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png")
        lab = save(label, root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png")
        save(instance, root / "gtFine" / split / city / f"{name}_gtFine_instanceIds.png")
        save(colour_of(label), root / "gtFine" / split / city / f"{name}_gtFine_color.png")  # ignored file
        items.append({"image": image, "label_path": lab, "label": label, "instance": instance})
    return items


def write_flat(image_dir: Path, label_dir: Path, labels: list[np.ndarray], instance_dir: Path | None = None,
               ext: str = ".jpg") -> None:  # fmt: skip
    for i, label in enumerate(labels):
        save(colour_of(label), image_dir / f"img_{i:03d}{ext}")
        save(label, label_dir / f"img_{i:03d}.png")
        if instance_dir is not None:
            save((label.astype(np.uint16) * 3 + 1), instance_dir / f"img_{i:03d}.png")


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return ((image.permute(1, 2, 0).numpy() + 1.0) * 127.5).round().astype(np.int64)


# ------------------------------------------------------------------- cityscapes


def test_cityscapes_loads_exact_values(tmp_path: Path) -> None:
    items = write_cityscapes(tmp_path)
    ds = CityscapesDataset(tmp_path, "train", load_size=None)
    assert len(ds) == 3 and ds.num_classes == 35 and ds.has_instance and ds.input_channels == 36
    assert ds.class_names[7] == "road" and ds.class_names[26] == "car" and ds.class_names[34] == "license plate"
    assert tuple(ds.palette[7]) == (128, 64, 128) and tuple(ds.palette[23]) == (70, 130, 180)
    by_path = {str(item["image"]): item for item in items}
    for sample in (ds[i] for i in range(len(ds))):
        item = by_path[sample["path"]]
        assert sample["label"].dtype == torch.long and sample["instance"].dtype == torch.long
        np.testing.assert_array_equal(sample["label"].numpy(), item["label"])
        np.testing.assert_array_equal(sample["instance"].numpy(), item["instance"])
        assert sample["image"].shape == (3, H, W) and sample["image"].dtype == torch.float32
        np.testing.assert_array_equal(to_uint8(sample["image"]), colour_of(item["label"]))


def test_cityscapes_default_size_and_generator_input(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, "val")
    ds = build_semantic_dataset("cityscapes", tmp_path, "validation")
    sample = ds[0]
    assert sample["label"].shape == (256, 512) and sample["image"].shape == (3, 256, 512)
    assert -1.0 <= sample["image"].min() and sample["image"].max() <= 1.0
    batch = collate_semantic([ds[0], ds[1]])
    x = make_semantic_input(batch["label"], ds.num_classes, batch["instance"])
    assert x.shape == (2, 36, 256, 512)
    # one-hot channels sum to one and pick the label; the last channel is the edge map
    assert torch.equal(x[:, :35].argmax(1), batch["label"]) and torch.all(x[:, :35].sum(1) == 1)
    assert torch.equal(x[:, 35:], instance_edges(batch["instance"]))


def test_cityscapes_label_out_of_range_named_at_load(tmp_path: Path) -> None:
    items = write_cityscapes(tmp_path, n=2)
    bad = items[1]["label"].copy()
    bad[0, 0] = 34  # the license-plate slot never appears in labelIds
    bad[1, 1] = 255
    save(bad, items[1]["label_path"])
    ds = CityscapesDataset(tmp_path, "train", load_size=None)  # start-up reads headers only
    index = [s.label for s in ds.pairs].index(items[1]["label_path"])
    with pytest.raises(ValueError, match=r"gtFine_labelIds\.png: label values \[34, 255\] outside") as info:
        ds[index]
    assert str(items[1]["label_path"]) in str(info.value)


def test_cityscapes_missing_files_and_folders(tmp_path: Path) -> None:
    items = write_cityscapes(tmp_path)
    with pytest.raises(FileNotFoundError, match="Cityscapes image folder .*leftImg8bit/val"):
        CityscapesDataset(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CityscapesDataset(tmp_path / "nope", "train")
    with pytest.raises(ValueError, match="unknown Cityscapes split 'dev'"):
        CityscapesDataset(tmp_path, "dev")
    items[0]["label_path"].unlink()
    orphan = save(items[1]["label"], tmp_path / "gtFine/train/aachen/aachen_999999_000019_gtFine_labelIds.png")
    with pytest.raises(DatasetError) as info:
        CityscapesDataset(tmp_path, "train")
    message = str(info.value)
    assert f"{items[0]['image']}: image without label" in message
    assert f"{orphan}: label without image" in message
    assert len(info.value.issues) == 2 and "2 problem(s) found" in message


def test_empty_split_is_clear(tmp_path: Path) -> None:
    (tmp_path / "leftImg8bit/train/aachen").mkdir(parents=True)
    (tmp_path / "gtFine/train/aachen").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no image/label pairs found"):
        CityscapesDataset(tmp_path, "train")


# --------------------------------------------------------------- start-up checks


def test_size_mismatch_and_unreadable_files_found_at_startup(tmp_path: Path) -> None:
    labels = [np.full((H, W), i, np.uint8) for i in range(3)]
    write_flat(tmp_path / "images", tmp_path / "labels", labels, ext=".png")
    small = save(np.zeros((H // 2, W), np.uint8), tmp_path / "labels" / "img_001.png")
    garbage = tmp_path / "images" / "img_002.png"
    garbage.write_bytes(b"definitely not a png")
    with pytest.raises(DatasetError) as info:
        CustomDataset(tmp_path, num_classes=5)
    message = str(info.value)
    assert f"{small}: label size 64x16 does not match image img_001.png size 64x32" in message
    assert f"{garbage}: unreadable image file" in message
    assert len(info.value.issues) == 2  # both found, not only the first


def test_rgb_label_rejected_at_startup(tmp_path: Path) -> None:
    write_flat(tmp_path / "images", tmp_path / "labels", [np.zeros((H, W), np.uint8)])
    rgb = save(np.zeros((H, W, 3), np.uint8), tmp_path / "labels" / "img_000.png")
    with pytest.raises(DatasetError, match="single-channel") as info:
        CustomDataset(tmp_path, num_classes=3)
    assert str(rgb) in str(info.value)


def test_truncated_file_named_at_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = [np.zeros((H, W), np.uint8)] * 2
    write_flat(tmp_path / "images", tmp_path / "labels", labels, ext=".png")
    noisy = save(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), tmp_path / "images" / "img_001.png")
    noisy.write_bytes(noisy.read_bytes()[: len(noisy.read_bytes()) // 2])  # header intact, data cut
    ds = CustomDataset(tmp_path, num_classes=2)  # header is fine, so start-up passes
    ds[0]
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        ds[1]
    assert str(noisy) in str(info.value)


# -------------------------------------------------------------------- ADE20K


def write_ade(base: Path, split: str, labels: list[np.ndarray]) -> None:
    write_flat(base / "images" / split, base / "annotations" / split, labels)


def test_ade20k_layout_values_and_root_forms(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = tmp_path / "ADEChallengeData2016"
    labels = [block_label(rng, np.arange(151)).astype(np.uint8) for _ in range(2)]
    labels[0][0, :8] = 150
    labels[0][0, 8:16] = 0
    write_ade(base, "training", labels)
    for root in (tmp_path, base):  # parent or the folder itself
        ds = ADE20KDataset(root, "train", load_size=None)
        assert ds.num_classes == 151 and not ds.has_instance and ds.input_channels == 151
        assert ds.class_names[0] == "other" and ds.class_names[1] == "wall" and ds.class_names[150] == "flag"
        assert ds.dontcare_index == 0 and tuple(ds.palette[0]) == (0, 0, 0)
        sample = ds[0]
        assert sample["instance"] is None
        np.testing.assert_array_equal(sample["label"].numpy(), labels[0])
    assert build_semantic_dataset("ade20k", tmp_path, "training")[0]["label"].shape == (256, 256)
    batch = collate_semantic([ds[0], ds[1]])
    assert batch["instance"] is None and batch["path"] == [str(p.image) for p in ds.pairs]
    assert make_semantic_input(batch["label"], ds.num_classes).shape == (2, 151, H, W)


def test_ade20k_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="expected images/ and annotations/"):
        ADE20KDataset(tmp_path, "train")
    base = tmp_path / "ADEChallengeData2016"
    bad = np.zeros((H, W), np.uint8)
    bad[3, 3] = 151
    write_ade(base, "validation", [bad])
    with pytest.raises(ValueError, match="unknown ADE20K split 'test'"):
        ADE20KDataset(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="ADE20K image folder .*training"):
        ADE20KDataset(tmp_path, "train")
    ds = ADE20KDataset(tmp_path, "val")
    with pytest.raises(ValueError, match=r"img_000\.png: label values \[151\] outside the valid range 0\.\.150"):
        ds[0]


# ----------------------------------------------------------------- COCO-Stuff


def test_coco_stuff_dontcare_and_instances(tmp_path: Path) -> None:
    label = np.zeros((H, W), np.uint8)
    label[:, :10] = 255
    label[:, 10:20] = 181
    label[:, 20:30] = 5
    write_flat(tmp_path / "train_img", tmp_path / "train_label", [label], tmp_path / "train_inst")
    ds = CocoStuffDataset(tmp_path, "train", load_size=None)
    assert ds.num_classes == 183 and ds.has_instance and ds.input_channels == 184
    assert ds.dontcare_index == 182 and ds.class_names[182] == "unlabeled" and ds.class_names[0] == "person"
    assert ds.class_names[181] == "wood" and tuple(ds.palette[182]) == (0, 0, 0)
    sample = ds[0]
    expected = label.astype(np.int64)
    expected[label == 255] = 182
    np.testing.assert_array_equal(sample["label"].numpy(), expected)
    np.testing.assert_array_equal(sample["instance"].numpy(), label.astype(np.int64) * 3 + 1)
    x = make_semantic_input(sample["label"][None], ds.num_classes, sample["instance"][None])
    assert x.shape == (1, 184, H, W) and x[0, 182, :, :10].eq(1).all() and x[0, 5, :, 20:30].eq(1).all()
    # the edge channel marks the columns where the instance id changes
    assert x[0, 183, 0].nonzero().flatten().tolist() == [9, 10, 19, 20, 29, 30]


def test_coco_stuff_without_instance_folder_and_bad_value(tmp_path: Path) -> None:
    label = np.full((H, W), 200, np.uint8)
    write_flat(tmp_path / "val_img", tmp_path / "val_label", [label])
    ds = CocoStuffDataset(tmp_path, "val")
    assert not ds.has_instance and ds.input_channels == 183
    with pytest.raises(ValueError, match=r"val_label/img_000\.png: label values \[200\] outside the valid range "
                                         r"0\.\.181 or 255"):  # fmt: skip
        ds[0]
    with pytest.raises(FileNotFoundError, match="COCO-Stuff image folder .*train_img"):
        CocoStuffDataset(tmp_path, "train")


def test_instance_without_image_reported(tmp_path: Path) -> None:
    write_flat(tmp_path / "train_img", tmp_path / "train_label", [np.zeros((H, W), np.uint8)], tmp_path / "train_inst")
    extra = save(np.zeros((H, W), np.uint16), tmp_path / "train_inst" / "lonely.png")
    with pytest.raises(DatasetError, match="instance map without image") as info:
        CocoStuffDataset(tmp_path, "train")
    assert str(extra) in str(info.value)


# --------------------------------------------------------------------- custom


def test_custom_dontcare_maps_to_extra_channel(tmp_path: Path) -> None:
    label = np.zeros((H, W), np.uint8)
    label[:, 32:] = 255
    label[:4, :4] = 4
    write_flat(tmp_path / "train/images", tmp_path / "train/labels", [label])
    ds = build_semantic_dataset("custom", tmp_path, "train", num_classes=5, dontcare=255)
    assert ds.num_classes == 6 and ds.dontcare_index == 5 and ds.class_names[5] == "dontcare"
    assert not ds.has_instance and ds.palette.shape == (6, 3)
    out = ds[0]["label"].numpy()
    assert (out[:, 32:] == 5).all() and (out[:4, :4] == 4).all() and (out[4:, :32] == 0).all()
    plain = CustomDataset(tmp_path, "train", num_classes=5, dontcare=None)
    with pytest.raises(ValueError, match=r"label values \[255\] outside the valid range 0\.\.4 for custom"):
        plain[0]


def test_custom_folders_instances_and_arguments(tmp_path: Path) -> None:
    labels = [np.full((H, W), 2, np.uint8)]
    write_flat(tmp_path / "photos", tmp_path / "masks", labels, tmp_path / "inst", ext=".png")
    ds = CustomDataset(tmp_path, None, num_classes=3, image_dir="photos", label_dir="masks", instance_dir="inst")
    assert ds.has_instance and ds[0]["instance"].unique().tolist() == [7]
    with pytest.raises(ValueError, match="num_classes is required"):
        CustomDataset(tmp_path, None, image_dir="photos", label_dir="masks")
    with pytest.raises(ValueError, match="dontcare must be an integer in 3..65535"):
        CustomDataset(tmp_path, None, num_classes=3, dontcare=1, image_dir="photos", label_dir="masks")
    with pytest.raises(FileNotFoundError, match="custom dataset split folder .*train does not exist"):
        CustomDataset(tmp_path, "train", num_classes=3)
    with pytest.raises(FileNotFoundError, match="custom instance folder .*missing does not exist"):
        CustomDataset(tmp_path, None, num_classes=3, image_dir="photos", label_dir="masks", instance_dir="missing")


def test_factory_names_and_option_errors(tmp_path: Path) -> None:
    assert normalize_dataset_name("COCO_Stuff") == "coco-stuff"
    assert normalize_dataset_name("cocostuff") == "coco-stuff"
    assert normalize_dataset_name("synth_city") == "synth-city"
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        build_semantic_dataset("mnist", tmp_path, "train")
    with pytest.raises(ValueError, match="num_classes only apply to the custom dataset"):
        build_semantic_dataset("cityscapes", tmp_path, "train", num_classes=35)
    with pytest.raises(ValueError, match="load_size: expected 'WIDTHxHEIGHT'"):
        build_semantic_dataset("cityscapes", tmp_path, "train", load_size="big")


# ----------------------------------------------------------------- transforms


def test_crop_and_flip_keep_label_image_instance_aligned(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    label = block_label(rng, np.arange(5), block=4).astype(np.uint8)
    write_flat(tmp_path / "images", tmp_path / "labels", [label], tmp_path / "instances", ext=".png")
    ds = CustomDataset(tmp_path, num_classes=5, crop_size=(40, 24), flip=True)
    seen = set()
    for seed in range(12):
        s = ds.get_sample(0, torch.Generator().manual_seed(seed))
        lab = s["label"].numpy()
        assert lab.shape == (24, 40)
        np.testing.assert_array_equal(to_uint8(s["image"]), colour_of(lab))  # exact: no resampling
        np.testing.assert_array_equal(s["instance"].numpy(), lab * 3 + 1)
        seen.add(lab.tobytes())
    assert len(seen) > 4  # crops / flips really vary with the generator


@pytest.mark.parametrize("load_size", [(128, 64), (32, 16), (96, 40)])
def test_resize_keeps_alignment(tmp_path: Path, load_size: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    label = block_label(rng, np.arange(6), block=16).astype(np.uint8)
    write_flat(tmp_path / "images", tmp_path / "labels", [label], ext=".png")
    ds = CustomDataset(tmp_path, num_classes=6, load_size=load_size, crop_size=(load_size[0] - 8, load_size[1] - 8),
                       flip=True, seed=0)  # fmt: skip
    sample = ds[0]
    lab = sample["label"].numpy()
    assert lab.shape == (load_size[1] - 8, load_size[0] - 8)
    assert set(np.unique(lab)) <= set(np.unique(label))  # nearest: no new ids
    # where the label is uniform in a neighbourhood, the bicubic photo still shows that label's colour
    r = 3
    pad = np.pad(lab, r, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(pad, (2 * r + 1, 2 * r + 1))
    uniform = (windows == lab[..., None, None]).all(axis=(-1, -2))
    assert uniform.mean() > 0.1
    diff = np.abs(to_uint8(sample["image"]) - colour_of(lab).astype(np.int64)).max(-1)
    assert diff[uniform].max() <= 2


def test_resize_nearest_is_exact_and_transform_is_deterministic() -> None:
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 30000, (H, W)).astype(np.int32)
    for size in ((100, 45), (20, 7)):
        out, _, _ = SemanticTransform(load_size=size)(torch.from_numpy(ids).long(), torch.zeros(3, H, W))
        rows = [int((i + 0.5) * H / size[1]) for i in range(size[1])]
        cols = [int((j + 0.5) * W / size[0]) for j in range(size[0])]
        np.testing.assert_array_equal(out.numpy(), ids[np.ix_(rows, cols)])
    out, _, _ = SemanticTransform(load_size=(128, 64))(torch.from_numpy(ids).long(), torch.zeros(3, H, W))
    np.testing.assert_array_equal(out.numpy(), np.asarray(Image.fromarray(ids).resize((128, 64), Image.NEAREST)))
    t = SemanticTransform(load_size=(80, 40), crop_size=(50, 30), flip=True)
    a = t(torch.from_numpy(ids).long(), torch.rand(3, H, W), generator=torch.Generator().manual_seed(5))
    b = t(torch.from_numpy(ids).long(), torch.rand(3, H, W), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0])
    with pytest.raises(ValueError, match="crop_size 90x40 is larger than load_size 80x40"):
        SemanticTransform(load_size=(80, 40), crop_size=(90, 40))
    with pytest.raises(ValueError, match="crop_size 70x20 is larger than the \\(resized\\) image 64x32"):
        SemanticTransform(crop_size=(70, 20))(torch.zeros(H, W, dtype=torch.long), torch.zeros(3, H, W))
    assert parse_size("512x256", "load_size") == (512, 256) and parse_size(256, "s") == (256, 256)
    with pytest.raises(ValueError, match="must be positive"):
        parse_size((0, 5), "crop_size")


def test_crop_too_large_names_file(tmp_path: Path) -> None:
    write_flat(tmp_path / "images", tmp_path / "labels", [np.zeros((H, W), np.uint8)], ext=".png")
    ds = CustomDataset(tmp_path, num_classes=1, crop_size=(128, 16))
    with pytest.raises(ValueError, match=r"img_000\.png: crop_size 128x16 is larger"):
        ds[0]


def test_dataset_seed_makes_augmentation_reproducible(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    write_flat(tmp_path / "images", tmp_path / "labels", [block_label(rng, np.arange(4), 4).astype(np.uint8)])
    make = lambda: CustomDataset(tmp_path, num_classes=4, crop_size=(32, 16), flip=True, seed=11)  # noqa: E731
    first, second = make(), make()
    assert torch.equal(first[0]["label"], second[0]["label"])
    epochs = set()
    for epoch in range(6):
        first.set_epoch(epoch)
        epochs.add(first[0]["label"].numpy().tobytes())
    assert len(epochs) > 1


# ---------------------------------------------------------- batching / one-hot


def test_instance_edges_on_hand_made_map() -> None:
    inst = torch.tensor(
        [
            [1, 1, 1, 2, 2],
            [1, 1, 1, 2, 2],
            [3, 3, 1, 2, 2],
            [3, 3, 3, 3, 3],
        ]
    )
    expected = torch.tensor(
        [
            [0, 0, 1, 1, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1],
        ],
        dtype=torch.float32,
    )
    edges = instance_edges(inst[None])
    assert edges.shape == (1, 1, 4, 5) and edges.dtype == torch.float32
    assert torch.equal(edges[0, 0], expected)
    assert torch.equal(instance_edges(inst[None, None]), edges)  # [B, 1, H, W] accepted too
    assert instance_edges(torch.full((2, 3, 3), 7)).sum() == 0


def test_make_semantic_input_values_and_errors() -> None:
    label = torch.tensor([[[0, 2], [1, 2]]])
    inst = torch.tensor([[[5, 5], [5, 6]]])
    x = make_semantic_input(label, 3, inst)
    expected_onehot = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [1, 0]], [[0, 1], [0, 1]]], dtype=torch.float32)
    assert torch.equal(x[0, :3], expected_onehot)
    assert torch.equal(x[0, 3], torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
    assert torch.equal(make_semantic_input(label, 3), x[:, :3])
    with pytest.raises(ValueError, match=r"label values must lie in \[0, 2\), found min 0 and max 2"):
        make_semantic_input(label, 2)
    with pytest.raises(ValueError, match="integer ids"):
        make_semantic_input(label.float(), 3)
    with pytest.raises(ValueError, match="does not match label shape"):
        make_semantic_input(label, 3, inst[:, :1])
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        make_semantic_input(label, 0)


def test_collate_errors() -> None:
    a = {"label": torch.zeros(4, 4, dtype=torch.long), "instance": None, "image": torch.zeros(3, 4, 4), "path": "a"}
    b = dict(a, path="b", instance=torch.zeros(4, 4, dtype=torch.long))
    c = dict(a, path="c", label=torch.zeros(4, 5, dtype=torch.long), image=torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match="some samples have no instance map: \\['a'\\]"):
        collate_semantic([a, b])
    with pytest.raises(ValueError, match="different sizes .*set load_size"):
        collate_semantic([a, c])
    batch = collate_semantic([a, dict(a, path="d")])
    assert batch["label"].shape == (2, 4, 4) and batch["instance"] is None and batch["path"] == ["a", "d"]


# -------------------------------------------------------------------- palette


def test_colorize_label_and_palette() -> None:
    palette = make_palette(183, dontcare_index=182)
    assert palette.dtype == np.uint8 and len({tuple(c) for c in palette}) == 183
    assert tuple(palette[182]) == (0, 0, 0) and all(tuple(c) != (0, 0, 0) for c in palette[:182])
    label = torch.tensor([[[0, 1], [182, 5]]])
    rgb = colorize_label(label, palette)
    assert rgb.dtype == torch.uint8 and rgb.shape == (1, 2, 2, 3)
    assert rgb[0, 1, 0].tolist() == [0, 0, 0] and rgb[0, 0, 1].tolist() == palette[1].tolist()
    chw = colorize_label(label[0], palette, channels_first=True)
    assert chw.shape == (3, 2, 2) and torch.equal(chw.permute(1, 2, 0), rgb[0])
    arr = colorize_label(label[0].numpy(), palette)
    assert isinstance(arr, np.ndarray) and np.array_equal(arr, rgb[0].numpy())
    with pytest.raises(ValueError, match="palette has only 183 colours"):
        colorize_label(torch.tensor([[183]]), palette)


def test_colorize_label_draws_values_outside_the_palette_in_the_outside_colour() -> None:
    palette = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    label = np.array([[0, 1, 2], [255, -1, 1]])
    grey = [7, 7, 7]
    expected = np.array([[palette[0], palette[1], grey], [grey, grey, palette[1]]], np.uint8)
    assert np.array_equal(colorize_label(label, palette, outside=(7, 7, 7)), expected)
    assert np.array_equal(colorize_label(label.astype(np.uint8), palette, outside=(7, 7, 7))[0], expected[0])
    chw = colorize_label(torch.from_numpy(label)[None], palette, channels_first=True, outside=(7, 7, 7))
    assert chw.dtype == torch.uint8 and np.array_equal(chw[0].permute(1, 2, 0).numpy(), expected)
