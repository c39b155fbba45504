"""`lggan ablation`: paper Table 3 (right) as one command.

Trains the variants S1..S5 (`lggan.config.ablation_variant`) with one budget (iterations, or training seconds), the
same data, seeds and evaluation, each in an ordinary run folder OUT/<variant>-seed<k> (an interrupted study
resumes run by run), scores each with the segmenter protocol of `lggan evaluate` (plus FID/KID when the Inception
weights are present), and writes OUT/study.json (every number, the protocol, the configs, the times),
OUT/study.md (the Table 3 layout, mean +- standard deviation over seeds) and two figures: OUT/study.png (mIoU per
variant, IoU of the small classes, mIoU against iteration from train.eval_every) and OUT/strip.png (the same
label maps through every variant).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ABLATION_TEXT, ABLATION_VARIANTS, Config, ablation_variant, apply_overrides, get_preset
from .io import atomic_write, atomic_write_text, check_output_folder

# Cityscapes train-id classes the paper singles out: thin or small objects, where the local generator should help.
SMALL_CLASSES = ("pole", "traffic light", "traffic sign", "person", "rider", "bicycle", "motorcycle")
STUDY_FILES = ("study.json", "study.md", "study.png", "strip.png")
STRIP_IMAGES = 3  # label maps in the strip figure
_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}

# `--quick`: tiny widths, a tiny synthetic city and a few iterations: the whole pipeline in well under a minute.
QUICK_SET = ["data.load_size=64x32", "model.ngf=4", "model.ndf=8", "model.spade_hidden=8", "model.num_res_blocks=1",
             "train.batch_size=2", "data.num_workers=0", "train.sample_every=1000", "train.checkpoint_every=1000"]
QUICK_CITY = dict(num_train=6, num_val=4, size=(64, 32), seed=11)
QUICK_BUDGET = "2"
QUICK_SEGMENTER = dict(iterations=4, width=4, batch_size=2)
SEGMENTER_DEFAULTS = dict(iterations=600, width=16, batch_size=8)


@dataclass(frozen=True)
class Budget:
    """What every variant gets: `amount` iterations or seconds of training."""

    kind: str  # "iterations" | "seconds"
    amount: float

    def __str__(self) -> str:
        return f"{int(self.amount)} iterations" if self.kind == "iterations" else f"{self.amount:g} s of training"


def parse_budget(text: str) -> Budget:
    """'300' -> 300 iterations; '10min', '90s', '1.5h' -> seconds of training (evaluation excluded)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", str(text).lower())
    if m is None or (m.group(2) and m.group(2) not in _UNITS):
        raise ValueError(f"--budget {text!r}: expected a number of iterations (300) or a time (90s, 10min, 1.5h)")
    value, unit = float(m.group(1)), m.group(2)
    if value <= 0:
        raise ValueError(f"--budget {text!r}: must be > 0")
    if not unit:
        if value != int(value):
            raise ValueError(f"--budget {text!r}: a number of iterations must be whole")
        return Budget("iterations", int(value))
    return Budget("seconds", value * _UNITS[unit])


def parse_per_variant(text: str, parse_one, option: str, variants: tuple[str, ...]) -> dict[str, Any]:
    """'V' -> every variant gets parse_one('V'); 'S1=7600,S5=4000' -> each named variant its own (all must be named)."""
    text = str(text).strip()
    if "=" not in text:
        value = parse_one(text)
        return {v: value for v in variants}
    out: dict[str, Any] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in ABLATION_VARIANTS:
            raise ValueError(f"{option} {text!r}: expected VALUE or VARIANT=VALUE,... with variants of "
                             f"{','.join(ABLATION_VARIANTS)}")
        out[name] = parse_one(value.strip())
    missing = [v for v in variants if v not in out]
    if missing:
        raise ValueError(f"{option} {text!r}: no value for {','.join(missing)}")
    return {v: out[v] for v in variants}


def parse_seeds(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"--seeds {text!r}: expected a whole number >= 1")
    return n


def _t_quantile(p: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, dof))


