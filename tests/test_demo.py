"""`lggan demo`'s page logic, called directly (no Gradio, no browser): palette, painting, uploads, generation."""

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lggan.cli import main
from lggan.config import get_preset
from lggan.demo import (DEFAULT_RUN, canvas_to_ids, demo_model, distinct_palette, ids_to_canvas, label_from_upload,
                        load_demo_model, painter_message, painter_note, parse_painter_message, present_classes,
                        resize_ids, starting_map, synthesize, write_downloads)
from lggan.generate import Synthesizer
from lggan.tasks import make_task
from tiny import SEMANTIC as TINY
from tiny import model_file as _model_file

ROAD, SIDEWALK, BUILDING, SKY, PERSON, CAR, LICENSE_PLATE = 7, 8, 11, 23, 24, 26, 34


@pytest.fixture(scope="module")
def model_file(semantic_model: Path) -> Path:
    return semantic_model


@pytest.fixture(scope="module")
def model(model_file: Path):
    return load_demo_model(model_file, device="cpu")


def _paint(canvas: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    painted = canvas.copy()
    painted[mask] = colour
    return painted


def test_the_palette_round_trips_for_every_class_and_keeps_the_dataset_colours(model) -> None:
    original = make_task(model.synth.cfg).palette
    pal = model.palette
    assert pal.shape == (35, 3) and pal.dtype == np.uint8
    assert len({tuple(c) for c in pal.tolist()}) == 35  # one colour per class, so painting reads back exactly
    first = {}
    for k, c in enumerate(original.tolist()):
        first.setdefault(tuple(c), k)
    # The first class of each dataset colour keeps it exactly; repeated ones move by at most a few levels.
    for k, c in enumerate(original.tolist()):
        if first[tuple(c)] == k:
            assert pal[k].tolist() == c
        else:
            assert 0 < np.abs(pal[k].astype(int) - original[k].astype(int)).max() <= 3
    ids = np.arange(35 * 4).reshape(10, 14) % 35
    assert np.array_equal(canvas_to_ids(ids_to_canvas(ids, pal), pal), ids)
    # A colour map in the dataset's own palette reads as the first class of each colour.
    assert np.array_equal(canvas_to_ids(original[ids], pal), np.vectorize(lambda k: first[tuple(original[k])])(ids))
    assert canvas_to_ids(original[[[LICENSE_PLATE]]], pal)[0, 0] == CAR
    # Through the painter's message (a PNG data URL) too.
    back, brush = parse_painter_message(painter_message(ids, pal, brush_class=PERSON), pal)
    assert np.array_equal(back, ids) and brush == PERSON


def test_distinct_palette_only_moves_repeated_colours() -> None:
    pal = np.array([[0, 0, 0], [0, 0, 0], [255, 255, 255], [255, 255, 255], [0, 0, 0], [9, 9, 9]], np.uint8)
    out = distinct_palette(pal)
    assert len({tuple(c) for c in out.tolist()}) == 6
    assert out[0].tolist() == [0, 0, 0] and out[2].tolist() == [255, 255, 255] and out[5].tolist() == [9, 9, 9]
    assert np.abs(out.astype(int) - pal.astype(int)).max() <= 3


def test_painting_a_region_changes_the_id_map_exactly_there(model) -> None:
    start = starting_map(model.names, model.size)
    assert start.shape == (32, 64) and set(np.unique(start)) == {SKY, BUILDING, SIDEWALK, ROAD}
    canvas = ids_to_canvas(start, model.palette)
    mask = np.zeros(start.shape, bool)
    mask[16:24, 10:30] = True  # over building, sidewalk and road
    mask[0:4, 50:60] = True  # and over the sky
    after = canvas_to_ids(_paint(canvas, mask, model.palette[CAR]), model.palette)
    assert np.array_equal(after != start, mask)
    assert (after[mask] == CAR).all() and np.array_equal(after[~mask], start[~mask])
    # Painting a class over itself changes nothing.
    road = start == ROAD
    assert np.array_equal(canvas_to_ids(_paint(canvas, road, model.palette[ROAD]), model.palette), start)


def test_the_generated_image_changes_inside_the_painted_region(model) -> None:
    start = starting_map(model.names, model.size)
    before = synthesize(model, start)
    mask = np.zeros(start.shape, bool)
    mask[18:28, 16:40] = True
    painted = canvas_to_ids(_paint(ids_to_canvas(start, model.palette), mask, model.palette[CAR]), model.palette)
    after = synthesize(model, painted)
    for res in (before, after):
        for img in (res.image, res.image_global, res.image_local, res.weight_global, res.weight_local):
            assert img.shape == (32, 64, 3) and img.dtype == np.uint8
        assert res.seconds > 0
    diff = np.abs(after.image.astype(int) - before.image.astype(int)).mean(-1)
    assert diff[mask].mean() > 2.0, diff[mask].mean()
    # The same map gives the same image (eval mode, no noise), so the change is the stroke's.
    assert np.array_equal(synthesize(model, painted).image, after.image)
    # The class-specific image I^l_i of each class present, for the class picker.
    assert set(after.class_images) == set(np.unique(painted).tolist()) and CAR not in before.class_images
    assert after.class_images[CAR].shape == (32, 64, 3) and after.class_captions[CAR] == "car"
    counts = np.bincount(painted.ravel(), minlength=35)
    assert present_classes(painted, model.names) == [(f"{model.names[k]} ({k})", k)
                                                     for k in np.argsort(-counts, kind="stable") if counts[k]]


def test_a_model_without_the_local_generator_shows_only_its_image(tmp_path: Path) -> None:
    m = load_demo_model(_model_file(tmp_path, "synth", TINY + ["model.use_local=false"]), device="cpu")
    res = synthesize(m, starting_map(m.names, m.size))
    assert np.array_equal(res.image, res.image_global)
    assert res.image_local is None and res.weight_global is None and res.weight_local is None
    assert res.class_images == {}


def _save(path: Path, array: np.ndarray, **kw) -> Path:
    Image.fromarray(array).save(path, **kw)
    return path


def test_uploads_of_class_ids_and_colour_maps(model, tmp_path: Path) -> None:
    ids = np.full((32, 64), ROAD, np.uint8)
    ids[:10] = SKY
    ids[20:26, 8:30] = CAR
    got, note = label_from_upload(_save(tmp_path / "ids.png", ids), model)
    assert np.array_equal(got, ids) and "class ids" in note
    p_mode = Image.fromarray(ids).convert("P")
    p_mode.save(tmp_path / "p.png")
    assert np.array_equal(label_from_upload(tmp_path / "p.png", model)[0], ids)
    small = (np.arange(64)[None, :] // 13).repeat(32, 0).astype(np.uint8)  # ids 0..4, gray levels near black
    Image.fromarray(small).convert("P").save(tmp_path / "small.png")
    assert np.array_equal(label_from_upload(tmp_path / "small.png", model)[0], small)
    gray_rgb = np.repeat(ids[..., None], 3, axis=2)
    assert np.array_equal(label_from_upload(_save(tmp_path / "gray.png", gray_rgb), model)[0], ids)
    # A colour map in the dataset's palette, at twice the size and saved as a JPEG: resized, noise tolerated.
    colours = make_task(model.synth.cfg).palette[np.kron(ids, np.ones((2, 2), np.uint8))]
    got, note = label_from_upload(_save(tmp_path / "colours.png", colours), model)
    assert np.array_equal(got, ids) and "palette" in note and "resized to 64x32" in note
    # A colour map stored as a palette PNG whose indices are no class ids: read by its colours.
    Image.fromarray(colours).quantize(colors=8).save(tmp_path / "indexed.png")
    got, note = label_from_upload(tmp_path / "indexed.png", model)
    assert np.array_equal(got, ids) and "palette" in note
    got, _ = label_from_upload(_save(tmp_path / "colours.jpg", colours, quality=90), model)
    assert (got == ids).mean() > 0.93  # JPEG blurs the colours at class edges
    # Uploaded maps are drawn on the canvas through the painter, with a note for the status line.
    msg = painter_message(got, model.palette, note="read colours.jpg")
    assert painter_note(msg) == "read colours.jpg" and painter_note("data:image/png;base64,") == ""


@pytest.mark.parametrize("case, expected", [
    ("text", "not a readable image"),
    ("empty", "the file is empty"),
    ("ids_out_of_range", "class ids [40, 200] outside 0..33"),
    ("photo", "far from every class colour"),
    ("truncated", "not a readable image"),
    ("missing", "no such file"),
])
def test_bad_uploads_give_one_line_naming_the_file_and_the_problem(model, tmp_path: Path, case: str,
                                                                   expected: str) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / f"{case}.png"
    if case == "text":
        path.write_text("not an image\n")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "ids_out_of_range":
        ids = np.full((32, 64), ROAD, np.uint8)
        ids[0, :3] = [40, 200, 40]
        _save(path, ids)
    elif case == "photo":
        _save(path, rng.integers(0, 256, (32, 64, 3), dtype=np.uint8))
    elif case == "truncated":
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)).save(buf, format="PNG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises((ValueError, OSError)) as e:
        label_from_upload(path, model)
    message = str(e.value)
    assert message.startswith(f"upload {path.name}: ") and expected in message and "\n" not in message


def test_a_painter_value_that_is_not_an_image_is_a_one_line_error(model) -> None:
    for value in ("", "hello", '{"image": "data:image/png;base64,AAAA"}', '{"nope": 1}'):
        with pytest.raises(ValueError, match=r"^canvas: ") as e:
            parse_painter_message(value, model.palette)
        assert "\n" not in str(e.value)


def test_downloads_hold_the_result_and_every_panel(model, tmp_path: Path) -> None:
    ids = starting_map(model.names, model.size)
    res = synthesize(model, ids)
    png, archive = write_downloads(res, ids, model, tmp_path / "out")
    assert np.array_equal(np.asarray(Image.open(png)), res.image)
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        assert {"result.png", "global.png", "local.png", "weight_global.png", "weight_local.png", "panels.png",
                "classes.png", "label_ids.png", "label_colors.png", "classes.json"} <= names
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(zf.read("label_ids.png")))), ids)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(zf.read("result.png")))), res.image)


