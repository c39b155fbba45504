"""No command replaces a file it did not create (lggan.io.check_outputs): every command that writes a file, against
every protected kind of path, leaves the bytes there unchanged and says why in one line, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from lggan.cli import main
from lggan.io import check_outputs

from tiny import SEMANTIC, model_file

BYTES = b"somebody's file\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A model file, a run's checkpoint file, and image folders standing for datasets."""
    tmp = tmp_path_factory.mktemp("out_rule")
    model = model_file(tmp, "synth", SEMANTIC, name="G")
    ckpt = tmp / "run" / "checkpoints" / "iter_00000001"
    ckpt.mkdir(parents=True)
    for name in ("generated", "real", "data"):
        (tmp / name).mkdir()
    return {"tmp": tmp, "model": model, "checkpoint_file": ckpt / "generator.safetensors",
            "generated": tmp / "generated", "real": tmp / "real", "data": tmp / "data"}


def command(name: str, w: dict[str, Path], out: Path) -> list[str]:
    """The command line of `name` writing `out` (its other arguments valid where the rule is checked)."""
    return {
        "export": ["export", str(w["model"]), str(out)],
        "export-official": ["export-official", str(w["model"]), str(out)],
        "convert-official": ["convert-official", str(w["model"]), str(out)],
        "evaluate": ["evaluate", "--generated", str(w["generated"]), "--real", str(w["real"]), "--metrics", "ssim",
                     "--out", str(out)],
        "train-segmenter": ["train-segmenter", "--dataset", "cityscapes", "--data", str(w["data"]), "--out", str(out)],
        "plot": ["plot", str(w["tmp"] / "run"), "--out", str(out)],
    }[name]


COMMANDS = ("export", "export-official", "convert-official", "evaluate", "train-segmenter", "plot")
# convert-official writes .safetensors only, plot .png only; the others take any name.
OUT_NAME = {"convert-official": "out.safetensors", "plot": "out.png"}


def _target(kind: str, cmd: str, w: dict[str, Path]) -> Path | None:
    """The protected path of `kind` for `cmd`, or None where the kind cannot arise for it."""
    if kind == "existing":
        return w["tmp"] / f"{cmd}-{OUT_NAME.get(cmd, 'out.bin')}"
    if kind == "checkpoints":
        return w["checkpoint_file"].with_name("curves.png") if cmd == "plot" else w["checkpoint_file"]
    if kind == "input":
        return w["model"] if cmd in ("export", "export-official", "convert-official") else None
    if kind == "dataset":
        return {"evaluate": w["real"] / "x.json", "train-segmenter": w["data"] / "x.safetensors"}.get(cmd)
    raise AssertionError(kind)


KINDS = ("existing", "checkpoints", "input", "dataset")
FILE_INPUT = ("export", "export-official", "convert-official")  # commands whose input is one file
DATA_INPUT = ("evaluate", "train-segmenter")  # commands that read dataset folders
# Every kind a command can meet: file inputs (export*, convert) and dataset folders (evaluate, train-segmenter).
CELLS = [(c, k) for c in COMMANDS for k in KINDS
         if k in ("existing", "checkpoints") or (k == "input" and c in FILE_INPUT) or (k == "dataset" and c in DATA_INPUT)]


@pytest.mark.parametrize("cmd,kind", CELLS, ids=[f"{c}-{k}" for c, k in CELLS])
def test_no_command_replaces_a_protected_file(cmd, kind, world, capsys):
    target = _target(kind, cmd, world)
    assert target is not None
    original = target.read_bytes() if target.exists() else None
    if original is None:
        target.write_bytes(BYTES)
    before = target.read_bytes()
    # --overwrite where the command has it: it may replace an existing file of the user's choice, never these.
    argv = command(cmd, world, target) + ([] if kind == "existing" else ["--overwrite"])
    try:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"lggan {cmd}: error: "), err
        assert str(target) in err[0]
        reason = {"existing": "already exists", "checkpoints": "checkpoints folder", "input": "this command's input",
                  "dataset": "a dataset"}[kind]
        assert reason in err[0], err[0]
        assert target.read_bytes() == before
        leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
        assert leftovers == []  # no temp file either
    finally:
        if original is None:
            target.unlink()


