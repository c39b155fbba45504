"""Where and how the built-in synthetic datasets are written: cache folder, worker pool, atomic folder builds.

Both generators (:mod:`lggan.data.synthetic`, :mod:`lggan.data.synthetic_views`) use the same pieces:

* :func:`cache_dir`: ``$LGGAN_CACHE`` or ``~/.cache/lggan``;
* :func:`run_jobs`: one job per image, in this process or in a pool of worker processes (one default
  worker count, one start method); results come back in job order, so outputs never depend on ``workers``;
* :func:`build_atomically`: fill a hidden temp folder beside the target and rename it into place, so the
  target is either complete or untouched, whatever happens (exception, Ctrl-C, ``kill -9``);
* :func:`remove_stale_temps`: hidden temp folders of generations that were killed are removed later, but
  only when the process that made them no longer exists;
* :func:`is_complete` / :func:`ensure_built`: reuse a finished dataset, generate a missing one.

Temp folders are named ``.NAME.tmp-PID-HOST-RAND`` (``.NAME.old-...`` for a replaced dataset on its way
out): the pid and host say whose they are, so a stale one can be told from one still being written.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NamedTuple, TypeVar


from ..io import replace_folder
from ..progress import progress_bar

J = TypeVar("J")
R = TypeVar("R")

CACHE_ENV = "LGGAN_CACHE"
MAX_DEFAULT_WORKERS = 8
# Below this many jobs per extra process, starting the process costs more than it saves.
JOBS_PER_WORKER = 8
TEMP_KINDS = ("tmp", "old")


def cache_dir() -> Path:
    """``$LGGAN_CACHE`` or ``~/.cache/lggan``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lggan").expanduser()


