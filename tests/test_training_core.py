"""The training core under faults: data errors in loader workers, two runs on one folder, re-saves, config changes
on resume, a full disk, and the command line's one-line errors."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lggan import checkpoint as ckpt
from lggan.cli import main
from lggan.io import FolderBusyError, RunLock
from lggan.training import train

from test_train import TINY, tiny_cfg

TINY_SET = [a for item in TINY for a in ("--set", item)]


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    from lggan.data.synthetic import generate_synth_city

    root = tmp_path_factory.mktemp("city") / "synth"
    generate_synth_city(root, num_train=6, num_val=2, size=(64, 32), seed=3, progress=False)
    return root


def _cli(*argv):
    """Runs `python -m lggan ARGV` in a new process; returns (returncode, stdout, stderr, seconds)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("LGGAN_DEBUG", None)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "lggan", *argv], capture_output=True, text=True, timeout=120,
                          env=env)
    return proc.returncode, proc.stdout, proc.stderr, time.time() - t0


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and "Warning" not in line
            and not line.startswith("  warnings.warn")]


# -- data errors found late, in a loader worker ----------------------------------------------------------------------


def test_a_bad_label_found_by_a_loader_worker_ends_the_run_with_one_line_and_code_2(city, tmp_path):
    # A copy of the city whose label maps all hold an id no Cityscapes map has: the header check at start-up
    # cannot see pixel values, so the first worker to load a sample finds it. Before the fix the process printed
    # the error and then waited for its SIGTERM-ignoring worker forever.
    bad = tmp_path / "city"
    import shutil

    shutil.copytree(city, bad)
    for f in (bad / "gtFine" / "train").rglob("*_labelIds.png"):
        arr = np.array(Image.open(f))
        arr[0, 0] = 200
        Image.fromarray(arr).save(f)
    rc, out, err, seconds = _cli("train", "--data", str(bad), "--out", str(tmp_path / "run"), *TINY_SET,
                                 "--set", "data.num_workers=2", "--set", "train.iterations=5")
    assert seconds < 60
    assert rc == 2, err
    lines = _error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("lggan train: error: "), err
    assert "_labelIds.png" in lines[0] and "200" in lines[0]
    assert "Traceback" not in err
    # The run kept nothing half-written and no lock holder remains: a corrected rerun may use the folder.
    assert ckpt.list_checkpoints(tmp_path / "run") == []
    RunLock(tmp_path / "run").acquire().release()


def test_a_worker_failure_also_ends_an_in_process_run_and_stops_its_workers(city, tmp_path, monkeypatch):
    import multiprocessing

    from lggan.data import CityscapesDataset

    original = CityscapesDataset.__getitem__

    def broken(self, index):
        if index == 3:
            raise OSError(errno.EIO, "Input/output error", "/data/x_leftImg8bit.png")
        return original(self, index)

    monkeypatch.setattr(CityscapesDataset, "__getitem__", broken)
    from lggan.training import DataLoadError

    with pytest.raises(DataLoadError, match=r"x_leftImg8bit\.png.*Input/output error"):
        train(tiny_cfg(city, "train.iterations=20", "data.num_workers=1"), tmp_path / "run")
    deadline = time.time() + 10
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.1)
    assert multiprocessing.active_children() == []


# -- one run per folder ---------------------------------------------------------------------------------------------


def test_a_second_run_on_a_busy_folder_is_refused_naming_the_holder(city, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(city, "train.iterations=1"), run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != RunLock.FILE}
    with RunLock(run, what="--out"):  # another training holds it
        with pytest.raises(FolderBusyError, match=rf"pid {os.getpid()}"):
            train(tiny_cfg(city, "train.iterations=3"), run, resume=True)
    # Nothing of the first run was touched, and the folder is usable again once the holder is gone.
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != RunLock.FILE} == before
    assert train(tiny_cfg(city, "train.iterations=2"), run, resume=True).iteration == 2


def test_the_lock_is_released_when_its_process_dies(tmp_path):
    code = ("import sys, os; from lggan.io import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); os._exit(0)")
    tmp_path.mkdir(exist_ok=True)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "held"
    RunLock(tmp_path).acquire().release()