def paired_difference(runs: list[dict], variant: str, baseline: str, key: str = "miou") -> dict | None:
    """variant - baseline over the seeds both have: mean, standard deviation and the 95 % t confidence interval."""
    a = {r["seed"]: r.get(key) for r in runs if r["variant"] == variant and r.get(key) is not None}
    b = {r["seed"]: r.get(key) for r in runs if r["variant"] == baseline and r.get(key) is not None}
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    d = [a[k] - b[k] for k in seeds]
    mean = statistics.fmean(d)
    out = {"variant": variant, "baseline": baseline, "metric": key, "seeds": seeds, "differences": d, "mean": mean,
           "std": None, "ci95": None}
    if len(d) > 1:
        sd = statistics.stdev(d)
        half = _t_quantile(0.975, len(d) - 1) * sd / math.sqrt(len(d))
        out.update(std=sd, ci95=[mean - half, mean + half])
    return out


def curve_change(curve: list[dict], fraction: float = 0.2) -> dict | None:
    """How much the mIoU still moves in the last `fraction` of a run's train.eval_every curve: the change of a least-
    squares line over that window (its slope x its length) and the window's max - min. None: fewer than 3 points."""
    if not curve:
        return None
    last = curve[-1]["iteration"]
    window = [c for c in curve if c["iteration"] >= last * (1 - fraction)]
    if len(window) < 3:
        return None
    xs, ys = [c["iteration"] for c in window], [c["miou"] for c in window]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return {"from_iteration": xs[0], "to_iteration": xs[-1], "points": len(xs),
            "trend_change": slope * (xs[-1] - xs[0]), "range": max(ys) - min(ys)}


def file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class StudyOptions:
    out: Path
    variants: tuple[str, ...] = ABLATION_VARIANTS
    seeds: int | dict[str, int] = 2  # runs per variant (seeds 0..N-1), or per variant
    budget: Budget | dict[str, Budget] | None = None  # None: the preset's own schedule; or one per variant
    preset: str = "synth"
    data: str | None = None
    overrides: list[str] = field(default_factory=list)
    eval_every: int | None = None  # None: a fifth of an iteration budget (time budgets: every 100 iterations)
    eval_images: int = 32
    limit: int | None = None  # images of the final evaluation (None: the whole split)
    segmenter: str | None = None
    segmenter_iterations: int | None = None  # None: SEGMENTER_DEFAULTS (QUICK_SEGMENTER with quick)
    inception_weights: str | None = None
    device: str = "auto"
    progress: bool = True
    quick: bool = False


def variant_config(base: Config, variant: str, seed: int, budget: Budget | None, eval_every: int,
                   eval_images: int, segmenter: Path) -> Config:
    """The config of one run of the study: `base` as `variant`, its seed, the budget and the evaluation."""
    cfg = ablation_variant(base, variant)
    cfg.train.seed = seed
    if budget is not None and budget.kind == "iterations":
        cfg.train.iterations = int(budget.amount)
    elif budget is not None:
        cfg.train.max_seconds = budget.amount
    cfg.train.eval_every = eval_every
    cfg.train.eval_images = eval_images
    cfg.train.eval_segmenter = str(segmenter)
    return cfg


def _fit_schedule(cfg: Config, iterations: int, iters_per_epoch: int) -> None:
    """An iteration budget keeps the preset's shape: constant lr for 2/3 of the epochs, linear decay over the rest."""
    epochs = max(1, math.ceil(iterations / max(iters_per_epoch, 1)))
    cfg.train.epochs_decay = max(1, round(epochs / 3)) if epochs > 1 else 0
    cfg.train.epochs_const = epochs - cfg.train.epochs_decay


def _has_checkpoint(run_dir: Path) -> bool:
    from . import checkpoint as ckpt

    return bool(ckpt.list_checkpoints(run_dir))


