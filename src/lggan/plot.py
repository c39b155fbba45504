"""`lggan plot RUN`: a run's loss and metric curves (from RUN/log.jsonl) in one PNG.

Training records (one per log step) give the loss panels: the totals D_total and G_total first, then each group of
loss terms in its own panel (the discriminator's terms, G's adversarial terms, feature matching, VGG, image L1, the
local L1, the class loss, total variation). Evaluation records ("kind": "eval", from train.eval_every) give the
metric panels: mIoU and pixel accuracy, with the real photos' score as a dashed line where it was logged.

Drawn with matplotlib's Agg canvas directly (no pyplot, no global backend change).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .io import atomic_write

LOG_FILE = "log.jsonl"
DEFAULT_OUT = "curves.png"
# Numbers of a training record that are not losses.
NOT_LOSSES = {"iteration", "epoch", "lr_g", "lr_d", "img_per_s"}
# Loss panels: (title, does this key belong to it), in drawing order; the first match wins.
LOSS_GROUPS: list[tuple[str, Any]] = [
    ("totals (D_total, G_total)", lambda k: k in ("D_total", "G_total")),
    ("discriminator terms", lambda k: k.startswith("D_")),
    ("G adversarial", lambda k: k.startswith("G_gan_")),
    ("G feature matching", lambda k: k.startswith("G_fm_")),
    ("G VGG perceptual", lambda k: k.startswith("G_vgg_")),
    ("G image L1", lambda k: k.startswith("G_l1_")),
    ("G local L1 (per class)", lambda k: k == "G_local_l1"),
    ("G class-specific CE", lambda k: k == "G_class_ce"),
    ("G total variation", lambda k: k.startswith("G_tv_")),
    ("other G terms", lambda k: k.startswith("G_")),
]
# Metric panels: (title, the generated images' key, the real photos' key).
METRICS = [("mIoU (%, segmenter on generated images)", "eval_miou", "eval_miou_real"),
           ("pixel accuracy (%)", "eval_pixel_accuracy", "eval_pixel_accuracy_real")]


def read_log(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training records, eval records) of a run folder's log.jsonl (or the file itself), by iteration.

    A resumed run logs the iterations after its checkpoint again: the last record of each iteration is kept. A
    line cut short by a killed process is skipped.
    """
    p = Path(path)
    log = p / LOG_FILE if p.is_dir() else p
    if p.is_dir() and not log.is_file():
        raise FileNotFoundError(f"{p}: no {LOG_FILE} in this folder (not a run folder of `lggan train`, or it has "
                                "not started training yet)")
    if not log.is_file():
        raise FileNotFoundError(f"{p}: no such run folder or log file")
    train: dict[int, dict[str, Any]] = {}
    evals: dict[int, dict[str, Any]] = {}
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("iteration"), int):
                continue
            (evals if rec.get("kind") == "eval" else train)[rec["iteration"]] = rec
    if not train and not evals:
        raise ValueError(f"{log}: no log records yet (a run writes one every train.log_every iterations)")
    return [train[k] for k in sorted(train)], [evals[k] for k in sorted(evals)]


def loss_panels(records: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """The loss panels of training records: (title, keys), keys in first-seen order, empty groups left out."""
    keys: list[str] = []
    for rec in records:
        keys += [k for k, v in rec.items() if k not in keys and k not in NOT_LOSSES and _is_number(v)]
    panels: dict[str, list[str]] = {}
    for key in keys:
        for title, belongs in LOSS_GROUPS:
            if belongs(key):
                panels.setdefault(title, []).append(key)
                break
    order = [title for title, _ in LOSS_GROUPS]
    return sorted(panels.items(), key=lambda item: order.index(item[0]))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for rec in records:
        v = rec.get(key)
        if _is_number(v) and math.isfinite(v):
            xs.append(rec["iteration"])
            ys.append(float(v))
    return xs, ys


def _smooth(ys: list[float], window: int) -> list[float]:
    """Trailing moving average over `window` points."""
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= window:
            acc -= ys[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_run(run: str | os.PathLike, out: str | os.PathLike | None = None, overwrite: bool = False
             ) -> dict[str, Any]:
    """Draws RUN/log.jsonl's curves into `out` (default RUN/curves.png, the run's own figure, redrawn each time);
    a chosen `out` that exists is replaced only with `overwrite`. Returns what was drawn."""
    from .io import check_outputs

    run_path = Path(run)
    run_dir = run_path if run_path.is_dir() else run_path.parent
    if out is not None:
        if Path(out).suffix.lower() != ".png":
            raise ValueError(f"--out {out}: expected a .png file name")
        check_outputs("--out", (out,), overwrite, inputs={"RUN": run_path if run_path.is_file() else None})
    train, evals = read_log(run)
    out = Path(out) if out is not None else run_dir / DEFAULT_OUT
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise RuntimeError("lggan plot needs matplotlib, which is not installed (pip install matplotlib)") from None

    losses = loss_panels(train)
    metrics = [(title, key, real) for title, key, real in METRICS if any(key in r for r in evals)]
    n = len(losses) + len(metrics)
    cols = min(3, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(5.0 * cols, 3.4 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(f"{run_dir.name or run_dir}: {len(train)} log steps, {len(evals)} evaluations")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(max(n, 1))]
    if n == 0:
        axes[0].text(0.5, 0.5, "no numeric loss or metric in the log", ha="center", va="center")
        axes[0].set_axis_off()
    window = max(1, len(train) // 50)  # a smoothed line over ~2 % of the run, above the raw values
    for ax, (title, keys) in zip(axes, losses):
        for key in keys:
            xs, ys = _series(train, key)
            if window > 1:
                line, = ax.plot(xs, ys, linewidth=0.6, alpha=0.3)
                ax.plot(xs, _smooth(ys, window), color=line.get_color(), linewidth=1.2, label=key)
            else:
                ax.plot(xs, ys, linewidth=1.0, label=key)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    for ax, (title, key, real) in zip(axes[len(losses):], metrics):
        xs, ys = _series(evals, key)
        line, = ax.plot(xs, ys, marker="o", markersize=3, label="generated")
        reals = _series(evals, real)[1]
        if reals:
            ax.axhline(reals[0], color=line.get_color(), linestyle="--", linewidth=1.0, label="real photos")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
    iterations = [r["iteration"] for r in train + evals]
    return {"out": out, "loss_panels": len(losses), "metric_panels": len(metrics), "log_steps": len(train),
            "evaluations": len(evals), "first_iteration": min(iterations), "last_iteration": max(iterations),
            "panels": [t for t, _ in losses] + [t for t, _, _ in metrics]}
