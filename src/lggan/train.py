"""The training loop: build the run, then per iteration a D step and a G step; the rest lives elsewhere.

Losses are in losses.py, the per-task recipes (data, networks, loss sums, sample grids) behind the `Task` seam in
tasks.py, checkpoint files in checkpoint.py. This module only orchestrates:

    build_run()  ->  [restore()]  ->  loop: prepare -> d_step() -> g_step() -> log / samples / save()

Single process: `lggan train ...`. Several processes/GPUs/nodes: `torchrun --nproc_per_node N -m lggan train ...`
(DistributedDataParallel, one DistributedSampler shard per rank, synchronised BatchNorm in SPADE on GPUs; rank 0
alone holds the run folder's lock and writes logs, samples and checkpoints).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import json
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from . import checkpoint as ckpt
from . import precision
from .config import Config, architecture_changes, config_changes, missing_fields, validate
from .io import RunLock, append_jsonl, atomic_write_text, check_output_folder, one_line
from .progress import HEARTBEAT_SECONDS, stderr_is_terminal
from .tasks import Prepared, Task, make_task, outputs_for_adversarial
from .train_eval import TrainingEvaluator, eval_record
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
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r}: not a device name (auto, cpu, cuda, cuda:1, ...)") from None
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


# -- data ------------------------------------------------------------------------------------------------------


class DataLoadError(ValueError):
    """A training sample could not be loaded (raised in the main process with the worker's one-line reason)."""


@dataclass
class LoadFailure:
    """What a worker returns instead of a batch when loading failed: picklable, so it crosses the worker queue.

    Raising inside a worker would make the DataLoader re-raise a multi-line "Caught X in DataLoader worker"
    wrapper; returning the reason lets the main process stop with the one line and shut the workers down.
    """

    message: str


class SeededAugment(Dataset):
    """Wraps a dataset so that each sample's random crop/flip is drawn from a seed of (run seed, epoch, index).

    This makes augmentation independent of worker count and order, so `--resume` replays the exact same data.
    Items are asked for as (epoch, index) pairs (`SkipBatches` makes them): persistent loader workers keep their own
    copy of this object from the first epoch on, so the epoch has to travel with each index rather than be set here.
    A sample that fails to load comes back as a `LoadFailure` carrying the reason.
    """

    def __init__(self, base: Dataset, seed: int):
        self.base, self.seed = base, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch * 10_007 + index) % (2**63 - 1))
            try:
                return self.base[index]
            except Exception as e:  # any reason a file cannot be read: reported once, in the main process
                return LoadFailure(_one_line(e, f"training sample {index}"))


def _one_line(e: BaseException, where: str) -> str:
    """The reason on one line, naming the file: the datasets' own errors do; bare OS/decoder errors may not."""
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    text = one_line(e)
    return text if not isinstance(e, (OSError, SyntaxError, KeyError, IndexError)) else f"{where}: {text}"


class SafeCollate:
    """The task's collate, passing a `LoadFailure` of any sample through in place of the batch."""

    def __init__(self, collate: Callable[[list[Any]], Any]):
        self.collate = collate

    def __call__(self, samples: list[Any]) -> Any:
        for s in samples:
            if isinstance(s, LoadFailure):
                return s
        try:
            return self.collate(samples)
        except Exception as e:
            return LoadFailure(_one_line(e, "collating a batch"))


class SkipBatches(BatchSampler):
    """A BatchSampler over a DistributedSampler that can start an epoch after `skip` batches (for resume).

    Yields lists of (epoch, index) pairs for `SeededAugment`. It runs in the main process (a DataLoader asks it for
    the next batch there, also with persistent workers), so setting `epoch` and `skip` before an epoch reaches it.
    """

    def __init__(self, sampler: DistributedSampler, batch_size: int):
        super().__init__(sampler, batch_size, drop_last=True)
        self.skip = 0
        self.epoch = 0

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        for i, batch in enumerate(super().__iter__()):
            if i >= self.skip:
                yield [(epoch, index) for index in batch]


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the main process, which saves a checkpoint before it exits.

    A terminal's Ctrl-C (or a scheduler's SIGTERM to the process group) reaches the workers too; if they died on it,
    the main process would crash on the lost worker instead of finishing its iteration and saving. Because they
    ignore SIGTERM, `TrainData.close` must shut them down itself on every way out (multiprocessing's exit handler
    would otherwise wait forever for them).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@dataclass