# -- checkpoints: never a moment without the newest good one ----------------------------------------------------------


def _run_with_one_checkpoint(city, run):
    """Trains 2 iterations (keep_last=1); returns the checkpoint and its G and D modules, for re-saving it."""
    from lggan.tasks import make_task

    cfg = tiny_cfg(city, "train.iterations=2", "train.keep_last=1")
    train(cfg, run)
    found = ckpt.load_latest(run)
    task = make_task(cfg)
    G, Ds = task.build_generator(), task.build_discriminators()
    G.load_state_dict(found.generator)
    Ds.load_state_dict(found.discriminator)
    return found, G, Ds


def test_re_saving_an_iteration_never_leaves_a_moment_without_a_loadable_checkpoint(city, tmp_path, monkeypatch):
    run = tmp_path / "run"
    found, G, Ds = _run_with_one_checkpoint(city, run)
    seen = []
    real_rename = os.rename

    def checked_rename(src, dst):
        real_rename(src, dst)
        listed = ckpt.list_checkpoints(run)
        seen.append([p.name for p in listed])
        assert listed and ckpt.load_checkpoint(listed[-1]).iteration == 2

    monkeypatch.setattr(os, "rename", checked_rename)
    ckpt.save_checkpoint(run, 2, G, Ds, found.state, found.config, keep_last=1)
    assert ["iter_00000002.prev"] in seen  # the old copy stood in while the new one was renamed in
    monkeypatch.setattr(os, "rename", real_rename)
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["iter_00000002"]


def test_a_save_killed_between_renames_is_recovered_at_the_next_start(city, tmp_path, monkeypatch):
    run = tmp_path / "run"
    found, G, Ds = _run_with_one_checkpoint(city, run)
    real_rename = os.rename
    calls = []

    def killed(src, dst):
        calls.append(dst)
        # iter_N -> iter_N.prev happened; the kill comes before tmp -> iter_N, and after a kill nothing runs (not
        # even replace_folder's rename back, which an ordinary exception gets: test_failed_swap_puts_...).
        if len(calls) >= 2:
            raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(run, 2, G, Ds, found.state, found.config, keep_last=1)
    monkeypatch.setattr(os, "rename", real_rename)
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["iter_00000002.prev"]
    assert ckpt.load_latest(run).iteration == 2
    # Leftovers of killed saves (temp folders) are cleaned when the next run takes the folder.
    (run / "checkpoints" / ".iter_00000007.tmp-99999-abc").mkdir()
    res = train(tiny_cfg(city, "train.iterations=3", "train.keep_last=1"), run, resume=True)
    assert res.iteration == 3
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter_00000003"]


def test_a_resume_that_trains_nothing_writes_nothing(city, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(city, "train.iterations=2", "train.keep_last=1"), run)
    newest = ckpt.list_checkpoints(run)[-1]
    stamp = {p.name: p.stat().st_mtime_ns for p in newest.iterdir()}
    res = train(tiny_cfg(city, "train.iterations=2", "train.keep_last=1"), run, resume=True)
    assert res.last_checkpoint == newest
    assert {p.name: p.stat().st_mtime_ns for p in newest.iterdir()} == stamp


def test_pruning_keeps_the_new_checkpoint_when_a_newer_one_is_corrupt(city, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(city, "train.iterations=4", "train.checkpoint_every=2", "train.keep_last=2"), run)
    (ckpt.list_checkpoints(run)[-1] / ckpt.G_FILE).write_bytes(b"garbage")  # iter 4 is corrupt
    with pytest.warns(UserWarning, match="falling back"):
        train(tiny_cfg(city, "train.iterations=3", "train.checkpoint_every=2", "train.keep_last=1"), run,
              resume=True)
    names = [p.name for p in ckpt.list_checkpoints(run)]
    assert "iter_00000003" in names and ckpt.load_checkpoint(run / "checkpoints" / "iter_00000003").iteration == 3


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_previous_checkpoint(city, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(city), "--out", str(run), *TINY_SET]
    assert main(argv + ["--set", "train.iterations=2", "--set", "train.keep_last=1"]) == 0
    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full)
    capsys.readouterr()
    assert main(argv + ["--resume", "--set", "train.iterations=3"]) == 2
    err = capsys.readouterr().err
    lines = _error_lines(err)
    assert len(lines) == 1 and "iter_00000003" in lines[0] and "No space left on device" in lines[0], err
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["iter_00000002"]
    assert ckpt.load_latest(run).iteration == 2