def ensure_segmenter(cfg: Config, data_root: str | None, out: Path, iterations: int, width: int, batch_size: int,
                     device: Any, progress: bool, cache: bool) -> tuple[Path, dict]:
    """The built-in segmenter of the study's dataset at its training size: trained once, then reused.

    cache=True (the built-in synthetic city) keeps it in $LGGAN_CACHE/segmenters for every later study; otherwise
    it lives in the study folder (it is trained on that dataset's train split).
    """
    from .data.storage import cache_dir
    from .evaluate import train_segmenter_for
    from .metrics.segmenter import read_segmenter_metadata

    dc = cfg.data
    w, h = dc.crop_size or dc.load_size
    name = f"{dc.dataset}-{w}x{h}-{iterations}it-w{width}-seed0.safetensors"
    path = (cache_dir() / "segmenters" / name) if cache else (out / name)
    if path.is_file():
        return path, read_segmenter_metadata(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"training the built-in segmenter ({iterations} iterations at {w}x{h}) -> {path}", flush=True)
    atomic_write(path, lambda tmp: train_segmenter_for(
        dc.dataset, data_root, tmp, (w, h), iterations, batch_size, width, device, num_classes=dc.num_classes,
        dontcare=dc.dontcare, progress=progress), suffix=".safetensors")
    return path, read_segmenter_metadata(path)


def _inception_file(given: str | None) -> str | None:
    """The TF-Inception weights for FID/KID if present (given, or in the torch hub cache); never downloads."""
    from .metrics.fid import resolve_inception_weights

    try:
        return str(resolve_inception_weights(given, "--inception-weights"))
    except FileNotFoundError:
        if given:
            raise
        return None


def evaluate_run(run_dir: Path, data_root: str | None, segmenter: Path, inception: str | None, limit: int | None,
                 device: str) -> dict:
    """`lggan evaluate --checkpoint RUN` with the study's protocol; the result is RUN/eval.json (reused when it
    scored the run's newest checkpoint with the same protocol)."""
    from . import checkpoint as ckpt
    from .evaluate import add_evaluate_arguments, evaluate
    from .metrics import write_json_atomic

    found = ckpt.load_latest(run_dir, with_training_state=False)  # the checkpoint `evaluate` will load
    # What the scores depend on: an eval.json of another protocol (another segmenter file, image count, data or
    # Inception file) is rescored, never reused under this study's name.
    protocol = {"iteration": found.iteration if found is not None else None, "limit": limit,
                "segmenter_sha256": file_sha256(segmenter), "inception": inception, "data": data_root,
                "metrics": ["miou", "fid", "kid"] if inception else ["miou"]}
    out = run_dir / "eval.json"
    if out.is_file():
        with contextlib.suppress(ValueError, OSError):
            old = json.loads(out.read_text())
            if old.get("study_protocol") == protocol:
                return old
    # The command line's own parser gives every other option its `lggan evaluate` default.
    parser = argparse.ArgumentParser(add_help=False)
    add_evaluate_arguments(parser)
    argv = ["--checkpoint", str(run_dir), "--work-dir", str(run_dir / "eval"), "--out", str(out), "--segmenter",
            str(segmenter), "--device", device, "--no-progress", "--metrics", "miou", "--overwrite"]  # its own file
    argv += ["fid", "kid", "--inception-weights", inception] if inception else []
    argv += ["--data", data_root] if data_root else []
    argv += ["--limit", str(limit)] if limit is not None else []
    args = parser.parse_args(argv)
    result = evaluate(args)
    result.update(study_protocol=protocol)
    write_json_atomic(result, out)
    return result