class TrainData:
    """The sharded, seeded, resumable batch stream of the training split.

    One DataLoader serves every epoch. With loader workers it keeps them alive between epochs (persistent_workers):
    no process start-up, dataset copy or prefetch warm-up at each epoch. `close()` stops them; the loop calls it on
    every way out of a run (finished, stopped, or an error such as a sample that fails to load).
    """

    dataset: SeededAugment
    sampler: DistributedSampler
    batches: SkipBatches
    loader_kw: dict[str, Any]
    _loader: DataLoader | None = field(default=None, repr=False)

    @property
    def iters_per_epoch(self) -> int:
        return len(self.batches) if len(self.sampler) >= self.batches.batch_size else 0

    def epoch_batches(self, epoch: int, skip: int) -> Iterator[Any]:
        """Yields the batches of `epoch` after the first `skip`; a sample that failed to load stops every worker and
        raises DataLoadError."""
        self.sampler.set_epoch(epoch)
        self.batches.epoch = epoch
        self.batches.skip = skip
        if self._loader is None:
            self._loader = DataLoader(self.dataset, batch_sampler=self.batches, **self.loader_kw)
        # With persistent workers, iter() resets the one worker pool for this epoch (the sampler is read again here,
        # in the main process); an epoch left early is drained first by the reset.
        for batch in self._loader:
            if isinstance(batch, LoadFailure):
                self.close()
                raise DataLoadError(batch.message)
            yield batch

    def close(self) -> None:
        """Stops the loader's workers now (they ignore SIGINT/SIGTERM); the next epoch would start new ones."""
        loader, self._loader = self._loader, None
        iterator = getattr(loader, "_iterator", None) if loader is not None else None
        if iterator is not None:
            _stop_workers(iterator)


def _stop_workers(iterator: Any) -> None:
    """Shuts a DataLoader iterator's workers down now, killing any that does not exit within its timeout."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for w in getattr(iterator, "_workers", []):
        if w.is_alive():
            w.kill()
            w.join(timeout=5)


# -- schedule, precision, bookkeeping ------------------------------------------------------------------------------


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


def amp_settings(mode: str, device: torch.device, bf16_native: bool | None = None) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a grad scaler) of train.amp on `device` (lggan.precision.amp_decision).

    auto: bf16 where the device has it natively (CUDA >= Ampere, CPUs with AMX/AVX512-BF16), fp32 elsewhere.
    bf16_native: None detects it.
    """
    native = precision.device_bf16_native(device) if bf16_native is None else bf16_native
    return precision.amp_decision(mode, device.type, native)


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
    """JSONL log of every loss term (+ TensorBoard events when tensorboard is installed: the numbers of each record
    as scalars, and the sample grids as images), rank 0 only."""

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
        try:
            self.file.write(json.dumps(record) + "\n")
        except OSError as e:  # a full disk: the error should name the file
            raise OSError(e.errno, e.strerror, self.file.name) from None
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "iteration":
                    self.tb.add_scalar(k, v, record["iteration"])

    def add_image(self, tag: str, image: Any, iteration: int) -> None:
        """A uint8 [H, W, 3] image (a sample grid) in TensorBoard's Images tab; nothing without tensorboard."""
        if self.tb is None:
            return
        self.tb.add_image(tag, image, iteration, dataformats="HWC")

    def close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None
        if self.tb:
            self.tb.close()
            self.tb = None


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    stopped_by: str  # "finished" | "signal" | "nonfinite" | "time budget"
    last_checkpoint: Path | None
    images_per_second: float
    peak_memory_mb: float
    generator: nn.Module  # the trained G (unwrapped from DDP)
    signal: int | None = None  # the signal that stopped the run, if any
    train_seconds: float = 0.0  # training time of the whole run, across resumes (evaluation excluded)
    is_main: bool = True  # rank 0 (or the only process): the one that reports; torchrun's other ranks stay quiet


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    except Exception:
        return float("nan")


