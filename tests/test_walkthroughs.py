"""The README's walkthroughs, run as written (paths moved into a temporary folder, tiny widths added)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
from PIL import Image

from lggan.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
TINY_TRAIN = ["--set", "data.load_size=64x32", "--set", "model.ngf=4", "--set", "model.ndf=8", "--set",
              "model.spade_hidden=8", "--set", "model.num_res_blocks=1", "--set", "data.num_workers=0",
              "--set", "train.batch_size=2", "--iterations", "2", "--set", "loss.vgg=0",
              "--set", "train.progress=false"]


def readme_block(after: str) -> list[str]:
    """The commands of the first ```bash block after the sentence starting with `after`."""
    text = README.read_text()
    start = text.index(after)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block, f"no bash block after {after!r} in the README"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def city_as_custom(root: Path, seed: int, label_file) -> None:
    """mydata/{train,val}/{images,labels}: the built-in city's photos, each label map made by label_file(ids)."""
    from lggan.data import generate_synth_city

    generate_synth_city(root / "city", num_train=3, num_val=2, size=(64, 32), seed=seed, progress=False)
    for split in ("train", "val"):
        for photo in sorted((root / "city" / "leftImg8bit" / split).rglob("*_leftImg8bit.png")):
            stem = photo.name[: -len("_leftImg8bit.png")]
            ids = next((root / "city" / "gtFine" / split).rglob(f"{stem}_gtFine_labelIds.png"))
            (root / "mydata" / split / "images").mkdir(parents=True, exist_ok=True)
            (root / "mydata" / split / "labels").mkdir(parents=True, exist_ok=True)
            Image.open(photo).save(root / "mydata" / split / "images" / f"{stem}.png")
            label = label_file(np.asarray(Image.open(ids)))
            Image.fromarray(label).save(root / "mydata" / split / "labels" / f"{stem}.png")


def colour_city(root: Path) -> None:
    """The built-in city as a custom dataset whose label maps are drawn in Cityscapes colours."""
    from lggan.data.palette import builtin_label_palette

    city = builtin_label_palette("cityscapes")
    lut = np.zeros((256, 3), np.uint8)
    for v in range(34):
        lut[v] = city.colour_of(v)
    city_as_custom(root, 1, lambda ids: lut[ids])


def test_custom_walkthrough_with_colour_label_maps(tmp_path, monkeypatch, capsys):
    colour_city(tmp_path)
    monkeypatch.chdir(tmp_path)
    commands = readme_block("Colour label maps (here drawn in the Cityscapes colours)")
    assert [c.split()[:2] for c in commands] == [["lggan", "data"], ["lggan", "train"], ["lggan", "generate"]]
    inspect, train, generate = (shlex.split(c)[1:] for c in commands)
    assert main(inspect) == 0
    report = capsys.readouterr().out
    assert "no problems found" in report and "data.num_classes=34" in report and "data.palette=cityscapes" in report
    assert main(train + TINY_TRAIN) == 0
    assert main(generate + ["--device", "cpu"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "mydata/val/labels").iterdir()) and len(written) == 2
    # The run draws and names its classes as the palette does.
    from lggan.generate import load_generator
    from lggan.tasks import make_task

    task = make_task(load_generator(tmp_path / "runs/mine").cfg)
    assert task.class_names[7] == "road" and task.class_names[26] == "car"
    assert task.palette[7].tolist() == [128, 64, 128] and task.palette[26].tolist() == [0, 0, 142]


def id_city(root: Path, classes: int = 8) -> None:
    """The built-in city as a custom dataset with its label ids folded into 0..classes-1."""
    city_as_custom(root, 2, lambda ids: (ids.astype(np.int64) % classes).astype(np.uint8))


def test_custom_walkthrough_with_class_id_label_maps(tmp_path, monkeypatch, capsys):
    id_city(tmp_path)
    monkeypatch.chdir(tmp_path)
    commands = [shlex.split(c)[1:] for c in readme_block("Images and labels are matched by file stem")]
    assert [c[0] for c in commands] == ["data", "train", "train", "plot", "generate"]
    inspect, print_config, train, plot, generate = commands
    assert main(inspect) == 0 and "no problems found" in capsys.readouterr().out
    assert main(print_config) == 0 and '"num_classes": 8' in capsys.readouterr().out
    assert main(train + TINY_TRAIN) == 0
    assert main(plot) == 0 and (tmp_path / "runs/mine/curves.png").is_file()
    assert main(generate + ["--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        sorted(p.name for p in (tmp_path / "mydata/val/labels").iterdir())
