"""One training iteration: the learning-rate schedules, the D and G steps (Eq. 8-9) and the orders they run in.

The loss sums are the task's (tasks.py, losses.py); a step here only runs them under the run's precision, steps the
optimiser when everything is finite, and keeps the EMA generator.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn

from ..progress import HEARTBEAT_SECONDS
from ..tasks import Prepared, outputs_for_adversarial
from .run import TrainRun, channels_last_inputs


def learning_rate(base: float, iteration: int, const_iters: int, decay_iters: int) -> float:
    """Constant for `const_iters`, then linear decay to 0 over `decay_iters` (paper: 100 + 100 epochs)."""
    if iteration < const_iters or decay_iters <= 0:
        return base
    return base * max(0.0, 1.0 - (iteration - const_iters) / decay_iters)


def lr_factor(schedule: str, iteration: int, iters_per_epoch: int, epochs_const: int, epochs_decay: int) -> float:
    """The learning-rate multiplier of `train.lr_schedule` at an iteration (k = its 0-based epoch).

    linear:  1 for epochs_const epochs, then down to 0 iteration by iteration over epochs_decay epochs.
    spade:   1 - max(0, k - epochs_const) / epochs_decay, once per epoch: the semantic release lowers the lr by
             lr0 / niter_decay at the end of every epoch after niter (epochs 1..niter+1 at full lr, the last at 1 %).
    pix2pix: 1 - max(0, k + 2 - epochs_const) / (epochs_decay + 1): the cross-view release's "lambda" rule with
             epoch_count 1 (decay starts in epoch niter, the last epoch runs at 0).
    """
    k = iteration // max(iters_per_epoch, 1)
    if schedule == "spade":
        return max(0.0, 1.0 - max(0, k - epochs_const) / epochs_decay) if epochs_decay > 0 else 1.0
    if schedule == "pix2pix":
        return max(0.0, 1.0 - max(0, k + 2 - epochs_const) / (epochs_decay + 1))
    return learning_rate(1.0, iteration, epochs_const * iters_per_epoch, epochs_decay * iters_per_epoch)


def all_finite(loss: torch.Tensor, params: list[nn.Parameter]) -> bool:
    """Whether the loss and every gradient are finite: one fused reduction, one host sync."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    norms = torch._foreach_norm(grads) if grads else []
    return bool(torch.isfinite(torch.stack([loss.detach().float(), *[n.float() for n in norms]])).all())


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def _backward_and_step(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor,
                       params: list[nn.Parameter]) -> bool:
    """Backward, then the optimiser step unless the loss or a gradient is non-finite; returns whether it stepped."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if scaler.is_enabled():  # fp16: the scaler skips steps with inf/NaN gradients itself and lowers its scale
        scaler.step(opt)
        scaler.update()
        return bool(torch.isfinite(loss.detach()))
    ok = all_finite(loss, params)
    if ok:
        opt.step()
    return ok


def d_step(run: TrainRun, prep: Prepared, out: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
    """Discriminator step: the real image vs the detached fakes (Eq. 8-9 of the paper).

    The fakes are those of `out` (a G forward made for the G step) or, without it, of a no-grad forward of G now.
    """
    if out is None:
        with torch.no_grad():
            out = run.generate(prep, run.G)
    fakes = outputs_for_adversarial(out, run.cfg.model.use_local)
    run.Ds.requires_grad_(True)
    # The discriminators run under autocast inside run.d_step_nets; the losses themselves are fp32.
    loss, terms = run.task.discriminator_losses(run.d_step_nets, prep, fakes)
    return loss, terms, _backward_and_step(run.opt_d, run.scaler_d, loss, run.d_params)


def g_step(run: TrainRun, prep: Prepared, out: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
    """Generator step: the discriminators are frozen and called without DDP bookkeeping; EMA follows G.

    `out`: a G forward (with its graph) to reuse; without it G runs now.
    """
    run.Ds.requires_grad_(False)
    if out is None:
        out = run.generate(prep)
    # G's outputs are fp32 (run.generate); D and VGG run under autocast and return fp32; the loss sums are fp32.
    loss, terms = run.task.generator_losses(run.g_step_nets, prep, out, run.vgg)
    ok = _backward_and_step(run.opt_g, run.scaler_g, loss, run.g_params)
    if ok and run.G_ema is not None:
        ema_update(run.G_ema, run.G, run.cfg.train.ema_decay)
    return loss, terms, ok


Step = tuple[torch.Tensor, dict[str, torch.Tensor], bool]


def _d_then_g(run: TrainRun, prep: Prepared) -> tuple[Step, Step]:
    d = d_step(run, prep)
    return d, g_step(run, prep)


def _g_then_d(run: TrainRun, prep: Prepared) -> tuple[Step, Step]:
    g = g_step(run, prep)
    return d_step(run, prep), g  # the D step regenerates the fakes with the updated G (semantic release)


def _one_forward(run: TrainRun, prep: Prepared) -> tuple[Step, Step]:
    out = run.generate(prep)
    d = d_step(run, prep, out)  # judges the detached fakes; G's graph is kept for the G step
    return d, g_step(run, prep, out)


# train.step_order -> the two steps of one iteration, as (D step, G step) results.
STEP_ORDERS: dict[str, Callable[[TrainRun, Prepared], tuple[Step, Step]]] = {
    "d_then_g": _d_then_g, "g_then_d": _g_then_d, "one_forward": _one_forward,
}


def set_learning_rates(run: TrainRun) -> float:
    """Sets both optimisers' learning rates for this iteration (train.lr_schedule); returns the factor."""
    tc = run.cfg.train
    scale = lr_factor(tc.lr_schedule, run.iteration, run.data.iters_per_epoch, tc.epochs_const, tc.epochs_decay)
    for group in run.opt_g.param_groups:
        group["lr"] = tc.lr_g * scale
    for group in run.opt_d.param_groups:
        group["lr"] = tc.lr_d * scale
    return scale