def _all_finite(loss: torch.Tensor, params: list[nn.Parameter]) -> bool:
    """Whether the loss and every gradient are finite: one fused reduction, one host sync."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    norms = torch._foreach_norm(grads) if grads else []
    return bool(torch.isfinite(torch.stack([loss.detach().float(), *[n.float() for n in norms]])).all())


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def build_vgg(cfg: Config, device: torch.device, plan: precision.SpeedPlan | None = None) -> nn.Module | None:
    """VGG19 of the perceptual loss; with autocast its slices run in bf16/fp16 and hand fp32 features to the L1s."""
    if cfg.loss.vgg <= 0:
        return None
    from .losses import VGGLoss

    vgg = VGGLoss(weights_path=cfg.loss.vgg_weights, input_mode=cfg.loss.vgg_input).to(device).eval()
    if plan is not None and plan.channels_last:
        precision.to_channels_last(vgg)
    if plan is not None and plan.autocast_dtype is not None:
        # relu1_1 .. relu5_1 features [B, C_k, H_k, W_k] come out of each slice as fp32, so that VGGLoss's L1s (and
        # the loss it returns) are fp32; the next slice's first conv casts them back to the autocast dtype.
        vgg.slices = nn.ModuleList(precision.AutocastFloat(sl, device.type, plan.autocast_dtype)
                                   for sl in vgg.slices)
    return vgg


# -- the run -------------------------------------------------------------------------------------------------------


@dataclass
class TrainRun:
    """Everything the loop needs, built once before it (networks, optimisers, data, schedule, counters)."""

    cfg: Config
    task: Task
    dist: DistInfo
    run_dir: Path
    G: nn.Module  # DDP-wrapped when distributed
    Ds: nn.ModuleDict  # the plain discriminators (G step, saving)
    D_train: dict[str, nn.Module]  # what the D step calls (DDP wrappers when distributed)
    G_ema: nn.Module | None
    vgg: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    data: TrainData
    total: int  # the iteration the run stops at
    sample_prep: Prepared | None  # the fixed batch of every sample grid (rank 0)
    log: RunLog
    lock: RunLock | None
    iteration: int = 0
    last_ckpt: Path | None = None
    g_params: list[nn.Parameter] = field(default_factory=list)
    d_params: list[nn.Parameter] = field(default_factory=list)
    plan: precision.SpeedPlan | None = None  # autocast / channels-last / checkpointing / compile decisions
    # What the losses call: the D step's discriminators (D_train) and the G step's (Ds), each under autocast with
    # fp32 outputs when autocast is on (set by _start, after the DDP wrapping).
    d_step_nets: dict[str, Callable[..., Any]] = field(default_factory=dict)
    g_step_nets: dict[str, Callable[..., Any]] = field(default_factory=dict)
    evaluator: TrainingEvaluator | None = None  # train.eval_every (rank 0)
    train_seconds: float = 0.0  # training time so far, across resumes (train.max_seconds)
    last_eval: int = -1  # the iteration last scored by the evaluator
    num_train: int = 0  # samples of the training split (all ranks together)
    num_val: int | None = None  # samples of the val split; None: no val split

    @property
    def device(self) -> torch.device:
        return self.dist.device

    def autocast(self):
        return precision.autocast(self.device.type, self.amp_dtype)

    def channels_last(self) -> bool:
        return self.plan is not None and self.plan.channels_last

    def generate(self, prep: Prepared, module: nn.Module | None = None) -> Any:
        """G's forward on the batch (module: G or its DDP wrapper; default run.G) under autocast, outputs in fp32.

        The losses then see fp32 images, class images and logits: only the networks run in bf16/fp16.
        """
        with self.autocast():
            out = (self.G if module is None else module)(*prep.gen_inputs)
        return out if self.amp_dtype is None else precision.to_float(out)


# The marker of a folder lggan made as a run: `train --out` uses a non-empty folder only when it is a run.
RUN_MARKER = ".lggan-run"


def _check_run_folder(run_dir: Path, data_root: str | None) -> None:
    """Refuses, before anything is written, a --out that is a dataset's folder or a non-empty folder of someone
    else's (a run made before the marker existed is recognised by its checkpoints folder)."""
    if data_root is not None and run_dir.resolve().is_relative_to(Path(data_root).expanduser().resolve()):
        raise ValueError(f"--out {run_dir}: lies inside the dataset --data {data_root}; choose a run folder outside it")

    def foreign(folder: Path) -> list[str]:
        if (folder / RUN_MARKER).exists() or (folder / ckpt.CKPT_DIR).is_dir():
            return []
        return [p.name for p in folder.iterdir() if p.name != RunLock.FILE]

    check_output_folder("--out", run_dir, "an lggan run", foreign, f" and no {RUN_MARKER} marker")


