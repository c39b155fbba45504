"""The training loop: a D step then a G step per iteration; the rest (losses, networks, data) lives elsewhere.

Single process: `lggan train ...`. Several processes/GPUs/nodes: `torchrun --nproc_per_node N -m lggan train ...`
(DistributedDataParallel, one DistributedSampler shard per rank, synchronised BatchNorm in SPADE on GPUs; rank 0
alone writes logs, samples and checkpoints).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from . import checkpoint as ckpt
from .config import Config
from .tasks import Task, make_task, outputs_for_adversarial
from .viz import make_grid, save_png


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this call initialised the process group, so it also tears it down

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; anything else is passed to torch.device (clear error if absent)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r}: CUDA is not available on this machine")
    return dev


def setup_distributed(device_name: str) -> DistInfo:
    """Reads torchrun's environment; initialises the process group (NCCL on GPUs, gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo(device=resolve_device(device_name))
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device, owns)


class SeededAugment(Dataset):
    """Wraps a dataset so that each sample's random crop/flip is drawn from a seed of (run seed, epoch, index).

    This makes augmentation independent of worker count and order, so `--resume` replays the exact same data.
    """

    def __init__(self, base: Dataset, seed: int):
        self.base, self.seed, self.epoch = base, seed, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch * 10_007 + index) % (2**63 - 1))
            return self.base[index]


class SkipBatches(BatchSampler):
    """A BatchSampler over a DistributedSampler that can start an epoch after `skip` batches (for resume)."""

    def __init__(self, sampler: DistributedSampler, batch_size: int):
        super().__init__(sampler, batch_size, drop_last=True)
        self.skip = 0

    def __iter__(self) -> Iterator[list[int]]:
        for i, batch in enumerate(super().__iter__()):
            if i >= self.skip:
                yield batch


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the main process, which saves a checkpoint before it exits.

    A terminal's Ctrl-C (or a scheduler's SIGTERM to the process group) reaches the workers too; if they died on it,
    the main process would crash on the lost worker instead of finishing its iteration and saving.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def learning_rate(base: float, iteration: int, const_iters: int, decay_iters: int) -> float:
    """Constant for `const_iters`, then linear decay to 0 over `decay_iters` (paper: 100 + 100 epochs)."""
    if iteration < const_iters or decay_iters <= 0:
        return base
    return base * max(0.0, 1.0 - (iteration - const_iters) / decay_iters)


def amp_settings(mode: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a grad scaler). bf16 autocast on CUDA by default; always off on CPU."""
    if device.type != "cuda" or mode == "off":
        return None, False
    if mode in ("auto", "bf16"):
        return torch.bfloat16, False
    return torch.float16, True


def unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to save a checkpoint and stop; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
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


class RunLog:
    """JSONL log of every loss term (+ TensorBoard events when tensorboard is installed), rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.file = None
        self.tb = None
        if not enabled:
            return
        self.file = open(run_dir / "log.jsonl", "a", buffering=1)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        except Exception:  # tensorboard is an optional extra
            self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "iteration":
                    self.tb.add_scalar(k, v, record["iteration"])

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.tb:
            self.tb.close()


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    stopped_by: str  # "finished" | "signal" | "nonfinite"
    last_checkpoint: Path | None
    images_per_second: float
    peak_memory_mb: float
    generator: nn.Module  # the trained G (unwrapped from DDP)
    signal: int | None = None  # the signal that stopped the run, if any


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    except Exception:
        return float("nan")


def _grads_finite(params: list[nn.Parameter]) -> bool:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    return bool(torch.isfinite(torch.stack([g.detach().float().norm() for g in grads])).all())


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def build_vgg(cfg: Config, device: torch.device) -> nn.Module | None:
    if cfg.loss.vgg <= 0:
        return None
    from .losses import VGGLoss

    return VGGLoss(weights_path=cfg.loss.vgg_weights).to(device).eval()