def test_resize_ids_keeps_the_classes() -> None:
    ids = np.arange(8).reshape(2, 4)
    assert np.array_equal(resize_ids(ids, (8, 4)), np.kron(ids, np.ones((2, 2), int)))
    assert np.array_equal(resize_ids(np.kron(ids, np.ones((2, 2), int)), (4, 2)), ids)


def test_the_canvas_size_can_be_changed_to_a_valid_one_only(model_file: Path) -> None:
    from lggan.generate import load_generator

    synth = load_generator(model_file, device="cpu")
    assert demo_model(synth, str(model_file), size=(96, 64)).size == (96, 64)
    with pytest.raises(ValueError, match=r"^--size 100x64: .*multiples of 32"):
        demo_model(synth, str(model_file), size=(100, 64))


def test_a_cross_view_model_is_refused_with_one_line(tmp_path: Path) -> None:
    path = _model_file(tmp_path, "synth-views", ["data.load_size=36x36", "data.crop_size=32x32", "model.ngf=4",
                                                 "model.num_res_blocks=1"])
    with pytest.raises(ValueError, match=r"^--checkpoint .*synth-views\.safetensors: the demo paints label maps.*"
                                         r"aerial") as e:
        load_demo_model(path, device="cpu")
    assert "\n" not in str(e.value)