def _claim_run_folder(run_dir: Path, resume: bool, data_root: str | None = None) -> tuple[RunLock, bool]:
    """Locks the run folder for this process (a second run on it fails, naming the holder's pid), then checks it."""
    _check_run_folder(run_dir, data_root)
    fresh = not run_dir.exists() or not any(run_dir.iterdir())
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir, what="--out")
    lock.acquire()
    try:
        for note in ckpt.clean_stale_files(run_dir):
            print(f"{run_dir}: {note}", flush=True)
        existing = ckpt.list_checkpoints(run_dir)
        if existing and not resume:
            raise FileExistsError(
                f"--out {run_dir}: already holds checkpoints (newest {existing[-1].name}); pass --resume to "
                "continue it, or choose another folder"
            )
        if resume and not existing:  # before the data and networks are built, which can take a while
            raise FileNotFoundError(f"--resume: no checkpoint in {run_dir / ckpt.CKPT_DIR}")
        if not (run_dir / RUN_MARKER).exists():
            atomic_write_text(run_dir / RUN_MARKER, "a run folder of lggan train\n")
    except BaseException:
        _release_run_folder(lock, fresh)
        raise
    return lock, fresh


def _release_run_folder(lock: RunLock, fresh: bool) -> None:
    """Releases the lock; a folder this run created and left empty is removed (no `.lock`-only folders after an
    early error, which would push the next default run to runs/PRESET-2)."""
    lock.release()
    if fresh and {p.name for p in lock.folder.iterdir()} <= {RunLock.FILE, RUN_MARKER}:
        lock.path.unlink(missing_ok=True)
        (lock.folder / RUN_MARKER).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            lock.folder.rmdir()