def _eval_curve(run_dir: Path) -> list[dict]:
    """The train.eval_every records of a run's log.jsonl (lggan.plot.read_log): iteration, mIoU, accuracy."""
    from .plot import read_log

    try:
        _, evals = read_log(run_dir)
    except (FileNotFoundError, ValueError):  # no log, or no records yet
        return []
    return [{"iteration": r["iteration"], "miou": r["eval_miou"], "pixel_accuracy": r["eval_pixel_accuracy"]}
            for r in evals]


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def _fmt(mean: float | None, std: float | None, digits: int = 1) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def summarise(runs: list[dict], variants: tuple[str, ...]) -> list[dict]:
    """One row per variant: mean and standard deviation over its seeds of every score, iterations and time."""
    rows = []
    for v in variants:
        mine = [r for r in runs if r["variant"] == v]
        row: dict[str, Any] = {"variant": v, "description": ABLATION_TEXT[v], "seeds": [r["seed"] for r in mine]}
        for key in ("miou", "pixel_accuracy", "fid", "kid", "iterations", "train_seconds", "images_per_second"):
            row[key], row[f"{key}_std"] = _mean_std([r.get(key) for r in mine])
        names = mine[0]["per_class_iou"].keys() if mine else []
        row["per_class_iou"] = {n: _mean_std([r["per_class_iou"].get(n) for r in mine])[0] for n in names}
        rows.append(row)
    return rows


def small_classes(real_per_class: dict[str, float | None]) -> list[str]:
    """The small-object classes present in the evaluation data (IoU defined on the real photos)."""
    return [c for c in SMALL_CLASSES if real_per_class.get(c) is not None]


def _spec_text(spec: Any) -> str:
    """A protocol entry that is one value or one per variant ({"S1": ..., "S5": ...})."""
    return ", ".join(f"{v} {x}" for v, x in spec.items()) if isinstance(spec, dict) else str(spec)


def _ci_text(d: dict) -> str:
    if d["ci95"] is None:
        return "-"
    return f"[{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"


def study_markdown(study: dict) -> str:
    """Table 3 (right) layout: variant, mIoU, accuracy (FID, KID when scored), time and iterations; the paired
    differences to the baseline over seeds with 95 % confidence intervals; the small classes; convergence."""
    p = study["protocol"]
    rows, real = study["rows"], study["real"]
    has_fid = any(r["fid"] is not None for r in rows)
    head = ["variant", "what it adds", "mIoU ↑", "accuracy ↑"] + (["FID ↓", "KID ↓"] if has_fid else []) + \
        ["iterations", "training time (s)", "img/s"]
    title = (f"# Ablation (paper Table 3, right): {p['preset']} preset, {_spec_text(p['budget'])}, "
             f"seeds per variant: {_spec_text(p['seeds'])}")
    lines = [title, ""]
    if p.get("quick"):
        lines += ["**Smoke test (`--quick`): tiny widths, a few iterations, a 4-iteration segmenter. These numbers "
                  "check the pipeline; they are not results to quote.**", ""]
    seg = p["segmenter"]
    lines += [f"Machine: {p['machine']}. Scored with {seg['file']}"
              + (f" (sha256 {seg['sha256'][:16]}...)" if seg.get("sha256") else "")
              + f" on {p['eval_images_final']} images of the {p['split']} split (mean ± standard deviation over "
              f"seeds). Command: `{p['command']}`.", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["variant"], r["description"], _fmt(r["miou"], r["miou_std"]),
                 _fmt(r["pixel_accuracy"], r["pixel_accuracy_std"])]
        if has_fid:
            cells += [_fmt(r["fid"], r["fid_std"]), _fmt(r["kid"], r["kid_std"], 4)]
        cells += [_fmt(r["iterations"], None, 0), _fmt(r["train_seconds"], r["train_seconds_std"], 0),
                  _fmt(r["images_per_second"], None, 2)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| real photos | the segmenter's ceiling | " + _fmt(real["miou"], None) + " | " +
                 _fmt(real["pixel_accuracy"], None) + " |" + " |" * (len(head) - 4))
    diffs = study.get("paired_differences") or []
    if diffs:
        lines += ["", f"Paired mIoU differences to {diffs[0]['baseline']} (same seed, same label maps; 95 % confidence "
                  "interval of the mean difference, Student's t over the seeds):", "",
                  "| difference | seeds | per seed | mean | 95 % CI |", "|---|---|---|---|---|"]
        for d in diffs:
            lines.append(f"| {d['variant']} - {d['baseline']} | {len(d['seeds'])} | "
                         + ", ".join(f"{x:+.1f}" for x in d["differences"])
                         + f" | {d['mean']:+.1f} | {_ci_text(d)} |")
    small = small_classes(real["per_class_iou"])
    if small:
        lines += ["", "IoU of the small classes (mean over seeds):", "",
                  "| variant | " + " | ".join(small) + " |", "|" + "---|" * (len(small) + 1)]
        for r in rows + [{"variant": "real photos", "per_class_iou": real["per_class_iou"]}]:
            lines.append(f"| {r['variant']} | " + " | ".join(_fmt(r["per_class_iou"].get(c), None)
                                                            for c in small) + " |")
    changes = [(r, r.get("curve_change_last_20pct")) for r in study["runs"]]
    if any(c for _, c in changes):
        lines += ["", f"Convergence: how much the mIoU of the first {p['eval_images_during_training']} val images "
                  "(train.eval_every) still moves over the last 20 % of each run (change of a least-squares line over "
                  "that window; max - min of its points):", "",
                  "| run | window (iterations) | points | trend change | max - min |", "|---|---|---|---|---|"]
        for r, c in changes:
            if c:
                lines.append(f"| {r['variant']} seed {r['seed']} | {c['from_iteration']}-{c['to_iteration']} | "
                             f"{c['points']} | {c['trend_change']:+.1f} | {c['range']:.1f} |")
    return "\n".join(lines) + "\n"


