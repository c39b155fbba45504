"""The Task seam: each task implements every per-task part, and nothing else branches on the task's name."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lggan
from lggan.config import TaskName, apply_overrides, choices, get_preset
from lggan.tasks import TASKS, CrossViewTask, Prepared, SemanticTask, Task, make_task

SRC = Path(lggan.__file__).parent
# The one file that may compare a task name: tasks.py maps names to implementations.
NAME_CHECKS_ALLOWED = {"tasks.py"}
TASK_NAME_TEST = re.compile(r"""task\s*[!=]=\s*["'](?:semantic|crossview)["']|["'](?:semantic|crossview)["']\s*[!=]=""")


def _custom_cfg(root: Path, *extra: str):
    cfg = apply_overrides(get_preset("synth"), ["data.dataset=custom", "data.num_classes=3", "data.use_instance=false",
                                                "data.load_size=64x32", *extra])
    cfg.data.root = str(root)
    return cfg


def _custom_split(root: Path, split: str, count: int) -> None:
    images, labels = root / split / "images", root / split / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    rng = np.random.default_rng(count)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(images / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (32, 64), dtype=np.uint8)).save(labels / f"{i}.png")


@pytest.mark.parametrize("name", choices(TaskName))
def test_every_task_name_has_a_complete_task(name: str, tmp_path: Path) -> None:
    assert set(TASKS) == set(choices(TaskName))
    preset = "synth-views" if name == "crossview" else "synth"
    task = make_task(get_preset(preset), str(tmp_path))
    assert type(task) is TASKS[name] and isinstance(task, Task)
    assert Task.__abstractmethods__ >= {"generator_inputs", "inference_inputs", "eval_dataset", "default_split",
                                        "default_metrics", "palette", "build_datasets", "grid_columns"}
    for method in Task.__abstractmethods__:
        assert not getattr(getattr(type(task), method), "__isabstractmethod__", False), method
    assert task.default_split() == {"semantic": "val", "crossview": "test"}[name]
    assert set(task.default_metrics()) & ({"fid", "miou"} if name == "semantic" else {"ssim", "kl"})


def test_only_tasks_py_branches_on_the_task_name() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).as_posix() in NAME_CHECKS_ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if TASK_NAME_TEST.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    # The pattern does find such lines (so an empty result means something).
    assert TASK_NAME_TEST.search('if cfg.model.task == "crossview":')
    assert TASK_NAME_TEST.search("if synth.task == 'semantic':")