def _build_data(cfg: Config, task: Task, di: DistInfo):
    tc = cfg.train
    train_set, val_set = task.build_datasets()
    if tc.batch_size % di.world_size:
        raise ValueError(f"train.batch_size={tc.batch_size} is the global batch: it must split evenly over the "
                         f"{di.world_size} processes")
    if len(train_set) < tc.batch_size:
        raise ValueError(f"train.batch_size={tc.batch_size}: the training split has only {len(train_set)} samples")
    sampler = DistributedSampler(train_set, num_replicas=di.world_size, rank=di.rank, shuffle=True, seed=tc.seed,
                                 drop_last=True)
    workers = cfg.data.num_workers
    loader_kw = dict(num_workers=workers, collate_fn=SafeCollate(task.collate),
                     pin_memory=di.device.type == "cuda", persistent_workers=workers > 0,
                     worker_init_fn=_ignore_stop_signals if workers > 0 else None)
    data = TrainData(SeededAugment(train_set, tc.seed), sampler, SkipBatches(sampler, tc.batch_size // di.world_size),
                     loader_kw)
    return data, train_set, val_set


def _channels_last_inputs(prep: Prepared) -> Prepared:
    """The batch with G's inputs and the discriminators' conditions ([B, C, H, W] floats) in channels-last memory.

    The real image and the masks M_g stay as they are: the losses read them through views of the contiguous layout.
    One tensor used in several places (the semantic task's S is G's input and D_s's condition) is converted once.
    """
    done: dict[int, torch.Tensor] = {}

    def cl(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        if id(t) not in done:
            done[id(t)] = precision.channels_last_input(t)
        return done[id(t)]

    return dataclasses.replace(prep, gen_inputs=tuple(cl(t) for t in prep.gen_inputs),
                               conditions={k: cl(v) for k, v in prep.conditions.items()})


def build_run(cfg: Config, out_dir: str | os.PathLike, data_root: str | None, resume: bool) -> TrainRun:
    """Builds the networks, optimisers, data and schedule of a run (fresh weights; `restore` loads a checkpoint)."""
    if missing_fields(cfg):  # e.g. the custom preset's data.num_classes: one line naming the field
        validate(cfg)
    di = setup_distributed(cfg.train.device)
    device, tc = di.device, cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    run_dir = Path(out_dir)
    root = data_root if data_root is not None else cfg.data.root
    lock, fresh = _claim_run_folder(run_dir, resume, root) if di.is_main else (None, False)
    try:
        task = make_task(cfg, data_root)
        data, train_set, val_set = _build_data(cfg, task, di)

        plan = precision.speed_plan(device, tc.amp, tc.channels_last, tc.activation_checkpointing, tc.compile)
        amp_dtype, use_scaler = plan.autocast_dtype, plan.grad_scaler

        torch.manual_seed(tc.seed)  # same initial weights on every rank
        G = task.build_generator().to(device)
        Ds = task.build_discriminators().to(device)
        if plan.channels_last:
            # Conv weights [out, in, k, k] channels-last (before the optimisers and the EMA copy see them); the
            # activations follow, the inputs are converted per batch (_channels_last_inputs).
            precision.to_channels_last(G)
            precision.to_channels_last(Ds)
        if tc.activation_checkpointing:
            from .models import set_activation_checkpointing

            set_activation_checkpointing(G, True)
        G_ema = copy.deepcopy(G).eval().requires_grad_(False) if tc.ema_decay > 0 else None
        vgg = build_vgg(cfg, device, plan)
        if tc.compile:
            # In place (nn.Module.compile): parameter names, state dicts and checkpoints stay those of the plain
            # modules; the DDP wrappers (_start) then call the compiled forwards.
            G.compile()
            for D in Ds.values():
                D.compile()

        opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr_g, betas=(tc.beta1, tc.beta2))
        opt_d = torch.optim.Adam(Ds.parameters(), lr=tc.lr_d, betas=(tc.beta1, tc.beta2))

        total = tc.iterations if tc.iterations is not None else \
            (tc.epochs_const + tc.epochs_decay) * data.iters_per_epoch

        evaluator = None
        if tc.eval_every and di.is_main:  # loaded now: a bad segmenter path fails before any training
            evaluator = TrainingEvaluator.build(task, tc.eval_segmenter, tc.eval_images, device)
        sample_prep = None
        if di.is_main:
            sample_src = val_set if val_set is not None and len(val_set) > 0 else train_set
            n = min(tc.num_samples, len(sample_src))
            sample_prep = task.prepare(task.collate([sample_src[i] for i in range(n)]), device)
            if plan.channels_last:
                sample_prep = _channels_last_inputs(sample_prep)
        run = TrainRun(
            cfg=cfg, task=task, dist=di, run_dir=run_dir, G=G, Ds=Ds, D_train=dict(Ds.items()), G_ema=G_ema,
            vgg=vgg, opt_g=opt_g, opt_d=opt_d, scaler_g=torch.amp.GradScaler("cuda", enabled=use_scaler),
            scaler_d=torch.amp.GradScaler("cuda", enabled=use_scaler), amp_dtype=amp_dtype,
            data=data, total=total, sample_prep=sample_prep,
            log=RunLog(run_dir, False), lock=lock, plan=plan, evaluator=evaluator,
            num_train=len(train_set), num_val=len(val_set) if val_set is not None else None,
        )
    except BaseException:
        if lock is not None:
            _release_run_folder(lock, fresh)
        raise
    return run


def _wrap_distributed(run: TrainRun) -> None:
    """DDP wrappers for G and the D step's discriminators (after `restore`, which loads plain modules)."""
    if run.dist.world_size <= 1:
        return
    cfg, device = run.cfg, run.device
    if device.type == "cuda":  # SyncBatchNorm runs on GPUs only; on CPU (gloo) DDP broadcasts BN buffers
        run.G = nn.SyncBatchNorm.convert_sync_batchnorm(run.G)
    # The per-class weights are one stacked tensor, so classes absent from a batch still get (zero) gradients;
    # only the classifier goes unused, when the class loss is off.
    ddp_kw = dict(device_ids=[device.index] if device.type == "cuda" else None)
    unused = cfg.model.use_local and cfg.loss.class_ce == 0
    run.G = nn.parallel.DistributedDataParallel(run.G, find_unused_parameters=unused, **ddp_kw)
    run.D_train = {k: nn.parallel.DistributedDataParallel(v, **ddp_kw) for k, v in run.Ds.items()}


# -- checkpoints ---------------------------------------------------------------------------------------------------


def training_state(run: TrainRun) -> dict[str, Any]:
    """Optimiser/scaler/RNG state saved beside the weights, so `--resume` continues exactly."""
    st = {"opt_g": run.opt_g.state_dict(), "opt_d": run.opt_d.state_dict(), "seed": run.cfg.train.seed,
          "torch_rng": torch.get_rng_state(), "train_seconds": run.train_seconds}
    if run.scaler_g.is_enabled():
        st.update(scaler_g=run.scaler_g.state_dict(), scaler_d=run.scaler_d.state_dict())
    return st


def save(run: TrainRun) -> Path | None:
    """Rank 0 writes checkpoints/iter_N atomically; the other ranks wait for it."""
    if run.dist.is_main:
        run.last_ckpt = ckpt.save_checkpoint(run.run_dir, run.iteration, unwrap(run.G), run.Ds, training_state(run),
                                             run.cfg.to_dict(), run.G_ema, keep_last=run.cfg.train.keep_last)
    if run.dist.world_size > 1:
        dist.barrier()
    return run.last_ckpt


def _check_config_change(run: TrainRun, found: ckpt.Checkpoint) -> dict[str, tuple[Any, Any]]:
    """Compares the config the checkpoint was trained with to this one: architecture changes are an error."""
    saved = found.config
    if saved is None and (run.run_dir / "config.json").is_file():
        saved = json.loads((run.run_dir / "config.json").read_text())
    if saved is None:
        return {}
    try:  # as today's Config reads it: fields added since the run started get their defaults, old names translate
        saved = Config.from_dict(saved).to_dict()
    except ValueError as e:
        raise ckpt.CheckpointError(f"{found.path}: its config cannot be read ({e})") from None
    new = run.cfg.to_dict()
    arch = architecture_changes(saved, new)
    if arch:
        diff = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in arch.items())
        raise ValueError(f"--resume {run.run_dir}: the checkpoint {found.path.name} was trained with another "
                         f"architecture ({diff}); resume with the run's own settings or start a new --out")
    return config_changes(saved, new)