def test_overwrite_replaces_an_ordinary_existing_output(world, capsys):
    out = world["tmp"] / "scores.json"
    for name in ("a.png", "b.png"):  # a scorable pair of folders
        import numpy as np
        from PIL import Image

        img = Image.fromarray((np.arange(32 * 32 * 3) % 251).astype("uint8").reshape(32, 32, 3))
        img.save(world["generated"] / name)
        img.save(world["real"] / name)
    out.write_bytes(BYTES)
    assert main(command("evaluate", world, out)) == 2
    assert out.read_bytes() == BYTES
    assert main(command("evaluate", world, out) + ["--overwrite"]) == 0
    assert out.read_bytes() != BYTES and b'"ssim"' in out.read_bytes()


def test_the_rule_itself(tmp_path):
    existing = tmp_path / "a.txt"
    existing.write_text("x")
    check_outputs("--out", [tmp_path / "new.txt"], overwrite=False)  # a new file: fine
    check_outputs("--out", [existing], overwrite=True)
    with pytest.raises(FileExistsError, match=r"^--out .*a\.txt: already exists; pass --overwrite"):
        check_outputs("--out", [existing], overwrite=False)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_outputs("--out", [tmp_path], overwrite=True)
    with pytest.raises(ValueError, match="is this command's input --segmenter"):
        check_outputs("--out", [tmp_path / "sub" / ".." / "a.txt"], True, inputs={"--segmenter": existing})
    with pytest.raises(ValueError, match="lies inside --data"):
        check_outputs("--out", [tmp_path / "d" / "deep" / "x"], True, data={"--data": tmp_path / "d"})
    with pytest.raises(ValueError, match="checkpoints folder"):
        check_outputs("--out", [tmp_path / "run" / "checkpoints" / "x.pt"], True)
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(FileExistsError):  # a dangling link is somebody's too
        check_outputs("--out", [link], overwrite=False)


def test_train_uses_only_new_empty_or_run_folders(world, tmp_path, capsys):
    from lggan.training import RUN_MARKER

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "config.json").write_bytes(BYTES)  # somebody's config, not a run's
    assert main(["train", "--out", str(theirs), "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "that are not an lggan run's" in err[0] and str(theirs) in err[0]
    assert [p.name for p in theirs.iterdir()] == ["config.json"] and (theirs / "config.json").read_bytes() == BYTES
    inside = world["data"] / "run"
    assert main(["train", "--data", str(world["data"]), "--out", str(inside)]) == 2
    assert "lies inside the dataset --data" in capsys.readouterr().err
    assert not inside.exists()
    # A folder holding only the marker is a run lggan made (e.g. one that stopped before its first checkpoint).
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / RUN_MARKER).write_text("a run folder of lggan train\n")
    (ours / "log.jsonl").write_text("")
    from lggan.training.run import _check_run_folder

    _check_run_folder(ours, None)


def test_export_official_keeps_what_the_release_format_cannot_hold(tmp_path, capsys):
    import json

    from tiny import CROSSVIEW

    model = model_file(tmp_path, "synth-views", CROSSVIEW + ["data.test_crop=random"], name="cv")
    pth = tmp_path / "cv.pth"
    assert main(["export-official", str(model), str(pth)]) == 0
    side = json.loads((tmp_path / "cv.pth.json").read_text())
    assert side["data"]["load_size"] == [36, 36] and side["data"]["crop_size"] == [32, 32]
    assert main(["convert-official", str(pth), str(tmp_path / "back.safetensors")]) == 0
    back = json.loads((tmp_path / "back.json").read_text())
    assert back["config"]["data"]["load_size"] == [36, 36] and back["config"]["data"]["crop_size"] == [32, 32]
    assert back["config"]["data"]["test_crop"] == "random"
    assert any("from cv.pth.json" in n for n in back["notes"])
    # Without the settings file the size is the preset's, and the conversion says it is a guess.
    (tmp_path / "cv.pth.json").unlink()
    assert main(["convert-official", str(pth), str(tmp_path / "guess.safetensors")]) == 0
    guess = json.loads((tmp_path / "guess.json").read_text())
    assert guess["config"]["data"]["load_size"] != [36, 36]
    assert any("the training size is a guess" in n for n in guess["notes"])
    # A re-export does not replace the earlier files without --overwrite.
    capsys.readouterr()
    assert main(["export-official", str(model), str(pth)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_generate_never_writes_into_a_runs_checkpoints(world, tmp_path, capsys):
    labels = tmp_path / "labels"
    labels.mkdir()
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((32, 64), np.uint8)).save(labels / "a.png")
    out = world["checkpoint_file"].parent / "gen"
    assert main(["generate", "--checkpoint", str(world["model"]), "--labels", str(labels), "--out", str(out),
                 "--overwrite", "--device", "cpu"]) == 2
    assert "checkpoints folder" in capsys.readouterr().err and not out.exists()
