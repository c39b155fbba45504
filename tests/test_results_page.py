"""`lggan evaluate --html`: the results page's per-image scores and pictures, and the page itself in Chromium."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lggan.cli import main

CHROMIUM = os.environ.get("LGGAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--allow-file-access-from-files"]
STEMS = [f"aachen_00000{i}_000019" for i in range(3)]


@pytest.fixture()
def evaluated(tmp_path: Path):
    """Folder mode on Cityscapes names, generated at 64x32 against 128x64 photos; scored with psnr, ssim and miou."""
    from lggan.metrics.segmenter import CompactSegmenter, save_segmenter

    gen, real, labels = tmp_path / "gen", tmp_path / "real", tmp_path / "gtFine" / "val" / "aachen"
    for d in (gen, real, labels):
        d.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for stem in STEMS:
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(gen / f"{stem}_leftImg8bit.png")
        Image.fromarray(rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)).save(real / f"{stem}_leftImg8bit.png")
        ids = rng.choice([7, 8, 11, 21, 26], size=(64, 128)).astype(np.uint8)
        Image.fromarray(ids).save(labels / f"{stem}_gtFine_labelIds.png")
    torch.manual_seed(0)
    save_segmenter(CompactSegmenter(19, width=4), tmp_path / "seg.safetensors", label_protocol="cityscapes")
    out = tmp_path / "r.json"
    assert main(["evaluate", "--generated", str(gen), "--real", str(real), "--labels", str(tmp_path / "gtFine"),
                 "--metrics", "psnr", "ssim", "miou", "--segmenter", str(tmp_path / "seg.safetensors"), "--out",
                 str(out), "--html", "--no-progress", "--device", "cpu"]) == 0
    return tmp_path, json.loads(out.read_text())


def _rows(page: str) -> list[str]:
    return [line for line in page.splitlines() if line.startswith("<tr data-name=")]


def test_the_page_holds_every_image_with_its_own_scores(evaluated):
    from lggan.metrics.crossview import PIXEL_METRICS
    from lggan.metrics.files import load_image_uint8, resize_uint8, uint8_to_unit
    from lggan.metrics.segmentation import IGNORE_INDEX, map_labels

    tmp, result = evaluated
    page = (tmp / "r.html").read_text()
    assert result["results_page"] == str(tmp / "r.html")
    rows = _rows(page)
    assert len(rows) == 3
    names = [f"{s}_leftImg8bit.png" for s in STEMS]
    psnr = []
    for name, row in zip(names, rows):
        assert f'data-name="{name}"' in row
        for src in (f"gen/{name}", f"real/{name}", f"r_page/labels/{name}", f"r_page/predictions/{name}"):
            assert f'src="{src}"' in row and (tmp / src).is_file()
        got = PIXEL_METRICS["psnr"](uint8_to_unit(load_image_uint8(tmp / "gen" / name))[None],
                                    uint8_to_unit(resize_uint8(load_image_uint8(tmp / "real" / name), (32, 64)))[None])
        psnr.append(got.item())
        assert f'data-value="{got.item()!r}"' in row  # the pair's own PSNR, as the set's score averages it
    assert np.mean(psnr) == pytest.approx(result["metrics"]["images"]["psnr"], rel=1e-9)
    # The label picture is the scored target: train ids at the generated size, in their class colours.
    from lggan.metrics.segmentation import _resize_labels
    from lggan.metrics.files import load_label_map

    target = map_labels(_resize_labels(load_label_map(tmp / "gtFine/val/aachen" / f"{STEMS[0]}_gtFine_labelIds.png"),
                                       (32, 64)), "cityscapes", 19, IGNORE_INDEX)
    picture = np.asarray(Image.open(tmp / "r_page/labels" / names[0]).convert("RGB"))
    road = (target == 0).numpy()  # label id 7 -> train id 0: road's purple
    assert road.any() and (picture[road] == (128, 64, 128)).all()
    # The set's numbers and the protocol are on top.
    assert "miou (generated)" in page and "each generated image&#x27;s size" in page
    # The page's pictures are replaced only with --overwrite; a folder in their place that lggan did not fill stays.
    common = ["evaluate", "--generated", str(tmp / "gen"), "--real", str(tmp / "real"), "--metrics", "psnr",
              "--html", "--no-progress"]
    assert main(common + ["--out", str(tmp / "r.json")]) == 2  # r.json, r.html and r_page exist
    assert main(common + ["--out", str(tmp / "r.json"), "--overwrite"]) == 0
    (tmp / "fresh_page").mkdir()
    (tmp / "fresh_page" / "mine.txt").write_text("x")
    assert main(common + ["--out", str(tmp / "fresh.json")]) == 2
    assert not (tmp / "fresh.json").exists() and not (tmp / "fresh.html").exists()
    assert (tmp / "fresh_page" / "mine.txt").read_text() == "x"


def test_the_page_sorts_by_a_score_in_chromium(evaluated):
    playwright = pytest.importorskip("playwright.sync_api")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    tmp, result = evaluated
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((tmp / "r.html").as_uri())
            assert page.locator("#lggan-images tbody tr").count() == 3
            # Every picture loads (its file is where the page links it).
            widths = page.eval_on_selector_all("#lggan-images img", "imgs => imgs.map(i => i.naturalWidth)")
            assert len(widths) == 12 and all(w > 0 for w in widths)

            def column(score: str) -> list[float]:
                return page.eval_on_selector_all(
                    f"#lggan-images tbody td:nth-child({headers.index(score) + 1})",
                    "tds => tds.map(t => parseFloat(t.dataset.value))")

            headers = page.eval_on_selector_all("#lggan-images thead th", "ths => ths.map(t => t.textContent)")
            page.click("#lggan-images th[data-score='psnr']")
            assert column("psnr") == sorted(column("psnr"), reverse=True)
            page.click("#lggan-images th[data-score='psnr']")
            assert column("psnr") == sorted(column("psnr"))
            page.click("#lggan-images th[data-score='miou']")
            first = page.get_attribute("#lggan-images tbody tr:first-child", "data-name")
            best = max(result_rows(tmp), key=lambda r: r[1])[0]
            assert first == best
            assert "each generated image" in page.inner_text("#lggan-protocol") and not errors
        finally:
            browser.close()


def result_rows(tmp: Path) -> list[tuple[str, float]]:
    """(name, miou) of each row, read from the page's data."""
    import re

    rows = _rows((tmp / "r.html").read_text())
    out = []
    for row in rows:
        name = re.search(r'data-name="([^"]+)"', row).group(1)
        values = re.findall(r'data-value="([^"]*)"', row)
        out.append((name, float(values[2])))  # psnr, ssim, miou
    return out


