"""Progress of a long loop: a tqdm bar on a terminal, plain lines in logs and pipes, nothing when switched off.

A bar redraws itself with carriage returns, which fill a log file with one ever-longer line; off a terminal the same
calls print a line at each tenth of the way (and at least once a minute) instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator

# Lines off a terminal: at each tenth of the total, and at least this often in seconds.
LINE_STEPS = 10
HEARTBEAT_SECONDS = 60.0


def stderr_is_terminal() -> bool:
    """Whether stderr, where the bars draw, is a terminal (False for a replaced or closed stream)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """What lggan calls of a tqdm bar (iteration, update, set_postfix, set_description, write, close), as lines on
    stderr: `desc: 30/100 img (30%), 12s`."""

    def __init__(self, iterable: Iterable | None = None, desc: str = "", total: int | None = None, unit: str = "it",
                 initial: int = 0) -> None:
        self.iterable, self.desc, self.unit, self.n = iterable, desc, unit, initial
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.postfix = ""
        self.started = self.last = time.time()
        self.printed_step = self._step()
        self.printed_n = initial

    def _step(self) -> int:
        return LINE_STEPS * self.n // self.total if self.total else 0

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._step() > self.printed_step or time.time() - self.last >= HEARTBEAT_SECONDS:
            self._print()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def write(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def _print(self) -> None:
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        share = f" ({100 * self.n // self.total}%)" if self.total else ""
        tail = f", {self.postfix}" if self.postfix else ""
        seconds = round(time.time() - self.started)
        print(f"{self.desc}: {done} {self.unit}{share}, {seconds}s{tail}", file=sys.stderr, flush=True)
        self.printed_step, self.printed_n, self.last = self._step(), self.n, time.time()

    def close(self) -> None:
        if self.n != self.printed_n:
            self._print()


def progress_bar(iterable: Iterable | None = None, *, desc: str, total: int | None = None, unit: str = "it",
                 enabled: bool = True, leave: bool = True, initial: int = 0, **tqdm_options: Any) -> Any:
    """tqdm(iterable, ...) on a terminal, LineProgress elsewhere; with enabled=False a bar that shows nothing."""
    from tqdm import tqdm

    if enabled and not stderr_is_terminal():
        return LineProgress(iterable, desc, total, unit, initial)
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=not enabled, leave=leave, initial=initial,
                **tqdm_options)


def add_progress_argument(parser: Any, what: str = "") -> None:
    """--no-progress, the same on every command that reports progress."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress report (by default a bar on a terminal, a line per tenth of the way in "
                             f"logs and pipes){what}")
