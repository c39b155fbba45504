"""Progress reports: plain lines off a terminal (no carriage returns), none with --no-progress."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from lggan.cli import main
from lggan.progress import LINE_STEPS, LineProgress, progress_bar


def test_off_a_terminal_a_line_per_tenth_and_at_the_end(capsys):
    bar = progress_bar(range(25), desc="generate", unit="img")
    assert isinstance(bar, LineProgress)  # pytest's captured stderr is not a terminal
    assert list(bar) == list(range(25))
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == LINE_STEPS
    done = [int(re.match(r"generate: (\d+)/25 img \((\d+)%\), \d+s$", line).group(1)) for line in lines]
    assert done == sorted(done) and done[-1] == 25
    assert all(10 * k <= 100 * d // 25 for k, d in enumerate(done, 1))  # each line at its tenth or just after it


def test_heartbeat_and_postfix_without_a_total(monkeypatch, capsys):
    import lggan.progress as P

    bar = progress_bar(desc="training segmenter", unit="it")
    bar.set_postfix(loss="0.123")
    bar.update(1)
    assert capsys.readouterr().err == ""  # no total: only the heartbeat and the end print
    monkeypatch.setattr(P, "HEARTBEAT_SECONDS", 0.0)
    bar.update(2)
    bar.close()
    assert capsys.readouterr().err.splitlines() == [f"training segmenter: 3 it, {0}s, loss 0.123"]


def test_disabled_prints_nothing(capsys):
    assert sum(progress_bar(range(5), desc="x", enabled=False)) == 10
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


@pytest.fixture()
def labels_dataset(tmp_path):
    for split in ("train", "val"):
        for i in range(2):
            (tmp_path / split / "images").mkdir(parents=True, exist_ok=True)
            (tmp_path / split / "labels").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / split / "images" / f"{i}.png")
            Image.fromarray(np.full((8, 8), i, np.uint8)).save(tmp_path / split / "labels" / f"{i}.png")
    return tmp_path


def test_commands_with_a_bar_take_no_progress(labels_dataset, capsys):
    assert main(["data", "inspect", str(labels_dataset), "--dataset", "custom", "--num-classes", "2"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "inspect train: 2/2 pair (100%)" in err and "inspect val: 2/2 pair (100%)" in err
    assert main(["data", "inspect", str(labels_dataset), "--dataset", "custom", "--num-classes", "2",
                 "--no-progress"]) == 0
    assert "inspect" not in capsys.readouterr().err
    from lggan.cli import build_parser

    parser = build_parser()
    for line in (["data", "synth-city"], ["data", "synth-views"], ["data", "inspect", "x", "--dataset", "custom"],
                 ["train"], ["generate", "--checkpoint", "r", "--labels", "l", "--out", "o"], ["train-segmenter"],
                 ["evaluate"], ["ablation"]):
        assert parser.parse_args(line + ["--no-progress"]).no_progress is True, line


def test_train_no_progress_is_the_progress_field(capsys):
    import json

    assert main(["train", "--no-progress", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["progress"] is False
    assert main(["train", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["progress"] is True