def study_figure(study: dict, path: Path) -> None:
    """mIoU per variant (error bars: std over seeds), IoU of the small classes, mIoU against iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, real = study["rows"], study["real"]
    names = [r["variant"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.bar(names, [r["miou"] or 0 for r in rows], yerr=[r["miou_std"] or 0 for r in rows], capsize=4,
           color="#4878a8")
    if real["miou"] is not None:
        ax.axhline(real["miou"], color="gray", ls="--", lw=1, label=f"real photos {real['miou']:.1f}")
        ax.legend(loc="lower right")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("mIoU per variant")
    ax = axes[1]
    small = small_classes(real["per_class_iou"])
    width = 0.8 / max(len(rows), 1)
    for i, r in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(small))]
        ax.bar(xs, [r["per_class_iou"].get(c) or 0 for c in small], width, label=r["variant"])
    ax.set_xticks(range(len(small)))
    ax.set_xticklabels(small, rotation=30, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_title("small classes" if small else "small classes (none in the data)")
    ax.legend(fontsize=8)
    ax = axes[2]
    for v in names:
        curves = [r["curve"] for r in study["runs"] if r["variant"] == v and r["curve"]]
        if not curves:
            continue
        its = sorted(set.intersection(*[{c["iteration"] for c in cur} for cur in curves]))
        means = [statistics.fmean(next(c["miou"] for c in cur if c["iteration"] == it) for cur in curves)
                 for it in its]
        ax.plot(its, means, marker="o", ms=3, label=v)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"mIoU (%), first {study['protocol']['eval_images_during_training']} val images")
    ax.set_title("during training (train.eval_every)")
    ax.legend(fontsize=8)
    quick = " (--quick smoke test: not results)" if study["protocol"].get("quick") else ""
    fig.suptitle(f"LGGAN ablation: {_spec_text(study['protocol']['budget'])}, seeds "
                 f"{_spec_text(study['protocol']['seeds'])}{quick}")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"), suffix=".png")
    plt.close(fig)


def strip_figure(study: dict, palette, path: Path) -> None:
    """Rows: the first evaluation label maps; columns: label map | each variant (first seed) | real photo."""
    import numpy as np
    import torch
    from PIL import Image

    from .viz import make_grid, palette_to_rgb, save_png

    first = {}
    for r in study["runs"]:
        first.setdefault(r["variant"], Path(r["run_dir"]) / "eval")
    if not first:
        return
    some = next(iter(first.values()))
    names = sorted(p.name for p in (some / "labels").iterdir())[:STRIP_IMAGES]

    def read(p: Path) -> torch.Tensor:  # uint8 [H,W,3] -> [3,H,W] in [0,1], what make_grid takes
        return torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1).float() / 255.0

    def batch(paths: list[Path]) -> torch.Tensor:
        return torch.stack([read(p) for p in paths])

    labels = torch.stack([torch.from_numpy(np.array(Image.open(some / "labels" / n), dtype=np.int64))
                          for n in names])
    columns = [palette_to_rgb(labels, palette)]
    columns += [batch([d / "generated" / n for n in names]) for d in first.values()]
    columns.append(batch([some / "real" / n for n in names]))
    grid = make_grid(columns)
    save_png(_with_header(grid, ["label map", *first, "real photo"]), path)


def _with_header(grid, titles: list[str]):
    """The grid with a white band on top naming its equally wide columns."""
    import numpy as np
    from PIL import Image, ImageDraw

    band = 14
    img = Image.new("RGB", (grid.shape[1], grid.shape[0] + band), "white")
    img.paste(Image.fromarray(grid), (0, band))
    draw = ImageDraw.Draw(img)
    width = grid.shape[1] / len(titles)
    for i, title in enumerate(titles):
        draw.text((int(i * width) + 3, 1), title, fill="black")
    return np.asarray(img)


def _machine() -> str:
    import platform

    import torch

    from .precision import cpu_name

    return (f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} ({torch.get_num_threads()} "
            f"threads), Python {platform.python_version()}")


def _check_study_folder(out: Path) -> None:
    """--out is new, empty or a study folder (its study files, run folders S1-seed0 ..., the --quick data): the
    study replaces its own files there, never somebody else's."""
    run = re.compile(r"^S\d+-seed\d+$")

    def foreign(folder: Path) -> list[str]:
        return [p.name for p in folder.iterdir() if p.name not in STUDY_FILES and not run.match(p.name)
                and p.name not in ("data",) and not p.name.endswith(".safetensors")]

    check_output_folder("--out", out, "a study", foreign)


