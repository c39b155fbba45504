"""`lggan generate` never destroys inputs or existing files, and every image it reports is a complete file."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lggan.cli import main
from lggan.generate import generate_folder


def _label_maps(folder: Path, names: list[str]) -> Path:
    """Cityscapes label-id maps (road 7, sky 23 and car 26 bands), 64x32."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        label = np.full((32, 64), 7, np.uint8)
        label[:10] = 23
        label[14:20, 8 * i : 8 * i + 20] = 26
        Image.fromarray(label).save(folder / name, format="PNG")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generates_one_complete_image_per_input_and_reports_that_count(semantic_model: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    labels = _label_maps(tmp_path / "labels", ["a.png", "b.png", "c.png"])
    before = _snapshot(labels)
    out = tmp_path / "out"
    assert main(["generate", "--checkpoint", str(semantic_model), "--labels", str(labels), "--out", str(out),
                 "--device", "cpu", "--batch-size", "2", "--save-branches"]) == 0
    printed = int(re.search(r"wrote (\d+) images", capsys.readouterr().out).group(1))
    top = sorted(p.name for p in out.iterdir() if p.is_file())
    assert printed == len(top) == 3 and top == ["a.png", "b.png", "c.png"]
    for folder in ("global", "local", "weight_global", "weight_local"):
        assert sorted(p.name for p in (out / folder).iterdir()) == top
    assert all(Image.open(out / n).size == (64, 32) for n in top)
    assert not [p for p in out.rglob(".*")]  # no temp files left behind
    assert _snapshot(labels) == before


@pytest.mark.parametrize("where", ["same", "inside", "symlink"])
def test_refuses_an_output_folder_in_the_labels_folder(semantic_model: Path, tmp_path: Path, where: str) -> None:
    labels = _label_maps(tmp_path / "labels", ["a.png", "b.png"])
    before = _snapshot(labels)
    out = {"same": labels, "inside": labels / "generated", "symlink": tmp_path / "link"}[where]
    if where == "symlink":
        out.symlink_to(labels, target_is_directory=True)
    with pytest.raises(ValueError, match=r"--out .*inside the --labels folder"):
        generate_folder(semantic_model, labels, out, device="cpu", progress=False)
    assert _snapshot(labels) == before
    assert not (labels / "generated").exists()


def test_refuses_an_output_folder_in_the_instances_folder(semantic_model: Path, tmp_path: Path) -> None:
    labels = _label_maps(tmp_path / "labels", ["a.png"])
    instances = _label_maps(tmp_path / "instances", ["a.png"])
    before = _snapshot(instances)
    with pytest.raises(ValueError, match="inside the --instances folder"):
        generate_folder(semantic_model, labels, instances / "out", instances=instances, device="cpu",
                        progress=False)
    assert _snapshot(instances) == before


def test_refuses_to_write_over_an_input_file(semantic_model: Path, tmp_path: Path) -> None:
    labels = _label_maps(tmp_path / "data", ["a.png"])
    before = _snapshot(labels)
    with pytest.raises(ValueError, match=r"would overwrite the input file .*a\.png"):
        generate_folder(semantic_model, labels / "a.png", labels, device="cpu", progress=False, overwrite=True)
    assert _snapshot(labels) == before


def test_refuses_existing_outputs_unless_overwrite(semantic_model: Path, tmp_path: Path) -> None:
    labels = _label_maps(tmp_path / "labels", ["a.png", "b.png", "c.png"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"1 of the 3 output files already exist \(b\.png\).*--overwrite"):
        generate_folder(semantic_model, labels, out, device="cpu", progress=False)
    # Checked before anything was generated: the other two were not written either.
    assert _snapshot(out) == {"b.png": b"mine"}
    written = generate_folder(semantic_model, labels, out, device="cpu", progress=False, overwrite=True)
    assert [p.name for p in written] == ["a.png", "b.png", "c.png"]
    assert Image.open(out / "b.png").size == (64, 32)


def test_existing_branch_outputs_count_as_existing(semantic_model: Path, tmp_path: Path) -> None:
    labels = _label_maps(tmp_path / "labels", ["a.png"])
    out = tmp_path / "out"
    (out / "weight_local").mkdir(parents=True)
    (out / "weight_local" / "a.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"weight_local/a\.png"):
        generate_folder(semantic_model, labels, out, device="cpu", progress=False, save_branches=True)
    assert _snapshot(out) == {"weight_local/a.png": b"mine"}
    # Without --save-branches nothing would be written there, so nothing clashes.
    assert [p.name for p in generate_folder(semantic_model, labels, out, device="cpu", progress=False)] == ["a.png"]
    assert (out / "weight_local" / "a.png").read_bytes() == b"mine"


def test_a_failed_overwrite_leaves_the_old_file_whole(semantic_model: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    labels = _label_maps(tmp_path / "labels", ["a.png", "b.png"])
    out = tmp_path / "out"
    generate_folder(semantic_model, labels, out, device="cpu", progress=False)
    before = _snapshot(out)
    real_save = Image.Image.save
    calls = []

    def half_then_fail(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == 2:  # the second image: write some bytes, then die like a full disk
            Path(fp).write_bytes(b"\x89PNG half")
            raise OSError(28, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        generate_folder(semantic_model, labels, out, device="cpu", progress=False, overwrite=True)
    assert _snapshot(out) == before  # b.png is the earlier complete image; no temp file is left


def test_refuses_two_label_maps_with_one_output_name(semantic_model: Path, tmp_path: Path) -> None:
    labels = _label_maps(tmp_path / "labels", ["a.png", "a.PNG", "b.png"])
    with pytest.raises(ValueError, match=r"a\.PNG and a\.png -> a\.png|a\.png and a\.PNG -> a\.png"):
        generate_folder(semantic_model, labels, tmp_path / "out", device="cpu", progress=False)
    assert not (tmp_path / "out").exists()


def _panels(folder: Path, names: list[str]) -> Path:
    """Six 32 px panels side by side (aerial, street, their colour maps), random content."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (32, 192, 3), dtype=np.uint8)).save(folder / name, quality=95)
    return folder


def test_refuses_cross_view_panels_with_one_output_name(crossview_model: Path, tmp_path: Path) -> None:
    panels = _panels(tmp_path / "panels", ["x.png", "x.jpg", "y.png"])
    with pytest.raises(ValueError, match=r"x\.jpg and x\.png -> x\.png"):
        generate_folder(crossview_model, panels, tmp_path / "out", device="cpu", progress=False)
    assert not (tmp_path / "out").exists()
    (panels / "x.jpg").unlink()
    written = generate_folder(crossview_model, panels, tmp_path / "out", device="cpu", progress=False)
    assert [p.name for p in written] == ["x.png", "y.png"] == sorted(p.name for p in (tmp_path / "out").iterdir())


def test_cross_view_models_take_no_instance_maps(crossview_model: Path, tmp_path: Path) -> None:
    panels = _panels(tmp_path / "panels", ["x.png"])
    with pytest.raises(ValueError, match="--instances .*cross-view model takes no instance maps"):
        generate_folder(crossview_model, panels, tmp_path / "out", instances=panels, device="cpu", progress=False)


def test_bad_label_map_fails_before_anything_is_written(semantic_model: Path, tmp_path: Path) -> None:
    labels = _label_maps(tmp_path / "labels", ["a.png"])
    Image.fromarray(np.full((30, 64), 7, np.uint8)).save(labels / "b.png")  # height not a multiple of 32
    # At its own size (--native) the generator cannot take it; by default it is resized to the model's size.
    with pytest.raises(ValueError, match=r"b\.png: label map of 64x30"):
        generate_folder(semantic_model, labels, tmp_path / "out", device="cpu", progress=False, native=True)
    assert not (tmp_path / "out").exists()
