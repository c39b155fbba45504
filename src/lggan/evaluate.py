"""`lggan evaluate` and `lggan train-segmenter`: the paper's protocols on a model or on folders of images.

Semantic image synthesis (paper Table 3): FID / KID on TF-Inception pool3 features, and mIoU / pixel accuracy of a
segmenter on the generated photos (also on the real photos, as the reference the protocol should approach).
Cross-view translation (Tables 1-2): SSIM, PSNR, SD (released scripts' definitions), and IS / accuracy / KL with
the AlexNet-Places365 classifier. Every number goes into one JSON file together with the exact protocol settings.
"""

from __future__ import annotations

import argparse
import json
import os
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .io import atomic_write_text, check_outputs

if TYPE_CHECKING:  # annotations only: the parser (add_*_arguments) must not import torch
    import torch

# The folders `evaluate --checkpoint` writes in its work folder; the manifest lists every file it wrote there, so
# a later run deletes exactly those (and nothing a person put there) before writing its own.
WORK_SUBFOLDERS = ("generated", "real", "labels")
# --save-predictions: per image, label map | generated image | segmenter prediction (not scored, but owned and
# cleaned like the folders above).
PREDICTIONS_FOLDER = "predictions"
WORK_FOLDERS = (*WORK_SUBFOLDERS, PREDICTIONS_FOLDER)
WORK_MANIFEST = ".lggan-evaluate.json"
_MAX_LISTED = 5


def _threads(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of threads, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = PyTorch's default), got {n}")
    return n


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """--threads N (generate, evaluate, train-segmenter), as train.threads is for `lggan train`."""
    p.add_argument("--threads", type=_threads, default=0, metavar="N",
                   help="CPU threads for PyTorch's kernels (torch.set_num_threads); 0: PyTorch's default, one per "
                        "core, which can be far slower on a CPU shared with other jobs")


def apply_threads(n: int | None) -> None:
    """torch.set_num_threads(n) for n >= 1; 0 / None keep PyTorch's default."""
    if n:
        import torch

        torch.set_num_threads(int(n))


def _listing(names: list[str]) -> str:
    more = len(names) - _MAX_LISTED
    return ", ".join(names[:_MAX_LISTED]) + (f", ... ({more} more)" if more > 0 else "")


def _index_map_array(label: torch.Tensor) -> np.ndarray:
    """A class map [H,W] as uint8 (uint16 when a value exceeds 255), for a lossless PNG."""
    arr = label.cpu().numpy()
    return arr.astype(np.uint8) if arr.max(initial=0) < 256 else arr.astype(np.uint16)


def _segmentation_protocol(dataset: str, num_channels: int | None, dontcare: int | None
                           ) -> tuple[str, int, int | None]:
    """(label protocol, number of evaluated classes, ignore index) for a dataset's channel-index label maps."""
    from .data import COCO_STUFF_NUM_CLASSES
    from .metrics.segmentation import ADE20K_CLASS_NAMES, CITYSCAPES_CLASS_NAMES, IGNORE_INDEX

    if dataset in ("cityscapes", "synth-city"):
        return "cityscapes", len(CITYSCAPES_CLASS_NAMES), IGNORE_INDEX  # label ids -> the train ids
    if dataset == "ade20k":
        return "ade20k", len(ADE20K_CLASS_NAMES), IGNORE_INDEX  # labels - 1, the 0 class ignored
    if dataset == "coco-stuff":
        channels = num_channels or COCO_STUFF_NUM_CLASSES
        return "identity", channels - 1, channels - 1  # the last channel is don't care
    if num_channels is None:
        raise ValueError(f"--num-classes: needed with --dataset {dataset} and a TorchScript segmenter")
    if dontcare is not None:
        return "identity", num_channels - 1, num_channels - 1
    return "identity", num_channels, None


def load_segmenter_for(args: argparse.Namespace, dataset: str, num_channels: int | None, dontcare: int | None):
    """A built-in segmenter (.safetensors) or a TorchScript file with the normalisation given on the command line."""
    from .metrics import load_segmenter, load_torchscript_segmenter

    path = Path(args.segmenter)
    if not path.is_file():
        raise FileNotFoundError(f"--segmenter {path}: no such file (train one with `lggan train-segmenter`)")
    if path.suffix == ".safetensors":
        return load_segmenter(path, args.device_resolved)
    protocol, classes, ignore = _segmentation_protocol(dataset, num_channels, dontcare)
    return load_torchscript_segmenter(path, num_classes=args.segmenter_classes or classes,
                                      mean=args.segmenter_mean, std=args.segmenter_std,
                                      input_range=tuple(args.segmenter_range),
                                      label_protocol=args.segmenter_protocol or protocol,
                                      ignore_index=ignore if ignore is not None else 255,
                                      device=args.device_resolved)


# -- the work folder of `evaluate --checkpoint` -------------------------------------------------------------------


def _read_manifest(work: Path) -> set[str]:
    manifest = work / WORK_MANIFEST
    if not manifest.is_file():
        return set()
    try:
        files = json.loads(manifest.read_text())["files"]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise TypeError("'files' is not a list of names")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--work-dir {work}: {manifest.name} is damaged ({e}); delete the generated/, real/, "
                         f"labels/ and predictions/ folders and {manifest.name} there, or choose another "
                         "--work-dir") from None
    return set(files)