# -- resume with a changed config -------------------------------------------------------------------------------------


def test_resume_with_another_architecture_is_one_line_naming_the_fields(city, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(city), "--out", str(run), *TINY_SET]
    assert main(argv + ["--set", "train.iterations=1"]) == 0
    config_before = (run / "config.json").read_text()
    capsys.readouterr()
    code = main(argv + ["--resume", "--set", "train.iterations=2", "--set", "model.ngf=8",
                        "--set", "model.num_res_blocks=2"])
    err = capsys.readouterr().err
    assert code == 2
    lines = _error_lines(err)
    assert len(lines) == 1 and "model.ngf 4 -> 8" in lines[0] and "model.num_res_blocks 1 -> 2" in lines[0], err
    assert (run / "config.json").read_text() == config_before


def test_resume_with_a_changed_learning_rate_is_allowed_printed_and_recorded(city, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(city), "--out", str(run), *TINY_SET]
    assert main(argv + ["--set", "train.iterations=1"]) == 0
    capsys.readouterr()
    assert main(argv + ["--resume", "--set", "train.iterations=2", "--set", "train.lr_g=1e-4",
                        "--set", "train.seed=5"]) == 0
    out = capsys.readouterr().out
    assert "train.lr_g 0.0002 -> 0.0001" in out and "train.seed 0 -> 5" in out
    records = [json.loads(line) for line in (run / "config_changes.jsonl").read_text().splitlines()]
    assert records[-1]["iteration"] == 1
    assert records[-1]["changes"]["train.lr_g"] == [2e-4, 1e-4]
    assert records[-1]["changes"]["train.iterations"] == [1, 2]
    assert json.loads((run / "config.json").read_text())["train"]["lr_g"] == 1e-4
    # The config the first iteration was trained with stays in its checkpoint.
    first = json.loads((run / "checkpoints" / "iter_00000001" / "config.json").read_text())
    assert first["train"]["lr_g"] == 2e-4


# -- the command line's errors ----------------------------------------------------------------------------------------


