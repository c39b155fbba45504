"""The training split as a sharded, seeded, resumable batch stream, and how a sample that fails to load is reported."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from ..config import Config
from ..io import one_line
from ..runtime import DistInfo
from ..tasks import Task


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


def build_data(cfg: Config, task: Task, di: DistInfo) -> tuple[TrainData, Dataset, Dataset | None]:
    """The training batch stream of this process's shard, and the (train, held-out) datasets it came from."""
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
