"""Generation and the Python API: generation size, colour label maps, output names that `evaluate` pairs, the
`load_generator(...)(label)` API (inputs, to_pil, save/from_pretrained), --threads and `lggan export`."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lggan.cli import build_parser, main
from lggan.config import apply_overrides, get_preset
from lggan.data import CustomDataset, DatasetError
from lggan.data.cityscapes import cityscapes_label_spec
from lggan.data.palette import (
    LABEL_PALETTE_NAMES,
    builtin_label_palette,
    load_label_palette_json,
    resolve_label_palette,
)
from lggan.generate import GenerationResult, Synthesizer, generate_folder, load_generator
from lggan.tasks import make_task

# torch.jit.load (of the TorchScript files `lggan export` writes) warns that TorchScript is deprecated in torch 2.10+.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")

from tiny import CROSSVIEW, SEMANTIC, save_model_file  # noqa: E402
# Few classes keep the dense export graph (one conv per class) small.
FEW_CLASSES = ["data.dataset=custom", "data.num_classes=5", "data.use_instance=true", *SEMANTIC]
CITY_PALETTE = cityscapes_label_spec().palette  # colour of each label id (= channel)


def _build(preset: str, overrides: list[str], seed: int = 0):
    """A config and its generator with weights large enough that every input change shows in the image."""
    cfg = apply_overrides(get_preset(preset), overrides)
    torch.manual_seed(seed)
    G = make_task(cfg).build_generator()
    with torch.no_grad():
        for p in G.parameters():
            p.normal_(0, 0.15)
    return cfg, G


def _model_file(folder: Path, preset: str, overrides: list[str]) -> Path:
    """Weights + config sidecar, as `lggan convert-official` writes them."""
    cfg, G = _build(preset, overrides)
    return save_model_file(folder, preset, cfg, G)


@pytest.fixture(scope="module")
def semantic_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model_file(tmp_path_factory.mktemp("model"), "synth", SEMANTIC)


@pytest.fixture(scope="module")
def crossview_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model_file(tmp_path_factory.mktemp("model"), "synth-views", CROSSVIEW)


def _scene(h: int, w: int, shift: int = 0) -> np.ndarray:
    """Cityscapes label ids: sky 23 over road 7, a car 26, a person 24 and a pole 17."""
    label = np.full((h, w), 7, np.uint8)
    label[: h // 3] = 23
    label[h // 2 : h // 2 + h // 6, shift + w // 8 : shift + w // 2] = 26
    label[h // 3 : h // 2, w - w // 4 :] = 24
    label[:, w // 2 + 1 : w // 2 + 3] = 17
    return label


def _save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img)


# -- 1. generation size ---------------------------------------------------------------------------------------------


def test_generates_at_the_models_size_from_maps_resized_nearest(semantic_model: Path, tmp_path: Path) -> None:
    big = _scene(64, 128)
    big_inst = (np.arange(64 * 128).reshape(64, 128) // 300).astype(np.uint16)
    _save(big, tmp_path / "big" / "a.png")
    _save(big_inst, tmp_path / "big_inst" / "a.png")
    # Nearest to half size takes pixel centres: rows and columns 1, 3, 5, ...
    _save(big[1::2, 1::2].copy(), tmp_path / "small" / "a.png")
    _save(big_inst[1::2, 1::2].copy(), tmp_path / "small_inst" / "a.png")
    generate_folder(semantic_model, tmp_path / "big", tmp_path / "out_big", instances=tmp_path / "big_inst",
                    device="cpu", progress=False)
    generate_folder(semantic_model, tmp_path / "small", tmp_path / "out_small", instances=tmp_path / "small_inst",
                    device="cpu", progress=False)
    image = _pixels(tmp_path / "out_big" / "a.png")
    assert image.shape == (32, 64, 3)  # the model's data.load_size, 64x32
    assert np.array_equal(image, _pixels(tmp_path / "out_small" / "a.png"))
    assert image.std() > 5  # a real image, not a constant


def test_size_and_native_choose_the_generation_size(semantic_model: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    _save(_scene(64, 128), tmp_path / "labels" / "a.png")
    _save(_scene(32, 64), tmp_path / "labels" / "b.png")
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(tmp_path / "labels"),
                 "--out", str(tmp_path / "sized"), "--device", "cpu", "--size", "128x64", "--save-branches"]) == 0
    assert "at 128x64" in capsys.readouterr().out
    for name in ("a.png", "b.png"):
        assert Image.open(tmp_path / "sized" / name).size == (128, 64)
        assert Image.open(tmp_path / "sized" / "weight_local" / name).size == (128, 64)
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(tmp_path / "labels"),
                 "--out", str(tmp_path / "native"), "--device", "cpu", "--native"]) == 0
    assert Image.open(tmp_path / "native" / "a.png").size == (128, 64)
    assert Image.open(tmp_path / "native" / "b.png").size == (64, 32)
    # --native on a 128x64 map equals --size 128x64 (the map is not resized either way).
    assert np.array_equal(_pixels(tmp_path / "native" / "a.png"), _pixels(tmp_path / "sized" / "a.png"))
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(tmp_path / "labels"),
                 "--out", str(tmp_path / "default"), "--device", "cpu"]) == 0
    assert "at 64x32 (the model's training size)" in capsys.readouterr().out
    assert np.array_equal(_pixels(tmp_path / "default" / "b.png"), _pixels(tmp_path / "native" / "b.png"))


def test_size_options_are_checked_before_anything_is_written(semantic_model: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    _save(_scene(32, 64), tmp_path / "labels" / "a.png")
    with pytest.raises(SystemExit):  # one or the other
        build_parser().parse_args(["generate", "--checkpoint", "m", "--labels", "l", "--out", "o", "--size", "64x32",
                                   "--native"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--size and --native"):
        generate_folder(semantic_model, tmp_path / "labels", tmp_path / "out", size=(64, 32), native=True,
                        progress=False)
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(tmp_path / "labels"),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--size", "100x50"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--size 100x50: label map of 100x50" in err and "multiples of 32" in err
    assert not (tmp_path / "out").exists()


def test_generate_help_says_outputs_are_written_at_the_generation_size(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "written at the generation size" in text and "the model's training size" in text
    assert "--native" in text and "--palette" in text and "--threads" in text


def test_cross_view_generation_size(crossview_model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    panels = rng.integers(0, 256, (32, 6 * 32, 3), dtype=np.uint8)
    panels[:, 4 * 32 :] = 10 * rng.integers(1, 7, (32, 2 * 32, 1), dtype=np.uint8)  # gray class masks
    _save(panels, tmp_path / "panels" / "x.png")
    generate_folder(crossview_model, tmp_path / "panels", tmp_path / "out", device="cpu", progress=False)
    assert Image.open(tmp_path / "out" / "x.png").size == (32, 32)  # data.crop_size
    generate_folder(crossview_model, tmp_path / "panels", tmp_path / "big", device="cpu", progress=False,
                    size=(64, 64))
    assert Image.open(tmp_path / "big" / "x.png").size == (64, 64)
    with pytest.raises(ValueError, match="--native: a cross-view model"):
        generate_folder(crossview_model, tmp_path / "panels", tmp_path / "n", device="cpu", progress=False,
                        native=True)


# -- 2. colour label maps -------------------------------------------------------------------------------------------


def test_builtin_palettes_map_each_datasets_colours_back_to_its_label_ids() -> None:
    city = builtin_label_palette("cityscapes")
    ids = np.array([[7, 23, 26], [0, 24, 17]])
    assert np.array_equal(city.labels(CITY_PALETTE[ids]), ids)
    road = city.labels(np.array([[[128, 64, 128]]], np.uint8))
    assert road.tolist() == [[7]]
    # Colours several ids share stand for the smallest: black -> 0 (unlabeled), pole grey -> 17 (not polegroup 18).
    assert city.labels(np.array([[[0, 0, 0], [153, 153, 153]]], np.uint8)).tolist() == [[0, 17]]
    for name in LABEL_PALETTE_NAMES:
        palette = builtin_label_palette(name)
        assert palette.name == name and len(np.unique(palette.ids)) == len(palette.ids)
        assert np.array_equal(palette.labels(palette.colours[None]), palette.ids[None])
    # COCO-Stuff's black is its don't-care value 255, as a label file holds it.
    assert builtin_label_palette("coco-stuff").labels(np.zeros((1, 1, 3), np.uint8)).tolist() == [[255]]
    assert builtin_label_palette("ade20k").labels(np.zeros((1, 1, 3), np.uint8)).tolist() == [[0]]


def test_ade20k_colour_maps_in_the_benchmark_colours_read_as_its_ids() -> None:
    """--palette ade20k is the scene-parsing benchmark's colour table (color150), what its toolkit and the usual
    visualisers draw: a colour map they made reads back as the label values of the annotation PNG."""
    ade = builtin_label_palette("ade20k")
    known = {1: (120, 120, 120), 2: (180, 120, 120), 3: (6, 230, 230), 5: (4, 200, 3), 13: (150, 5, 61),
             21: (0, 102, 200), 150: (92, 0, 255)}  # wall, building, sky, tree, person, car, flag
    rgb = np.array([list(known.values())], np.uint8)
    assert ade.labels(rgb).tolist() == [list(known)]
    assert [ade.names[k] for k in known] == ["wall", "building", "sky", "tree", "person", "car", "flag"]
    # The table draws road (7) and skyscraper (49) in one grey: a colour map cannot tell them apart; it reads as 7.
    assert ade.merged == {7: (49,)} and ade.labels(np.array([[[140, 140, 140]]], np.uint8)).tolist() == [[7]]
    assert len(ade.colours) == 150  # 0 (black) and 1..150 less the shared grey


def test_unknown_colour_error_names_the_file_colour_and_pixel(tmp_path: Path) -> None:
    rgb = CITY_PALETTE[_scene(32, 64)]
    rgb[7, 3] = (12, 34, 56)
    rgb[9, 9] = (12, 34, 57)
    with pytest.raises(ValueError) as info:
        builtin_label_palette("cityscapes").labels(rgb, "labels/a.png")
    assert str(info.value).startswith("labels/a.png: colour (12, 34, 56) at x=3,y=7 is not in the cityscapes palette")
    assert "2 pixels in 2 colours" in str(info.value)


def test_palette_json_files_in_both_forms(tmp_path: Path) -> None:
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps({"name": "mine", "colours": [[10, 20, 30], [255, 0, 0]], "ids": [2, 255]}))
    mapped = tmp_path / "mapped.json"
    mapped.write_text(json.dumps({"colours": {"#0a141e": 2, "255,0,0": 255}}))
    image = np.array([[[10, 20, 30], [255, 0, 0]]], np.uint8)
    for path in (listed, mapped):
        assert load_label_palette_json(path).labels(image).tolist() == [[2, 255]]
    assert load_label_palette_json(listed).name == "mine" and load_label_palette_json(mapped).name == "mapped.json"
    # A palette written with to_json reads back as the same mapping.
    city = builtin_label_palette("cityscapes")
    again = tmp_path / "city.json"
    again.write_text(json.dumps(city.to_json()))
    back = load_label_palette_json(again)
    assert np.array_equal(back.colours, city.colours) and np.array_equal(back.ids, city.ids)
    assert back.names == city.names and city.names[7] == "road" and city.names[26] == "car"
    bad = tmp_path / "bad.json"
    for names in ({"x": "tree"}, {"1": ""}, ["tree"], {"70000": "tree"}):
        bad.write_text(json.dumps({"colours": [[1, 2, 3]], "ids": [1], "names": names}))
        with pytest.raises(ValueError, match=r"bad\.json: (names entry|'names' must be)"):
            load_label_palette_json(bad)
    bad.write_text(json.dumps({"colours": [[1, 2, 3], [1, 2, 3]], "ids": [1, 2]}))
    with pytest.raises(ValueError, match=r"bad\.json: colour \(1, 2, 3\) is listed more than once"):
        load_label_palette_json(bad)
    bad.write_text(json.dumps({"colours": [[1, 2, 3]], "ids": [70000]}))
    with pytest.raises(ValueError, match=r"bad\.json: label ids must be 0\.\.65535"):
        load_label_palette_json(bad)
    # Both JSON forms are checked alike: a colour key written twice (json would keep the last), ids or colour
    # values that are not integers (they would be truncated or cast).
    bad.write_text('{"colours": {"#0a141e": 2, "255,0,0": 3, "#0a141e": 4}}')
    with pytest.raises(ValueError, match=r"bad\.json: key '#0a141e' is listed more than once"):
        load_label_palette_json(bad)
    for text, what in (('{"colours": {"#0a141e": 2.5}}', "2.5"), ('{"colours": [[1, 2, 3]], "ids": [1.5]}', "1.5"),
                       ('{"colours": [[1, 2, 3]], "ids": ["3"]}', "'3'"),
                       ('{"colours": {"#0a141e": true}}', "True")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=rf"bad\.json: label ids must be integers, got {re.escape(what)}"):
            load_label_palette_json(bad)
    bad.write_text('{"colours": [[1, 2, 3.5]], "ids": [1]}')
    with pytest.raises(ValueError, match=r"bad\.json: 'colours' must be \[\[r, g, b\], \.\.\.\] of integers"):
        load_label_palette_json(bad)
    with pytest.raises(ValueError, match=r"--palette 'nope': neither a built-in palette \(cityscapes, ade20k, "
                                         r"coco-stuff\) nor an existing JSON file"):
        resolve_label_palette("nope")


def test_generate_reads_colour_label_maps_through_the_palette(semantic_model: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    ids = _scene(32, 64)
    _save(ids, tmp_path / "ids" / "a.png")
    _save(CITY_PALETTE[ids], tmp_path / "colour" / "a.png")
    generate_folder(semantic_model, tmp_path / "ids", tmp_path / "from_ids", device="cpu", progress=False)
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(tmp_path / "colour"),
                 "--out", str(tmp_path / "from_colour"), "--device", "cpu", "--palette", "cityscapes"]) == 0
    assert np.array_equal(_pixels(tmp_path / "from_colour" / "a.png"), _pixels(tmp_path / "from_ids" / "a.png"))
    capsys.readouterr()
    # Without a palette: one line saying to pass --palette.
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(tmp_path / "colour"),
                 "--out", str(tmp_path / "x"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a.png" in err and "PIL mode RGB" in err and "--palette" in err
    # An unknown colour: the file, the colour, the pixel.
    rgb = CITY_PALETTE[ids]
    rgb[5, 2] = (1, 2, 3)
    _save(rgb, tmp_path / "odd" / "a.png")
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(tmp_path / "odd"),
                 "--out", str(tmp_path / "y"), "--device", "cpu", "--palette", "cityscapes"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{tmp_path / 'odd' / 'a.png'}: colour (1, 2, 3) at x=2,y=5 is not in the cityscapes palette" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _custom_folder(root: Path, labels: list[np.ndarray], colours: np.ndarray | None) -> None:
    rng = np.random.default_rng(1)
    for i, label in enumerate(labels):
        _save(rng.integers(0, 256, (*label.shape, 3), dtype=np.uint8), root / "images" / f"{i}.png")
        _save(label if colours is None else colours[label], root / "labels" / f"{i}.png")


def test_custom_datasets_read_colour_label_maps_through_a_palette(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 3, (16, 32)).astype(np.uint8) for _ in range(2)]
    labels[1][0, 0] = 255  # don't care
    colours = np.zeros((256, 3), np.uint8)
    colours[:3] = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]  # 255 -> black
    palette = tmp_path / "palette.json"
    palette.write_text(json.dumps({"colours": [[200, 0, 0], [0, 200, 0], [0, 0, 200], [0, 0, 0]],
                                   "ids": [0, 1, 2, 255]}))
    _custom_folder(tmp_path / "ids", labels, None)
    _custom_folder(tmp_path / "colour", labels, colours)
    by_id = CustomDataset(tmp_path / "ids", num_classes=3, dontcare=255)
    by_colour = CustomDataset(tmp_path / "colour", num_classes=3, dontcare=255, palette=palette)
    for i in range(2):
        assert torch.equal(by_colour[i]["label"], by_id[i]["label"])
    assert int(by_colour[1]["label"][0, 0]) == 3  # the don't-care channel
    with pytest.raises(DatasetError, match="single-channel.*--palette"):
        CustomDataset(tmp_path / "colour", num_classes=3, dontcare=255)
    # A colour the palette lacks: named at load time with its file and pixel.
    Image.fromarray(np.full((16, 32, 3), 9, np.uint8)).save(tmp_path / "colour" / "labels" / "0.png")
    ds = CustomDataset(tmp_path / "colour", num_classes=3, dontcare=255, palette=palette)
    with pytest.raises(ValueError, match=r"0\.png: colour \(9, 9, 9\) at x=0,y=0 is not in the palette\.json"):
        ds[0]


def test_custom_training_config_passes_data_palette(tmp_path: Path) -> None:
    labels = [np.random.default_rng(i).integers(0, 3, (32, 64)).astype(np.uint8) for i in range(2)]
    colours = np.zeros((256, 3), np.uint8)
    colours[:3] = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]
    _custom_folder(tmp_path / "data" / "train", labels, colours)
    palette = tmp_path / "p.json"
    palette.write_text(json.dumps({"colours": {"200,0,0": 0, "0,200,0": 1, "0,0,200": 2}}))
    cfg = apply_overrides(get_preset("synth"), ["data.dataset=custom", "data.num_classes=3", "data.use_instance=false",
                                                "data.load_size=64x32", "data.flip=false", f"data.palette={palette}"])
    cfg.data.root = str(tmp_path / "data")
    train, _ = make_task(cfg).build_datasets(with_val=False)
    assert torch.equal(train[1]["label"], torch.from_numpy(labels[1]).long())


# -- 3. output names that evaluate pairs ----------------------------------------------------------------------------


def test_generated_names_pair_with_the_photos_in_evaluate(semantic_model: Path, tmp_path: Path) -> None:
    from lggan.metrics.crossview import PIXEL_METRICS
    from lggan.metrics.files import load_image_uint8, uint8_to_unit

    root = tmp_path / "cityscapes"
    rng = np.random.default_rng(0)
    stems = ["aachen_000000_000019", "aachen_000001_000019"]
    for k, stem in enumerate(stems):
        photo = root / "leftImg8bit/val/aachen" / f"{stem}_leftImg8bit.png"
        _save(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8), photo)
        _save(_scene(32, 64, shift=4 * k), root / "gtFine/val/aachen" / f"{stem}_gtFine_labelIds.png")
        _save((np.arange(32 * 64).reshape(32, 64) // 100).astype(np.uint16),
              root / "gtFine/val/aachen" / f"{stem}_gtFine_instanceIds.png")
    out = tmp_path / "generated"
    gt = root / "gtFine/val/aachen"
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(gt), "--instances", str(gt),
                 "--out", str(out), "--device", "cpu"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{s}_leftImg8bit.png" for s in stems]  # the photos' names
    real = root / "leftImg8bit/val/aachen"
    results = tmp_path / "results.json"
    assert main(["evaluate", "--generated", str(out), "--real", str(real), "--metrics", "psnr", "ssim",
                 "--out", str(results), "--device", "cpu", "--no-progress"]) == 0
    scores = json.loads(results.read_text())["metrics"]["images"]
    assert scores["num_images"] == 2
    expected = np.mean([PIXEL_METRICS["psnr"](uint8_to_unit(load_image_uint8(out / n))[None],
                                              uint8_to_unit(load_image_uint8(real / n))[None]).item() for n in names])
    assert scores["psnr"] == pytest.approx(expected, rel=1e-6)


# -- 4. the Python API ----------------------------------------------------------------------------------------------


def test_call_accepts_tensors_arrays_and_pil_images_alike(semantic_model: Path) -> None:
    synth = load_generator(semantic_model, device="cpu")
    ids = _scene(32, 64)
    ref = synth(torch.from_numpy(ids).long())
    assert isinstance(ref, GenerationResult) and ref.image.shape == (1, 3, 32, 64) and ref.image.std() > 0.05
    same = [synth(ids.astype(np.int64)), synth(Image.fromarray(ids)),
            synth(Image.fromarray(CITY_PALETTE[ids]), palette="cityscapes"),
            synth(CITY_PALETTE[ids], palette=builtin_label_palette("cityscapes")),
            synth(torch.from_numpy(ids).long(), instance=torch.from_numpy(ids).long())]  # labels as instances
    for res in same:
        torch.testing.assert_close(res.image, ref.image, rtol=0, atol=0)
    batch = synth([Image.fromarray(ids), Image.fromarray(_scene(32, 64, shift=8))])
    torch.testing.assert_close(batch.image[:1], ref.image, rtol=0, atol=1e-6)
    assert batch.image.shape[0] == 2 and not torch.equal(batch.image[0], batch.image[1])
    # Instances change the edges: a different instance map gives a different image.
    inst = Image.fromarray((np.arange(32 * 64).reshape(32, 64) // 100).astype(np.uint16))
    assert not torch.equal(synth(ids.astype(np.int64), inst).image, ref.image)
    # Resizing on the way in, as `lggan generate` does: by default to the training size, as `lggan generate`.
    big = np.repeat(np.repeat(ids, 2, 0), 2, 1)
    torch.testing.assert_close(synth(Image.fromarray(big), size=(64, 32)).image, ref.image, rtol=0, atol=0)
    torch.testing.assert_close(synth(Image.fromarray(big)).image, ref.image, rtol=0, atol=0)
    native = synth(big.astype(np.int64), native=True)
    assert native.image.shape == (1, 3, 64, 128) and not torch.allclose(native.image[..., ::2, ::2], ref.image)
    assert synth(ids.astype(np.int64), size=(128, 64)).image.shape == (1, 3, 64, 128)
    with pytest.raises(ValueError, match=r"size=\(64, 32\) and native=True: give one"):
        synth(ids.astype(np.int64), size=(64, 32), native=True)
    with pytest.raises(ValueError, match="label: PIL mode RGB: a colour label image needs a palette"):
        synth(Image.fromarray(CITY_PALETTE[ids]))
    assert synth.training_size == (64, 32)


def test_to_pil_gives_the_pixels_generate_writes(semantic_model: Path, tmp_path: Path) -> None:
    ids = _scene(32, 64)
    _save(ids, tmp_path / "labels" / "a.png")
    generate_folder(semantic_model, tmp_path / "labels", tmp_path / "out", device="cpu", progress=False,
                    save_branches=True)
    res = load_generator(semantic_model, device="cpu")(Image.fromarray(ids))
    image = res.to_pil()
    assert isinstance(image, Image.Image) and image.size == (64, 32)
    assert np.array_equal(np.array(image), _pixels(tmp_path / "out" / "a.png"))
    for name, folder in (("global", "global"), ("image_local", "local"), ("weight_local", "weight_local"),
                         ("weight_global", "weight_global")):
        assert np.array_equal(np.array(res.to_pil(name)), _pixels(tmp_path / "out" / folder / "a.png")), name
    assert res.to_pil("weight_local").mode == "L"
    batched = load_generator(semantic_model, device="cpu")(torch.from_numpy(np.stack([ids, ids])).long())
    pils = batched.to_pil()
    assert isinstance(pils, list) and len(pils) == 2 and np.array_equal(np.array(pils[1]), np.array(image))
    image_field, *_ = res  # still unpacks like the generator's output
    assert image_field is res.image
    with pytest.raises(ValueError, match="to_pil\\('bogus'\\)"):
        res.to_pil("bogus")


def test_to_pil_of_a_branch_the_model_lacks(tmp_path: Path) -> None:
    cfg, G = _build("synth", [*SEMANTIC, "model.use_local=false"])
    res = Synthesizer(G, cfg, torch.device("cpu"))(torch.from_numpy(_scene(32, 64)).long())
    assert res.to_pil().size == (64, 32)
    with pytest.raises(ValueError, match="no such output"):
        res.to_pil("local")


def test_save_pretrained_and_from_pretrained_round_trip(semantic_model: Path, tmp_path: Path) -> None:
    import lggan

    synth = load_generator(semantic_model, device="cpu")
    folder = synth.save_pretrained(tmp_path / "g")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "generator.safetensors"]
    again = Synthesizer.from_pretrained(folder, device="cpu")
    assert again.cfg.to_dict() == synth.cfg.to_dict()
    for k, v in synth.generator.state_dict().items():
        assert torch.equal(again.generator.state_dict()[k], v), k
    ids = torch.from_numpy(_scene(32, 64)).long()
    torch.testing.assert_close(again(ids).image, synth(ids).image, rtol=0, atol=0)
    torch.testing.assert_close(lggan.load_generator(folder, "cpu")(ids).image, synth(ids).image, rtol=0, atol=0)
    with pytest.raises(FileExistsError, match="already there; pass overwrite=True"):
        synth.save_pretrained(folder)
    # A stale EMA copy in the folder would be loaded instead of the saved weights: overwrite removes it.
    (folder / "generator_ema.safetensors").write_bytes((folder / "generator.safetensors").read_bytes())
    other = Synthesizer(_build("synth", SEMANTIC, seed=1)[1], synth.cfg, torch.device("cpu"))
    other.save_pretrained(folder, overwrite=True)
    assert not (folder / "generator_ema.safetensors").exists()
    torch.testing.assert_close(Synthesizer.from_pretrained(folder, device="cpu")(ids).image, other(ids).image,
                               rtol=0, atol=0)
    # The folder is a --checkpoint for the command line too.
    _save(_scene(32, 64), tmp_path / "labels" / "a.png")
    assert main(["generate", "--checkpoint", str(folder), "--labels", str(tmp_path / "labels"),
                 "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert np.array_equal(_pixels(tmp_path / "out" / "a.png"), np.array(other(ids).to_pil()))


# -- 5. --threads ---------------------------------------------------------------------------------------------------


def test_threads_option_sets_torch_threads(semantic_model: Path, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _save(_scene(32, 64), tmp_path / "labels" / "a.png")
        assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(tmp_path / "labels"),
                     "--out", str(tmp_path / "out"), "--device", "cpu", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        assert main(["evaluate", "--generated", str(tmp_path / "out"), "--real", str(tmp_path / "out"),
                     "--metrics", "psnr", "--out", str(tmp_path / "r.json"), "--device", "cpu", "--no-progress",
                     "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(tmp_path / "labels"),
                     "--out", str(tmp_path / "out"), "--device", "cpu", "--overwrite"]) == 0
        assert torch.get_num_threads() == 1  # 0 (the default) keeps what there is
    finally:
        torch.set_num_threads(before)
    parser = build_parser()
    assert parser.parse_args(["train-segmenter", "--threads", "3"]).threads == 3
    assert parser.parse_args(["export", "m", "o.pt", "--threads", "2"]).threads == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--threads", "-1"])


# -- 6. export ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("combine", ["conv", "sum"])
def test_dense_local_path_equals_the_sparse_one(combine: str) -> None:
    from lggan.models.class_conv import ClassSpecificConv
    from lggan.models.local_generator import LocalClassGenerator

    torch.manual_seed(0)
    conv = ClassSpecificConv(6, 5, tile_size=16)
    with torch.no_grad():
        conv.weight.normal_(0, 0.3)
        conv.bias.normal_(0, 0.5)
    f = torch.randn(2, 5, 40, 52)  # not multiples of the tile size
    label = torch.randint(0, 4, (2, 40, 52))  # classes 4 and 5 absent
    label[1, :10] = 5
    M = torch.nn.functional.one_hot(label, 6).permute(0, 3, 1, 2).float()
    dense = conv.forward_dense(f, M)
    sparse = conv(f, M).dense().flatten(1, 2)
    assert dense.shape == (2, 18, 40, 52) and dense.std() > 0.1
    torch.testing.assert_close(dense, sparse, rtol=0, atol=1e-5)
    G_l = LocalClassGenerator(6, ngf=5, num_res_blocks=1, combine=combine, in_channels=8)
    with torch.no_grad():
        for p in G_l.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(2, 8, 10, 13)
    torch.testing.assert_close(G_l.forward_dense(x, M), G_l(x, M).image, rtol=0, atol=1e-5)


def test_torchscript_export_equals_the_generator(semantic_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "g.pt"
    assert main(["export", str(semantic_model), str(out), "--format", "torchscript"]) == 0
    assert "wrote" in capsys.readouterr().out
    info = json.loads((tmp_path / "g.pt.json").read_text())
    assert info["format"] == "torchscript" and info["size"] == [64, 32] and list(info["inputs"]) == ["label",
                                                                                                      "instance"]
    assert info["max_abs_diff_vs_sparse_path"] < 1e-5
    traced = torch.jit.load(str(out))
    # fp32 (the export's own precision): on a CPU with native bf16 `amp="auto"` would generate in bf16.
    synth = load_generator(semantic_model, device="cpu", amp="off")
    label = torch.from_numpy(np.stack([_scene(32, 64), _scene(32, 64, shift=8)])).long()
    inst = torch.randint(0, 5, (2, 32, 64))
    with torch.no_grad():
        got = traced(label, inst)
    want = synth(label, inst).image
    assert want.std() > 0.05
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)  # a batch of 2 on a graph traced at batch 1
    torch.testing.assert_close(traced(label, label), synth(label).image, rtol=0, atol=1e-5)  # no instance maps
    # Existing outputs are kept unless --overwrite.
    assert main(["export", str(semantic_model), str(out)]) == 2
    assert "already exists (and 1 more of its files); pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("variant", [["model.local_groups=3"], ["model.local_combine=sum", "model.use_weight_map=false"],
                                     ["model.use_local=false", "data.use_instance=false"]])
def test_torchscript_export_of_model_variants(variant: list[str], tmp_path: Path) -> None:
    from lggan.export import export_generator

    model = _model_file(tmp_path, "synth", [*FEW_CLASSES, *variant])
    export_generator(model, tmp_path / "g.pt")
    traced = torch.jit.load(str(tmp_path / "g.pt"))
    label = torch.randint(0, 5, (1, 32, 64))
    synth = load_generator(model, device="cpu", amp="off")
    with torch.no_grad():
        got = traced(label, label) if synth.cfg.data.use_instance else traced(label)
    want = synth(label).image
    assert want.std() > 0.05
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_torchscript_export_of_a_cross_view_generator(crossview_model: Path, tmp_path: Path) -> None:
    from lggan.export import export_generator

    info = export_generator(crossview_model, tmp_path / "cv.pt")
    assert list(info["inputs"]) == ["aerial", "label"] and info["size"] == [32, 32]
    traced = torch.jit.load(str(tmp_path / "cv.pt"))
    synth = load_generator(crossview_model, device="cpu", amp="off")
    torch.manual_seed(3)
    label = torch.randint(0, 6, (1, 32, 32))
    label[0, :4] = 255  # void
    aerial = torch.rand(1, 6, 32, 32) * 2 - 1
    with torch.no_grad():
        got = traced(aerial, label)
    torch.testing.assert_close(got, synth(label, aerial=aerial).image, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["semantic", "crossview"])
def test_torch_export_program_equals_the_generator(kind: str, semantic_model: Path, crossview_model: Path,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--format export writes a torch.export program (.pt2) that torch.export.load reads back, equal to the sparse
    path on new inputs of the traced shape."""
    model = semantic_model if kind == "semantic" else crossview_model
    out = tmp_path / "g.pt2"
    assert main(["export", str(model), str(out), "--format", "export"]) == 0
    info = json.loads((tmp_path / "g.pt2.json").read_text())
    assert info["format"] == "export" and info["max_abs_diff_vs_sparse_path"] < 1e-5
    program = torch.export.load(str(out)).module()
    synth = load_generator(model, device="cpu", amp="off")
    torch.manual_seed(5)
    if kind == "semantic":
        label = torch.from_numpy(_scene(32, 64, shift=4)).long()[None]
        inst = torch.randint(0, 5, (1, 32, 64))
        got, want = program(label, inst), synth(label, inst).image
    else:
        label = torch.randint(0, 6, (1, 32, 32))
        aerial = torch.rand(1, 6, 32, 32) * 2 - 1
        got, want = program(aerial, label), synth(label, aerial=aerial).image
    assert want.std() > 0.05
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_onnx_export_without_its_packages_is_one_line(semantic_model: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", str(semantic_model), str(tmp_path / "g.onnx"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs the onnx and onnxscript packages" in err and "[export]" in err
    assert not (tmp_path / "g.onnx").exists()
    assert not list(tmp_path.iterdir())


def test_onnx_export_equals_the_generator(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from lggan.export import export_generator

    model = _model_file(tmp_path, "synth", FEW_CLASSES)
    info = export_generator(model, tmp_path / "g.onnx", fmt="onnx")
    assert info["max_abs_diff_vs_sparse_path"] < 1e-4
    import onnx

    graph = onnx.load(str(tmp_path / "g.onnx")).graph
    assert [i.name for i in graph.input] == ["label", "instance"] and [o.name for o in graph.output] == ["image"]
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    label = torch.randint(0, 5, (1, 32, 64))
    inst = torch.randint(0, 3, (1, 32, 64))
    got = torch.from_numpy(session.run(None, {"label": label.numpy(), "instance": inst.numpy()})[0])
    torch.testing.assert_close(got, load_generator(model, device="cpu", amp="off")(label, inst).image, rtol=0, atol=1e-4)


def test_generate_names_every_input_it_leaves_out(semantic_model: Path, tmp_path: Path, capsys) -> None:
    ids = _scene(32, 64)
    labels = tmp_path / "gtFine"
    _save(ids, labels / "a_gtFine_labelIds.png")
    _save(ids, labels / "b_gtFine_labelIds.png")
    _save(CITY_PALETTE[ids], labels / "a_gtFine_color.png")  # Cityscapes ships these beside the label ids: expected
    (labels / "a_gtFine_polygons.json").write_text("{}")
    _save(ids, labels / "extra.png")  # neither a label-id map nor a gtFine companion: named
    (labels / "notes.txt").write_text("not an image")
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(labels), "--out",
                 str(tmp_path / "out"), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if "skipped" in line]
    assert warning == [f"lggan generate: warning: --labels {labels}: 2 files skipped: extra.png (not a *_labelIds "
                       "file, and the folder has those); notes.txt (not .png)"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == ["a_leftImg8bit.png", "b_leftImg8bit.png"]
