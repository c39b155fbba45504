"""Atomic writes: every file lggan writes goes to a temp file beside its target and is renamed over it
(`atomic_write`), every folder it replaces is swapped in by `replace_folder`, and `check_outputs` says which paths
a command may write at all; so a crash or Ctrl-C never leaves half a checkpoint, image or JSON file behind."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def one_line(exc: BaseException | str, limit: int | None = None) -> str:
    """An exception's message (or a text) on one line: PyTorch, PIL, parser and dataset messages can span several.

    limit: at most this many characters; a longer text is cut and says how long it was (a value quoted in full,
    such as a long list from a config file, stays readable).
    """
    text = " ".join(str(exc).split()) or (type(exc).__name__ if isinstance(exc, BaseException) else "")
    if limit is not None and len(text) > limit:
        tail = f"... ({len(text):,} characters in all)"
        text = text[: max(0, limit - len(tail))] + tail
    return text


def default_permissions(path: str | os.PathLike) -> None:
    """Gives a file or folder made by mkstemp/mkdtemp (owner-only) the permissions open()/mkdir() would give."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


def fsync_path(path: str | os.PathLike) -> None:
    """Flushes a file's data, or a folder's entries (renames), to the disk.

    A rename is atomic for running processes but, after a power loss or OS crash, the renamed file may hold nothing
    unless its data was synced first and the folder after the rename. Folders cannot be opened on Windows: skipped.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not sync folders
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync_path for every file below `folder`, then for the folders themselves."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fsync_path(os.path.join(root, name))
        fsync_path(root)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = ".tmp") -> None:
    """Calls write(temp_path) for a temp file next to `path`, syncs it, then renames it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates owner-only files; give the result the permissions a plain open() would have.
        default_permissions(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


CHECKPOINTS_FOLDER = "checkpoints"  # a run's checkpoint folders live here; only `lggan train` writes inside


def refuse_checkpoints_folder(option: str, path: str | os.PathLike) -> None:
    """ValueError when `path` (a file or folder to write) lies inside a run's checkpoints folder."""
    for parent in (Path(path).resolve(), *Path(path).resolve().parents):
        if parent.name == CHECKPOINTS_FOLDER:
            raise ValueError(f"{option} {path}: lies inside a run's {CHECKPOINTS_FOLDER} folder ({parent}), which "
                             "only `lggan train` writes; choose a place outside it")


def check_outputs(option: str, paths, overwrite: bool, inputs: dict | None = None, data: dict | None = None) -> None:
    """The rule of every command that writes a file, checked before any work: raises, naming `option` and the path.

    A path is refused whatever `overwrite` says when it is one of the command's `inputs` ({argument: path}), lies
    inside a run's checkpoints folder, or inside a dataset folder of `data` ({argument: folder}); an existing file
    is replaced only with `overwrite`, and a folder never.
    """
    paths = [Path(p) for p in paths]
    given = {name: Path(v).resolve() for name, v in (inputs or {}).items() if v is not None}
    folders = {name: Path(v).resolve() for name, v in (data or {}).items() if v is not None}
    for p in paths:
        r = p.resolve()
        for name, inp in given.items():
            if r == inp:
                raise ValueError(f"{option} {p}: is this command's input {name}; choose another file")
        for name, folder in folders.items():
            if r.is_relative_to(folder):
                raise ValueError(f"{option} {p}: lies inside {name} {folder}, a dataset; choose a file outside it")
        refuse_checkpoints_folder(option, p)
        if p.is_dir():
            raise IsADirectoryError(f"{option} {p}: is a folder; give a file name")
    existing = [p for p in paths if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise FileExistsError(f"{option} {existing[0]}: already exists"
                              f"{f' (and {len(existing) - 1} more of its files)' if len(existing) > 1 else ''}; "
                              "pass --overwrite to replace it")


def check_output_folder(option: str, folder: Path, owner: str, foreign: Callable[[Path], list[str]],
                        why: str = "") -> None:
    """The rule of every command that fills a folder, checked before any work: `folder` is new, empty or `owner`'s
    (`foreign(folder)` names the entries that are not); never a file. `owner` reads "a study", "an lggan run"."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{option} {folder}: is a file, not {owner} folder")
    if not folder.is_dir():
        return
    others = sorted(foreign(folder))
    if others:
        listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise FileExistsError(f"{option} {folder}: holds files that are not {owner}'s ({listed}){why}; choose a new, "
                              f"empty or {owner.split(' ', 1)[1]} folder")


def remove_tree(path: Path) -> None:
    """Deletes a folder by first renaming it hidden, so that a kill half-way never leaves a partial folder under its
    own name (the hidden leftover is cleaned by whoever next takes the place)."""
    path = Path(path)
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def replace_folder(tmp: Path, final: Path, aside: Path) -> None:
    """Puts the complete folder `tmp` in place as `final`: the folder counterpart of atomic_write, and the one way
    lggan swaps folders (checkpoints, generated datasets).

    An existing `final` is renamed to `aside` first and deleted only once `tmp` is in place (and the rename synced);
    if putting `tmp` in place fails, `aside` is renamed back. At every moment either the old or the new folder
    exists under one of the two names."""
    tmp, final, aside = Path(tmp), Path(final), Path(aside)
    moved = False
    if final.exists():
        remove_tree(aside)
        os.rename(final, aside)
        moved = True
    try:
        os.rename(tmp, final)
    except BaseException:
        if moved and not final.exists():
            os.rename(aside, final)
        raise
    fsync_path(final.parent)  # the rename is durable before the old copy is deleted
    if moved:
        remove_tree(aside)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes bytes to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes UTF-8 text to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Appends one JSON line (one write call, so a concurrent reader never sees half a line)."""
    import json

    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


class FolderBusyError(RuntimeError):
    """Another process holds the folder's lock."""


class RunLock:
    """An exclusive advisory lock on a folder (`.lock` inside it), held for a whole run.

    The lock is an OS file lock (flock on POSIX, msvcrt on Windows), so it is released when its process ends,
    however it ends: a killed run never leaves a stale lock. The file names the holder's pid and host.
    """

    FILE = ".lock"

    def __init__(self, folder: str | os.PathLike, what: str = "folder"):
        self.path = Path(folder) / self.FILE
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import socket

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _lock_fd(fd)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderBusyError(
                f"{self.what} {self.folder}: another process ({holder}) is using this folder; wait for it to end "
                "or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            _unlock_fd(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


def _lock_fd(fd: int) -> None:
    """Non-blocking exclusive lock; OSError when another open file holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock_fd(fd: int) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)