def restore(run: TrainRun, found: ckpt.Checkpoint) -> None:
    """Loads weights, optimiser and RNG state of a checkpoint into the run; records a changed config."""
    changes = _check_config_change(run, found)
    try:
        run.G.load_state_dict(found.generator)
        run.Ds.load_state_dict(found.discriminator)
        if run.G_ema is not None:
            run.G_ema.load_state_dict(found.generator_ema or found.generator)
        run.opt_g.load_state_dict(found.state["opt_g"])
        run.opt_d.load_state_dict(found.state["opt_d"])
    except (RuntimeError, KeyError, ValueError) as e:
        reason = str(e).strip().splitlines()[0]
        raise ckpt.CheckpointError(f"{found.path}: does not fit this model ({reason})") from None
    if run.scaler_g.is_enabled() and "scaler_g" in found.state:
        run.scaler_g.load_state_dict(found.state["scaler_g"])
        run.scaler_d.load_state_dict(found.state["scaler_d"])
    if "torch_rng" in found.state:
        torch.set_rng_state(found.state["torch_rng"])
    run.iteration = found.iteration
    run.train_seconds = float(found.state.get("train_seconds", 0.0))
    run.last_ckpt = found.path  # already on disk: a resume that trains nothing writes nothing
    if run.dist.is_main:
        print(f"resumed from {found.path} (iteration {run.iteration})", flush=True)
        if changes:
            print("config changed since the run started: " + ", ".join(
                f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()), flush=True)
            append_jsonl(run.run_dir / "config_changes.jsonl", {
                "iteration": run.iteration, "time": datetime.datetime.now().isoformat(timespec="seconds"),
                "checkpoint": found.path.name, "changes": {k: [a, b] for k, (a, b) in changes.items()},
            })


# -- the steps -----------------------------------------------------------------------------------------------------


