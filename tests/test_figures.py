"""Figure outputs: the per-class image grid of `generate --save-branches` and the strips of `evaluate
--save-predictions` (tiny models on CPU, read back from the PNG files and compared with what the models compute)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_generate_safety import _label_maps
from tiny import SEMANTIC
from tiny import model_file as _model_file

from lggan.cli import build_parser, main
from lggan.config import apply_overrides, get_preset
from lggan.data.crossview import join_panels, read_crossview_inputs
from lggan.evaluate import PREDICTIONS_FOLDER, WORK_MANIFEST, train_id_colours
from lggan.generate import (
    CLASS_GRID_FOLDER,
    class_names,
    generate_folder,
    load_generator,
    present_class_images,
    present_groups,
)
from lggan.metrics import load_segmenter
from lggan.metrics.files import load_image_uint8, load_label_map, uint8_to_unit
from lggan.metrics.segmenter import CompactSegmenter, save_segmenter
from lggan.tasks import make_task
from lggan.viz import caption_height, captioned_grid, grid_layout, strip_panels, tensor_to_uint8


def _tiles(grid: np.ndarray, count: int, h: int, w: int) -> list[np.ndarray]:
    """The tiles of a captioned grid file, at the places `grid_layout` gives (checked against the file's size)."""
    size, origins = grid_layout(count, h, w)
    assert grid.shape[:2] == size, "the grid does not hold exactly this many tiles"
    return [grid[y : y + h, x : x + w] for y, x in origins]


def _bands(grid: np.ndarray, count: int, h: int, w: int) -> list[np.ndarray]:
    _, origins = grid_layout(count, h, w)
    return [grid[y - caption_height() : y, x : x + w] for y, x in origins]


def _assert_tiles_are(grid: np.ndarray, expected: list[torch.Tensor]) -> None:
    h, w = expected[0].shape[-2:]
    for k, (tile, image) in enumerate(zip(_tiles(grid, len(expected), h, w), expected)):
        diff = np.abs(tile.astype(int) - tensor_to_uint8(image).astype(int)).max()
        assert diff <= 1, f"tile {k} differs from the model's I^l by {diff}"


def test_class_grid_holds_the_models_per_class_image_of_each_present_class(semantic_model: Path,
                                                                           tmp_path: Path) -> None:
    labels = _label_maps(tmp_path / "labels", ["a.png", "b.png"])
    extra = np.array(Image.open(labels / "b.png"))
    extra[26:, 40:] = 11  # b also has a wall: one more tile than a
    Image.fromarray(extra).save(labels / "b.png")
    out = tmp_path / "out"
    generate_folder(semantic_model, labels, out, device="cpu", progress=False, save_branches=True, amp="off",
                    batch_size=2)
    assert sorted(p.name for p in (out / CLASS_GRID_FOLDER).iterdir()) == ["a.png", "b.png"]

    synth = load_generator(semantic_model, device="cpu", amp="off")
    names = class_names(synth.cfg)
    assert len(names) == synth.cfg.data.num_classes and names[26] == "car"
    captions_seen = []
    for file, present in (("a.png", [7, 23, 26]), ("b.png", [7, 11, 23, 26])):
        label = torch.from_numpy(np.array(Image.open(labels / file)).astype(np.int64))
        res = synth(label, label.clone())  # no --instances given: the label map delimits the regions
        assert list(present_groups(label, len(names), res.class_images.num_classes)) == present
        dense = res.class_images.dense()[0]  # [C, 3, H, W]: every class's I^l as the model computes it
        grid = np.array(Image.open(out / CLASS_GRID_FOLDER / file).convert("RGB"))
        _assert_tiles_are(grid, [dense[c] for c in present])
        # Each tile is captioned with its class name: the band is what that name renders to.
        for band, c in zip(_bands(grid, len(present), 32, 64), present):
            solo = captioned_grid([tensor_to_uint8(dense[c])], [names[c]])
            assert np.array_equal(band, _bands(solo, 1, 32, 64)[0]), names[c]
            assert (band < 128).any()
            captions_seen.append(band)
    assert not np.array_equal(captions_seen[0], captions_seen[1])  # road's caption is not building's


def test_grouped_local_branch_shows_one_tile_per_present_group() -> None:
    # model.local_groups: classes from N-1 on share the last branch, which then stands for all of them.
    cfg = apply_overrides(get_preset("synth"), SEMANTIC + ["model.local_groups=24"])
    G = make_task(cfg).build_generator().eval()
    label = torch.full((32, 64), 7)
    label[:10], label[14:20, 8:28], label[26:, :8] = 23, 26, 30
    S = make_task(cfg).generator_inputs(label[None], label[None].clone())
    with torch.no_grad():
        ci = G(*S).class_images
    groups = present_groups(label, cfg.data.num_classes, ci.num_classes)
    assert groups == {7: [7], 23: [23, 26, 30]}
    images = present_class_images(ci, 0, list(groups))
    assert torch.equal(images, ci.dense()[0, [7, 23]])


def test_cross_view_class_grid_uses_the_classes_of_the_target_map(crossview_model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    mask = np.zeros((32, 32, 3), np.uint8)
    mask[:12], mask[12:20], mask[20:] = 50, 20, 10  # gray 10*k: sky, flat, vehicle
    panels = {k: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for k in "ABCD"}
    panels.update(E=mask, F=mask)
    folder = tmp_path / "panels"
    folder.mkdir()
    Image.fromarray(join_panels(panels)).save(folder / "x.png")
    out = tmp_path / "out"
    generate_folder(crossview_model, folder, out, device="cpu", progress=False, save_branches=True, amp="off")

    synth = load_generator(crossview_model, device="cpu", amp="off")
    x, label = read_crossview_inputs(folder / "x.png", direction=synth.cfg.data.direction, size=32)
    res = synth(label, aerial=x)
    present = sorted(int(c) for c in torch.unique(label) if c < synth.cfg.data.num_classes)
    assert present == [0, 1, 4]
    grid = np.array(Image.open(out / CLASS_GRID_FOLDER / "x.png").convert("RGB"))
    _assert_tiles_are(grid, [res.class_images.dense()[0, c] for c in present])
    assert [class_names(synth.cfg)[c] for c in present] == ["vehicle", "flat", "sky"]


def test_global_only_models_write_no_class_grid(tmp_path: Path) -> None:
    model = _model_file(tmp_path, "synth", SEMANTIC + ["model.use_local=false"])
    labels = _label_maps(tmp_path / "labels", ["a.png"])
    generate_folder(model, labels, tmp_path / "out", device="cpu", progress=False, save_branches=True)
    assert not (tmp_path / "out" / CLASS_GRID_FOLDER).exists()


def test_an_existing_class_grid_counts_as_an_existing_output(semantic_model: Path, tmp_path: Path) -> None:
    labels = _label_maps(tmp_path / "labels", ["a.png"])
    (tmp_path / "out" / CLASS_GRID_FOLDER).mkdir(parents=True)
    (tmp_path / "out" / CLASS_GRID_FOLDER / "a.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=rf"{CLASS_GRID_FOLDER}/a\.png"):
        generate_folder(semantic_model, labels, tmp_path / "out", device="cpu", progress=False, save_branches=True)
    assert (tmp_path / "out" / CLASS_GRID_FOLDER / "a.png").read_bytes() == b"mine"


# -- evaluate --save-predictions ---------------------------------------------------------------------------------


def _tiny_cityscapes(root: Path, count: int) -> Path:
    """A val split in the Cityscapes layout: random photos, label-id maps with a few classes, 64x32."""
    rng = np.random.default_rng(3)
    for i in range(count):
        images, gt = root / "leftImg8bit" / "val" / "c", root / "gtFine" / "val" / "c"
        images.mkdir(parents=True, exist_ok=True)
        gt.mkdir(parents=True, exist_ok=True)
        label = np.full((32, 64), 7, np.uint8)
        label[:10], label[14:20, 8 * i : 8 * i + 20], label[28:, 50:] = 23, 26, 0  # 0: unlabeled, not scored
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(images / f"x{i}_leftImg8bit.png")
        Image.fromarray(label).save(gt / f"x{i}_gtFine_labelIds.png")
        Image.fromarray(label).save(gt / f"x{i}_gtFine_instanceIds.png")
    return root


@pytest.fixture(scope="module")
def eval_setup(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("eval")
    model = _model_file(tmp, "synth", SEMANTIC)
    torch.manual_seed(1)
    seg = tmp / "seg.safetensors"
    save_segmenter(CompactSegmenter(19, width=4), seg, label_protocol="cityscapes")  # untrained is enough here
    return model, _tiny_cityscapes(tmp / "city", 3), seg


def _evaluate(model: Path, city: Path, seg: Path, work: Path, *extra: str) -> int:
    return main(["evaluate", "--checkpoint", str(model), "--data", str(city), "--metrics", "miou", "--segmenter",
                 str(seg), "--work-dir", str(work), "--out", str(work.parent / "r.json"), "--device", "cpu",
                 "--amp", "off", "--no-progress", "--batch-size", "2", "--overwrite", *extra])


def test_prediction_strip_shows_label_image_and_the_segmenters_prediction(eval_setup, tmp_path: Path) -> None:
    model, city, seg_file = eval_setup
    work = tmp_path / "work"
    assert _evaluate(model, city, seg_file, work, "--save-predictions") == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["predictions"] == str(work / PREDICTIONS_FOLDER)
    names = sorted(p.name for p in (work / "generated").iterdir())
    assert len(names) == 3 and sorted(p.name for p in (work / PREDICTIONS_FOLDER).iterdir()) == names

    segmenter = load_segmenter(seg_file)
    palette = make_task(load_generator(model, device="cpu").cfg).palette
    colours = train_id_colours(palette, segmenter)
    predicted_ids: set[int] = set()
    for name in names:
        label_panel, image_panel, prediction_panel = strip_panels(
            np.array(Image.open(work / PREDICTIONS_FOLDER / name).convert("RGB")), 3)
        generated = load_image_uint8(work / "generated" / name)
        assert np.array_equal(label_panel, palette[load_label_map(work / "labels" / name).numpy()])
        assert np.array_equal(image_panel, generated.permute(1, 2, 0).numpy())
        predicted = segmenter.predict(uint8_to_unit(generated)[None])[0]
        assert np.array_equal(prediction_panel, colours[predicted.numpy()])
        predicted_ids |= set(predicted.unique().tolist())
    assert len(predicted_ids) > 1  # several classes were predicted, so the colour of each was checked
    manifest = json.loads((work / WORK_MANIFEST).read_text())["files"]
    assert {f"{PREDICTIONS_FOLDER}/{n}" for n in names} <= set(manifest)

    # A re-run without the option removes the earlier strips (they are in the manifest) ...
    assert _evaluate(model, city, seg_file, work) == 0
    assert list((work / PREDICTIONS_FOLDER).iterdir()) == []
    manifest = json.loads((work / WORK_MANIFEST).read_text())["files"]
    assert manifest and not any(f.startswith(f"{PREDICTIONS_FOLDER}/") for f in manifest)
    # ... but never a file it did not write there.
    (work / PREDICTIONS_FOLDER / "mine.png").write_bytes(b"a person's file")
    assert _evaluate(model, city, seg_file, work, "--save-predictions") == 2
    assert (work / PREDICTIONS_FOLDER / "mine.png").read_bytes() == b"a person's file"


def test_train_ids_take_the_colour_of_their_label_class(eval_setup) -> None:
    from cityscapesscripts.helpers.labels import trainId2label

    _, _, seg_file = eval_setup
    palette = make_task(apply_overrides(get_preset("synth"), SEMANTIC)).palette
    colours = train_id_colours(palette, load_segmenter(seg_file))
    # Cityscapes: the standard train-id palette (road purple, sky blue, car dark blue, ...).
    assert [tuple(c) for c in colours] == [trainId2label[t].color for t in range(19)]


def test_save_predictions_needs_a_checkpoint_and_miou(eval_setup, tmp_path: Path, capsys) -> None:
    model, city, seg_file = eval_setup
    gen = tmp_path / "gen"
    gen.mkdir()
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(gen / "a.png")
    code = main(["evaluate", "--generated", str(gen), "--real", str(gen), "--metrics", "ssim", "--save-predictions",
                 "--out", str(tmp_path / "r.json"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--save-predictions" in err[0] and "--checkpoint" in err[0]
    # Without miou there is no prediction to show: the run scores what it was asked and says why no strips came.
    work = tmp_path / "work"
    assert main(["evaluate", "--checkpoint", str(model), "--data", str(city), "--metrics", "ssim", "--work-dir",
                 str(work), "--out", str(tmp_path / "r.json"), "--device", "cpu", "--no-progress",
                 "--save-predictions"]) == 0
    assert any("--save-predictions" in note for note in json.loads((tmp_path / "r.json").read_text())["notes"])
    assert not (work / PREDICTIONS_FOLDER).exists()


def test_the_options_are_documented_in_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "generate" in a.choices).choices
    # Whitespace folded: where argparse wraps the text depends on the terminal width.
    generate_help, evaluate_help = (" ".join(sub[name].format_help().split()) for name in ("generate", "evaluate"))
    assert "--save-branches" in generate_help and "per-class" in generate_help and "class name" in generate_help
    assert "--save-predictions" in evaluate_help and "predictions/" in evaluate_help