def _write_manifest(work: Path, files: list[str]) -> None:
    atomic_write_text(work / WORK_MANIFEST, json.dumps({"files": sorted(set(files))}, indent=1) + "\n")


def _is_ours(rel: str, owned: set[str]) -> bool:
    """A file an earlier run wrote, or the temp file of a write it did not finish (.NAME.XXXX.png)."""
    if rel in owned:
        return True
    sub, name = rel.split("/", 1)
    return name.startswith(".") and any(o.startswith(f"{sub}/") and name.startswith(f".{o.split('/', 1)[1]}.")
                                        for o in owned)


def _clear_work_dir(work: Path) -> None:
    """Deletes the images earlier `evaluate --checkpoint` runs wrote into `work`, so only this run's are scored.

    Anything else in generated/, real/ or labels/ would be scored with this run's images, and in predictions/
    mixed with its strips: that is an error (the files are left alone).
    """
    owned = _read_manifest(work)
    ours: list[Path] = []
    foreign: list[str] = []
    for sub in WORK_FOLDERS:
        folder = work / sub
        if not folder.exists():
            continue
        if not folder.is_dir():
            foreign.append(sub)
            continue
        for p in sorted(folder.iterdir()):
            rel = f"{sub}/{p.name}"
            if _is_ours(rel, owned) and not p.is_dir():
                ours.append(p)
            else:
                foreign.append(rel)
    if foreign:
        raise FileExistsError(
            f"--work-dir {work}: {len(foreign)} entries there were not written by `lggan evaluate` "
            f"({_listing(foreign)}); they would be mixed with this run's images: move them or choose another "
            "--work-dir"
        )
    for p in ours:
        p.unlink()
    _write_manifest(work, [])


def _generate_images(synth, task, dataset, work: Path, batch_size: int, limit: int | None, progress: bool
                     ) -> list[str]:
    """Runs the generator over an evaluation dataset, writing generated/, real/ (and labels/) with equal names.

    The manifest is updated before each batch is written, so it covers every file even if the run is killed.
    Returns the file names, in dataset order.
    """
    from .progress import progress_bar
    from .viz import save_png, tensor_to_uint8

    names, batches = task.eval_batches(dataset, batch_size, limit)
    _clear_work_dir(work)
    written: list[str] = []
    for batch in progress_bar(batches, total=math.ceil(len(names) / batch_size), desc="generating", unit="batch",
                              enabled=progress):
        subs = WORK_SUBFOLDERS if batch.label_maps is not None else WORK_SUBFOLDERS[:2]
        written += [f"{sub}/{name}" for name in batch.names for sub in subs]
        _write_manifest(work, written)
        res = synth(batch.label, batch.instance, batch.aerial, native=True)  # the split's evaluation size
        for j, name in enumerate(batch.names):
            save_png(tensor_to_uint8(res.image[j]), work / "generated" / name)
            save_png(tensor_to_uint8(batch.real[j]), work / "real" / name)
            if batch.label_maps is not None:
                save_png(_index_map_array(batch.label_maps[j]), work / "labels" / name)
    return names