def run_study(opts: StudyOptions, command: str = "lggan ablation") -> dict:
    """Trains (or resumes) every variant x seed, evaluates each, writes study.json/.md and the figures."""
    from .tasks import make_task
    from .runtime import resolve_device
    from .training import train

    t_start = time.time()
    out = Path(opts.out)
    _check_study_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = [v for v in opts.variants if v not in ABLATION_VARIANTS]
    if unknown or not opts.variants:
        raise ValueError(f"--variants {','.join(opts.variants)}: expected some of {','.join(ABLATION_VARIANTS)}")
    seeds = opts.seeds if isinstance(opts.seeds, dict) else {v: opts.seeds for v in opts.variants}
    if any(n < 1 for n in seeds.values()):
        raise ValueError(f"--seeds {opts.seeds}: must be >= 1")
    base = get_preset(opts.preset)
    data_root = opts.data
    budgets = opts.budget if isinstance(opts.budget, dict) else {v: opts.budget for v in opts.variants}
    if opts.segmenter_iterations is not None and opts.segmenter_iterations < 1:
        raise ValueError(f"--segmenter-iterations {opts.segmenter_iterations}: must be >= 1")
    seg_kw = dict(SEGMENTER_DEFAULTS)
    overrides = list(opts.overrides)
    if opts.quick:
        from .data.synthetic import generate_synth_city

        overrides = QUICK_SET + overrides
        budgets = {v: b or parse_budget(QUICK_BUDGET) for v, b in budgets.items()}
        seg_kw = dict(QUICK_SEGMENTER)
    if opts.segmenter_iterations is not None:  # given: honoured, with --quick too
        seg_kw["iterations"] = opts.segmenter_iterations
        if data_root is None:
            data_root = str(out / "data")
            if not (out / "data").is_dir():
                generate_synth_city(out / "data", progress=False, workers=0, **QUICK_CITY)
    base = apply_overrides(base, overrides)
    base.train.progress = opts.progress and base.train.progress
    if data_root is not None:
        base.data.root = data_root
    task = make_task(base, data_root)
    if not task.has_label_maps():
        raise ValueError(f"--preset {opts.preset}: the ablation scores label maps with a segmenter; this preset's "
                         f"task ({base.model.task}) has none")
    device = resolve_device(opts.device)

    if opts.segmenter:
        seg_path = Path(opts.segmenter)
        if not seg_path.is_file():
            raise FileNotFoundError(f"--segmenter {seg_path}: no such file")
        from .metrics.segmenter import read_segmenter_metadata

        seg_meta = read_segmenter_metadata(seg_path)
    else:
        # The built-in synthetic city is the same everywhere: its segmenter is cached for every study.
        cache = data_root is None and not opts.quick
        seg_path, seg_meta = ensure_segmenter(base, data_root, out, device=device, progress=opts.progress,
                                              cache=cache, **seg_kw)
    inception = _inception_file(opts.inception_weights)

    iteration_budgets = [int(b.amount) for b in budgets.values() if b is not None and b.kind == "iterations"]
    iters_per_epoch = None
    if iteration_budgets:
        train_set, _ = task.build_datasets(with_val=False)
        iters_per_epoch = len(train_set) // base.train.batch_size
    eval_every = opts.eval_every
    if eval_every is None:
        eval_every = max(1, min(iteration_budgets) // 5) if iteration_budgets else 100

    runs = []
    for seed in range(max(seeds.values())):
        for v in opts.variants:
            if seed >= seeds[v]:
                continue
            budget = budgets[v]
            run_dir = out / f"{v}-seed{seed}"
            cfg = variant_config(base, v, seed, budget, eval_every, opts.eval_images, seg_path)
            if budget is not None and budget.kind == "iterations":
                _fit_schedule(cfg, int(budget.amount), iters_per_epoch)
            print(f"== {v} seed {seed} ({ABLATION_TEXT[v]}) -> {run_dir}", flush=True)
            result = train(cfg, run_dir, data_root, resume=_has_checkpoint(run_dir))
            if result.stopped_by == "signal":
                raise KeyboardInterrupt(f"stopped by signal {result.signal}; run the same command again to resume")
            ev = evaluate_run(run_dir, data_root, seg_path, inception, opts.limit, opts.device)
            seg = ev["metrics"]["segmentation"]
            images = ev["metrics"].get("images", {})
            runs.append({
                "variant": v, "seed": seed, "run_dir": str(run_dir), "iterations": result.iteration,
                "train_seconds": result.train_seconds,
                "images_per_second": result.iteration * cfg.train.batch_size / max(result.train_seconds, 1e-9),
                "miou": seg["miou"], "pixel_accuracy": seg["pixel_accuracy"], "fid": images.get("fid"),
                "kid": images.get("kid"), "per_class_iou": seg["per_class_iou"], "curve": _eval_curve(run_dir),
                "budget": str(budget) if budget is not None else "the preset's schedule",
                "stopped_by": result.stopped_by, "config": cfg.to_dict(),
            })
            real = ev["metrics"]["segmentation_real"]
            split, n_images = ev["split"], ev["num_images"]

    for r in runs:
        r["curve_change_last_20pct"] = curve_change(r["curve"])
    baseline = "S1" if "S1" in opts.variants else opts.variants[0]
    budget_text = {v: str(b) if b is not None else "the preset's schedule" for v, b in budgets.items()}
    study = {
        "protocol": {
            "command": command, "preset": opts.preset, "variants": list(opts.variants),
            "seeds": seeds if len(set(seeds.values())) > 1 else next(iter(seeds.values())),
            "budget": budget_text if len(set(budget_text.values())) > 1 else next(iter(budget_text.values())),
            "overrides": overrides,
            "data": data_root or "built-in synthetic city", "split": split, "eval_images_final": n_images,
            "eval_every": eval_every, "eval_images_during_training": min(opts.eval_images, n_images),
            "segmenter": {"file": str(seg_path), "sha256": file_sha256(seg_path), "training": seg_meta.get("training")},
            "fid_kid": "TF-Inception " + inception if inception else "skipped: no Inception weights file",
            "machine": _machine(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "quick": opts.quick,
        },
        "rows": summarise(runs, tuple(opts.variants)),
        "paired_differences": [d for v in opts.variants if v != baseline
                               for d in [paired_difference(runs, v, baseline)] if d is not None],
        "real": {"miou": real["miou"], "pixel_accuracy": real["pixel_accuracy"],
                 "per_class_iou": real["per_class_iou"]},
        "runs": runs,
        "seconds": round(time.time() - t_start, 1),
    }
    atomic_write_text(out / "study.json", json.dumps(study, indent=2) + "\n")
    atomic_write_text(out / "study.md", study_markdown(study))
    study_figure(study, out / "study.png")
    strip_figure(study, task.palette, out / "strip.png")
    print(study_markdown(study))
    print(f"wrote {', '.join(str(out / f) for f in STUDY_FILES)}")
    return study


def add_ablation_arguments(p: argparse.ArgumentParser) -> None:
    from .config import PRESETS
    from .progress import add_progress_argument

    p.add_argument("--variants", default=",".join(ABLATION_VARIANTS),
                   help=f"comma-separated, of {','.join(ABLATION_VARIANTS)} (paper Table 3, right)")
    p.add_argument("--seeds", default="2", help="runs per variant (seeds 0..N-1), or per variant: S1=3,S2=2,...")
    p.add_argument("--budget", default=None,
                   help="per variant: iterations (300) or training time (90s, 10min, 1.5h; evaluation excluded), "
                        "or one per variant (S1=7600,S5=4000: equal training time); default: the preset's schedule")
    p.add_argument("--preset", default="synth", choices=list(PRESETS),
                   help="the base configuration the variants are made from")
    p.add_argument("--data", default=None, help="dataset root (default: the built-in synthetic city)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a config field in every variant (repeatable)")
    p.add_argument("--out", default="runs/ablation", help="study folder: one run folder per variant and seed")
    p.add_argument("--eval-every", type=int, default=None,
                   help="score every N iterations during training (default: a fifth of an iteration budget, "
                        "else 100)")
    p.add_argument("--eval-images", type=int, default=32, help="val images scored during training")
    p.add_argument("--limit", type=int, default=None, help="val images of the final evaluation (default: all)")
    p.add_argument("--segmenter", default=None,
                   help="built-in segmenter .safetensors (default: trained once on the data's train split and "
                        "cached; for the built-in city in $LGGAN_CACHE/segmenters)")
    p.add_argument("--segmenter-iterations", type=int, default=None,
                   help=f"training iterations of a segmenter trained for the study (default: "
                        f"{SEGMENTER_DEFAULTS['iterations']}; {QUICK_SEGMENTER['iterations']} with --quick)")
    p.add_argument("--inception-weights", default=None,
                   help="TF-Inception weights for FID/KID (default: the torch hub cache file, if present; "
                        "otherwise FID/KID are skipped)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true",
                   help="tiny widths, a tiny synthetic city, 2 iterations, 1 seed unless --seeds: checks the "
                        "pipeline in under a minute")
    add_progress_argument(p, "; the runs print a line per log step")


def ablation_cli(a: argparse.Namespace, argv_text: str) -> None:
    variants = tuple(v.strip() for v in a.variants.split(",") if v.strip())
    seeds = "1" if a.quick and "--seeds" not in argv_text else a.seeds
    opts = StudyOptions(
        out=Path(a.out), variants=variants, seeds=parse_per_variant(seeds, parse_seeds, "--seeds", variants),
        budget=parse_per_variant(a.budget, parse_budget, "--budget", variants) if a.budget else None,
        preset=a.preset, data=a.data, overrides=a.set,
        eval_every=a.eval_every, eval_images=a.eval_images, limit=a.limit, segmenter=a.segmenter,
        segmenter_iterations=a.segmenter_iterations, inception_weights=a.inception_weights, device=a.device,
        progress=not a.no_progress, quick=a.quick)
    run_study(opts, command=argv_text)
