"""`lggan demo`: a GauGAN-style painting page (Gradio) on a trained or converted LGGAN generator.

Paint a label map with the dataset's class colours (brush, fill, undo, clear) or upload one (class ids, or a colour
map in the dataset's palette) and see the final image I^C beside the global image I^G, the local image I^L, the
weight maps W_g and W_l and the class-specific image I^l_i of a chosen class.

The page logic is plain functions that tests call directly:

    model = load_demo_model("runs/synth")           # the generator, its palette and class names, the canvas size
    ids = canvas_to_ids(rgb, model.palette)          # painted colours -> class ids (nearest palette colour)
    result = synthesize(model, ids)                  # I^C, I^G, I^L, W_g, W_l, I^l_i as uint8 images
    app = build_app(model); serve(app, port=7860)    # the Gradio page (pip install -e ".[demo]")

Only `build_app` and `serve` need Gradio; this module imports neither Gradio nor PyTorch when it is loaded.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .io import one_line

# What `lggan demo` serves without --checkpoint: the run folder the README's `lggan train` writes.
DEFAULT_RUN = Path("runs") / "synth"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# Uploaded colour maps: a pixel farther than this (Euclidean, RGB 0..255) from every palette colour is "off the
# palette"; more than OFF_PALETTE_FRACTION of such pixels and the upload is refused as not being a colour label map.
# JPEG noise and anti-aliased edges stay well inside both.
OFF_PALETTE_DISTANCE = 60.0
OFF_PALETTE_FRACTION = 0.10
# Uploads and painted canvases larger than this many pixels are refused before they are decoded: one limit for every
# way in.
MAX_UPLOAD_PIXELS = 64_000_000
# A canvas data URL longer than this is refused before it is parsed (a 64 M pixel PNG of a label map is far smaller).
MAX_DATA_URL_CHARS = 64 * 1024 * 1024
# Requests wait in one bounded queue and run one at a time (the model serves one request at once anyway).
MAX_QUEUED_REQUESTS = 16
# How many generations' download files are kept on disk (older ones are deleted).
KEEP_DOWNLOADS = 32
# Label maps of the model's held-out split offered to start from (besides the built-in street scene).
NUM_EXAMPLES = 6
BUILT_IN_EXAMPLE = "street (built-in)"
_MAX_LISTED = 10


# -- palette and label maps --------------------------------------------------------------------------------------


def distinct_palette(palette: np.ndarray) -> np.ndarray:
    """uint8 [C,3]: the palette with every repeated colour moved to the nearest unused colour (first one kept).

    Some datasets give several classes one colour (Cityscapes: the four void classes are black, license plate is
    car's blue); painting needs one colour per class so that a painted map reads back exactly. The first class of a
    colour keeps it, so colour maps saved in the dataset's palette read as that class.
    """
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3).copy()
    used: set[tuple[int, int, int]] = set()
    offsets = sorted(((dr, dg, db) for dr in range(-3, 4) for dg in range(-3, 4) for db in range(-3, 4)),
                     key=lambda d: (d[0] ** 2 + d[1] ** 2 + d[2] ** 2, d))
    for k, colour in enumerate(pal.astype(int)):
        for dr, dg, db in offsets:
            cand = (int(np.clip(colour[0] + dr, 0, 255)), int(np.clip(colour[1] + dg, 0, 255)),
                    int(np.clip(colour[2] + db, 0, 255)))
            if cand not in used:
                break
        else:  # more than 343 classes share one colour: fall back to a scan of the whole cube
            cand = next((r, g, b) for r in range(256) for g in range(256) for b in range(256)
                        if (r, g, b) not in used)
        used.add(cand)
        pal[k] = cand
    return pal


def canvas_to_ids(image: np.ndarray | Image.Image, palette: np.ndarray) -> np.ndarray:
    """A painted canvas (uint8 RGB/RGBA [H,W,3|4] or a PIL image) -> class ids int64 [H,W] by nearest palette colour."""
    from .data.palette import nearest_colour

    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"canvas: expected an RGB image [H,W,3], got an array of shape {tuple(image.shape)}")
    return nearest_colour(image, palette)[0]


def ids_to_canvas(ids: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class ids [H,W] -> uint8 [H,W,3] colours; ids outside the palette are black."""
    from .data.palette import colorize_label

    return colorize_label(np.asarray(ids), palette, outside=(0, 0, 0))


def resize_ids(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class ids [H,W] resized to size=(width, height) by nearest neighbour (no new ids appear)."""
    w, h = size
    ids = np.asarray(ids)
    if ids.shape == (h, w):
        return ids.astype(np.int64)
    ys = np.minimum(((np.arange(h) + 0.5) * ids.shape[0] / h).astype(np.int64), ids.shape[0] - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * ids.shape[1] / w).astype(np.int64), ids.shape[1] - 1)
    return ids[ys[:, None], xs[None, :]].astype(np.int64)


def encode_png_data_url(rgb: np.ndarray) -> str:
    """uint8 image -> "data:image/png;base64,..." (what the painter exchanges with the server)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_DATA_URL = re.compile(r"^data:image/(png|webp|jpeg);base64,(.*)$", re.S)


def decode_data_url(text: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """"data:image/png;base64,..." -> uint8 RGB [H,W,3]; ValueError (one line) when it is not such an image.

    The same pixel limit as uploads (MAX_UPLOAD_PIXELS) is checked on the PNG header, before the pixels are decoded;
    with `size` (width, height) a larger image is resized (nearest) to it before anything else is done with it."""
    if len(text or "") > MAX_DATA_URL_CHARS:
        raise ValueError(f"canvas: {len(text):,} characters is too large (at most {MAX_DATA_URL_CHARS:,})")
    m = _DATA_URL.match(text or "")
    if not m:
        raise ValueError("canvas: not a data:image/png;base64 URL")
    try:
        with Image.open(io.BytesIO(base64.b64decode(m.group(2), validate=True))) as im:
            check_pixel_limit(im, "canvas")
            if size is not None and im.width * im.height > size[0] * size[1]:
                im = im.convert("RGB").resize(size, Image.NEAREST)
            return np.asarray(im.convert("RGB"))
    except _TooLarge:
        raise
    except Exception as e:  # binascii.Error, PIL's errors
        raise ValueError(f"canvas: the painted image cannot be decoded ({one_line(e)})") from None


class _TooLarge(ValueError):
    """An input over the demo's pixel limit (raised as is, not as a decoding error)."""


def check_pixel_limit(im: Image.Image, what: str) -> None:
    """The one pixel limit of every way into the demo (canvas, upload), read from the header before decoding."""
    if im.width * im.height > MAX_UPLOAD_PIXELS:
        raise _TooLarge(f"{what}: {im.width}x{im.height} is too large (at most {MAX_UPLOAD_PIXELS:,} pixels)")


def painter_message(ids: np.ndarray, palette: np.ndarray, brush_class: int | None = None, seq: int = 0,
                    note: str = "") -> str:
    """The painter's value for a label map: JSON {image: PNG data URL of its colours, class, seq, note}."""
    return json.dumps({"image": encode_png_data_url(ids_to_canvas(ids, palette)), "class": brush_class, "seq": seq,
                       "note": note})


def painter_note(value: str) -> str:
    """The note a server-made painter value carries (what an upload was read as); "" for painted maps."""
    try:
        note = json.loads(value).get("note", "")
    except (ValueError, AttributeError, TypeError):
        return ""
    return note if isinstance(note, str) else ""


def parse_painter_message(value: str, palette: np.ndarray, size: tuple[int, int] | None = None
                          ) -> tuple[np.ndarray, int | None]:
    """(class ids [H,W], the class of the last stroke or None) of a painter value (JSON, or a bare data URL); with
    `size` (width, height) a larger canvas is resized to it before its colours are read."""
    value = (value or "").strip()
    brush = None
    if value.startswith("{"):
        try:
            msg = json.loads(value)
            url, brush = msg["image"], msg.get("class")
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"canvas: not a painter message ({one_line(e)})") from None
        brush = int(brush) if isinstance(brush, (int, float)) and 0 <= int(brush) < len(palette) else None
    else:
        url = value
    return canvas_to_ids(decode_data_url(url, size), palette), brush


def _label_name(name: str) -> str:
    return name.split(",")[0].strip().lower()


def starting_map(names: list[str], size: tuple[int, int]) -> np.ndarray:
    """A simple street scene to start from, from the classes the model has (sky, building, sidewalk, road).

    Classes are found by name; a model without any of them starts from one region of class 0.
    """
    w, h = size
    index = {}
    for k, n in enumerate(names):
        index.setdefault(_label_name(n), k)
    bands = [(name, frac) for name, frac in (("sky", 0.35), ("building", 0.25), ("vegetation", 0.0),
                                             ("sidewalk", 0.08), ("road", 1.0)) if name in index and frac > 0]
    ids = np.zeros((h, w), np.int64)
    top = 0
    for i, (name, frac) in enumerate(bands):
        bottom = h if i == len(bands) - 1 else min(h, top + max(1, round(frac * h)))
        ids[top:bottom] = index[name]
        top = bottom
    return ids


def example_maps(model: DemoModel, limit: int = NUM_EXAMPLES) -> dict[str, np.ndarray]:
    """Label maps to start from, name -> class ids [H,W] at the canvas size: the built-in street scene, then the
    first `limit` maps of the model's held-out split where its data is on this machine (the built-in city only when
    it is already generated: the demo never generates data)."""
    from .tasks import make_task

    examples = {BUILT_IN_EXAMPLE: starting_map(model.names, model.size)}
    task = make_task(model.synth.cfg)
    if task.data_root is None:
        from .data import default_synth_city_root, is_synth_city

        if model.synth.cfg.data.dataset != "synth-city" or not is_synth_city(default_synth_city_root()):
            return examples
    try:
        dataset = task.eval_dataset(task.default_split())
        files = [Path(p.label) for p in dataset.pairs[:limit]]
    except (FileNotFoundError, ValueError, OSError):  # no data here: the built-in scene only
        return examples
    for f in files:
        try:
            examples[f.stem] = label_from_upload(f, model)[0]
        except (ValueError, OSError):
            continue
    return examples


def default_brush_class(names: list[str], start: np.ndarray) -> int:
    """The class selected when the page opens: a car (or tree, person) if the model has one, else the first class
    that is not in the starting map."""
    index = {}
    for k, n in enumerate(names):
        index.setdefault(_label_name(n), k)
    for name in ("car", "tree", "vegetation", "person"):
        if name in index:
            return index[name]
    present = set(int(v) for v in np.unique(start))
    return next((k for k in range(len(names)) if k not in present), 0)


# -- reading uploads ---------------------------------------------------------------------------------------------


def _raw_to_channels(raw: np.ndarray, model: DemoModel, what: str) -> np.ndarray:
    """Raw label values of a file -> the model's class channels, as `lggan generate` maps them; ValueError if any is
    invalid."""
    raw = raw.astype(np.int64)
    spec = model.label_spec
    if spec is not None:
        mapped = spec.map_raw(raw)
        valid_desc = spec.valid_desc
    else:
        mapped = np.where((raw >= 0) & (raw < model.num_classes), raw, -1)
        valid_desc = f"0..{model.num_classes - 1}"
    bad = mapped < 0
    if bad.any():
        values = np.unique(raw[bad])
        shown = ", ".join(str(int(v)) for v in values[:_MAX_LISTED]) + (", ..." if len(values) > _MAX_LISTED else "")
        raise ValueError(f"{what}: class ids [{shown}] outside {valid_desc} ({int(bad.sum())} pixels); a class-id map "
                         f"holds one class id per pixel, a colour map the dataset's class colours")
    return mapped


def _colours_to_channels(rgb: np.ndarray, model: DemoModel, what: str, fallback: bool = False) -> np.ndarray:
    """A colour label map -> class ids by nearest palette colour; ValueError when it is mostly off the palette."""
    from .data.palette import nearest_colour

    ids, dist2 = nearest_colour(rgb, model.palette)
    off = float((dist2 > OFF_PALETTE_DISTANCE ** 2).mean())
    if off > OFF_PALETTE_FRACTION:
        kind = "its palette indices are no valid class ids and " if fallback else ""
        raise ValueError(f"{what}: {kind}{off:.0%} of its pixels are far from every class colour of the model's "
                         f"palette; upload a class-id map (single-channel PNG) or a colour map in the palette")
    return ids


def label_from_upload(path: str | os.PathLike, model: DemoModel) -> tuple[np.ndarray, str]:
    """An uploaded label map -> (class ids int64 [H,W] at the model's canvas size, a note on what was read).

    Single-channel images (L, I;16, I) hold class ids, mapped as `lggan generate` maps label files; so do palette
    (P) images, by their indices, unless every colour of theirs is exactly a class colour (a colour map). Colour
    images are read through the palette (nearest class colour); one whose pixels are mostly far from every class
    colour is refused. Gray RGB images whose values are all valid ids are read as ids. Other sizes are resized
    (nearest neighbour). Errors are one line naming the file.
    """
    path = Path(path)
    what = f"upload {path.name}"
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{what}: the file is empty")
    try:
        with Image.open(path) as im:
            check_pixel_limit(im, what)
            arr = np.asarray(im) if im.mode in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L") else \
                np.asarray(im.convert("RGB"))
            # A palette image whose indices are no class ids may still be a colour map: its colours are tried then.
            colours = np.asarray(im.convert("RGB")) if im.mode == "P" else None
    except ValueError as e:
        if str(e).startswith(what):
            raise
        raise ValueError(f"{what}: not a readable image ({one_line(e)})") from None
    except Exception as e:  # PIL: UnidentifiedImageError, truncated data, decompression bombs, ...
        from PIL import UnidentifiedImageError

        why = "not an image format PIL can read" if isinstance(e, UnidentifiedImageError) else one_line(e)
        raise ValueError(f"{what}: not a readable image ({why})") from None
    h, w = arr.shape[:2]
    by_colour = None
    if colours is not None:
        from .data.palette import nearest_colour

        by_colour, dist2 = nearest_colour(colours, model.palette)
        if int(dist2.max()) > 0:
            by_colour = None
    if by_colour is not None:  # a palette image whose every colour is exactly a class colour: a colour map
        ids = by_colour
        how = "colours through the palette"
    elif arr.ndim == 2:
        try:
            ids = _raw_to_channels(arr, model, what)
        except ValueError:
            if colours is None:
                raise
            ids = _colours_to_channels(colours, model, what, fallback=True)
            how = "colours through the palette"
        else:
            how = "class ids"
    elif (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all() and \
            int(arr[..., 0].max()) < model.num_classes:
        ids = _raw_to_channels(arr[..., 0], model, what)
        how = "class ids (gray RGB)"
    else:
        ids = _colours_to_channels(arr, model, what)
        how = "colours through the palette"
    note = f"read {path.name} ({w}x{h}) as {how}"
    if (w, h) != model.size:
        ids = resize_ids(ids, model.size)
        note += f", resized to {model.size[0]}x{model.size[1]}"
    return ids, note


# -- the model ---------------------------------------------------------------------------------------------------


@dataclass
class DemoModel:
    """A generator with what the page needs: class names, a paintable palette and the canvas size (width, height)."""

    synth: Any  # lggan.generate.Synthesizer
    names: list[str]
    palette: np.ndarray  # distinct_palette of the task's palette, uint8 [C,3]
    size: tuple[int, int]
    source: str
    label_spec: Any = None  # the dataset's raw value -> channel mapping (None: ids are the channels)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.names)


def _model_size(cfg: Any) -> tuple[int, int]:
    w, h = cfg.data.crop_size or cfg.data.load_size
    return int(w), int(h)


def demo_model(synth: Any, source: str = "model", size: tuple[int, int] | None = None) -> DemoModel:
    """Wraps a Synthesizer; checks with one generation that it turns a label map alone into an image at `size`
    (default: the size it was trained at)."""
    from .tasks import make_task

    cfg = synth.cfg
    task = make_task(cfg)
    names = [" ".join(re.sub(r"[`${}<>\\]", " ", str(n)).split()) or f"class {k}"
             for k, n in enumerate(task.class_names)]
    try:
        from .data import label_spec_for

        spec = label_spec_for(cfg.data.dataset, cfg.data.num_classes, cfg.data.dontcare)
    except (ValueError, KeyError):
        spec = None
    model = DemoModel(synth, names, distinct_palette(task.palette), _model_size(cfg), str(source), spec)
    try:
        synthesize(model, np.zeros(model.size[::-1], np.int64))
    except ValueError as e:
        raise ValueError(f"--checkpoint {source}: the demo paints label maps, and this model cannot generate from a "
                         f"label map alone ({one_line(e)})") from None
    if size is not None and tuple(size) != model.size:
        model.size = (int(size[0]), int(size[1]))
        try:
            synthesize(model, np.zeros(model.size[::-1], np.int64))
        except ValueError as e:
            raise ValueError(f"--size {size[0]}x{size[1]}: {one_line(e)}") from None
    return model


def load_demo_model(checkpoint: str | os.PathLike, device: str = "auto", amp: str = "auto", use_ema: bool = True,
                    size: tuple[int, int] | None = None) -> DemoModel:
    """`lggan.load_generator` (a run folder, checkpoint folder or converted .safetensors) wrapped for the page."""
    from .generate import load_generator

    synth = load_generator(checkpoint, device=device, use_ema=use_ema, amp=amp)
    return demo_model(synth, str(checkpoint), size)


@dataclass
class DemoResult:
    """One generation as uint8 images [H,W,3]; the branch images are None for a model without the local generator."""

    image: np.ndarray  # I^C
    image_global: np.ndarray  # I^G
    image_local: np.ndarray | None  # I^L
    weight_global: np.ndarray | None  # W_g (gray)
    weight_local: np.ndarray | None  # W_l (gray)
    class_images: dict[int, np.ndarray]  # class id -> I^l of its branch, for the classes present
    class_captions: dict[int, str]  # class id -> caption (a union branch of model.local_groups names its classes)
    seconds: float


def _rgb(t: Any) -> np.ndarray:
    from .viz import tensor_to_uint8

    return tensor_to_uint8(t)


def _gray(t: Any) -> np.ndarray:
    w = t[0].detach().float().clamp(0, 1).cpu().numpy()
    return np.repeat((w * 255.0 + 0.5).astype(np.uint8)[..., None], 3, axis=2)


def synthesize(model: DemoModel, ids: np.ndarray) -> DemoResult:
    """Runs the generator on class ids [H,W] (instance edges, when the model uses them, from the label regions)."""
    import torch

    from .generate import present_class_images, present_groups

    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"label map: expected class ids [H,W], got shape {tuple(ids.shape)}")
    label = torch.from_numpy(ids.astype(np.int64))
    instance = label if model.synth.cfg.data.use_instance else None  # the label regions delimit the instances
    with model.lock:
        start = time.perf_counter()
        out = model.synth(label, instance, native=True)  # at the demo's size
        seconds = time.perf_counter() - start
        class_images: dict[int, np.ndarray] = {}
        captions: dict[int, str] = {}
        if getattr(out, "class_images", None) is not None:
            groups = present_groups(label, model.num_classes, out.class_images.num_classes)
            if groups:
                images = present_class_images(out.class_images, 0, list(groups))
                for img, classes in zip(images, groups.values()):
                    tile = _rgb(img)
                    for c in classes:
                        class_images[c] = tile
                        others = [model.names[o] for o in classes if o != c]
                        captions[c] = model.names[c] + (f" (branch shared with {len(others)} more)" if others else "")
    local = out.image_local is not None
    return DemoResult(
        image=_rgb(out.image[0]),
        image_global=_rgb(out.image_global[0]),
        image_local=_rgb(out.image_local[0]) if local else None,
        weight_global=_gray(out.weight_global[0]) if out.weight_global is not None else None,
        weight_local=_gray(out.weight_local[0]) if out.weight_local is not None else None,
        class_images=class_images,
        class_captions=captions,
        seconds=seconds,
    )


def present_classes(ids: np.ndarray, names: list[str]) -> list[tuple[str, int]]:
    """(label, class id) of each class in the map, largest area first: the choices of the class picker."""
    values, counts = np.unique(np.asarray(ids), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [(f"{names[int(v)]} ({int(v)})", int(v)) for v in values[order] if 0 <= v < len(names)]


def choose_class(ids: np.ndarray, wanted: int | None, previous: int | None) -> int | None:
    """The class whose I^l_i is shown: the one just painted, else the one shown before, else the largest."""
    present = set(int(v) for v in np.unique(ids))
    for c in (wanted, previous):
        if c is not None and c in present:
            return c
    values, counts = np.unique(ids, return_counts=True)
    return int(values[counts.argmax()]) if len(values) else None


def panels(result: DemoResult, ids: np.ndarray, model: DemoModel) -> list[tuple[str, np.ndarray]]:
    """(caption, image) of what the page shows: label map, I^G, I^L, W_g, W_l, I^C (branches only when present)."""
    out = [("label map", ids_to_canvas(ids, model.palette)), ("I^G global", result.image_global)]
    for caption, img in (("I^L local", result.image_local), ("W_g", result.weight_global),
                         ("W_l", result.weight_local)):
        if img is not None:
            out.append((caption, img))
    out.append(("I^C final", result.image))
    return out


def write_downloads(result: DemoResult, ids: np.ndarray, model: DemoModel, folder: str | os.PathLike
                    ) -> tuple[Path, Path]:
    """Writes the result PNG (I^C) and a ZIP with every panel, the class-image grid and the label map (class ids and
    colours) into `folder`; returns (png, zip)."""
    from .viz import captioned_grid, image_strip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / "lggan_result.png"
    Image.fromarray(result.image).save(png, format="PNG")
    files: dict[str, np.ndarray] = {"result.png": result.image, "global.png": result.image_global,
                                    "label_colors.png": ids_to_canvas(ids, model.palette)}
    for name, img in (("local.png", result.image_local), ("weight_global.png", result.weight_global),
                      ("weight_local.png", result.weight_local)):
        if img is not None:
            files[name] = img
    shown = panels(result, ids, model)
    files["panels.png"] = captioned_grid([p for _, p in shown], [c for c, _ in shown]) if len(shown) > 1 else \
        image_strip([p for _, p in shown])
    if result.class_images:
        seen: dict[int, int] = {}
        tiles, captions = [], []
        for c, tile in result.class_images.items():
            if id(tile) in seen:
                continue
            seen[id(tile)] = c
            tiles.append(tile)
            captions.append(result.class_captions[c])
        files["classes.png"] = captioned_grid(tiles, captions)
    archive = folder / "lggan_result.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, img in files.items():
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            zf.writestr(name, buf.getvalue())
        ids_img = ids.astype(np.uint8 if model.num_classes <= 256 else np.uint16)
        buf = io.BytesIO()
        Image.fromarray(ids_img).save(buf, format="PNG")
        zf.writestr("label_ids.png", buf.getvalue())
        zf.writestr("classes.json", json.dumps({"checkpoint": model.source, "classes": model.names,
                                                "palette": model.palette.tolist()}, indent=1))
    return png, archive


# -- the page ----------------------------------------------------------------------------------------------------

# The page's HTML, CSS and JavaScript are package files (lggan/assets/demo), read with importlib.resources:
#   painter.html, painter.css, painter.js: the painter, a gr.HTML component. A canvas of the model's size holds class
#     ids, drawn with exact palette colours (no anti-aliasing, so the colours read back to ids exactly). Each stroke,
#     fill, clear or undo sends the map to the server as props.value (a JSON message with a PNG data URL); a value
#     set by the server (an upload) is loaded onto the canvas.
#   page.css: the whole page's CSS, given to launch (see `serve`).
ASSETS = "assets/demo"


def demo_asset(name: str) -> str:
    """The text of one of the page's files (painter.html, painter.css, painter.js, page.css) as the package ships it."""
    return resources.files("lggan").joinpath(f"{ASSETS}/{name}").read_text(encoding="utf-8")


def _hex(colour: np.ndarray) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in colour)


class _DownloadFolders:
    """A new numbered folder (gen-00000001, ...) under `workdir` for each generation's downloads; only the newest
    KEEP_DOWNLOADS are kept."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self._count = 0
        self._lock = threading.Lock()

    def next(self) -> Path:
        with self._lock:
            self._count += 1
            n = self._count
        for old in sorted(self.workdir.glob("gen-*"))[:-KEEP_DOWNLOADS]:
            shutil.rmtree(old, ignore_errors=True)
        return self.workdir / f"gen-{n:08d}"


class _Handlers:
    """The page's event handlers; their names are the page's API names (generate, start_from, show_class, upload)."""

    def __init__(self, model: DemoModel, folders: _DownloadFolders, examples: dict[str, np.ndarray]):
        self.model = model
        self.folders = folders
        self.examples = examples
        self.device = f"{model.synth.device}" + (" bf16" if model.synth.plan.autocast_dtype is not None else " fp32")

    def render(self, ids: np.ndarray, painted: int | None, shown: int | None, note: str) -> dict[str, Any]:
        """Every output's value for the label map `ids`: what a stroke updates, and what the page opens with."""
        model = self.model
        w, h = model.size
        result = synthesize(model, ids)
        png, archive = write_downloads(result, ids, model, self.folders.next())
        chosen = choose_class(ids, painted, shown)
        choices = present_classes(ids, model.names)
        return {"c": result.image, "g": result.image_global, "l": result.image_local, "wg": result.weight_global,
                "wl": result.weight_local, "choices": choices, "chosen": chosen,
                "ci": result.class_images.get(chosen) if chosen is not None else None,
                "store": {"images": result.class_images, "captions": result.class_captions},
                "status": (f"{note + '; ' if note else ''}{w}x{h} label map with {len(choices)} classes -> generated "
                           f"in {result.seconds * 1000:.0f} ms on {self.device}"),
                "png": str(png), "zip": str(archive)}

    def generate(self, value: str, shown: int | None):
        import gradio as gr

        w, h = self.model.size
        try:
            ids, painted = parse_painter_message(value, self.model.palette, (w, h))
            if ids.shape != (h, w):
                ids = resize_ids(ids, (w, h))
            r = self.render(ids, painted, shown, painter_note(value))
        except (ValueError, OSError, RuntimeError) as e:
            raise gr.Error(one_line(e)) from None
        return (r["c"], r["g"], r["l"], r["wg"], r["wl"], gr.Dropdown(choices=r["choices"], value=r["chosen"]),
                r["ci"], r["store"], r["status"], gr.DownloadButton(value=r["png"]), gr.DownloadButton(value=r["zip"]))

    def start_from(self, name: str | None):
        import gradio as gr

        if name not in self.examples:
            raise gr.Error(f"example {name!r}: not one of the listed label maps")
        return painter_message(self.examples[name], self.model.palette, None, int(time.time() * 1000),
                               f"example {name}")

    @staticmethod
    def show_class(chosen: int | None, store: dict | None):
        if chosen is None or not store:
            return None
        return store["images"].get(int(chosen))

    def upload(self, file: Any):
        import gradio as gr

        path = getattr(file, "name", file)
        try:
            ids, note = label_from_upload(path, self.model)
        except (ValueError, OSError) as e:
            raise gr.Error(one_line(e)) from None
        return painter_message(ids, self.model.palette, None, int(time.time() * 1000), note)


def _intro(gr: Any, model: DemoModel) -> None:
    """The page's heading: the model and how to use the page."""
    w, h = model.size
    gr.Markdown(f"## LGGAN: paint a label map, get a photo\nModel `{model.source}`: {model.num_classes} classes, "
                f"{w}x{h}. Pick a class on the right of the canvas, paint (brush or fill), or upload a label map "
                "(class ids, or a colour map in the palette). Every stroke regenerates the image.")


def _painter(gr: Any, model: DemoModel, start_ids: np.ndarray, brush: int) -> Any:
    """The painter (painter.html/.css/.js) holding the starting map, with the default class and `brush` selected."""
    w, h = model.size
    classes = [{"id": k, "name": n, "hex": _hex(model.palette[k])} for k, n in enumerate(model.names)]
    return gr.HTML(
        painter_message(start_ids, model.palette, None, 0), html_template=demo_asset("painter.html"),
        css_template=demo_asset("painter.css"), js_on_load=demo_asset("painter.js"), elem_id="lggan-painter",
        width=w, height=h, colors=model.palette.tolist(), names=model.names, classes=classes, brush=int(brush),
        max_brush=max(8, min(w, h) // 2), brush_class=default_brush_class(model.names, start_ids),
        apply_default_css=False)


def _canvas_column(gr: Any, model: DemoModel, start_ids: np.ndarray, brush: int, first: dict[str, Any],
                   examples: dict[str, np.ndarray]) -> dict[str, Any]:
    """The left column: the painter, the upload and download buttons, the example picker and the status line."""
    with gr.Column(scale=3):
        parts = {"painter": _painter(gr, model, start_ids, brush)}
        with gr.Row():
            parts["upload"] = gr.UploadButton("Upload a label map", file_types=["image"], file_count="single",
                                              elem_id="lggan-upload", size="sm")
            parts["png"] = gr.DownloadButton("Download I^C (PNG)", value=first["png"], elem_id="lggan-download",
                                             size="sm")
            parts["zip"] = gr.DownloadButton("Download everything (ZIP)", value=first["zip"],
                                             elem_id="lggan-download-zip", size="sm")
        parts["example"] = gr.Dropdown(label="start from a label map", choices=list(examples),
                                       value=BUILT_IN_EXAMPLE, elem_id="lggan-example", interactive=True)
        parts["status"] = gr.Markdown(first["status"], elem_id="lggan-status")
    return parts


def _result_column(gr: Any, first: dict[str, Any]) -> Any:
    """The right column: the final image I^C."""
    with gr.Column(scale=2):
        return gr.Image(first["c"], label="I^C: final image", format="png", interactive=False, elem_id="lggan-result",
                        elem_classes=["lggan-out"], buttons=["download", "fullscreen"], height=320)


def _panel(gr: Any, label: str, elem_id: str, value: Any = None) -> Any:
    """One of the small side-by-side outputs."""
    return gr.Image(value, label=label, format="png", interactive=False, elem_id=elem_id, elem_classes=["lggan-out"],
                    buttons=["download"], height=170)


def _branch_row(gr: Any, first: dict[str, Any]) -> dict[str, Any]:
    """The row under the canvas: I^G, I^L, W_g, W_l and the class picker with its class-specific image I^l_i."""
    with gr.Row():
        parts = {"g": _panel(gr, "I^G: global generator", "lggan-global", first["g"]),
                 "l": _panel(gr, "I^L: local generator", "lggan-local", first["l"]),
                 "wg": _panel(gr, "W_g: global weight map", "lggan-weight-global", first["wg"]),
                 "wl": _panel(gr, "W_l: local weight map", "lggan-weight-local", first["wl"])}
        with gr.Column(min_width=160):
            parts["pick"] = gr.Dropdown(label="class i", choices=first["choices"], value=first["chosen"],
                                        elem_id="lggan-class-pick", interactive=True)
            parts["ci"] = _panel(gr, "I^l_i: class-specific image", "lggan-class-image", first["ci"])
    return parts


def _wire_events(handlers: _Handlers, parts: dict[str, Any]) -> None:
    """Every painter change regenerates every output; the example picker and uploads set the painter; the class
    picker shows the chosen class's image (kept in the store)."""
    p = parts
    outputs = [p[k] for k in ("c", "g", "l", "wg", "wl", "pick", "ci", "store", "status", "png", "zip")]
    p["painter"].change(handlers.generate, [p["painter"], p["pick"]], outputs, trigger_mode="always_last",
                        show_progress="full", show_progress_on=[p["c"]])
    p["example"].input(handlers.start_from, [p["example"]], [p["painter"]], show_progress="hidden")
    p["pick"].input(handlers.show_class, [p["pick"], p["store"]], [p["ci"]], show_progress="hidden")
    p["upload"].upload(handlers.upload, [p["upload"]], [p["painter"]], show_progress="hidden")


def build_app(model: DemoModel, workdir: str | os.PathLike | None = None, brush: int | None = None) -> Any:
    """The Gradio page (a gr.Blocks) for `model`; launch it with `serve`. Needs gradio (pip install -e ".[demo]").

    workdir: where the download files go (default: a new temp folder, `app.lggan_workdir`); brush: the starting
    brush diameter in label-map pixels (default: a tenth of the shorter side).
    """
    import gradio as gr

    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="lggan-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    w, h = model.size
    brush = max(2, round(min(w, h) / 10)) if brush is None else brush
    start_ids = starting_map(model.names, model.size)
    handlers = _Handlers(model, _DownloadFolders(workdir), example_maps(model))
    # The page opens with the starting map's image already made: no model round trip after it loads.
    first = handlers.render(start_ids, None, None, "")
    with gr.Blocks(title="LGGAN demo", analytics_enabled=False) as app:
        _intro(gr, model)
        with gr.Row(equal_height=False):
            parts = _canvas_column(gr, model, start_ids, brush, first, handlers.examples)
            parts["c"] = _result_column(gr, first)
        parts.update(_branch_row(gr, first))
        parts["store"] = gr.State(first["store"])
        _wire_events(handlers, parts)
    app.queue(default_concurrency_limit=1, max_size=MAX_QUEUED_REQUESTS)
    app.lggan_workdir = workdir
    return app


def serve(app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, share: bool = False, block: bool = True,
          quiet: bool = True) -> str:
    """Launches the page and returns its local URL; with block=False the server runs in a thread (app.close() stops
    it). A port that cannot be bound is a one-line OSError naming --port."""
    try:
        app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block, quiet=quiet,
                   css=demo_asset("page.css"), ssr_mode=False, inbrowser=False, footer_links=[], max_file_size="64mb",
                   allowed_paths=[str(getattr(app, "lggan_workdir", tempfile.gettempdir()))])
    except OSError as e:
        raise OSError(f"--port {port}: cannot listen on {host}:{port}, the port is in use or not allowed "
                      f"({one_line(e).split('. ')[0]}); choose another with --port") from None
    return getattr(app, "local_url", None) or f"http://{host}:{port}/"


# -- command line ------------------------------------------------------------------------------------------------


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    from .config import size_arg

    p.add_argument("--checkpoint", default=None,
                   help=f"run folder, checkpoint folder or converted official .safetensors file (default: "
                        f"{DEFAULT_RUN.as_posix()}, what `lggan train` writes)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on (0.0.0.0 makes the page reachable from other machines)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--share", action="store_true", help="also make a public Gradio share link (off by default)")
    p.add_argument("--size", type=size_arg, default=None,
                   help="canvas size WIDTHxHEIGHT (default: the size the model was trained at)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    from .config import InferenceAmpMode, choices

    p.add_argument("--amp", choices=choices(InferenceAmpMode), default="auto",
                   help="auto: bf16 where the device has it natively, else fp32")
    p.add_argument("--no-ema", action="store_true", help="use the raw generator even if an EMA copy exists")
    from .evaluate import add_threads_argument

    add_threads_argument(p)


def resolve_checkpoint(checkpoint: str | None) -> Path:
    """--checkpoint, or the default run folder; a one-line error when neither is there."""
    if checkpoint:
        return Path(checkpoint)
    if DEFAULT_RUN.exists():
        return DEFAULT_RUN
    raise FileNotFoundError(f"--checkpoint: not given and there is no {DEFAULT_RUN.as_posix()} here (the default run "
                            f"folder); train one first with `lggan train`, or pass --checkpoint RUN_FOLDER or a "
                            f"converted .safetensors file")


def demo_cli(args: argparse.Namespace) -> None:
    """`lggan demo`: loads the model, builds the page and serves it until Ctrl-C."""
    import importlib.util

    checkpoint = resolve_checkpoint(args.checkpoint)
    if not checkpoint.exists():
        raise FileNotFoundError(f"--checkpoint {checkpoint}: no such run folder, checkpoint folder or .safetensors "
                                "file")
    if importlib.util.find_spec("gradio") is None:
        raise RuntimeError('the demo needs Gradio, which is not installed: pip install -e ".[demo]"')
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: must be in 1..65535")
    from .evaluate import apply_threads

    apply_threads(getattr(args, "threads", 0))
    model = load_demo_model(checkpoint, device=args.device, amp=args.amp, use_ema=not args.no_ema, size=args.size)
    app = build_app(model)
    w, h = model.size
    try:
        url = serve(app, args.host, args.port, args.share, block=False, quiet=True)
        share = f", shared at {app.share_url}" if getattr(app, "share_url", None) else ""
        print(f"lggan demo: serving {checkpoint} ({model.num_classes} classes, {w}x{h}) at {url}{share}; Ctrl-C "
              f"stops it", flush=True)
        try:
            while getattr(app, "is_running", True):
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("lggan demo: stopped", flush=True)
    finally:
        app.close()
        shutil.rmtree(app.lggan_workdir, ignore_errors=True)