def train_id_colours(palette: np.ndarray, segmenter) -> np.ndarray:
    """uint8 [segmenter.num_classes, 3]: the colour of each of the segmenter's train ids.

    A train id takes the palette colour of the first label channel the segmenter's label protocol maps to it, so a
    predicted class is drawn in the colour of the same class in the label map (Cityscapes: the colours of the 19
    evaluated classes, its standard train-id palette). Train ids no channel maps to get distinct fallback colours.
    """
    import torch

    from .data.palette import bit_palette
    from .metrics.segmentation import map_labels

    k = segmenter.num_classes
    colours = bit_palette(k + 1)[1:].copy()
    found = np.zeros(k, dtype=bool)
    channels = torch.arange(len(palette))
    for c in channels.tolist():
        try:
            t = int(map_labels(channels[c : c + 1], segmenter.label_protocol, k, segmenter.ignore_index)[0])
        except ValueError:  # a channel outside the protocol's label range (Cityscapes' license-plate slot)
            continue
        if 0 <= t < k and not found[t]:
            colours[t], found[t] = palette[c], True
    return colours


def prediction_strip(label: torch.Tensor, image: torch.Tensor, prediction: torch.Tensor, palette: np.ndarray,
                     train_colours: np.ndarray) -> np.ndarray:
    """uint8 strip: colour label map | image | colour prediction, for label [H,W], image [3,H,W] in [0,1] and
    prediction [H,W] train ids; label values outside the palette are black, as in the sample grids."""
    import torch

    from .viz import image_strip, palette_to_rgb

    def rgb(t: torch.Tensor) -> np.ndarray:
        return (t.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()

    return image_strip([rgb(palette_to_rgb(label[None].cpu(), palette)[0]), rgb(image.cpu()),
                        rgb(palette_to_rgb(prediction[None].cpu(), train_colours)[0])])


def _save_prediction_strips(work: Path, names: list[str], segmenter, palette: np.ndarray,
                            eval_size: tuple[int, int] | None, batch_size: int, progress: bool) -> None:
    """Writes predictions/NAME for every generated image: label map | generated image | the segmenter's prediction.

    Each strip shows what mIoU scored: the generated PNG as read back and resized to the evaluation size, the label
    map resized with 'nearest-exact' as the scoring does, and the segmenter's train ids on that image.
    """
    import torch
    import torch.nn.functional as F

    from .progress import progress_bar

    from .metrics.files import batch_by_shape, load_image_uint8, load_label_map, resize_image, uint8_to_unit
    from .viz import save_png

    colours = train_id_colours(palette, segmenter)
    _write_manifest(work, sorted(_read_manifest(work) | {f"{PREDICTIONS_FOLDER}/{n}" for n in names}))

    def samples():
        for k, name in enumerate(names):
            image = uint8_to_unit(load_image_uint8(work / "generated" / name))
            size = eval_size or tuple(image.shape[-2:])
            label = load_label_map(work / "labels" / name)
            if tuple(label.shape) != tuple(size):
                label = F.interpolate(label[None, None].double(), size=size, mode="nearest-exact")[0, 0].long()
            yield resize_image(image, size), label, torch.tensor(k)

    strips = progress_bar(batch_by_shape(samples(), batch_size), desc="prediction strips", unit="batch",
                          total=math.ceil(len(names) / batch_size), enabled=progress, leave=False)
    for images, labels, index in strips:
        predicted = segmenter.predict(images).cpu()
        for j, k in enumerate(index.tolist()):
            save_png(prediction_strip(labels[j], images[j], predicted[j], palette, colours),
                     work / PREDICTIONS_FOLDER / names[k])


# -- scoring ---------------------------------------------------------------------------------------------------------


def _load_scorers(args: argparse.Namespace, metrics: list[str], dataset: str, channels: int | None,
                  dontcare: int | None) -> dict[str, Any]:
    """Every network the metrics need, loaded now: a missing or bad weights file fails before any image is made."""
    from .metrics.fid import build_inception_extractor
    from .metrics.folders import CLASSIFIER_METRIC_NAMES, DISTRIBUTION_METRIC_NAMES
    from .metrics.places365 import load_places365_alexnet

    nets: dict[str, Any] = {}
    dev = args.device_resolved
    if any(m in CLASSIFIER_METRIC_NAMES for m in metrics):
        nets["places365_model"] = load_places365_alexnet(args.places365_weights, dev, arg_name="--places365-weights")
    if any(m in DISTRIBUTION_METRIC_NAMES for m in metrics):
        nets["feature_extractor"] = build_inception_extractor(args.inception_weights, dev,
                                                              arg_name="--inception-weights")
    if "miou" in metrics:
        nets["segmenter"] = load_segmenter_for(args, dataset, channels, dontcare)
    return nets


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Generates (with --checkpoint) or reads (with --generated/--real) images and scores them."""
    from .metrics import score_image_folders, segmentation_scores_from_folders
    from .metrics.folders import comparison_protocol
    from .metrics.segmentation import paired_sizes
    from .tasks import make_task, task_class
    from .runtime import resolve_device

    # The output rule first (lggan.io.check_outputs): nothing is loaded or generated for a refused --out.
    page = results_page_paths(args.out) if getattr(args, "html", False) else None
    overwrite = bool(getattr(args, "overwrite", False))
    if page is not None and page[1].exists() and not overwrite:
        raise FileExistsError(f"--html: {page[1]} already exists (the pictures of the results page); pass --overwrite "
                              "to replace them")
    check_outputs("--out", (args.out, *([page[0]] if page else [])), overwrite,
                  inputs={"--segmenter": args.segmenter, "--inception-weights": args.inception_weights,
                          "--places365-weights": args.places365_weights, "--checkpoint": args.checkpoint},
                  data={"--data": args.data, "--generated": args.generated, "--real": args.real,
                        "--labels": args.labels})
    apply_threads(getattr(args, "threads", 0))  # read with getattr, as below
    args.device_resolved = resolve_device(args.device)
    if args.metrics and "miou" in args.metrics and not args.segmenter:
        raise ValueError("metric miou needs --segmenter (a built-in one from `lggan train-segmenter`, or a "
                         "TorchScript file with --segmenter-mean/--segmenter-std)")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: must be >= 1")
    # Read with getattr: evaluate() is also called with Namespaces built elsewhere, without this option.
    save_predictions = bool(getattr(args, "save_predictions", False))
    if save_predictions and not args.checkpoint:
        raise ValueError("--save-predictions: needs --checkpoint (the strips go into its work folder, beside the "
                         "generated images)")
    t0 = time.time()
    result: dict[str, Any] = {"lggan_version": __import__("lggan").__version__}
    if args.checkpoint:
        from .generate import load_generator

        synth = load_generator(args.checkpoint, args.device_resolved, use_ema=not args.no_ema,
                               amp=getattr(args, "amp", "auto"))
        cfg = synth.cfg
        task = make_task(cfg, args.data)
        task_type = type(task)
        dataset, channels, dontcare = cfg.data.dataset, cfg.data.num_classes, cfg.data.dontcare
    else:
        if not (args.generated and args.real):
            raise ValueError("give --checkpoint RUN, or both --generated DIR and --real DIR")
        task_type = task_class(args.task)
        dataset, channels, dontcare = args.dataset, args.num_classes, None

    metrics = list(args.metrics or task_type.default_metrics())
    if "miou" in metrics and not args.segmenter:
        metrics.remove("miou")
        result["notes"] = ["miou skipped: no --segmenter given (train one with `lggan train-segmenter`)"]
    if "miou" in metrics and args.checkpoint and not task_type.has_label_maps():
        raise ValueError(f"metric miou: the {cfg.model.task} task has no label maps to segment against")
    if "miou" in metrics and not args.checkpoint and not args.labels:
        raise ValueError("metric miou with --generated needs --labels DIR (label maps with the same names)")
    if save_predictions and "miou" not in metrics:
        result.setdefault("notes", []).append("--save-predictions: no strips written, miou is not computed (it "
                                              "needs --segmenter and the miou metric)")
    nets = _load_scorers(args, metrics, dataset, channels, dontcare)

    if args.checkpoint:
        split = args.split or task_type.default_split()
        ds = task.eval_dataset(split)
        work = Path(args.work_dir) if args.work_dir else Path(args.out).with_suffix("").parent / (
            Path(args.out).stem + "_images")
        names = _generate_images(synth, task, ds, work, args.batch_size, args.limit, not args.no_progress)
        n = len(names)
        generated, real, labels = work / "generated", work / "real", work / "labels"
        result.update(task=cfg.model.task, checkpoint=str(args.checkpoint), data=str(ds.root), split=split,
                      num_images=n, images=str(work))
        # How the evaluation images were made from the files (cross-view: resize, crop protocol and its seed).
        describe = getattr(ds, "protocol", None)
        if callable(describe):
            result["protocol"] = {"eval_data": describe()}
    else:
        generated, real = Path(args.generated), Path(args.real)
        labels = Path(args.labels) if args.labels else None
        result.update(task=args.task, generated=str(generated), real=str(real))

    # Every metric compares the same pairs: at --eval-size, else at the generated size (real photos resized to it;
    # `generate` writes at the training size while datasets keep their photos at full size).
    eval_size = tuple(args.eval_size[::-1]) if args.eval_size else None  # (H, W)
    result.setdefault("protocol", {})["comparison"] = {
        "size": f"{args.eval_size[0]}x{args.eval_size[1]} (WxH)" if eval_size else "each generated image's size",
        "images": comparison_protocol(eval_size, resize_real=True),
        "label_maps": "nearest-exact to the image size (mIoU)",
        "applies_to": "every metric",
    }
    image_metrics = [m for m in metrics if m != "miou"]
    scores: dict[str, Any] = {}
    per_image: dict[str, dict[str, float | None]] = {}  # generated file name -> its own scores (the results page)
    if image_metrics:
        scores["images"] = score_image_folders(
            generated, real, image_metrics, places365_weights=args.places365_weights,
            places365_model=nets.get("places365_model"), feature_extractor=nets.get("feature_extractor"),
            batch_size=args.batch_size, device=args.device_resolved, progress=not args.no_progress,
            kid_subset_size=args.kid_subset_size, resize_real=True, size=eval_size, per_image=page is not None,
        )
        for name, values in scores["images"].pop("per_image", {}).items():
            per_image.setdefault(name, {}).update(values)
    if "miou" in metrics:
        seg = nets["segmenter"]
        common = dict(eval_size=eval_size, batch_size=args.batch_size, progress=not args.no_progress)
        gen_sfx, real_sfx, label_sfx = _label_pairing_suffixes(generated, real, labels)
        drawn = None
        if page is not None:
            palette = task.palette if args.checkpoint else _dataset_palette(dataset, channels, dontcare)
            drawn = PagePictures(page[1], seg, palette, per_image)
        scores["segmentation"] = segmentation_scores_from_folders(
            generated, labels, seg, generated_suffix=gen_sfx, label_suffix=label_sfx,
            on_batch=drawn.add if drawn is not None else None, **common)
        # The same segmenter on the real photos, each at its generated partner's size: the value a perfect
        # generator would reach under the same protocol.
        sizes = None if eval_size else paired_sizes(generated, labels, gen_sfx, label_sfx)
        scores["segmentation_real"] = segmentation_scores_from_folders(
            real, labels, seg, generated_suffix=real_sfx, label_suffix=label_sfx, label_sizes=sizes, **common)
        if save_predictions:
            _save_prediction_strips(work, names, seg, task.palette, eval_size, args.batch_size,
                                    not args.no_progress)
            result["predictions"] = str(work / PREDICTIONS_FOLDER)
    result["metrics"] = scores
    if page is not None:
        result["results_page"] = str(write_page(page, generated, real, per_image, result))
    result["seconds"] = round(time.time() - t0, 1)
    return result


def results_page_paths(out: str | os.PathLike) -> tuple[Path, Path]:
    """(the page, the folder of its pictures) of `--out FILE.json --html`: FILE.html and FILE_page/."""
    out = Path(out)
    return out.with_suffix(".html"), out.with_name(out.with_suffix("").name + "_page")


def _dataset_palette(dataset: str, channels: int | None, dontcare: int | None) -> np.ndarray:
    """The label colours of a dataset named on the command line (generic colours where it cannot say)."""
    from .data import label_spec_for
    from .data.palette import bit_palette

    try:
        return label_spec_for(dataset, channels, dontcare).palette
    except (ValueError, TypeError):  # a custom dataset without --num-classes
        return bit_palette(256)


class PagePictures:
    """The results page's label and prediction pictures (train ids, in their class colours) and each image's own mIoU
    and pixel accuracy, from the batches the segmentation score sees (`segmentation_scores_from_folders`)."""

    def __init__(self, folder: Path, segmenter, palette: np.ndarray, per_image: dict[str, dict[str, float | None]]):
        self.folder, self.segmenter, self.per_image = folder, segmenter, per_image
        self.colours = train_id_colours(palette, segmenter)  # train id -> colour; the ignored 255 draws black

    def add(self, files: list[Path], images, target, predicted) -> None:
        from .metrics.segmentation import confusion_matrix, segmentation_summary
        from .viz import label_picture, save_png

        k = self.segmenter.num_classes
        for j, f in enumerate(files):
            conf = confusion_matrix(predicted[j], target[j], k)
            summary = segmentation_summary(conf, target[j].numel(), [str(c) for c in range(k)])
            self.per_image.setdefault(f.name, {}).update(miou=summary["miou"],
                                                         pixel_accuracy=summary["pixel_accuracy"])
            save_png(label_picture(target[j], self.colours), self.folder / "labels" / f.name)
            save_png(label_picture(predicted[j], self.colours), self.folder / "predictions" / f.name)


def write_page(page: tuple[Path, Path], generated: Path, real: Path, per_image: dict[str, dict[str, float | None]],
               result: dict[str, Any]) -> Path:
    """The results page of this evaluation: one row per generated image, its pictures and scores."""
    from .metrics.files import list_images
    from .results_page import PageRow, write_results_page

    html_path, pictures = page
    real_by_stem = {p.stem: p for p in list_images(real, "--real")}
    rows, score_names = [], list(dict.fromkeys(s for v in per_image.values() for s in v))
    for g in list_images(generated, "--generated"):
        label, prediction = pictures / "labels" / g.name, pictures / "predictions" / g.name
        rows.append(PageRow(g.name, {"label map (train ids)": label if label.is_file() else None, "generated": g,
                                     "real": real_by_stem.get(g.stem),
                                     "segmenter's prediction": prediction if prediction.is_file() else None},
                            dict(per_image.get(g.name, {}))))
    columns = [c for c in ("label map (train ids)", "generated", "real", "segmenter's prediction")
               if any(r.images.get(c) is not None for r in rows)]
    summary = summary_rows(result)
    source = result.get("checkpoint") or result.get("generated")
    return write_results_page(html_path, f"lggan evaluate: {source}", rows, columns, score_names, summary,
                              result.get("protocol", {}) | {"metrics": {
                                  k: v.get("protocol") for k, v in result["metrics"].items()
                                  if isinstance(v, dict) and "protocol" in v}})


def _label_pairing_suffixes(generated: Path, real: Path, labels: Path) -> tuple[str, str, str]:
    """Name suffixes that pair images with label maps: Cityscapes' own layout (X_leftImg8bit.png, as `lggan
    generate` names its outputs, with X_gtFine_labelIds.png in a gtFine folder) or equal stems (everything else)."""
    from .data.cityscapes import IMAGE_SUFFIX, LABEL_SUFFIX

    def stems(folder: Path, recursive: bool = False) -> list[str]:
        return [p.stem for p in (folder.rglob("*.png") if recursive else folder.glob("*.png"))]

    image_sfx, label_sfx = IMAGE_SUFFIX[: -len(".png")], LABEL_SUFFIX[: -len(".png")]
    if any(st.endswith(label_sfx) for st in stems(labels, recursive=True)) and \
            not any(st.endswith(label_sfx) for st in stems(generated)):
        return (image_sfx if any(st.endswith(image_sfx) for st in stems(generated)) else "",
                image_sfx if any(st.endswith(image_sfx) for st in stems(real)) else "", label_sfx)
    return "", "", ""


def summary_rows(result: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a result, flat, for the Markdown table."""
    rows: dict[str, Any] = {}
    m = result.get("metrics", {})
    for k, v in m.get("images", {}).items():
        if k != "protocol":
            rows[k] = v
    for name in ("segmentation", "segmentation_real"):
        if name in m:
            s = m[name]
            tag = "generated" if name == "segmentation" else "real photos"
            for key in ("miou", "pixel_accuracy", "pixel_accuracy_valid"):
                if key in s:
                    rows[f"{key} ({tag})"] = s[key]
    return rows


def evaluate_cli(args: argparse.Namespace) -> None:
    from .metrics import format_markdown_table, write_json_atomic

    result = evaluate(args)
    write_json_atomic(result, args.out)
    print(format_markdown_table(summary_rows(result)))
    if "segmentation" in result["metrics"]:
        seg = result["metrics"]["segmentation"]
        per_class = seg.get("per_class_iou") or seg.get("iou_per_class") or {}
        if per_class:
            print("\nper-class IoU (generated): " + ", ".join(
                f"{k} {v:.1f}" if isinstance(v, (int, float)) else f"{k} -" for k, v in per_class.items()))
    page = f" and the results page {result['results_page']}" if "results_page" in result else ""
    print(f"\nwrote {args.out}{page}")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    from .config import SEMANTIC_DATASETS, ImageMetricName, InferenceAmpMode, LabelProtocol, TaskName, choices, size_arg
    from .images import IMAGENET_MEAN, IMAGENET_STD
    from .progress import add_progress_argument

    src = p.add_argument_group("what to score")
    src.add_argument("--checkpoint", help="run folder / checkpoint / converted .safetensors: generate, then score")
    src.add_argument("--data", help="dataset root (default: the run's own data; built-in synthetic data)")
    src.add_argument("--split", default=None, help="split to generate from (default: val, cross-view: test)")
    src.add_argument("--limit", type=int, default=None, help="score only the first N images of the split")
    src.add_argument("--work-dir", default=None, help="where generated/real/label images go (default: beside --out)")
    src.add_argument("--generated", help="folder of generated images (instead of --checkpoint)")
    src.add_argument("--real", help="folder of real images with the same file names")
    src.add_argument("--labels", help="with --generated: label maps with the same names (for miou)")
    src.add_argument("--task", choices=choices(TaskName), default="semantic",
                     help="with --generated: which default metrics")
    src.add_argument("--dataset", default="cityscapes", choices=SEMANTIC_DATASETS,
                     help="with --generated and a TorchScript segmenter: the label protocol")
    src.add_argument("--num-classes", type=int, default=None, help="with --generated, custom data: label classes")
    p.add_argument("--metrics", nargs="+", choices=list(choices(ImageMetricName)) + ["miou"], default=None,
                   help="default: fid kid miou (semantic), accuracy inception_score ssim psnr sd kl (cross-view)")
    p.add_argument("--out", default="results.json", help="JSON file with every number and the protocol used")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    w = p.add_argument_group("weights (never downloaded)")
    w.add_argument("--inception-weights", default=None,
                   help="FID/KID: weights-inception-2015-12-05-6726825d.pth (default: the torch hub cache)")
    w.add_argument("--places365-weights", default=None,
                   help="IS/accuracy/KL: alexnet_places365.pth.tar (default: the torch hub cache)")
    w.add_argument("--segmenter", default=None, help="miou: built-in .safetensors or TorchScript file")
    w.add_argument("--segmenter-classes", type=int, default=None, help="TorchScript: output classes")
    w.add_argument("--segmenter-protocol", choices=choices(LabelProtocol), default=None,
                   help="TorchScript: label mapping (default from the dataset)")
    w.add_argument("--segmenter-mean", type=float, nargs=3, default=IMAGENET_MEAN)
    w.add_argument("--segmenter-std", type=float, nargs=3, default=IMAGENET_STD)
    w.add_argument("--segmenter-range", type=float, nargs=2, default=(0.0, 1.0),
                   help="TorchScript: input value range before normalisation")
    o = p.add_argument_group("options")
    o.add_argument("--eval-size", type=size_arg, default=None,
                   help="compare every pair (every metric) at WxH, both images resized (default: each generated "
                        "image's size, the real photo resized to it; bilinear, antialias)")
    o.add_argument("--kid-subset-size", type=int, default=1000)
    o.add_argument("--batch-size", type=int, default=8)
    o.add_argument("--device", default="auto")
    o.add_argument("--no-ema", action="store_true", help="use the raw generator even if an EMA copy exists")
    o.add_argument("--amp", choices=choices(InferenceAmpMode), default="auto",
                   help="generation precision: auto = bf16 where the device has it natively, else fp32")
    o.add_argument("--html", action="store_true",
                   help="also write a results page, OUT.html (pictures in OUT_page/): per image the label map, the "
                        "generated image, the real photo and the segmenter's prediction with the image's own scores, "
                        "sortable by score; the set's scores and the protocol on top")
    o.add_argument("--save-predictions", action="store_true",
                   help="with --checkpoint and miou: also write, per image, a strip colour label map | generated "
                        "image | the segmenter's prediction on it (train ids, coloured like their label class) into "
                        "WORK_DIR/predictions/")
    add_progress_argument(o)
    add_threads_argument(o)


def train_segmenter_for(dataset: str, data_root: str | None, out: str | Path, load_size: tuple[int, int] | None,
                        iterations: int, batch_size: int, width: int, device: Any, lr: float = 3e-3, seed: int = 0,
                        num_classes: int | None = None, dontcare: int | None = None,
                        progress: bool = True) -> dict[str, Any]:
    """Trains the built-in segmenter on `dataset`'s train split in its evaluation label space; writes `out`."""
    from .data import build_semantic_dataset
    from .metrics import train_segmenter

    kw: dict[str, Any] = dict(load_size=load_size)
    if dataset == "custom":
        kw.update(num_classes=num_classes, dontcare=dontcare)
    ds = build_semantic_dataset(dataset, data_root, "train", flip=False, **kw)
    protocol, classes, ignore = _segmentation_protocol(dataset, ds.num_classes, ds.dontcare_index)
    names = list(ds.class_names)[:classes] if protocol == "identity" else None
    return train_segmenter(ds, out, num_classes=classes, iterations=iterations, batch_size=batch_size, lr=lr,
                           device=device, progress=progress, label_protocol=protocol,
                           ignore_index=ignore if ignore is not None else 255, class_names=names, width=width,
                           seed=seed)


def train_segmenter_cli(args: argparse.Namespace) -> None:
    from .runtime import resolve_device

    check_outputs("--out", (args.out,), args.overwrite, data={"--data": args.data})
    apply_threads(getattr(args, "threads", 0))
    summary = train_segmenter_for(args.dataset, args.data, args.out, args.size, args.iterations, args.batch_size,
                                  args.width, resolve_device(args.device), lr=args.lr, seed=args.seed,
                                  num_classes=args.num_classes, dontcare=args.dontcare,
                                  progress=not args.no_progress)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (list, dict))}, indent=2))
    print(f"segmenter written to {args.out}; use it with `lggan evaluate --segmenter {args.out}`")


def add_train_segmenter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="dataset root (synth-city: default cache folder)")
    from .config import SEMANTIC_DATASETS, size_arg

    p.add_argument("--dataset", default="synth-city", choices=SEMANTIC_DATASETS)
    p.add_argument("--out", default="segmenter.safetensors", help="output file")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--size", type=size_arg, default=None, help="load size WxH (default: the dataset's)")
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--width", type=int, default=16, help="channel width of the compact segmenter")
    p.add_argument("--num-classes", type=int, default=None, help="custom data: label classes")
    p.add_argument("--dontcare", type=int, default=None, help="custom data: don't-care label value")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    add_threads_argument(p)
    from .progress import add_progress_argument

    add_progress_argument(p)
