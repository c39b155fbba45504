"""What a run tells its user: the resolved config and speed plan, the start-up banner, the progress bar or lines."""

from __future__ import annotations

import datetime
import json
import warnings
from typing import Any

import torch.nn as nn

from ..io import atomic_write_text
from ..progress import stderr_is_terminal
from ..runtime import unwrap
from .run import TrainRun

RUN_INFO_FILE = "run_info.json"


def announce(run: TrainRun) -> None:
    """Rank 0, before the first iteration: the resolved config.json, run_info.json and the banner."""
    if not run.dist.is_main:
        return
    run.cfg.save_json(run.run_dir / "config.json")
    record_plan(run)
    print("\n".join(banner_lines(run)), flush=True)


def record_plan(run: TrainRun) -> None:
    """Writes the speed decisions to run_info.json (rank 0; replaced on --resume); the banner prints them."""
    if run.plan is None:
        return
    note = run.plan.emulated_bf16_note()
    if note:
        warnings.warn(note, stacklevel=1)
    info = {**run.plan.to_dict(), "iteration": run.iteration, "world_size": run.dist.world_size,
            "time": datetime.datetime.now().isoformat(timespec="seconds")}
    atomic_write_text(run.run_dir / RUN_INFO_FILE, json.dumps(info, indent=2) + "\n")


# The generator's top-level parts, as the banner names them (both tasks' generators use these attribute names).
GENERATOR_PARTS = {"encoder": "encoder", "global_generator": "global G_g", "local": "local G_l",
                   "classifier": "classifier", "weight_map": "weight map"}


def parameter_count(module: nn.Module) -> int:
    """Number of parameter values."""
    return sum(p.numel() for p in module.parameters())  # parameters() lists a shared tensor once


def generator_parameter_counts(G: nn.Module) -> dict[str, int]:
    """G's parameters per top-level part (encoder, global G_g, local G_l, classifier, weight map), in that order;
    the values add up to parameter_count(G) ("other": parameters outside those parts)."""
    G = unwrap(G)
    counts: dict[str, int] = {}
    for name, child in G.named_children():
        n = parameter_count(child)
        if n:
            label = GENERATOR_PARTS.get(name, name)
            counts[label] = counts.get(label, 0) + n
    rest = parameter_count(G) - sum(counts.values())
    if rest:
        counts["other"] = rest
    return counts


def _fmt_count(n: int) -> str:
    return f"{n:,}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def banner_lines(run: TrainRun) -> list[str]:
    """The start-up banner (rank 0): device and precision, parameter counts, data sizes, schedule, run folder."""
    tc, di = run.cfg.train, run.dist
    g_parts = generator_parameter_counts(run.G)
    d_parts = {name: parameter_count(D) for name, D in run.Ds.items()}
    ipe = run.data.iters_per_epoch
    share = f"{run.total / ipe:.3g}" if ipe else ""
    epochs = (f"{share} epoch" + ("" if share == "1" else "s")) if ipe else "no full batch in an epoch"
    per_rank = (f" ({tc.batch_size // di.world_size} per process x {di.world_size} processes)"
                if di.world_size > 1 else "")
    split = run.task.default_split()  # the held-out split: val (semantic), test (cross-view: the release has no val)
    val = (f"{run.num_val} {split} images" if run.num_val is not None
           else f"no {split} split (samples from training images)")
    dc = run.cfg.data
    where = f" at {run.task.data_root}" if getattr(run.task, "data_root", None) else ""
    device = run.plan.line().removeprefix("device ") if run.plan is not None else str(run.device)
    lines = [
        f"lggan train: run folder {run.run_dir}",
        f"  device:     {device}",
        f"  generator:  G {_fmt_count(parameter_count(run.G))} parameters ("
        + " | ".join(f"{k} {_fmt_count(v)}" for k, v in g_parts.items()) + ")"
        + (", plus an EMA copy" if run.G_ema is not None else ""),
        f"  discrim.:   D {_fmt_count(parameter_count(run.Ds))} parameters ("
        + " | ".join(f"{k} {_fmt_count(v)}" for k, v in d_parts.items()) + ")",
        f"  data:       {dc.dataset}{where}: {run.num_train} train images, {val}",
        f"  schedule:   batch {tc.batch_size}{per_rank}, {_plural(ipe, 'iteration')} per epoch, "
        f"{_plural(run.total, 'iteration')} in total ({epochs})"
        + (f", from iteration {run.iteration}" if run.iteration else "")
        + (f", at most {tc.max_seconds:g} s" if tc.max_seconds is not None else ""),
        f"  every:      log {tc.log_every}, samples {tc.sample_every}, checkpoint {tc.checkpoint_every} iterations"
        + (f", eval {tc.eval_every}" if tc.eval_every else "")
        + f" (progress: {'bar' if progress_bar_wanted(tc.progress) else 'a line per log step'})",
        *(f"  note:       {note}" for note in run.task.config_notes()),
    ]
    return lines