def test_a_corrupt_checkpoint_given_to_generate_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(os.urandom(300))
    bad.with_suffix(".json").write_text("{not json")
    argv = ["generate", "--checkpoint", str(bad), "--labels", str(tmp_path), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(_error_lines(err)) == 1 and "model.json" in err and "Traceback" not in err
    assert main(["--debug"] + argv) == 2
    assert "Traceback" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unexpected_error_is_one_line_that_points_to_debug(monkeypatch, capsys):
    import lggan.cli as cli

    def boom(a):
        raise TypeError("something internal")

    monkeypatch.setattr(cli, "cmd_inspect", boom)
    assert main(["data", "inspect", ".", "--dataset", "custom"]) == 2
    err = capsys.readouterr().err
    assert len(_error_lines(err)) == 1 and "TypeError: something internal" in err and "--debug" in err
    monkeypatch.setenv("LGGAN_DEBUG", "1")
    assert main(["data", "inspect", ".", "--dataset", "custom"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_readme_test_command_is_what_ci_runs():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    command = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && python -m pytest -q'
    assert command in readme and command in ci


def test_warnings_and_the_error_of_a_command_are_one_line_each(city, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(city), "--out", str(run), *TINY_SET]
    assert main(argv + ["--set", "train.iterations=2", "--set", "train.checkpoint_every=1"]) == 0
    for c in ckpt.list_checkpoints(run):
        (c / ckpt.G_FILE).write_bytes(os.urandom(100))
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--set", "train.iterations=5"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert [line.split(": ")[1] for line in lines] == ["warning", "warning", "error"]
    assert all(line.startswith("lggan train: ") for line in lines)
    assert "iter_00000002" in lines[0] and "iter_00000001" in lines[1] and "no loadable checkpoint" in lines[2]


def test_a_checkpoint_is_on_disk_before_it_is_renamed_in_and_before_older_ones_go(city, tmp_path, monkeypatch):
    # A rename survives a power loss only with the data synced before it and the folder after it.
    run = tmp_path / "run"
    found, G, Ds = _run_with_one_checkpoint(city, run)
    events = []
    real_fsync, real_rename, real_rmtree = os.fsync, os.rename, ckpt.shutil.rmtree

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src, dst):
        events.append(("rename", str(src), str(dst)))
        real_rename(src, dst)

    def rmtree(path, *a, **kw):
        events.append(("rmtree", str(path)))
        real_rmtree(path, *a, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(ckpt.shutil, "rmtree", rmtree)
    ckpt.save_checkpoint(run, 3, G, Ds, found.state, found.config, keep_last=1)
    final = str(run / "checkpoints" / "iter_00000003")
    rename_in = next(i for i, e in enumerate(events) if e[0] == "rename" and e[2] == final)
    tmp = events[rename_in][1]
    synced = {e[1] for e in events[:rename_in] if e[0] == "fsync"}
    assert {os.path.join(tmp, n) for n in os.listdir(final)} <= synced and tmp in synced
    root_synced = next(i for i, e in enumerate(events) if e == ("fsync", str(run / "checkpoints")) and i > rename_in)
    first_delete = next(i for i, e in enumerate(events) if e[0] == "rmtree")
    assert root_synced < first_delete  # iter_2 is deleted only once iter_3 is durable
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["iter_00000003"]


def test_two_real_training_processes_on_one_folder(city, tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    first = subprocess.Popen([sys.executable, "-m", "lggan", "train", "--data", str(city), "--out", str(run),
                              *TINY_SET, "--set", "train.iterations=100000"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        lock = run / RunLock.FILE
        deadline = time.time() + 60
        while not (lock.is_file() and lock.read_text().strip()) and time.time() < deadline:
            time.sleep(0.2)
        assert lock.read_text().startswith(f"pid {first.pid} ")
        rc, out, err, _ = _cli("train", "--data", str(city), "--out", str(run), *TINY_SET,
                               "--set", "train.iterations=2")
        assert rc == 2 and f"another process (pid {first.pid} on " in err
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.wait()


# -- found in review --------------------------------------------------------------------------------------------------


def test_a_run_of_the_previous_version_resumes(city, tmp_path, capsys):
    # lggan 0.1's config.json has train.lr/ttur and lacks the fields added since: neither is an architecture change.
    run = tmp_path / "run"
    argv = ["train", "--data", str(city), "--out", str(run), *TINY_SET]
    assert main(argv + ["--set", "train.iterations=1"]) == 0
    for path in [run / "config.json", *run.glob("checkpoints/*/config.json")]:
        old = json.loads(path.read_text())
        for key in ("num_upsampling_layers", "local_groups", "discriminator", "init", "init_gain"):
            del old["model"][key]
        for key in ("lr_g", "lr_d", "recipe", "lr_schedule", "step_order"):
            del old["train"][key]
        old["train"].update(lr=2e-4, ttur=False)
        path.write_text(json.dumps(old))
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--set", "train.iterations=2"]) == 0, capsys.readouterr().err
    assert ckpt.load_latest(run).iteration == 2


def test_a_run_that_fails_before_training_leaves_no_folder_behind(tmp_path, capsys):
    run = tmp_path / "runs" / "synth"
    assert main(["train", "--data", str(tmp_path / "typo"), "--out", str(run)]) == 2
    assert not run.exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep")
    assert main(["train", "--data", str(tmp_path / "typo"), "--out", str(existing)]) == 2
    # Not a run folder: refused before anything is written into it.
    assert "that are not an lggan run's" in capsys.readouterr().err
    assert sorted(p.name for p in existing.iterdir()) == ["notes.txt"]


def test_resume_without_a_checkpoint_fails_before_building_anything(tmp_path, monkeypatch, capsys):
    import lggan.training.run as T

    def never(*a, **kw):
        raise AssertionError("the task was built")

    monkeypatch.setattr(T, "make_task", never)
    assert main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 2
    assert "no checkpoint in" in capsys.readouterr().err
