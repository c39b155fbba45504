"""`lggan demo` in a real browser: headless Chromium (Debian's, driven by Playwright) paints a stroke on the page.

Skipped, with the reason, when Gradio, Playwright or Chromium is missing (`pip install -e ".[demo]" playwright`,
`apt-get install chromium`). LGGAN_DEMO_CHECKPOINT=RUN serves that model instead of a tiny random one;
LGGAN_SAVE_SCREENSHOT=1 writes the screenshot to docs/demo_screenshot.png (else into the test's temp folder).
"""

import importlib
import io
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = os.environ.get("LGGAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.load_size=64x32", "model.ngf=4", "model.spade_hidden=8", "model.num_res_blocks=1"]
TIMEOUT_MS = 30_000
# Gradio's queue calls pandas APIs that pandas 3 deprecates; not this project's concern.
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")



def _require(module: str, missing: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:  # not installed, or installed but broken
        pytest.skip(f"{missing} ({type(e).__name__}: {e})", allow_module_level=True)


_require("gradio", 'Gradio, the demo extra, is not installed: pip install -e ".[demo]"')
playwright_api = _require("playwright.sync_api", "Playwright is not installed: pip install playwright")
if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set LGGAN_CHROMIUM)", allow_module_level=True)

from lggan.demo import build_app, canvas_to_ids, load_demo_model, serve  # noqa: E402

# The canvas's pixels (exact palette colours) as [width, height, RGBA...].
CANVAS_PIXELS = """() => {
  const c = document.querySelector('#lggan-painter canvas');
  return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];
}"""


def _tiny_model_file(folder: Path) -> Path:
    from tiny import model_file

    return model_file(folder, "synth", TINY, name="tiny")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _canvas(page) -> np.ndarray:
    w, h, data = page.evaluate(CANVAS_PIXELS)
    return np.array(data, np.uint8).reshape(h, w, 4)[..., :3]


def _result(page) -> tuple[str, np.ndarray]:
    src = page.get_attribute("#lggan-result img", "src")
    body = page.request.get(src).body()
    return src, np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def test_painting_a_stroke_updates_the_result_inside_the_stroke(tmp_path: Path) -> None:
    checkpoint = os.environ.get("LGGAN_DEMO_CHECKPOINT") or _tiny_model_file(tmp_path)
    model = load_demo_model(checkpoint, device="cpu")
    w, h = model.size
    car = model.names.index("car")
    app = build_app(model, workdir=tmp_path / "downloads")
    port = _free_port()
    errors: list[str] = []
    try:
        url = serve(app, port=port, block=False, quiet=True)
        assert url.startswith("http://127.0.0.1:")
        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"http://127.0.0.1:{port}/", timeout=TIMEOUT_MS)
                # The page opens with a starting map and its generated image.
                page.wait_for_selector("#lggan-result img", timeout=TIMEOUT_MS)
                page.wait_for_selector("#lggan-painter [data-lg-ready]", state="attached", timeout=TIMEOUT_MS)
                src0, before = _result(page)
                canvas0 = _canvas(page)
                assert before.shape == (h, w, 3) and canvas0.shape == (h, w, 3)
                ids0 = canvas_to_ids(canvas0, model.palette)
                assert car not in ids0
                # The package's CSS files are served: the painter's (painter.css) and the page's (page.css).
                style = "([sel, prop]) => getComputedStyle(document.querySelector(sel)).getPropertyValue(prop)"
                assert page.evaluate(style, ["#lggan-painter canvas", "cursor"]) == "crosshair"
                assert page.evaluate(style, ["#lggan-result img", "image-rendering"]) == "pixelated"

                # Pick "car" in the class list, a brush of a quarter of the height, and paint across the middle.
                page.click(f"#lggan-painter .lg-class[data-class='{car}']")
                page.click("#lggan-painter .lg-tool[data-tool='brush']")
                page.eval_on_selector("#lggan-painter .lg-size", "(e, v) => { e.value = v; "
                                      "e.dispatchEvent(new Event('input', {bubbles: true})); }", str(max(2, h // 4)))
                assert page.inner_text("#lggan-painter .lg-current-name") == "car"
                box = page.locator("#lggan-painter canvas").bounding_box()
                page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.55)
                page.mouse.down()
                page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.6, steps=12)
                page.mouse.up()

                # The result is replaced by one generated from the painted map.
                page.wait_for_function("src => document.querySelector('#lggan-result img').src !== src", arg=src0,
                                       timeout=TIMEOUT_MS)
                src1, after = _result(page)
                ids1 = canvas_to_ids(_canvas(page), model.palette)
                stroke = ids1 != ids0
                assert stroke.sum() >= w * h // 40 and (ids1[stroke] == car).all()
                # Outside the brush's reach of the mouse path (0.2, 0.55) -> (0.7, 0.6) the map is unchanged.
                yy, xx = np.mgrid[0:h, 0:w].astype(float) + 0.5
                (x0, y0), (x1, y1) = (0.2 * w, 0.55 * h), (0.7 * w, 0.6 * h)
                t = np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2), 0, 1)
                distance = np.hypot(xx - (x0 + t * (x1 - x0)), yy - (y0 + t * (y1 - y0)))
                far = distance > max(2, h // 4) / 2 + 2
                assert far.any() and np.array_equal(ids1[far], ids0[far]), "the map changed outside the stroke"
                diff = np.abs(after.astype(int) - before.astype(int)).mean(-1)
                assert diff[stroke].mean() > 2.0, f"mean change {diff[stroke].mean():.2f} inside the stroke"
                assert "generated in" in page.inner_text("#lggan-status")
                # The class picker follows the stroke and shows car's class-specific image.
                assert page.input_value("#lggan-class-pick input").startswith("car")
                page.wait_for_selector("#lggan-class-image img", timeout=TIMEOUT_MS)
                for panel in ("global", "local", "weight-global", "weight-local"):
                    assert page.get_attribute(f"#lggan-{panel} img", "src")

                # The download button hands over the shown result.
                with page.expect_download(timeout=TIMEOUT_MS) as download:
                    page.click("#lggan-download")
                assert np.array_equal(np.asarray(Image.open(download.value.path()).convert("RGB")), after)

                shot = ROOT / "docs" / "demo_screenshot.png" if os.environ.get("LGGAN_SAVE_SCREENSHOT") == "1" \
                    else tmp_path / "demo_screenshot.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 0
            finally:
                browser.close()
    finally:
        app.close()
        shutil.rmtree(tmp_path / "downloads", ignore_errors=True)
    assert not errors, errors
