"""The run's log: one JSONL record per log step (+ TensorBoard events when tensorboard is installed), rank 0 only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