def _log_record(run: TrainRun, epoch: int, lr_scale: float, ips: float, d_loss: torch.Tensor, g_loss: torch.Tensor,
                terms: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Every loss term as a float: the one host sync of a log step (all values in one transfer)."""
    names = ["D_total", "G_total", *terms]
    values = torch.stack([d_loss.detach().float(), g_loss.detach().float(),
                          *[v.detach().float().reshape(()) for v in terms.values()]]).tolist()
    return {"iteration": run.iteration, "epoch": epoch, "lr_g": run.cfg.train.lr_g * lr_scale,
            "lr_d": run.cfg.train.lr_d * lr_scale,
            "img_per_s": ips, **dict(zip(names, values))}


@dataclass
class LoopStats:
    """Counters of the loop (this process's images and time; the non-finite streak)."""

    stopped_by: str = "finished"  # "finished" | "signal" | "nonfinite" | "time budget"
    nonfinite_streak: int = 0
    images_seen: int = 0
    images_per_second: float = 0.0  # smoothed, for the progress bar and log
    started: float = field(default_factory=time.time)
    last_record: float | None = None  # time.time() of this session's last log record; None before the first


def train_iteration(run: TrainRun, batch: Any, epoch: int, stats: LoopStats) -> dict[str, Any] | None:
    """One iteration: lr, D step, G step, counters; returns the log record on log steps (the only host sync)."""
    tc, di = run.cfg.train, run.dist
    t0 = time.time()
    lr_scale = set_learning_rates(run)
    prep = run.task.prepare(batch, run.device)
    if run.channels_last():
        prep = channels_last_inputs(prep)
    (d_loss, d_terms, d_ok), (g_loss, g_terms, g_ok) = STEP_ORDERS[tc.step_order](run, prep)
    if d_ok and g_ok:
        stats.nonfinite_streak = 0
    else:
        stats.nonfinite_streak += 1
        run.opt_g.zero_grad(set_to_none=True)
        run.opt_d.zero_grad(set_to_none=True)
        if di.is_main:
            warnings.warn(f"iteration {run.iteration}: non-finite loss or gradients, step skipped "
                          f"({stats.nonfinite_streak} in a row)", stacklevel=1)
    run.iteration += 1
    step_images = tc.batch_size  # the global batch
    stats.images_seen += step_images
    rate = step_images / max(time.time() - t0, 1e-9)
    stats.images_per_second = 0.9 * stats.images_per_second + 0.1 * rate if stats.images_per_second else rate
    # A record every log_every iterations, at the last, at a session's first (a run shows at once that it trains) and
    # at least every HEARTBEAT_SECONDS whatever log_every is (a slow run is never silent for long).
    now = time.time()
    if (run.iteration % tc.log_every == 0 or run.iteration == run.total or stats.last_record is None
            or now - stats.last_record >= HEARTBEAT_SECONDS):
        stats.last_record = now
        return _log_record(run, epoch, lr_scale, stats.images_per_second, d_loss, g_loss, {**d_terms, **g_terms})
    return None