def progress_bar_wanted(progress: bool) -> bool:
    """Whether the run shows a tqdm bar: train.progress=true and stderr (where tqdm draws) is a terminal.

    Otherwise (train.progress=false, or stderr redirected to a file or pipe, as in cluster jobs) rank 0 prints one
    plain line per log step to stdout instead.
    """
    return progress and stderr_is_terminal()


def format_duration(seconds: float) -> str:
    """45s, 3m10s, 2h05m."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Rank 0's progress report over the whole run: one tqdm bar (iterations/total, ETA, img/s, D and G losses), or,
    when the bar is off (`progress_bar_wanted`), a plain line per log record (every train.log_every iterations, the
    session's first, the last, and at least one a minute):

        iter 120/375 (32%) epoch 0 4.1 img/s D 1.234 G 4.567 eta 3m10s
    """

    def __init__(self, run: TrainRun, enabled: bool):
        self.run = run
        self.start_iteration = run.iteration
        self.start_seconds = run.train_seconds
        self.bar = None
        self.lines = False
        if not enabled:
            return
        if progress_bar_wanted(run.cfg.train.progress):
            from tqdm import tqdm

            self.bar = tqdm(total=run.total, initial=run.iteration, desc="train", unit="it", dynamic_ncols=True,
                            leave=True, smoothing=0.05)
        else:
            self.lines = True

    def epoch(self, epoch: int) -> None:
        if self.bar is not None:
            self.bar.set_description(f"epoch {epoch}")

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def eta_seconds(self, train_seconds: float) -> float | None:
        """Seconds to the end: the remaining iterations at this session's pace, or the time budget if sooner."""
        run = self.run
        done, spent = run.iteration - self.start_iteration, train_seconds - self.start_seconds
        eta = (run.total - run.iteration) * spent / done if done > 0 and spent > 0 else None
        limit = run.cfg.train.max_seconds
        if limit is not None:
            left = max(0.0, limit - train_seconds)
            eta = left if eta is None else min(eta, left)
        return eta

    def record(self, record: dict[str, Any], train_seconds: float) -> None:
        """A log step: the bar's postfix, or one line."""
        if self.bar is not None:
            self.bar.set_postfix(img_s=f"{record['img_per_s']:.1f}", D=f"{record['D_total']:.3f}",
                                 G=f"{record['G_total']:.3f}")
        elif self.lines:
            print(self.line(record, train_seconds), flush=True)

    def line(self, record: dict[str, Any], train_seconds: float) -> str:
        it, total = record["iteration"], self.run.total
        eta = self.eta_seconds(train_seconds)
        return (f"iter {it}/{total} ({100 * it // max(total, 1)}%) epoch {record['epoch']} "
                f"{record['img_per_s']:.1f} img/s D {record['D_total']:.3f} G {record['G_total']:.3f} "
                f"eta {format_duration(eta) if eta is not None else '?'}")

    def write(self, text: str) -> None:
        """A message that does not break the bar."""
        if self.bar is not None:
            self.bar.write(text)
        elif self.lines:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def eval_line(record: dict[str, Any]) -> str:
    """One line for an evaluation record of log.jsonl (kind "eval")."""
    text = (f"eval iter {record['iteration']}: mIoU {record['eval_miou']:.2f}, pixel accuracy "
            f"{record['eval_pixel_accuracy']:.2f} ({record['eval_images']} images)")
    if "eval_miou_real" in record:
        text += f"; real photos: mIoU {record['eval_miou_real']:.2f}, " \
                f"pixel accuracy {record['eval_pixel_accuracy_real']:.2f}"
    return text
