"""The run: everything a training loop needs, built once by `build_run` (folder, data, networks, optimisers,
distributed wrappers, log), and its checkpoints (save, restore on --resume).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn as nn

from .. import checkpoint as ckpt
from .. import precision
from ..config import Config, architecture_changes, config_changes, missing_fields, validate
from ..io import RunLock, append_jsonl, atomic_write_text, check_output_folder
from ..runtime import DistInfo, setup_distributed
from ..tasks import Prepared, Task, make_task
from .data import TrainData, build_data
from .evaluator import TrainingEvaluator
from .log import RunLog


def build_vgg(cfg: Config, device: torch.device, plan: precision.SpeedPlan | None = None) -> nn.Module | None:
    """VGG19 of the perceptual loss; with autocast its slices run in bf16/fp16 and hand fp32 features to the L1s."""
    if cfg.loss.vgg <= 0:
        return None
    from ..losses import VGGLoss

    vgg = VGGLoss(weights_path=cfg.loss.vgg_weights, input_mode=cfg.loss.vgg_input).to(device).eval()
    if plan is not None and plan.channels_last:
        precision.to_channels_last(vgg)
    if plan is not None and plan.autocast_dtype is not None:
        # relu1_1 .. relu5_1 features [B, C_k, H_k, W_k] come out of each slice as fp32, so that VGGLoss's L1s (and
        # the loss it returns) are fp32; the next slice's first conv casts them back to the autocast dtype.
        vgg.slices = nn.ModuleList(precision.AutocastFloat(sl, device.type, plan.autocast_dtype)
                                   for sl in vgg.slices)
    return vgg


# -- the run --------------------------------------------------------------------------------------------------------


@dataclass
class TrainRun:
    """Everything the loop needs, built once before it (networks, optimisers, data, schedule, counters)."""

    cfg: Config
    task: Task
    dist: DistInfo
    run_dir: Path
    G: nn.Module  # the plain generator (saving, EMA, the D step's no-grad forward)
    G_train: nn.Module  # what the G step calls: G's DDP wrapper when distributed, else G itself
    Ds: nn.ModuleDict  # the plain discriminators (G step, saving)
    D_train: dict[str, nn.Module]  # what the D step calls (DDP wrappers when distributed)
    G_ema: nn.Module | None
    vgg: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    plan: precision.SpeedPlan  # autocast / channels-last / checkpointing / compile decisions
    g_params: list[nn.Parameter]  # what the non-finite check of each step reads
    d_params: list[nn.Parameter]
    # What the losses call: the D step's discriminators (D_train) and the G step's (Ds), each under autocast with
    # fp32 outputs when autocast is on.
    d_step_nets: dict[str, Callable[..., Any]]
    g_step_nets: dict[str, Callable[..., Any]]
    data: TrainData
    total: int  # the iteration the run stops at
    sample_prep: Prepared | None  # the fixed batch of every sample grid (rank 0)
    log: RunLog  # open on rank 0, a no-op elsewhere
    lock: RunLock | None  # rank 0 holds the run folder
    evaluator: TrainingEvaluator | None  # train.eval_every (rank 0)
    num_train: int  # samples of the training split (all ranks together)
    num_val: int | None  # samples of the val split; None: no val split
    iteration: int = 0
    last_ckpt: Path | None = None
    train_seconds: float = 0.0  # training time so far, across resumes (train.max_seconds)
    last_eval: int = -1  # the iteration last scored by the evaluator

    @property
    def device(self) -> torch.device:
        return self.dist.device

    def autocast(self):
        return precision.autocast(self.device.type, self.amp_dtype)

    def channels_last(self) -> bool:
        return self.plan.channels_last

    def generate(self, prep: Prepared, module: nn.Module | None = None) -> Any:
        """G's forward on the batch (module: default G_train, the G step's) under autocast, outputs in fp32.

        The losses then see fp32 images, class images and logits: only the networks run in bf16/fp16.
        """
        with self.autocast():
            out = (self.G_train if module is None else module)(*prep.gen_inputs)
        return out if self.amp_dtype is None else precision.to_float(out)


def build_run(cfg: Config, out_dir: str | os.PathLike, data_root: str | None, resume: bool) -> TrainRun:
    """Builds the whole run: claims the folder, data, networks, optimisers, DDP wrappers and log; with `resume`,
    restores the newest loadable checkpoint. `close_run` releases what it holds."""
    if missing_fields(cfg):  # e.g. the custom preset's data.num_classes: one line naming the field
        validate(cfg)
    di = setup_distributed(cfg.train.device)
    device, tc = di.device, cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    run_dir = Path(out_dir)
    root = data_root if data_root is not None else cfg.data.root
    lock, fresh = _claim_run_folder(run_dir, resume, root) if di.is_main else (None, False)
    data = None
    try:
        task = make_task(cfg, data_root)
        data, train_set, val_set = build_data(cfg, task, di)

        plan = precision.speed_plan(device, tc.amp, tc.channels_last, tc.activation_checkpointing, tc.compile)
        amp_dtype, use_scaler = plan.autocast_dtype, plan.grad_scaler

        torch.manual_seed(tc.seed)  # same initial weights on every rank
        G = task.build_generator().to(device)
        Ds = task.build_discriminators().to(device)
        if plan.channels_last:
            # Conv weights [out, in, k, k] channels-last (before the optimisers and the EMA copy see them); the
            # activations follow, the inputs are converted per batch (channels_last_inputs).
            precision.to_channels_last(G)
            precision.to_channels_last(Ds)
        if tc.activation_checkpointing:
            from ..models import set_activation_checkpointing

            set_activation_checkpointing(G, True)
        G_ema = copy.deepcopy(G).eval().requires_grad_(False) if tc.ema_decay > 0 else None
        vgg = build_vgg(cfg, device, plan)
        if tc.compile:
            # In place (nn.Module.compile): parameter names, state dicts and checkpoints stay those of the plain
            # modules; the DDP wrappers then call the compiled forwards.
            G.compile()
            for D in Ds.values():
                D.compile()

        opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr_g, betas=(tc.beta1, tc.beta2))
        opt_d = torch.optim.Adam(Ds.parameters(), lr=tc.lr_d, betas=(tc.beta1, tc.beta2))
        G, G_train, D_train = _wrap_distributed(cfg, di, G, Ds)
        if amp_dtype is not None:
            d_step_nets = {k: precision.AutocastFloat(v, device.type, amp_dtype) for k, v in D_train.items()}
            g_step_nets = {k: precision.AutocastFloat(v, device.type, amp_dtype) for k, v in Ds.items()}
        else:
            d_step_nets, g_step_nets = dict(D_train), dict(Ds.items())

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
                sample_prep = channels_last_inputs(sample_prep)
        run = TrainRun(
            cfg=cfg, task=task, dist=di, run_dir=run_dir, G=G, G_train=G_train, Ds=Ds, D_train=D_train, G_ema=G_ema,
            vgg=vgg, opt_g=opt_g, opt_d=opt_d, scaler_g=torch.amp.GradScaler("cuda", enabled=use_scaler),
            scaler_d=torch.amp.GradScaler("cuda", enabled=use_scaler), amp_dtype=amp_dtype, plan=plan,
            g_params=[p for p in G.parameters() if p.requires_grad],
            d_params=[p for p in Ds.parameters() if p.requires_grad],
            d_step_nets=d_step_nets, g_step_nets=g_step_nets,
            data=data, total=total, sample_prep=sample_prep, log=RunLog(run_dir, False), lock=lock,
            evaluator=evaluator, num_train=len(train_set), num_val=len(val_set) if val_set is not None else None,
        )
        if resume:
            found = ckpt.load_latest(run_dir)
            if found is None:
                raise FileNotFoundError(f"--resume: no loadable checkpoint in {run_dir / ckpt.CKPT_DIR}")
            restore(run, found)
        # Opened last: an error above leaves no log file behind in a folder this run created.
        run.log = RunLog(run_dir, di.is_main)
    except BaseException:
        if data is not None:
            data.close()
        if lock is not None:
            _release_run_folder(lock, fresh)
        raise
    return run


def close_run(run: TrainRun) -> None:
    """Stops the loader's workers (they ignore SIGTERM), closes the log, releases the run folder."""
    run.data.close()
    run.log.close()
    if run.lock is not None:
        run.lock.release()


