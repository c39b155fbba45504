"""`lggan evaluate` and `lggan train-segmenter`: the paper's protocols on a model or on folders of images.

Semantic image synthesis (paper Table 3): FID / KID on TF-Inception pool3 features, and mIoU / pixel accuracy of a
segmenter on the generated photos (also on the real photos, as the reference the protocol should approach).
Cross-view translation (Tables 1-2): SSIM, PSNR, SD (released scripts' definitions), and IS / accuracy / KL with
the AlexNet-Places365 classifier. Every number goes into one JSON file together with the exact protocol settings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .viz import save_png, tensor_to_uint8

SEMANTIC_DEFAULT_METRICS = ("fid", "kid", "miou")
PIXEL_ONLY = ("ssim", "psnr", "sd")


def _save_index_png(label: torch.Tensor, path: Path) -> None:
    arr = label.cpu().numpy()
    mode_arr = arr.astype(np.uint8) if arr.max(initial=0) < 256 else arr.astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mode_arr).save(path)


def _segmentation_protocol(dataset: str, num_channels: int, dontcare: int | None) -> tuple[str, int, int | None]:
    """(label protocol, number of evaluated classes, ignore index) for a dataset's channel-index label maps."""
    if dataset in ("cityscapes", "synth-city"):
        return "cityscapes", 19, 255  # label ids -> the 19 train ids
    if dataset == "ade20k":
        return "ade20k", 150, 255  # labels - 1, the 0 class ignored
    if dataset == "coco-stuff":
        return "identity", num_channels - 1, num_channels - 1  # channel 182 is don't care
    if dontcare is not None:
        return "identity", num_channels - 1, num_channels - 1
    return "identity", num_channels, None


def load_segmenter_for(args: argparse.Namespace, dataset: str, num_channels: int, dontcare: int | None):
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


def _generate_semantic(synth, cfg, data_root: str | None, split: str, work: Path, batch_size: int,
                       limit: int | None, progress: bool) -> int:
    """Runs the generator over a split, writing generated/, real/ and labels/ with equal file names."""
    from .data import build_semantic_dataset, collate_semantic

    from .tasks import semantic_dataset_options

    dc = cfg.data
    ds = build_semantic_dataset(dc.dataset, data_root, split, crop_size=None, flip=False,
                                **semantic_dataset_options(dc))
    n = len(ds) if limit is None else min(limit, len(ds))
    from tqdm import tqdm

    for start in tqdm(range(0, n, batch_size), desc="generating", disable=not progress):
        batch = collate_semantic([ds[i] for i in range(start, min(start + batch_size, n))])
        res = synth(batch["label"], batch["instance"])
        for j, path in enumerate(batch["path"]):
            name = Path(path).stem + ".png"
            save_png(tensor_to_uint8(res.image[j]), work / "generated" / name)
            save_png(tensor_to_uint8(batch["image"][j]), work / "real" / name)
            _save_index_png(batch["label"][j], work / "labels" / name)
    return n


def _generate_crossview(synth, cfg, data_root: str | None, split: str, work: Path, batch_size: int,
                        limit: int | None, progress: bool) -> int:
    from tqdm import tqdm

    from .data import CrossViewDataset, collate_crossview

    dc = cfg.data
    size = (dc.crop_size or dc.load_size)[0]
    ds = CrossViewDataset(data_root, split, direction=dc.direction, load_size=size, crop_size=size, train=False)
    n = len(ds) if limit is None else min(limit, len(ds))
    for start in tqdm(range(0, n, batch_size), desc="generating", disable=not progress):
        batch = collate_crossview([ds[i] for i in range(start, min(start + batch_size, n))])
        res = synth(batch["label"], aerial=batch["input"])
        for j, path in enumerate(batch["path"]):
            name = Path(path).stem + ".png"
            save_png(tensor_to_uint8(res.image[j]), work / "generated" / name)
            save_png(tensor_to_uint8(batch["image"][j]), work / "real" / name)
    return n