def test_the_command_without_a_run_says_to_train_first(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert not DEFAULT_RUN.exists()
    assert main(["demo"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("lggan demo: error: --checkpoint") and "`lggan train`" in err[0]
    assert main(["demo", "--checkpoint", "nowhere"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("lggan demo: error: --checkpoint nowhere: no such")


def test_the_command_without_gradio_says_how_to_install_it(model_file: Path, monkeypatch, capsys) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["demo", "--checkpoint", str(model_file)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "needs Gradio" in err[0] and 'pip install -e ".[demo]"' in err[0]


def test_the_command_has_help_with_safe_defaults(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["demo", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: lggan demo" in out and "127.0.0.1" in out and "--share" in out and "runs/synth" in out


def test_every_way_into_the_demo_has_one_pixel_limit_and_big_canvases_are_resized_first(model) -> None:
    import base64

    from lggan.demo import MAX_UPLOAD_PIXELS, decode_data_url

    def data_url(img: Image.Image) -> str:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    side = int(MAX_UPLOAD_PIXELS**0.5) + 1  # just over the limit; a 1-bit image keeps the test light
    huge = data_url(Image.new("1", (side, side)))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=rf"^canvas: {side}x{side} is too large \(at most 64,000,000 pixels\)$"):
        decode_data_url(huge)
    assert time.perf_counter() - t0 < 5  # refused from the header, before the pixels are decoded
    with pytest.raises(ValueError, match="is too large"):
        parse_painter_message(huge, model.palette, model.size)
    # A canvas larger than the model's size is resized (nearest) before its colours are read: same classes.
    w, h = model.size
    ids = (np.arange(h * w).reshape(h, w) // (h * w // 4)) % model.num_classes
    big = Image.fromarray(ids_to_canvas(ids, model.palette)).resize((w * 3, h * 3), Image.NEAREST)
    back, _ = parse_painter_message(data_url(big), model.palette, model.size)
    assert back.shape == (h, w) and np.array_equal(back, ids)


def test_examples_come_from_the_held_out_split_where_the_data_is_here(tmp_path: Path) -> None:
    from lggan.config import apply_overrides
    from lggan.data import generate_synth_city
    from lggan.demo import BUILT_IN_EXAMPLE, example_maps

    generate_synth_city(tmp_path / "city", num_train=2, num_val=3, size=(64, 32), seed=2, progress=False)
    cfg = apply_overrides(get_preset("synth"), TINY)
    cfg.data.root = str(tmp_path / "city")
    torch.manual_seed(0)
    m = demo_model(Synthesizer(make_task(cfg).build_generator(), cfg, torch.device("cpu"), amp="off"), "tiny")
    examples = example_maps(m, limit=2)
    assert list(examples)[0] == BUILT_IN_EXAMPLE and len(examples) == 3
    labels = sorted((tmp_path / "city" / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))[:2]
    for f in labels:  # each example is the label file as an upload reads it
        assert np.array_equal(examples[f.stem], label_from_upload(f, m)[0])
    cfg.data.root = str(tmp_path / "nowhere")  # data not on this machine: the built-in scene only
    m.synth.cfg = cfg
    assert list(example_maps(m)) == [BUILT_IN_EXAMPLE]


def test_the_page_opens_with_its_first_image_made(model, tmp_path: Path) -> None:
    """The outputs hold the starting map's image when the page is built: no model round trip after it loads."""
    pytest.importorskip("gradio")
    from lggan.demo import build_app, demo_asset

    app = build_app(model, workdir=tmp_path / "downloads")
    blocks = {getattr(b, "elem_id", None): b for b in app.blocks.values()}
    for elem in ("lggan-result", "lggan-global", "lggan-local", "lggan-weight-global", "lggan-weight-local"):
        assert blocks[elem].value and Path(blocks[elem].value["path"]).is_file(), elem
    first = np.asarray(Image.open(blocks["lggan-result"].value["path"]).convert("RGB"))
    expected = synthesize(model, starting_map(model.names, model.size)).image
    assert np.abs(first.astype(int) - expected.astype(int)).max() <= 1
    assert "generated in" in blocks["lggan-status"].value
    triggers = {event for dep in app.config["dependencies"] for _, event in dep["targets"]}
    assert "load" not in triggers and "change" in triggers
    # The page's API names are its handlers' names.
    assert [dep["api_name"] for dep in app.config["dependencies"]] == ["generate", "start_from", "show_class", "upload"]
    # The painter is the package's files, as shipped.
    painter = blocks["lggan-painter"]
    assert (painter.html_template, painter.css_template, painter.js_on_load) == \
        (demo_asset("painter.html"), demo_asset("painter.css"), demo_asset("painter.js"))


def test_the_page_files_are_package_data_a_wheel_ships() -> None:
    """painter.html/.css/.js and page.css are files of the package (importlib.resources), matched by pyproject's
    package-data globs (so a non-editable install has them), and demo.py holds none of them as strings."""
    import ast
    import fnmatch

    from lggan.demo import demo_asset

    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    package = root / "src" / "lggan"
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["lggan"]
    files = [f.relative_to(package).as_posix() for f in (package / "assets").rglob("*") if f.is_file()]
    assert {"assets/demo/painter.html", "assets/demo/painter.css", "assets/demo/painter.js",
            "assets/demo/page.css"} <= set(files)
    for f in files:
        assert any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs), f"{f}: not package data"
    html, css, js, page = (demo_asset(n) for n in ("painter.html", "painter.css", "painter.js", "page.css"))
    assert '<canvas class="lg-canvas"' in html and ".lg-canvas {" in css and "'.lg-canvas'" in js
    assert ".lggan-out img" in page
    strings = [n.value for n in ast.walk(ast.parse((package / "demo.py").read_text()))
               if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [v for v in strings if any(k in v for k in ("<div", "<canvas", "function ", "px;"))]