def _backward_and_step(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor,
                       params: list[nn.Parameter]) -> bool:
    """Backward, then the optimiser step unless the loss or a gradient is non-finite; returns whether it stepped."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if scaler.is_enabled():  # fp16: the scaler skips steps with inf/NaN gradients itself and lowers its scale
        scaler.step(opt)
        scaler.update()
        return bool(torch.isfinite(loss.detach()))
    ok = _all_finite(loss, params)
    if ok:
        opt.step()
    return ok


def d_step(run: TrainRun, prep: Prepared, out: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
    """Discriminator step: the real image vs the detached fakes (Eq. 8-9 of the paper).

    The fakes are those of `out` (a G forward made for the G step) or, without it, of a no-grad forward of G now.
    """
    if out is None:
        with torch.no_grad():
            out = run.generate(prep, unwrap(run.G))
    fakes = outputs_for_adversarial(out, run.cfg.model.use_local)
    run.Ds.requires_grad_(True)
    # The discriminators run under autocast inside run.d_step_nets; the losses themselves are fp32.
    loss, terms = run.task.discriminator_losses(run.d_step_nets or run.D_train, prep, fakes)
    return loss, terms, _backward_and_step(run.opt_d, run.scaler_d, loss, run.d_params)


def g_step(run: TrainRun, prep: Prepared, out: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
    """Generator step: the discriminators are frozen and called without DDP bookkeeping; EMA follows G.

    `out`: a G forward (with its graph) to reuse; without it G runs now.
    """
    run.Ds.requires_grad_(False)
    if out is None:
        out = run.generate(prep)
    # G's outputs are fp32 (run.generate); D and VGG run under autocast and return fp32; the loss sums are fp32.
    loss, terms = run.task.generator_losses(run.g_step_nets or dict(run.Ds.items()), prep, out, run.vgg)
    ok = _backward_and_step(run.opt_g, run.scaler_g, loss, run.g_params)
    if ok and run.G_ema is not None:
        _ema_update(run.G_ema, unwrap(run.G), run.cfg.train.ema_decay)
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
    tc = run.cfg.train
    scale = lr_factor(tc.lr_schedule, run.iteration, run.data.iters_per_epoch, tc.epochs_const, tc.epochs_decay)
    for group in run.opt_g.param_groups:
        group["lr"] = tc.lr_g * scale
    for group in run.opt_d.param_groups:
        group["lr"] = tc.lr_d * scale
    return scale


def write_samples(run: TrainRun) -> None:
    """Rank 0: the sample grid of the fixed batch through the EMA generator (or G) in eval mode."""
    if not run.dist.is_main:
        return
    gen = run.G_ema if run.G_ema is not None else unwrap(run.G)
    was_training = gen.training
    gen.eval()
    with torch.no_grad():
        out = gen(*run.sample_prep.gen_inputs)
    gen.train(was_training)
    grid = make_grid(run.task.grid_columns(run.sample_prep, out))
    save_png(grid, run.run_dir / "samples" / f"iter_{run.iteration:08d}.png")
    if run.log is not None:
        run.log.add_image("samples", grid, run.iteration)  # TensorBoard, when installed


def evaluate_now(run: TrainRun) -> dict[str, Any] | None:
    """Rank 0: scores the EMA generator (or G) with the segmenter and logs it (train.eval_every); None if off."""
    if run.evaluator is None or run.last_eval == run.iteration:
        return None
    gen = run.G_ema if run.G_ema is not None else unwrap(run.G)

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


def _log_record(run: TrainRun, epoch: int, lr_scale: float, ips: float, d_loss: torch.Tensor, g_loss: torch.Tensor,
                terms: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Every loss term as a float: the one host sync of a log step (all values in one transfer)."""
    names = ["D_total", "G_total", *terms]
    values = torch.stack([d_loss.detach().float(), g_loss.detach().float(),
                          *[v.detach().float().reshape(()) for v in terms.values()]]).tolist()
    return {"iteration": run.iteration, "epoch": epoch, "lr_g": run.cfg.train.lr_g * lr_scale,
            "lr_d": run.cfg.train.lr_d * lr_scale,
            "img_per_s": ips, **dict(zip(names, values))}


def _finish(run: TrainRun) -> None:
    """End of the loop: align BN statistics across ranks, save the last iteration, write its samples."""
    if run.dist.world_size > 1:
        # Batch-norm statistics drift apart when each rank updates them on its own shard; rank 0's win.
        for buf in unwrap(run.G).buffers():
            dist.broadcast(buf, 0)
    if run.last_ckpt is None or run.last_ckpt.name != f"iter_{run.iteration:08d}":
        save(run)
    if run.iteration % run.cfg.train.sample_every != 0 and run.dist.is_main:
        write_samples(run)
    scores = evaluate_now(run)
    if scores is not None:
        print(eval_line(scores), flush=True)


def _start(run: TrainRun, resume: bool) -> None:
    """Restore (with --resume), write the resolved config, open the log, then wrap for DDP."""
    if resume:
        found = ckpt.load_latest(run.run_dir)
        if found is None:
            raise FileNotFoundError(f"--resume: no loadable checkpoint in {run.run_dir / ckpt.CKPT_DIR}")
        restore(run, found)
    if run.dist.is_main:
        run.cfg.save_json(run.run_dir / "config.json")
        _record_plan(run)
        print("\n".join(banner_lines(run)), flush=True)
        run.log = RunLog(run.run_dir, True)
    _wrap_distributed(run)
    run.g_params = [p for p in run.G.parameters() if p.requires_grad]
    run.d_params = [p for p in run.Ds.parameters() if p.requires_grad]
    if run.amp_dtype is not None:
        dev, dtype = run.device.type, run.amp_dtype
        run.d_step_nets = {k: precision.AutocastFloat(v, dev, dtype) for k, v in run.D_train.items()}
        run.g_step_nets = {k: precision.AutocastFloat(v, dev, dtype) for k, v in run.Ds.items()}
    else:
        run.d_step_nets, run.g_step_nets = dict(run.D_train), dict(run.Ds.items())


RUN_INFO_FILE = "run_info.json"