def _data_root(cfg, override: str | None) -> str | None:
    """--data, else the run's own data root; the synthetic datasets fall back to their cache folders."""
    root = override or cfg.data.root
    if root is None and cfg.data.dataset == "synth-views":
        from .data import ensure_synth_views

        root = str(ensure_synth_views(size=(cfg.data.crop_size or cfg.data.load_size)[0]))
    if root is None and cfg.data.dataset != "synth-city":
        raise ValueError(f"--data: the {cfg.data.dataset} dataset needs its folder")
    return root


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Generates (with --checkpoint) or reads (with --generated/--real) images and scores them."""
    from .metrics import CROSSVIEW_METRICS, score_image_folders, segmentation_scores_from_folders
    from .train import resolve_device

    args.device_resolved = resolve_device(args.device)
    if args.metrics and "miou" in args.metrics and not args.segmenter:
        raise ValueError("metric miou needs --segmenter (a built-in one from `lggan train-segmenter`, or a "
                         "TorchScript file with --segmenter-mean/--segmenter-std)")
    t0 = time.time()
    result: dict[str, Any] = {"lggan_version": __import__("lggan").__version__}
    if args.checkpoint:
        from .generate import load_generator

        synth = load_generator(args.checkpoint, args.device_resolved, use_ema=not args.no_ema)
        cfg = synth.cfg
        task = cfg.model.task
        split = args.split or ("test" if task == "crossview" else "val")
        root = _data_root(cfg, args.data)
        work = Path(args.work_dir) if args.work_dir else Path(args.out).with_suffix("").parent / (
            Path(args.out).stem + "_images")
        gen_fn = _generate_crossview if task == "crossview" else _generate_semantic
        n = gen_fn(synth, cfg, root, split, work, args.batch_size, args.limit, not args.no_progress)
        generated, real, labels = work / "generated", work / "real", work / "labels"
        dataset, channels, dontcare = cfg.data.dataset, cfg.data.num_classes, cfg.data.dontcare
        result.update(task=task, checkpoint=str(args.checkpoint), data=root, split=split, num_images=n,
                      images=str(work))
    else:
        if not (args.generated and args.real):
            raise ValueError("give --checkpoint RUN, or both --generated DIR and --real DIR")
        generated, real = Path(args.generated), Path(args.real)
        labels = Path(args.labels) if args.labels else None
        task = args.task
        dataset, channels, dontcare = args.dataset, args.num_classes or 35, None
        result.update(task=task, generated=str(generated), real=str(real))

    default = CROSSVIEW_METRICS if task == "crossview" else SEMANTIC_DEFAULT_METRICS
    metrics = list(args.metrics or default)
    image_metrics = [m for m in metrics if m != "miou"]
    scores: dict[str, Any] = {}
    if image_metrics:
        scores["images"] = score_image_folders(
            generated, real, image_metrics, places365_weights=args.places365_weights,
            inception_weights=args.inception_weights, batch_size=args.batch_size, device=args.device_resolved,
            progress=not args.no_progress, kid_subset_size=args.kid_subset_size,
        )
    if "miou" in metrics and not args.segmenter:
        metrics.remove("miou")
        result["notes"] = ["miou skipped: no --segmenter given (train one with `lggan train-segmenter`)"]
    if "miou" in metrics:
        if labels is None:
            raise ValueError("metric miou with --generated needs --labels DIR (label maps with the same names)")
        seg = load_segmenter_for(args, dataset, channels, dontcare)
        eval_size = tuple(args.eval_size[::-1]) if args.eval_size else None  # (H, W)
        common = dict(eval_size=eval_size, batch_size=args.batch_size, progress=not args.no_progress)
        scores["segmentation"] = segmentation_scores_from_folders(generated, labels, seg, **common)
        # The same segmenter on the real photos: the value a perfect generator would reach.
        scores["segmentation_real"] = segmentation_scores_from_folders(real, labels, seg, **common)
    result["metrics"] = scores
    result["seconds"] = round(time.time() - t0, 1)
    return result


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
    print(f"\nwrote {args.out}")


def _pair(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    from .metrics import ALL_METRICS

    src = p.add_argument_group("what to score")
    src.add_argument("--checkpoint", help="run folder / checkpoint / converted .safetensors: generate, then score")
    src.add_argument("--data", help="dataset root (default: the run's own data; built-in synthetic data)")
    src.add_argument("--split", default=None, help="split to generate from (default: val, cross-view: test)")
    src.add_argument("--limit", type=int, default=None, help="score only the first N images of the split")
    src.add_argument("--work-dir", default=None, help="where generated/real/label images go (default: beside --out)")
    src.add_argument("--generated", help="folder of generated images (instead of --checkpoint)")
    src.add_argument("--real", help="folder of real images with the same file names")
    src.add_argument("--labels", help="with --generated: label maps with the same names (for miou)")
    src.add_argument("--task", choices=("semantic", "crossview"), default="semantic",
                     help="with --generated: which default metrics")
    src.add_argument("--dataset", default="cityscapes", choices=("cityscapes", "synth-city", "ade20k", "coco-stuff",
                                                                 "custom"),
                     help="with --generated and a TorchScript segmenter: the label protocol")
    src.add_argument("--num-classes", type=int, default=None, help="with --generated, custom data: label classes")
    p.add_argument("--metrics", nargs="+", choices=list(ALL_METRICS) + ["miou"], default=None,
                   help="default: fid kid miou (semantic), accuracy inception_score ssim psnr sd kl (cross-view)")
    p.add_argument("--out", default="results.json", help="JSON file with every number and the protocol used")
    w = p.add_argument_group("weights (never downloaded)")
    w.add_argument("--inception-weights", default=None,
                   help="FID/KID: weights-inception-2015-12-05-6726825d.pth (default: the torch hub cache)")
    w.add_argument("--places365-weights", default=None,
                   help="IS/accuracy/KL: alexnet_places365.pth.tar (default: the torch hub cache)")
    w.add_argument("--segmenter", default=None, help="miou: built-in .safetensors or TorchScript file")
    w.add_argument("--segmenter-classes", type=int, default=None, help="TorchScript: output classes")
    w.add_argument("--segmenter-protocol", choices=("identity", "cityscapes", "ade20k"), default=None,
                   help="TorchScript: label mapping (default from the dataset)")
    w.add_argument("--segmenter-mean", type=float, nargs=3, default=(0.485, 0.456, 0.406))
    w.add_argument("--segmenter-std", type=float, nargs=3, default=(0.229, 0.224, 0.225))
    w.add_argument("--segmenter-range", type=float, nargs=2, default=(0.0, 1.0),
                   help="TorchScript: input value range before normalisation")
    o = p.add_argument_group("options")
    o.add_argument("--eval-size", type=_pair, default=None, help="miou resolution WxH (default: generated size)")
    o.add_argument("--kid-subset-size", type=int, default=1000)
    o.add_argument("--batch-size", type=int, default=8)
    o.add_argument("--device", default="auto")
    o.add_argument("--no-ema", action="store_true", help="use the raw generator even if an EMA copy exists")
    o.add_argument("--no-progress", action="store_true")


def train_segmenter_cli(args: argparse.Namespace) -> None:
    from .data import build_semantic_dataset
    from .metrics import train_segmenter
    from .train import resolve_device

    kw: dict[str, Any] = dict(load_size=args.size)
    if args.dataset == "custom":
        kw.update(num_classes=args.num_classes, dontcare=args.dontcare)
    ds = build_semantic_dataset(args.dataset, args.data, "train", flip=False, **kw)
    protocol, classes, ignore = _segmentation_protocol(args.dataset, ds.num_classes, ds.dontcare_index)
    names = None
    if protocol == "identity":
        names = list(ds.class_names)[:classes]
    summary = train_segmenter(ds, args.out, num_classes=classes, iterations=args.iterations,
                              batch_size=args.batch_size, lr=args.lr, device=resolve_device(args.device),
                              progress=True, label_protocol=protocol, ignore_index=ignore if ignore is not None
                              else 255, class_names=names, width=args.width, seed=args.seed)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (list, dict))}, indent=2))
    print(f"segmenter written to {args.out}; use it with `lggan evaluate --segmenter {args.out}`")


def add_train_segmenter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="dataset root (synth-city: default cache folder)")
    p.add_argument("--dataset", default="synth-city",
                   choices=("cityscapes", "synth-city", "ade20k", "coco-stuff", "custom"))
    p.add_argument("--out", default="segmenter.safetensors", help="output file")
    p.add_argument("--size", type=_pair, default=None, help="load size WxH (default: the dataset's)")
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--width", type=int, default=16, help="channel width of the compact segmenter")
    p.add_argument("--num-classes", type=int, default=None, help="custom data: label classes")
    p.add_argument("--dontcare", type=int, default=None, help="custom data: don't-care label value")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
