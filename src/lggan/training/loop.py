"""The training loop: build the run, then iterations until the total, a stop signal, the time budget or too many
non-finite steps; samples, checkpoints and evaluations on their schedules.

    build_run()  ->  announce()  ->  for each batch: train_iteration() -> log / samples / save() / evaluate
                 ->  finish()    ->  close_run()
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
import torch.nn as nn

from .. import precision
from ..config import Config
from ..runtime import peak_memory_mb
from ..viz import make_grid, save_png
from .evaluator import eval_record
from .report import Progress, announce, eval_line
from .run import TrainRun, build_run, close_run, save
from .steps import LoopStats, train_iteration


class StopFlag:
    """SIGINT/SIGTERM ask the loop to save a checkpoint and stop; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    stopped_by: str  # "finished" | "signal" | "nonfinite" | "time budget"
    last_checkpoint: Path | None
    images_per_second: float
    peak_memory_mb: float
    generator: nn.Module  # the trained G (never a DDP wrapper)
    signal: int | None = None  # the signal that stopped the run, if any
    train_seconds: float = 0.0  # training time of the whole run, across resumes (evaluation excluded)
    is_main: bool = True  # rank 0 (or the only process): the one that reports; torchrun's other ranks stay quiet


def write_samples(run: TrainRun) -> None:
    """Rank 0: the sample grid of the fixed batch through the EMA generator (or G) in eval mode."""
    if not run.dist.is_main:
        return
    gen = run.G_ema if run.G_ema is not None else run.G
    was_training = gen.training
    gen.eval()
    with torch.no_grad():
        out = gen(*run.sample_prep.gen_inputs)
    gen.train(was_training)
    grid = make_grid(run.task.grid_columns(run.sample_prep, out))
    save_png(grid, run.run_dir / "samples" / f"iter_{run.iteration:08d}.png")
    run.log.add_image("samples", grid, run.iteration)  # TensorBoard, when installed


def evaluate_now(run: TrainRun) -> dict[str, Any] | None:
    """Rank 0: scores the EMA generator (or G) with the segmenter and logs it (train.eval_every); None if off."""
    if run.evaluator is None or run.last_eval == run.iteration:
        return None
    gen = run.G_ema if run.G_ema is not None else run.G

    def forward(inputs: tuple[torch.Tensor, ...]) -> Any:
        if run.channels_last():
            inputs = tuple(precision.channels_last_input(t) for t in inputs)
        with run.autocast():
            return precision.to_float(gen(*inputs))

    scores = run.evaluator(gen, forward)
    # The real photos' score (the ceiling) goes into the first record of each process.
    real = run.evaluator.real if run.last_eval < 0 else None
    record = eval_record(run.iteration, scores, real, run.evaluator.num_images)
    run.log.write(record)
    run.last_eval = run.iteration
    return record


def finish(run: TrainRun) -> None:
    """End of the loop: align BN statistics across ranks, save the last iteration, write its samples."""
    if run.dist.world_size > 1:
        # Batch-norm statistics drift apart when each rank updates them on its own shard; rank 0's win.
        for buf in run.G.buffers():
            dist.broadcast(buf, 0)
    if run.last_ckpt is None or run.last_ckpt.name != f"iter_{run.iteration:08d}":
        save(run)
    if run.iteration % run.cfg.train.sample_every != 0 and run.dist.is_main:
        write_samples(run)
    scores = evaluate_now(run)
    if scores is not None:
        print(eval_line(scores), flush=True)


def over_time_budget(run: TrainRun) -> bool:
    """Whether train.max_seconds of training have passed; every rank follows rank 0's clock."""
    limit = run.cfg.train.max_seconds
    if limit is None:
        return False
    over = run.train_seconds >= limit
    if run.dist.world_size > 1:  # the only case that needs a device round trip
        flag = torch.tensor([float(over)], device=run.device)
        dist.broadcast(flag, 0)
        over = bool(flag.item())
    return over


def batch_stream(run: TrainRun, stats: LoopStats, progress: Progress) -> Iterator[tuple[int, Any]]:
    """(epoch, batch) from the run's iteration on, epoch after epoch, while stats.stopped_by is "finished".

    The loop breaks out of it at the total; closing the stream (contextlib.closing) ends the current epoch's
    generator, also when an error propagates. The loader's persistent workers live on until close_run.
    """
    ipe = run.data.iters_per_epoch
    while run.iteration < run.total and ipe > 0 and stats.stopped_by == "finished":
        epoch, in_epoch = divmod(run.iteration, ipe)
        progress.epoch(epoch)
        with contextlib.closing(run.data.epoch_batches(epoch, in_epoch)) as batches:
            for batch in batches:
                yield epoch, batch


def train(cfg: Config, out_dir: str | os.PathLike, data_root: str | None = None, resume: bool = False) -> TrainResult:
    """Trains `cfg` into the run folder `out_dir`; with `resume`, continues from its newest good checkpoint."""
    run = build_run(cfg, out_dir, data_root, resume)
    tc, stats = cfg.train, LoopStats()
    try:
        announce(run)
        with StopFlag() as stop:
            if over_time_budget(run):  # a resumed run whose budget is spent trains nothing
                stats.stopped_by = "time budget"
            # One bar (or a line per log step) over the whole run, closed on every way out of the loop.
            with contextlib.closing(Progress(run, run.dist.is_main)) as progress, \
                    contextlib.closing(batch_stream(run, stats, progress)) as stream:
                tick = time.time()
                for epoch, batch in stream:
                    record = train_iteration(run, batch, epoch, stats)
                    progress.step()
                    if record is not None:
                        run.log.write(record)
                        progress.record(record, run.train_seconds + time.time() - tick)
                    if stats.nonfinite_streak >= tc.max_nonfinite:
                        stats.stopped_by = "nonfinite"
                        break
                    if run.iteration % tc.sample_every == 0:
                        write_samples(run)
                    if run.iteration % tc.checkpoint_every == 0:
                        save(run)
                    run.train_seconds += time.time() - tick  # the budget's clock stops while the evaluation runs
                    if tc.eval_every and run.iteration % tc.eval_every == 0 and (scores := evaluate_now(run)):
                        progress.write(eval_line(scores))
                    tick = time.time()
                    if over_time_budget(run):
                        stats.stopped_by = "time budget"
                        break
                    if stop.signal is not None or run.iteration >= run.total:
                        break
            if stop.signal is not None and stats.stopped_by == "finished":
                stats.stopped_by = "signal"
            if stats.stopped_by == "nonfinite":
                raise FloatingPointError(
                    f"training stopped at iteration {run.iteration}: {stats.nonfinite_streak} consecutive non-finite "
                    f"losses or gradients (train.max_nonfinite={tc.max_nonfinite}); the last good checkpoint is kept "
                    f"({run.last_ckpt or 'none written in this run'}); try a lower train.lr or train.amp=off"
                )
            finish(run)
    finally:
        close_run(run)
    if run.dist.owns_group:
        dist.destroy_process_group()
    elapsed = time.time() - stats.started
    result = TrainResult(run.run_dir, run.iteration, stats.stopped_by, run.last_ckpt,
                         stats.images_seen / max(elapsed, 1e-9), peak_memory_mb(run.device), run.G,
                         stop.signal, run.train_seconds, run.dist.is_main)
    if run.dist.is_main and stats.stopped_by == "signal":
        print(f"stopped by signal {stop.signal}: checkpoint saved at iteration {run.iteration} ({run.last_ckpt}); "
              f"continue with --resume", flush=True)
    return result