def _wrap_distributed(cfg: Config, di: DistInfo, G: nn.Module,
                      Ds: nn.ModuleDict) -> tuple[nn.Module, nn.Module, dict[str, nn.Module]]:
    """(G, what the G step calls, what the D step calls): DDP wrappers when distributed, the plain modules else."""
    if di.world_size <= 1:
        return G, G, dict(Ds.items())
    if di.device.type == "cuda":  # SyncBatchNorm runs on GPUs only; on CPU (gloo) DDP broadcasts BN buffers
        G = nn.SyncBatchNorm.convert_sync_batchnorm(G)
    # The per-class weights are one stacked tensor, so classes absent from a batch still get (zero) gradients;
    # only the classifier goes unused, when the class loss is off.
    ddp_kw = dict(device_ids=[di.device.index] if di.device.type == "cuda" else None)
    unused = cfg.model.use_local and cfg.loss.class_ce == 0
    G_train = nn.parallel.DistributedDataParallel(G, find_unused_parameters=unused, **ddp_kw)
    return G, G_train, {k: nn.parallel.DistributedDataParallel(v, **ddp_kw) for k, v in Ds.items()}


def channels_last_inputs(prep: Prepared) -> Prepared:
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


# -- the run folder ------------------------------------------------------------------------------------------------


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
        run.last_ckpt = ckpt.save_checkpoint(run.run_dir, run.iteration, run.G, run.Ds, training_state(run),
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