def test_palette_and_grid_need_no_datasets(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _custom_split(root, "train", 2)
    task = make_task(_custom_cfg(root))
    palette = task.palette  # no build_datasets call
    train, _ = make_task(_custom_cfg(root)).build_datasets(with_val=False)
    assert np.array_equal(palette, train.palette) and palette.shape == (3, 3)
    # grid_columns of a task whose datasets were never built colours the label map with that palette.
    label = torch.tensor([[[0, 1], [2, 1]]])
    fake = torch.zeros(1, 3, 2, 2)
    out = type("Out", (), {"image": fake})()
    cfg = _custom_cfg(root, "model.use_local=false")
    cols = make_task(cfg).grid_columns(Prepared((), torch.zeros(1, 3, 2, 2), fake, {}, label), out)
    expected = torch.from_numpy(palette[label[0].numpy()]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(cols[0][0], expected)
    views = make_task(get_preset("synth-views"), str(tmp_path / "nowhere"))
    from lggan.data.crossview import CrossViewDataset

    assert np.array_equal(views.palette, CrossViewDataset.palette)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("val", ["empty", "missing"])
def test_unusable_val_split_warns_naming_the_folder(tmp_path: Path, val: str) -> None:
    root = tmp_path / "data"
    _custom_split(root, "train", 2)
    if val == "empty":
        (root / "val" / "images").mkdir(parents=True)
        (root / "val" / "labels").mkdir(parents=True)
    with pytest.warns(UserWarning, match=r"no val split at .*data \(.*\); sample grids use training images") as rec:
        train, val_set = make_task(_custom_cfg(root)).build_datasets()
    assert val_set is None and len(train) == 2
    assert len([w for w in rec if "val split" in str(w.message)]) == 1
    assert "\n" not in str(rec[0].message)


def test_usable_val_split_gives_no_warning(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _custom_split(root, "train", 2)
    _custom_split(root, "val", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, val_set = make_task(_custom_cfg(root)).build_datasets()
    assert len(val_set) == 1


def test_cross_view_data_path_that_does_not_exist_is_an_error(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import lggan.data.synthetic_views as sv

    def no_generation(*args, **kwargs):
        raise AssertionError("synthetic towns must not be generated for a given --data path")

    monkeypatch.setattr(sv, "ensure_synth_views", no_generation)
    monkeypatch.setattr(sv, "generate_synth_views", no_generation)
    missing = tmp_path / "my_towns"
    task = make_task(get_preset("synth-views"), str(missing))
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        task.build_datasets()
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        task.eval_dataset("test")
    assert not missing.exists() and list(tmp_path.iterdir()) == []
    # An existing folder without the layout is not filled with synthetic data either.
    missing.mkdir()
    with pytest.raises(FileNotFoundError, match="split folder not found"):
        task.build_datasets()
    assert list(missing.iterdir()) == []


def test_generator_inputs_are_what_the_synthesizer_feeds_the_generator(tmp_path: Path) -> None:
    from lggan.data import make_semantic_input
    from lggan.data.crossview import class_masks
    from lggan.generate import Synthesizer

    cfg = apply_overrides(get_preset("synth"), ["data.load_size=64x32", "model.ngf=4", "model.spade_hidden=8",
                                                "model.num_res_blocks=1"])
    task = make_task(cfg)
    label = torch.randint(0, cfg.data.num_classes, (32, 64))
    # The model uses edges; without instance ids the label map's own region boundaries are used (as the CLI does).
    (S_own,) = task.generator_inputs(label[None], None)
    torch.testing.assert_close(S_own, make_semantic_input(label[None], cfg.data.num_classes, label[None]), rtol=0,
                               atol=0)
    inst = torch.randint(0, 4, (1, 32, 64))
    (S,) = task.generator_inputs(label[None], inst)
    torch.testing.assert_close(S, make_semantic_input(label[None], cfg.data.num_classes, inst), rtol=0, atol=0)
    with pytest.raises(ValueError, match="multiples of 32"):
        task.generator_inputs(label[None, :30], inst[:, :30])
    G = task.build_generator().eval()
    synth = Synthesizer(G, cfg, torch.device("cpu"), amp="off")  # fp32, as G(S) below
    with torch.no_grad():
        torch.testing.assert_close(synth(label, inst[0]).image, G(S).image)

    views = apply_overrides(get_preset("synth-views"), ["model.ngf=4", "model.num_res_blocks=1"])
    cv = make_task(views)
    target = torch.randint(0, views.data.num_classes, (1, 32, 32))
    aerial = torch.rand(1, 6, 32, 32) * 2 - 1
    x, masks = cv.generator_inputs(target, aerial=aerial)
    assert torch.equal(x, aerial) and torch.equal(masks, class_masks(target, views.data.num_classes).float())
    with pytest.raises(ValueError, match="needs `aerial`"):
        cv.generator_inputs(target)
    assert isinstance(cv, CrossViewTask) and isinstance(task, SemanticTask)


def test_cross_view_missing_test_split_warns_naming_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "towns"
    (root / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):  # six 32 px panels side by side
        Image.fromarray(rng.integers(0, 256, (32, 192, 3), dtype=np.uint8)).save(root / "train" / f"{i}.png")
    cfg = apply_overrides(get_preset("synth-views"), ["data.load_size=36x36", "data.crop_size=32x32"])
    with pytest.warns(UserWarning, match=r"no test split at .*towns \(.*test.*\); sample grids use training images"):
        train, val_set = make_task(cfg, str(root)).build_datasets()
    assert val_set is None and len(train) == 2
    assert sorted(p.name for p in root.iterdir()) == ["train"]