def train(cfg: Config, out_dir: str | os.PathLike, data_root: str | None = None, resume: bool = False) -> TrainResult:
    """Trains `cfg` into the run folder `out_dir`; with `resume`, continues from its newest good checkpoint."""
    di = setup_distributed(cfg.train.device)
    device, tc = di.device, cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    run_dir = Path(out_dir)
    if di.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        existing = ckpt.list_checkpoints(run_dir)
        if existing and not resume:
            raise FileExistsError(
                f"--out {run_dir}: already holds checkpoints (newest {existing[-1].name}); pass --resume to "
                "continue it, or choose another folder"
            )
    task: Task = make_task(cfg, data_root)
    train_set, val_set = task.build_datasets()
    if len(train_set) < tc.batch_size * di.world_size:
        raise ValueError(
            f"train.batch_size={tc.batch_size}: the training split has only {len(train_set)} samples for "
            f"{di.world_size} process(es)"
        )

    torch.manual_seed(tc.seed)  # same initial weights on every rank
    G = task.build_generator().to(device)
    Ds = task.build_discriminators().to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if tc.ema_decay > 0 else None
    vgg = build_vgg(cfg, device)

    g_lr, d_lr, beta2 = tc.lr, tc.lr, tc.beta2
    if tc.ttur:
        g_lr, d_lr, beta2 = tc.lr / 2, tc.lr * 2, 0.9
    opt_g = torch.optim.Adam(G.parameters(), lr=g_lr, betas=(tc.beta1, beta2))
    opt_d = torch.optim.Adam(Ds.parameters(), lr=d_lr, betas=(tc.beta1, beta2))
    amp_dtype, use_scaler = amp_settings(tc.amp, device)
    scaler_g = torch.amp.GradScaler("cuda", enabled=use_scaler)
    scaler_d = torch.amp.GradScaler("cuda", enabled=use_scaler)

    iteration = 0
    if resume:
        found = ckpt.load_latest(run_dir)
        if found is None:
            raise FileNotFoundError(f"--resume: no loadable checkpoint in {run_dir / ckpt.CKPT_DIR}")
        G.load_state_dict(found.generator)
        Ds.load_state_dict(found.discriminator)
        if G_ema is not None:
            G_ema.load_state_dict(found.generator_ema or found.generator)
        opt_g.load_state_dict(found.state["opt_g"])
        opt_d.load_state_dict(found.state["opt_d"])
        if use_scaler and "scaler_g" in found.state:
            scaler_g.load_state_dict(found.state["scaler_g"])
            scaler_d.load_state_dict(found.state["scaler_d"])
        if "torch_rng" in found.state:
            torch.set_rng_state(found.state["torch_rng"])
        iteration = found.iteration
        if di.is_main:
            print(f"resumed from {found.path} (iteration {iteration})", flush=True)

    # D_train: what the D step calls (DDP wrappers when distributed); Ds: the plain modules (G step, saving).
    D_train: dict[str, nn.Module] = dict(Ds.items())
    if di.world_size > 1:
        if device.type == "cuda":  # SyncBatchNorm runs on GPUs only; on CPU (gloo) DDP broadcasts BN buffers
            G = nn.SyncBatchNorm.convert_sync_batchnorm(G)
        # The per-class weights are one stacked tensor, so classes absent from a batch still get (zero) gradients;
        # only the classifier goes unused, when the class loss is off.
        ddp_kw = dict(device_ids=[device.index] if device.type == "cuda" else None)
        unused = cfg.model.use_local and cfg.loss.class_ce == 0
        G = nn.parallel.DistributedDataParallel(G, find_unused_parameters=unused, **ddp_kw)
        D_train = {k: nn.parallel.DistributedDataParallel(v, **ddp_kw) for k, v in Ds.items()}

    sampler = DistributedSampler(train_set, num_replicas=di.world_size, rank=di.rank, shuffle=True, seed=tc.seed,
                                 drop_last=True)
    batches = SkipBatches(sampler, tc.batch_size)
    seeded = SeededAugment(train_set, tc.seed)
    loader_kw = dict(num_workers=cfg.data.num_workers, collate_fn=task.collate,
                     pin_memory=device.type == "cuda", persistent_workers=False,
                     worker_init_fn=_ignore_stop_signals if cfg.data.num_workers > 0 else None)
    iters_per_epoch = len(batches) if len(sampler) >= tc.batch_size else 0
    const_iters = tc.epochs_const * iters_per_epoch
    decay_iters = tc.epochs_decay * iters_per_epoch
    total = tc.iterations if tc.iterations is not None else const_iters + decay_iters

    sample_prep = None
    if di.is_main:
        cfg.save_json(run_dir / "config.json")
        sample_src = val_set if val_set is not None and len(val_set) > 0 else train_set
        n = min(tc.num_samples, len(sample_src))
        sample_batch = task.collate([sample_src[i] for i in range(n)])
        sample_prep = task.prepare(sample_batch, device)
    log = RunLog(run_dir, di.is_main)
    progress = tc.progress and di.is_main

    def state_dict() -> dict[str, Any]:
        st = {"opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "seed": tc.seed,
              "torch_rng": torch.get_rng_state()}
        if use_scaler:
            st.update(scaler_g=scaler_g.state_dict(), scaler_d=scaler_d.state_dict())
        return st

    last_ckpt: Path | None = None

    def save() -> Path | None:
        nonlocal last_ckpt
        if di.is_main:
            last_ckpt = ckpt.save_checkpoint(run_dir, iteration, unwrap(G), Ds,
                                             state_dict(), cfg.to_dict(), G_ema, keep_last=tc.keep_last)
        if di.world_size > 1:
            dist.barrier()
        return last_ckpt

    def write_samples() -> None:
        if not di.is_main:
            return
        gen = G_ema if G_ema is not None else unwrap(G)
        was_training = gen.training
        gen.eval()
        with torch.no_grad():
            out = gen(*sample_prep.gen_inputs)
        gen.train(was_training)
        grid = make_grid(task.grid_columns(sample_prep, out))
        save_png(grid, run_dir / "samples" / f"iter_{iteration:08d}.png")

    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    g_params = [p for p in G.parameters() if p.requires_grad]
    d_params = [p for p in Ds.parameters() if p.requires_grad]
    nonfinite_streak = 0
    stopped_by = "finished"
    images_seen, t_start = 0, time.time()
    ips = 0.0

    with _StopFlag() as stop:
        while iteration < total and iters_per_epoch > 0:
            epoch, in_epoch = divmod(iteration, iters_per_epoch)
            sampler.set_epoch(epoch)
            seeded.epoch = epoch
            batches.skip = in_epoch
            loader = DataLoader(seeded, batch_sampler=batches, **loader_kw)
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=iters_per_epoch, initial=in_epoch, desc=f"epoch {epoch}", dynamic_ncols=True,
                           leave=False)
            for batch in loader:
                t0 = time.time()
                lr_scale = learning_rate(1.0, iteration, const_iters, decay_iters)
                for group in opt_g.param_groups:
                    group["lr"] = g_lr * lr_scale
                for group in opt_d.param_groups:
                    group["lr"] = d_lr * lr_scale
                prep = task.prepare(batch, device)

                # D step: fakes from the current G without tracking its graph.
                with torch.no_grad(), autocast():
                    out = unwrap(G)(*prep.gen_inputs)
                fakes = outputs_for_adversarial(out, cfg.model.use_local)
                Ds.requires_grad_(True)
                with autocast():
                    d_loss, d_terms = task.discriminator_losses(D_train, prep, fakes)
                opt_d.zero_grad(set_to_none=True)
                scaler_d.scale(d_loss).backward()
                scaler_d.unscale_(opt_d)
                d_ok = use_scaler or _grads_finite(d_params)
                if d_ok:
                    scaler_d.step(opt_d)
                scaler_d.update()

                # G step: the discriminators are frozen and called without DDP bookkeeping.
                Ds.requires_grad_(False)
                with autocast():
                    out = G(*prep.gen_inputs)
                    g_loss, g_terms = task.generator_losses(dict(Ds.items()), prep, out, vgg)
                opt_g.zero_grad(set_to_none=True)
                scaler_g.scale(g_loss).backward()
                scaler_g.unscale_(opt_g)
                g_ok = use_scaler or _grads_finite(g_params)
                if g_ok:
                    scaler_g.step(opt_g)
                    if G_ema is not None:
                        _ema_update(G_ema, unwrap(G), tc.ema_decay)
                scaler_g.update()

                if d_ok and g_ok and math.isfinite(float(g_loss.detach())) and math.isfinite(float(d_loss.detach())):
                    nonfinite_streak = 0
                else:
                    nonfinite_streak += 1
                    opt_g.zero_grad(set_to_none=True)
                    opt_d.zero_grad(set_to_none=True)
                    if di.is_main:
                        warnings.warn(f"iteration {iteration}: non-finite loss or gradients, step skipped "
                                      f"({nonfinite_streak} in a row)", stacklevel=1)
                iteration += 1
                images_seen += tc.batch_size * di.world_size
                dt = max(time.time() - t0, 1e-9)
                ips = 0.9 * ips + 0.1 * (tc.batch_size * di.world_size / dt) if ips else tc.batch_size / dt

                terms = {k: float(v) for k, v in {**d_terms, **g_terms}.items()}
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(img_s=f"{ips:.1f}", D=f"{float(d_loss.detach()):.3f}", G=f"{float(g_loss.detach()):.3f}")
                if iteration % tc.log_every == 0 or iteration == total:
                    log.write({"iteration": iteration, "epoch": epoch, "lr_g": g_lr * lr_scale,
                               "lr_d": d_lr * lr_scale, "img_per_s": ips, "D_total": float(d_loss.detach()),
                               "G_total": float(g_loss.detach()), **terms})
                if nonfinite_streak >= tc.max_nonfinite:
                    stopped_by = "nonfinite"
                    break
                if iteration % tc.sample_every == 0:
                    write_samples()
                if iteration % tc.checkpoint_every == 0:
                    save()
                if stop.signal is not None or iteration >= total:
                    break
            if bar is not None:
                bar.close()
            if stopped_by == "nonfinite":
                break
            if stop.signal is not None:
                stopped_by = "signal"
                break

        if stopped_by == "nonfinite":
            log.close()
            raise FloatingPointError(
                f"training stopped at iteration {iteration}: {nonfinite_streak} consecutive non-finite losses or "
                f"gradients (train.max_nonfinite={tc.max_nonfinite}); the last good checkpoint is kept "
                f"({last_ckpt or 'none written in this run'}); try a lower train.lr or train.amp=off"
            )
        if di.world_size > 1:
            # Batch-norm statistics drift apart when each rank updates them on its own shard; rank 0's win.
            for buf in unwrap(G).buffers():
                dist.broadcast(buf, 0)
        if last_ckpt is None or last_ckpt.name != f"iter_{iteration:08d}":
            save()
        if iteration % tc.sample_every != 0:
            write_samples()
    log.close()
    if di.owns_group:
        dist.destroy_process_group()
    elapsed = time.time() - t_start
    result = TrainResult(run_dir, iteration, stopped_by, last_ckpt, images_seen / max(elapsed, 1e-9),
                         _peak_memory_mb(device), unwrap(G), stop.signal)
    if di.is_main and stopped_by == "signal":
        print(f"stopped by signal {stop.signal}: checkpoint saved at iteration {iteration} ({last_ckpt}); "
              f"continue with --resume", flush=True)
    return result