def _record_plan(run: TrainRun) -> None:
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
        f"  generator:  G {_fmt_count(parameter_count(unwrap(run.G)))} parameters ("
        + " | ".join(f"{k} {_fmt_count(v)}" for k, v in g_parts.items()) + ")"
        + (", plus an EMA copy" if run.G_ema is not None else ""),
        f"  discrim.:   D {_fmt_count(parameter_count(run.Ds))} parameters ("
        + " | ".join(f"{k} {_fmt_count(v)}" for k, v in d_parts.items()) + ")",
        f"  data:       {dc.dataset}{where}: {run.num_train} train images, {val}",
        f"  schedule:   batch {tc.batch_size}{per_rank}, {_plural(ipe, 'iteration')} per epoch, "
        f"{_plural(run.total, 'iteration')} in total ({epochs})" + (f", from iteration {run.iteration}" if run.iteration else "")
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
        prep = _channels_last_inputs(prep)
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


def _over_time_budget(run: TrainRun) -> bool:
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


def _loop(run: TrainRun, stop: _StopFlag) -> LoopStats:
    """Epochs of iterations until the total, a stop signal, or too many non-finite steps in a row."""
    tc = run.cfg.train
    stats = LoopStats()
    if _over_time_budget(run):  # a resumed run whose budget is spent trains nothing
        stats.stopped_by = "time budget"
    # One bar (or a line per log step) over the whole run, closed on every way out of the loop.
    with contextlib.closing(Progress(run, run.dist.is_main)) as progress:
        _epochs(run, stop, stats, progress)
    if stats.stopped_by == "nonfinite":
        raise FloatingPointError(
            f"training stopped at iteration {run.iteration}: {stats.nonfinite_streak} consecutive non-finite "
            f"losses or gradients (train.max_nonfinite={tc.max_nonfinite}); the last good checkpoint is kept "
            f"({run.last_ckpt or 'none written in this run'}); try a lower train.lr or train.amp=off"
        )
    return stats


def _epochs(run: TrainRun, stop: _StopFlag, stats: LoopStats, progress: Progress) -> None:
    """The loop's epochs, reporting each iteration to `progress`."""
    tc = run.cfg.train
    ipe = run.data.iters_per_epoch
    while run.iteration < run.total and ipe > 0 and stats.stopped_by == "finished":
        epoch, in_epoch = divmod(run.iteration, ipe)
        progress.epoch(epoch)
        # closing(): the epoch's generator ends here, also when an error propagates (its traceback would otherwise
        # keep it alive); the loader's persistent workers live on to the next epoch and stop in train()'s finally.
        with contextlib.closing(run.data.epoch_batches(epoch, in_epoch)) as batches:
            tick = time.time()
            for batch in batches:
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
                # Training time (the budget's clock) stops while the evaluation runs.
                run.train_seconds += time.time() - tick
                if tc.eval_every and run.iteration % tc.eval_every == 0:
                    scores = evaluate_now(run)
                    if scores is not None:
                        progress.write(eval_line(scores))
                tick = time.time()
                if _over_time_budget(run):
                    stats.stopped_by = "time budget"
                    break
                if stop.signal is not None or run.iteration >= run.total:
                    break
        if stop.signal is not None and stats.stopped_by == "finished":
            stats.stopped_by = "signal"


def train(cfg: Config, out_dir: str | os.PathLike, data_root: str | None = None, resume: bool = False) -> TrainResult:
    """Trains `cfg` into the run folder `out_dir`; with `resume`, continues from its newest good checkpoint."""
    run = build_run(cfg, out_dir, data_root, resume)
    try:
        _start(run, resume)
        with _StopFlag() as stop:
            stats = _loop(run, stop)
            _finish(run)
    finally:
        run.data.close()  # the loader's workers ignore SIGTERM: stop them on every way out
        run.log.close()
        if run.lock is not None:
            run.lock.release()
    if run.dist.owns_group:
        dist.destroy_process_group()
    elapsed = time.time() - stats.started
    result = TrainResult(run.run_dir, run.iteration, stats.stopped_by, run.last_ckpt,
                         stats.images_seen / max(elapsed, 1e-9), _peak_memory_mb(run.device), unwrap(run.G),
                         stop.signal, run.train_seconds, run.dist.is_main)
    if run.dist.is_main and stats.stopped_by == "signal":
        print(f"stopped by signal {stop.signal}: checkpoint saved at iteration {run.iteration} ({run.last_ckpt}); "
              f"continue with --resume", flush=True)
    return result