def test_generate_html_shows_each_label_map_beside_its_image(semantic_model: Path, tmp_path: Path):
    from lggan.data.palette import builtin_label_palette

    labels = tmp_path / "labels"
    labels.mkdir()
    ids = np.zeros((32, 64), np.uint8)
    ids[:, 32:] = 26  # car
    ids[:8] = 23  # sky
    Image.fromarray(ids).save(labels / "a.png")
    Image.fromarray(np.full((32, 64), 7, np.uint8)).save(labels / "b.png")
    out = tmp_path / "out"
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(labels), "--out", str(out),
                 "--html", "--device", "cpu", "--no-progress"]) == 0
    page = (out / "index.html").read_text()
    rows = _rows(page)
    assert [r.split('"')[1] for r in rows] == ["a.png", "b.png"]
    assert 'src="label_maps/a.png"' in rows[0] and 'src="a.png"' in rows[0]
    city = builtin_label_palette("cityscapes")
    picture = np.asarray(Image.open(out / "label_maps" / "a.png").convert("RGB"))
    assert (picture[20, 40] == city.colour_of(26)).all() and (picture[2, 2] == city.colour_of(23)).all()
    assert (picture[20, 2] == city.colour_of(0)).all()
    # The page and its pictures are outputs like the images: kept unless --overwrite.
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(labels), "--out", str(out),
                 "--html", "--device", "cpu", "--no-progress"]) == 2