# ----------------------------------------------------------------------------- workers


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else all of them)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_workers(num_jobs: int) -> int:
    """One process per ``JOBS_PER_WORKER`` jobs, at most ``min(available CPUs, MAX_DEFAULT_WORKERS)``."""
    return max(1, min(available_cpus(), MAX_DEFAULT_WORKERS, -(-num_jobs // JOBS_PER_WORKER)))


def check_workers(workers: int | None) -> None:
    """ValueError unless ``workers`` is ``None`` or a non-negative integer."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(
            f"workers must be a non-negative integer (0 or 1: work in this process) or None, got {workers!r}"
        )


def worker_context():
    """Process start method of the generation workers.

    On Linux "fork" starts instantly and, unlike "spawn", does not re-import the caller's main script or
    torch; it is safe here because workers only run numpy / PIL code (no torch ops), as torch's own
    DataLoader workers rely on too. Elsewhere fork is unavailable or unsafe, so "spawn".
    """
    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; only the parent handles it (it cancels the queued jobs and
    # waits for the running ones), so workers do not die half-way through a file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_jobs(
    fn: Callable[[J], R],
    jobs: Iterable[J],
    workers: int | None = None,
    progress: bool = False,
    *,
    desc: str | None = None,
    unit: str = "job",
) -> list[R]:
    """``[fn(job) for job in jobs]``, in worker processes when ``workers > 1``; results in job order.

    Args:
        fn: a module-level function (pickled by name for the workers).
        workers: processes to use; ``None``: :func:`default_workers`; ``0`` or ``1``: this process.
        progress: show a bar counting finished jobs (lines off a terminal: lggan.progress).
    """
    check_workers(workers)
    jobs = list(jobs)
    count = default_workers(len(jobs)) if workers is None else min(max(workers, 1), max(len(jobs), 1))
    with progress_bar(total=len(jobs), desc=desc, unit=unit, enabled=progress) as bar:
        if count == 1:
            results = []
            for job in jobs:
                results.append(fn(job))
                bar.update()
            return results
        return _run_in_pool(fn, jobs, count, bar)


def _run_in_pool(fn: Callable[[J], R], jobs: Sequence[J], workers: int, bar: Any) -> list[R]:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(), initializer=_ignore_sigint)
    results = []
    try:
        # Several jobs per round trip keep the queue overhead small; four rounds per worker keep them balanced.
        for result in pool.map(fn, jobs, chunksize=max(1, len(jobs) // (4 * workers))):
            results.append(result)
            bar.update()
    except BaseException:
        # Without cancel_futures the pool would run every queued job before the error reaches the caller.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


# ------------------------------------------------------------------------ atomic build


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def _sibling(out_dir: Path, kind: str) -> Path:
    """A new hidden name beside ``out_dir`` that records which process on which host owns it."""
    return out_dir.parent / f".{out_dir.name}.{kind}-{os.getpid()}-{_host()}-{uuid.uuid4().hex[:8]}"


class _Owner(NamedTuple):
    kind: str
    pid: int
    host: str


def _owner(path: Path, name: str) -> _Owner | None:
    """Parse ``.NAME.KIND-PID-HOST-RAND``; ``None`` for anything else."""
    match = re.fullmatch(rf"\.{re.escape(name)}\.({'|'.join(TEMP_KINDS)})-([0-9]+)-([A-Za-z0-9_.]+)-[0-9a-f]+",
                         path.name)
    if match is None:
        return None
    return _Owner(match.group(1), int(match.group(2)), match.group(3))


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists; when unsure, say yes (a live generation's folder must never go)."""
    if os.name == "nt" or pid <= 0:
        # On Windows os.kill(pid, 0) would terminate the process, not probe it.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to another user
        return True
    return True


def remove_stale_temps(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Clean up after generations of ``out_dir`` that were killed; returns the paths handled.

    Only folders made on this host by a process that no longer exists are touched. A stale temp folder
    is deleted. A stale ``.old`` folder (the previous dataset, moved aside by an overwrite that died
    before the new one was renamed in) is renamed back if ``out_dir`` is missing, else deleted.
    """
    out_dir = Path(out_dir)
    handled = []
    if not out_dir.parent.is_dir():
        return handled
    host, me = _host(), os.getpid()
    for path in sorted(out_dir.parent.glob(f".{glob.escape(out_dir.name)}.*-*")):
        owner = _owner(path, out_dir.name)
        if owner is None or owner.host != host or owner.pid == me or _pid_alive(owner.pid):
            continue
        if owner.kind == "old" and not out_dir.exists():
            try:
                os.rename(path, out_dir)
            except OSError:
                continue  # another process restored or created it meanwhile; look again next time
        else:
            shutil.rmtree(path, ignore_errors=True)
        handled.append(path)
    return handled


def check_target(out_dir: Path, overwrite: bool, ours: Callable[[Path], bool] | None = None) -> None:
    """FileExistsError if ``out_dir`` is a file, or a non-empty folder that may not be replaced: without
    ``overwrite`` none may; with it only one that ``ours`` recognises as lggan's own (a dataset it generated)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a directory")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{out_dir}: already exists and is not empty (pass overwrite=True, or --force on the command line, to replace it)")
    if ours is None or not ours(out_dir):
        raise FileExistsError(f"{out_dir}: is not a dataset lggan generated (no manifest of its own there); "
                              "--force replaces only those: choose a new or empty folder")


def build_atomically(
    out_dir: str | os.PathLike[str],
    fill: Callable[[Path], R],
    *,
    overwrite: bool = False,
    is_complete: Callable[[Path], bool] | None = None,
    ours: Callable[[Path], bool] | None = None,
) -> R:
    """Call ``fill(tmp)`` on a new hidden folder beside ``out_dir``, then rename it to ``out_dir``.

    ``out_dir`` must be missing or an empty folder unless ``overwrite``; with ``overwrite`` an old folder
    that ``ours`` recognises as lggan's own is swapped out by two renames and deleted only once the new one is in
    place (any other folder is refused). The temp folder
    is made with ``mkdir`` (normal umask permissions, not mkdtemp's 0700) and removed on any exception,
    KeyboardInterrupt included. If another process renamed a folder into ``out_dir`` first, ours is
    dropped when ``is_complete(out_dir)`` says theirs is the finished dataset, else FileExistsError.
    Returns what ``fill`` returned.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    check_target(out_dir, overwrite, ours)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)
    tmp = _sibling(out_dir, "tmp")
    tmp.mkdir()
    try:
        result = fill(tmp)
        _move_into_place(tmp, out_dir, overwrite, is_complete)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _move_into_place(tmp: Path, out_dir: Path, overwrite: bool, is_complete: Callable[[Path], bool] | None) -> None:
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        try:
            out_dir.rmdir()  # an empty target is replaced (Windows cannot rename onto an existing folder)
        except OSError:
            pass  # someone filled it meanwhile: handled as a race below
    if overwrite and out_dir.exists():
        replace_folder(tmp, out_dir, aside=_sibling(out_dir, "old"))
        return
    try:
        os.rename(tmp, out_dir)
    except OSError as exc:
        if is_complete is not None and is_complete(out_dir):
            # Another process finished the same dataset first: the outputs are identical, keep theirs.
            shutil.rmtree(tmp, ignore_errors=True)
            return
        message = f"{out_dir}: appeared while generating and is not the same dataset; not replaced"
        raise FileExistsError(message) from exc


# ---------------------------------------------------------------------- manifests


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write a manifest inside a folder being built (the folder's rename makes it atomic)."""
    path.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or ``None`` if it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(root: Path, manifest: str, wanted: Mapping[str, Any], file_counts: Mapping[str, int]) -> bool:
    """Whether ``root`` holds the dataset ``wanted`` describes.

    ``root/manifest`` must hold every ``wanted`` key with the same value, and each glob pattern of
    ``file_counts`` (relative to ``root``) must match exactly that many files.
    """
    data = read_json(Path(root) / manifest)
    if data is None or any(data.get(key) != value for key, value in wanted.items()):
        return False
    return all(len(list(Path(root).glob(pattern))) == count for pattern, count in file_counts.items())


def ensure_built(root: Path, complete: Callable[[Path], bool], generate: Callable[[Path], object]) -> Path:
    """``root`` once it is complete: generated here unless it already is, or another process finishes it first."""
    if complete(root):
        return root
    try:
        generate(root)
    except FileExistsError:
        if not complete(root):
            raise
    return root
