"""Data safety: lossless label maps, damaged files named early and late (DataLoader workers included), picklable
errors, a mistyped --data never generating data, and the synthetic-data storage (atomic builds, stale temp folders,
worker pool)."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from lggan.cli import main
from lggan.data import (
    CityscapesDataset,
    CustomDataset,
    DataIssue,
    DatasetError,
    build_semantic_dataset,
    collate_semantic,
    generate_synth_city,
    inspect_dataset,
)
from lggan.data import storage
from lggan.data.storage import (
    build_atomically,
    cache_dir,
    default_workers,
    remove_stale_temps,
    run_jobs,
)

W, H = 32, 16
NUM_CLASSES = 4


def save(array: np.ndarray, path: Path, fmt: str | None = None, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **options)
    return path


def label_map(seed: int) -> np.ndarray:
    """Random ids 0..NUM_CLASSES-1 (noise, so PNG data is long enough to cut in half)."""
    return np.random.default_rng(seed).integers(0, NUM_CLASSES, (H, W), dtype=np.uint8)


def write_custom(root: Path, n: int = 2, with_instances: bool = False) -> list[np.ndarray]:
    labels = [label_map(i) for i in range(n)]
    for i, label in enumerate(labels):
        save(np.repeat(label[..., None] * 60, 3, axis=-1), root / "images" / f"s{i}.png")
        save(label, root / "labels" / f"s{i}.png")
        if with_instances:
            save(label.astype(np.uint16) * 1000 + 7, root / "instances" / f"s{i}.png")
    return labels


def write_cityscapes(root: Path, n: int = 2) -> list[Path]:
    """Tiny Cityscapes layout (labelIds 0..3 are valid ids); returns the label files."""
    paths = []
    for i in range(n):
        stem = f"aachen_{i:06d}_000019"
        label = label_map(i)
        photo = np.repeat(label[..., None] * 60, 3, axis=-1)
        save(photo, root / "leftImg8bit/train/aachen" / f"{stem}_leftImg8bit.png")
        paths.append(save(label, root / "gtFine/train/aachen" / f"{stem}_gtFine_labelIds.png"))
        save(label.astype(np.uint16), root / "gtFine/train/aachen" / f"{stem}_gtFine_instanceIds.png")
    return paths


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut
    return path


def outcomes_via_worker(dataset) -> list:
    """Each sample loaded in a real DataLoader worker process: the sample, or the exception torch re-raised for it."""
    batches = iter(DataLoader(dataset, batch_size=1, num_workers=1, collate_fn=lambda items: items[0]))
    outcomes = []
    for _ in range(len(dataset)):
        try:
            outcomes.append(next(batches))
        except Exception as exc:  # noqa: BLE001 - the test inspects whatever torch re-raised
            outcomes.append(exc)
    # Exhausting the iterator stops its worker at once (an abandoned one waits 5 s for it when collected).
    assert next(batches, None) is None
    return outcomes


def assert_names_file(outcome: object, path: Path, message: str) -> None:
    assert type(outcome) is DatasetError, outcome
    assert f"{path}: {message}" in str(outcome)


# ------------------------------------------------------------------ lossless label maps


@pytest.mark.parametrize("fmt, options", [("JPEG", {"quality": 95}), ("WEBP", {"quality": 90})])
def test_lossy_label_named_png_is_refused_at_startup_and_at_load(tmp_path: Path, fmt: str, options: dict) -> None:
    write_custom(tmp_path)
    label = tmp_path / "labels" / "s1.png"
    save(label_map(1), label, fmt, **options)
    with pytest.raises(DatasetError) as info:
        CustomDataset(tmp_path, num_classes=NUM_CLASSES)
    assert f"{label}: label map must be a lossless PNG, BMP or TIFF file, but the file is {fmt}" in str(info.value)
    assert [issue.path for issue in info.value.issues] == [label]
    ds = CustomDataset(tmp_path, num_classes=NUM_CLASSES, validate=False)
    assert ds[0]["label"].max() < NUM_CLASSES
    with pytest.raises(DatasetError, match=re.escape(f"{label}: label map must be a lossless")):
        ds[1]


def test_lossy_instance_map_is_refused(tmp_path: Path) -> None:
    write_custom(tmp_path, with_instances=True)
    instance = save(label_map(0) * 10, tmp_path / "instances" / "s0.png", "JPEG")
    with pytest.raises(DatasetError, match=re.escape(f"{instance}: instance map must be a lossless")):
        CustomDataset(tmp_path, num_classes=NUM_CLASSES)
    with pytest.raises(DatasetError, match="but the file is JPEG"):
        CustomDataset(tmp_path, num_classes=NUM_CLASSES, validate=False)[0]


def test_lossy_label_in_cityscapes_layout(tmp_path: Path) -> None:
    labels = write_cityscapes(tmp_path)
    save(label_map(0), labels[0], "JPEG")
    with pytest.raises(DatasetError, match=re.escape(f"{labels[0]}: label map must be a lossless")):
        CityscapesDataset(tmp_path, "train", load_size=None)


@pytest.mark.parametrize("fmt, options", [("BMP", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"})])
def test_lossless_formats_load_exact_ids(tmp_path: Path, fmt: str, options: dict) -> None:
    labels = write_custom(tmp_path)
    save(labels[1], tmp_path / "labels" / "s1.png", fmt, **options)  # listed as .png, content BMP / TIFF
    ds = CustomDataset(tmp_path, num_classes=NUM_CLASSES)
    np.testing.assert_array_equal(ds[1]["label"].numpy(), labels[1])


def test_jpeg_compressed_tiff_label_is_refused(tmp_path: Path) -> None:
    write_custom(tmp_path)
    label = tmp_path / "labels" / "s0.png"
    try:
        save(np.repeat(label_map(0)[..., None], 3, -1), label, "TIFF", compression="jpeg")
    except (OSError, ValueError, KeyError):
        pytest.skip("this Pillow build cannot write JPEG-compressed TIFF")
    with pytest.raises(DatasetError, match=re.escape(f"{label}: label map must be a lossless")) as info:
        CustomDataset(tmp_path, num_classes=NUM_CLASSES)
    assert "TIFF with jpeg compression" in str(info.value)


# ------------------------------------------------------------------ damaged files


def test_zero_byte_label_is_named_at_startup_and_at_load(tmp_path: Path) -> None:
    write_custom(tmp_path)
    empty = tmp_path / "labels" / "s0.png"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=re.escape(f"{empty}: empty file (0 bytes)")) as info:
        CustomDataset(tmp_path, num_classes=NUM_CLASSES)
    assert len(info.value.issues) == 1
    ds = CustomDataset(tmp_path, num_classes=NUM_CLASSES, validate=False)
    with pytest.raises(DatasetError, match=re.escape(f"{empty}: empty file (0 bytes)")):
        ds[0]
    failed, loaded = outcomes_via_worker(ds)
    assert_names_file(failed, empty, "empty file (0 bytes)")
    assert loaded["path"].endswith("s1.png")


def test_truncated_label_is_named_at_load_even_in_a_worker(tmp_path: Path) -> None:
    write_cityscapes(tmp_path)
    cut = truncate(tmp_path / "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png")
    ds = CityscapesDataset(tmp_path, "train", load_size=None)  # headers are intact: start-up passes
    ds[0]
    with pytest.raises(DatasetError, match=re.escape(f"{cut}: cannot decode label map, file is truncated")):
        ds[1]
    loaded, failed = outcomes_via_worker(ds)
    assert_names_file(failed, cut, "cannot decode label map, file is truncated or corrupt")
    np.testing.assert_array_equal(loaded["label"].numpy(), label_map(0))


def test_label_id_out_of_range_found_late_is_named_in_a_worker(tmp_path: Path) -> None:
    labels = write_custom(tmp_path)
    bad = labels[1].copy()
    bad[3, 5] = NUM_CLASSES + 3
    path = save(bad, tmp_path / "labels" / "s1.png")
    ds = CustomDataset(tmp_path, num_classes=NUM_CLASSES)  # start-up reads headers only
    message = f"{path}: label values [{NUM_CLASSES + 3}] outside the valid range 0..{NUM_CLASSES - 1}"
    with pytest.raises(DatasetError, match=re.escape(message)):
        ds[1]
    loaded, failed = outcomes_via_worker(ds)
    assert_names_file(failed, path, message.removeprefix(f"{path}: "))
    np.testing.assert_array_equal(loaded["label"].numpy(), labels[0])
    wider = outcomes_via_worker(CustomDataset(tmp_path, num_classes=NUM_CLASSES + 4))
    assert collate_semantic(wider)["label"][1, 3, 5] == NUM_CLASSES + 3


def test_dataset_errors_survive_pickling() -> None:
    issues = [DataIssue(Path("/d/a.png"), "empty file (0 bytes)"), DataIssue(Path("/d/b.png"), "bad ids")]
    error = DatasetError("split 'train': 2 problem(s) found", issues)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is DatasetError and str(again) == str(error) and again.issues == issues
    assert isinstance(again, ValueError)
    # DataLoader workers rebuild the exception from its text alone.
    assert str(DatasetError("text only")) == "text only" and DatasetError("text only").issues == []


def test_inspect_lists_lossy_truncated_and_empty_label_files(tmp_path: Path, capsys) -> None:
    write_custom(tmp_path, n=4)
    lossy = save(label_map(0), tmp_path / "labels" / "s0.png", "JPEG")
    cut = truncate(tmp_path / "labels" / "s1.png")
    empty = tmp_path / "labels" / "s2.png"
    empty.write_bytes(b"")
    report = inspect_dataset(tmp_path, "custom", num_classes=NUM_CLASSES)
    problems = "\n".join(report.problems)
    assert len(report.problems) == 3, problems
    assert f"{lossy}: label map must be a lossless PNG, BMP or TIFF file, but the file is JPEG" in problems
    assert f"{cut}: cannot decode label map, file is truncated or corrupt" in problems
    assert f"{empty}: empty file (0 bytes)" in problems
    assert main(["data", "inspect", str(tmp_path), "--dataset", "custom", "--num-classes", str(NUM_CLASSES)]) == 1
    out = capsys.readouterr().out
    assert "3 problem(s):" in out and str(lossy) in out and str(cut) in out and str(empty) in out


# ------------------------------------------------------------------ mistyped --data


def test_mistyped_synth_city_root_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGGAN_CACHE", str(tmp_path / "cache"))
    typo = tmp_path / "data" / "citiscapes"
    with pytest.raises(FileNotFoundError, match=re.escape(f"--data {typo}: no such folder")):
        build_semantic_dataset("synth-city", typo, "train")
    assert not typo.exists() and not typo.parent.exists() and not (tmp_path / "cache").exists()


def test_existing_non_synthetic_root_is_read_as_cityscapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGGAN_CACHE", str(tmp_path / "cache"))
    write_cityscapes(tmp_path / "real")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    ds = build_semantic_dataset("synth-city", tmp_path / "real", "train")
    assert isinstance(ds, CityscapesDataset) and len(ds) == 2
    np.testing.assert_array_equal(ds[1]["label"].numpy(), label_map(1))  # native size, the files' ids
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(f"Cityscapes image folder {empty / 'leftImg8bit'}")):
        build_semantic_dataset("synth-city", empty, "train")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == sorted([*before, Path("empty")])


# ------------------------------------------------------------------ storage


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGGAN_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    from lggan.data.synthetic import cache_dir as from_synthetic

    assert from_synthetic is cache_dir
    monkeypatch.delenv("LGGAN_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "lggan"


def test_run_jobs_keeps_job_order_for_any_worker_count() -> None:
    jobs = list(range(37, 0, -1))
    expected = [str(job) for job in jobs]
    for workers in (None, 0, 1, 2):
        assert run_jobs(str, jobs, workers) == expected
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be a non-negative integer"):
            run_jobs(str, jobs, bad)


def test_one_default_worker_count() -> None:
    cpus = storage.available_cpus()
    assert default_workers(0) == default_workers(1) == default_workers(storage.JOBS_PER_WORKER) == 1
    assert default_workers(10**6) == min(cpus, storage.MAX_DEFAULT_WORKERS)
    counts = [default_workers(n) for n in range(0, 200, 7)]
    assert counts == sorted(counts)


def finished_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def hidden(parent: Path, name: str, kind: str, pid: int, host: str | None = None) -> Path:
    path = parent / f".{name}.{kind}-{pid}-{host or storage._host()}-0123abcd"
    path.mkdir()
    (path / "partial.png").write_bytes(b"half")
    return path


def test_stale_temp_folders_of_dead_processes_are_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = finished_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = hidden(tmp_path, "city", "tmp", dead)
        running = hidden(tmp_path, "city", "tmp", live.pid)
        mine = hidden(tmp_path, "city", "tmp", os.getpid())
        elsewhere = hidden(tmp_path, "city", "tmp", dead, host="other-machine")
        other_target = hidden(tmp_path, "town", "tmp", dead)
        foreign = tmp_path / ".city.tmp-notapid"
        foreign.mkdir()
        generate_synth_city(tmp_path / "city", num_train=1, num_val=0, size=(32, 16), workers=0, progress=False)
        assert not stale.exists()
        for kept in (running, mine, elsewhere, other_target):
            assert (kept / "partial.png").read_bytes() == b"half", kept
        assert foreign.is_dir()
        assert (tmp_path / "city" / "synth_city.json").is_file()
    finally:
        live.kill()
        live.wait()


def test_stale_old_folder_is_restored_when_the_target_is_missing(tmp_path: Path) -> None:
    old = hidden(tmp_path, "views", "old", finished_pid())
    assert remove_stale_temps(tmp_path / "views") == [old]
    assert (tmp_path / "views" / "partial.png").read_bytes() == b"half" and not old.exists()
    again = hidden(tmp_path, "views", "old", finished_pid())  # target present: the old copy is garbage
    remove_stale_temps(tmp_path / "views")
    assert not again.exists() and (tmp_path / "views" / "partial.png").is_file()


def test_build_atomically_interrupt_leaves_target_untouched(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("old")

    def interrupted(tmp: Path) -> None:
        (tmp / "new.txt").write_text("half")
        raise KeyboardInterrupt

    for overwrite in (False, True):
        with pytest.raises(KeyboardInterrupt if overwrite else FileExistsError):
            build_atomically(out, interrupted, overwrite=overwrite, ours=lambda root: True)
        assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_build_atomically_overwrite_and_permissions(tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert build_atomically(out, lambda tmp: (tmp / "a.txt").write_text("one")) == 3
    with pytest.raises(FileExistsError, match=re.escape(f"{out}: already exists and is not empty")):
        build_atomically(out, lambda tmp: None)
    # overwrite replaces only a folder that `ours` recognises as lggan's own, never anyone else's.
    with pytest.raises(FileExistsError, match="is not a dataset lggan generated"):
        build_atomically(out, lambda tmp: (tmp / "b.txt").write_text("two"), overwrite=True)
    with pytest.raises(FileExistsError, match="is not a dataset lggan generated"):
        build_atomically(out, lambda tmp: None, overwrite=True, ours=lambda root: (root / "manifest").is_file())
    assert [p.name for p in out.iterdir()] == ["a.txt"]
    build_atomically(out, lambda tmp: (tmp / "b.txt").write_text("two"), overwrite=True,
                     ours=lambda root: (root / "a.txt").is_file())
    assert [p.name for p in out.iterdir()] == ["b.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()  # mkdir, not mkdtemp's 0700
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is not a directory"):
        build_atomically(tmp_path / "file", lambda tmp: None, overwrite=True)


def test_failed_swap_puts_the_old_dataset_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "data"
    build_atomically(out, lambda tmp: (tmp / "old.txt").write_text("old"))
    rename = os.rename

    def failing_rename(src, dst):
        if ".tmp-" in str(src):
            raise OSError("disk full")
        rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="disk full"):
        build_atomically(out, lambda tmp: (tmp / "new.txt").write_text("new"), overwrite=True,
                         ours=lambda root: True)
    assert [p.name for p in out.iterdir()] == ["old.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_race_with_another_process(tmp_path: Path) -> None:
    out = tmp_path / "data"

    def other_process_wins(tmp: Path) -> str:
        (tmp / "ours.txt").write_text("ours")
        out.mkdir()
        (out / "theirs.txt").write_text("theirs")
        return "summary"

    complete = lambda root: (root / "theirs.txt").is_file()  # noqa: E731
    assert build_atomically(out, other_process_wins, is_complete=complete) == "summary"
    assert [p.name for p in out.iterdir()] == ["theirs.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    other = tmp_path / "other"

    def someone_else_writes(tmp: Path) -> None:
        other.mkdir()
        (other / "unrelated.txt").write_text("keep")

    with pytest.raises(FileExistsError, match=re.escape(f"{other}: appeared while generating")):
        build_atomically(other, someone_else_writes, is_complete=lambda root: False)
    assert (other / "unrelated.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "other"]


# -- photos in every mode PIL opens: read by their real range, or refused by name ----------------------------------

def test_16_bit_photos_are_scaled_not_clipped(tmp_path: Path) -> None:
    from lggan.data.common import load_image
    from lggan.data.crossview import read_crossview_image
    from lggan.metrics.files import load_image_uint8

    grey = (np.arange(32 * 48, dtype=np.int64).reshape(32, 48) * 42).astype(np.uint16)  # 0 .. 64470
    path = tmp_path / "photo16.png"
    Image.fromarray(grey).save(path)
    with Image.open(path) as im:
        assert im.mode in ("I;16", "I")  # PIL's 16-bit grey (convert("RGB") would clip it to white)
    want = np.repeat(np.round(grey.astype(np.float64) * 255 / 65535).astype(np.uint8)[..., None], 3, -1)
    for got in (load_image(path), read_crossview_image(path), load_image_uint8(path).permute(1, 2, 0).numpy()):
        assert got.dtype == np.uint8 and got.shape == (32, 48, 3)
        np.testing.assert_array_equal(got, want)
    assert (want == 255).mean() < 0.01  # the old reading made ~99 % of it white
    # 8-bit modes are unchanged: grey, palette, RGBA.
    for mode in ("L", "P", "RGBA"):
        img = Image.fromarray((np.arange(32 * 48 * 3) % 256).astype(np.uint8).reshape(32, 48, 3)).convert(mode)
        img.save(tmp_path / f"{mode}.png")
        np.testing.assert_array_equal(load_image(tmp_path / f"{mode}.png"), np.asarray(img.convert("RGB")))


def test_photos_of_unknown_range_are_refused_by_name(tmp_path: Path) -> None:
    from lggan.data.common import DatasetError, load_image
    from lggan.metrics.files import load_image_uint8

    path = tmp_path / "float.tiff"
    Image.fromarray(np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48)).save(path)
    with pytest.raises(DatasetError, match=re.escape(str(path)) + r": cannot read image: mode F"):
        load_image(path)
    with pytest.raises(ValueError, match=r"cannot read image .*float\.tiff: mode F"):
        load_image_uint8(path)
