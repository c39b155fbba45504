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


# -- a third task through the seam -----------------------------------------------------------------------------------
# "Recolour": every class has one colour and the photo is the label map in those colours. Nothing of the two real
# tasks is used (own data, own generator, own grids); only the Task interface connects it to train, generate and
# evaluate, so these commands run it unchanged when it stands in for a registered task name.

from typing import NamedTuple  # noqa: E402

import torch.nn as nn  # noqa: E402

from lggan.tasks import EvalBatch, GeneratorSample, InferenceInput  # noqa: E402


class RecolourOutput(NamedTuple):
    image: torch.Tensor  # [B, 3, H, W] in [-1, 1]


class RecolourGenerator(nn.Module):
    """One 1x1 conv from the one-hot map S [B, C, H, W] to RGB: able to learn the task exactly."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.conv = nn.Conv2d(num_classes, 3, 1)

    def forward(self, S: torch.Tensor) -> RecolourOutput:
        return RecolourOutput(torch.tanh(self.conv(S)))


class RecolourData(torch.utils.data.Dataset):
    def __init__(self, task: "RecolourTask", split: str, count: int):
        self.root, self.split, self.task = Path(task.data_root), split, task
        g = torch.Generator().manual_seed(count)
        self.labels = torch.randint(0, task.num_classes, (count, 32, 32), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        label = self.labels[i]
        return {"label": label, "image": self.task.colours[label].permute(2, 0, 1), "index": i}


class RecolourTask(Task):
    """A third task: class map -> its colours."""

    def __init__(self, cfg, data_root=None):
        super().__init__(cfg, data_root)
        self.colours = torch.linspace(-0.9, 0.9, self.num_classes * 3).view(self.num_classes, 3)

    @classmethod
    def default_split(cls) -> str:
        return "val"

    @classmethod
    def default_metrics(cls) -> tuple[str, ...]:
        return ("psnr",)

    @classmethod
    def has_label_maps(cls) -> bool:
        return False

    @property
    def palette(self) -> np.ndarray:
        return ((self.colours + 1) * 127.5).round().to(torch.uint8).numpy()

    @property
    def class_names(self) -> list[str]:
        return [f"colour {i}" for i in range(self.num_classes)]

    def d_names(self) -> list[str]:
        return ["D"]

    def build_datasets(self, with_val: bool = True):
        return RecolourData(self, "train", 8), RecolourData(self, "val", 4) if with_val else None

    def collate(self, samples):
        return {k: torch.stack([torch.as_tensor(s[k]) for s in samples]) for k in samples[0]}

    def _one_hot(self, label: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(label, self.num_classes).permute(0, 3, 1, 2).float()

    def prepare(self, batch, device) -> Prepared:
        S = self._one_hot(batch["label"].to(device))
        return Prepared((S,), S, batch["image"].to(device), {"D": S}, batch["label"].to(device))

    def build_generator(self) -> nn.Module:
        return RecolourGenerator(self.num_classes)

    def build_discriminators(self) -> nn.ModuleDict:
        from lggan.models import MultiscaleDiscriminator

        return nn.ModuleDict({"D": MultiscaleDiscriminator(self.num_classes + 3, ndf=8, n_layers=1, num_d=1)})

    def generator_inputs(self, label, instance=None, aerial=None):
        return (self._one_hot(label),)

    def inference_inputs(self, labels: Path, instances=None) -> list[InferenceInput]:
        return [InferenceInput(p.name, p) for p in sorted(labels.glob("*.png"))]

    def load_inference_input(self, item: InferenceInput, palette=None) -> GeneratorSample:
        return GeneratorSample(self.label_from_image(Image.open(item.path)))

    def export_graph(self, generator: nn.Module) -> nn.Module:
        raise NotImplementedError("not exported in this test")

    def label_from_image(self, image, palette=None, where="label") -> torch.Tensor:
        return torch.from_numpy(np.array(image, dtype=np.int64))

    def eval_dataset(self, split: str):
        return RecolourData(self, split, 4)

    def eval_sources(self, dataset) -> list[Path]:
        return [dataset.root / f"{dataset.split}_{i}.png" for i in range(len(dataset))]

    def eval_batch(self, samples, names) -> EvalBatch:
        batch = self.collate(samples)
        return EvalBatch(names, batch["label"], batch["image"])

    def grid_columns(self, prep: Prepared, out) -> list[torch.Tensor]:
        return [(prep.real + 1) / 2, (out.image.detach() + 1) / 2]


def test_a_third_task_runs_through_train_generate_and_evaluate(tmp_path: Path, monkeypatch, capsys) -> None:
    import json

    import lggan.tasks as tasks_module
    from lggan.cli import main
    from lggan.generate import load_generator
    from lggan.training import train

    monkeypatch.setitem(tasks_module.TASKS, "semantic", RecolourTask)  # the recolour task under a valid task name
    cfg = apply_overrides(get_preset("synth"), [
        "data.dataset=custom", "data.num_classes=4", "data.use_instance=false", "data.load_size=32x32",
        "data.num_workers=0", "model.use_local=false", "loss.class_ce=0", "loss.local_l1=0", "loss.image_l1=10",
        "train.batch_size=2", "train.iterations=40", "train.progress=false", "train.lr_g=0.05",
        "train.sample_every=20", "train.checkpoint_every=20", "train.device=cpu", "train.ema_decay=0"])
    cfg.data.root = str(tmp_path / "data")
    run = tmp_path / "run"
    result = train(cfg, run)

    # train: the task's networks trained (its own G and D in the checkpoint), its grids written.
    assert result.iteration == 40 and isinstance(result.generator, RecolourGenerator)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["iter_00000020.png", "iter_00000040.png"]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {"D_D_C", "G_gan_D_C", "G_l1_C"} <= set(log[-1])
    assert log[-1]["G_l1_C"] < log[0]["G_l1_C"]  # it learns the colours

    # generate: the Synthesizer turns a class map into the task's input and returns the generator's image.
    synth = load_generator(run, "cpu", amp="off", channels_last="off")
    assert isinstance(synth.task, RecolourTask) and isinstance(synth.generator, RecolourGenerator)
    label = torch.tensor([[0, 1, 2, 3]]).repeat(32, 8)
    image = synth(label).image[0]  # [3, 32, 32]
    with torch.no_grad():
        expected = synth.generator(*synth.task.generator_inputs(label[None])).image
    assert torch.equal(image, expected[0])
    # The trained G recolours: its image is closer to the task's colours than a fresh G's.
    target = synth.task.colours[label].permute(2, 0, 1)
    fresh = RecolourGenerator(4)(synth.task.generator_inputs(label[None])[0]).image[0].detach()
    assert (image - target).abs().mean() < (fresh - target).abs().mean()

    # evaluate: the task's split, batches and default metric, through the CLI.
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--checkpoint", str(run), "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    scores = json.loads(out.read_text())
    assert scores["num_images"] == 4 and scores["split"] == "val"
    assert set(scores["metrics"]["images"]) >= {"psnr"}
    images = Path(scores["images"])
    assert sorted(p.name for p in (images / "generated").iterdir()) == [f"val_{i}.png" for i in range(4)]


def test_every_task_declares_its_datasets_recipes_and_own_fields() -> None:
    from lggan.config import DATASET_TASK, TASK_SETTINGS, Recipe, SEMANTIC_DATASETS, CROSSVIEW_DATASETS

    assert set(TASK_SETTINGS) == set(choices(TaskName))
    named = [r for r in choices(Recipe) if r != "custom"]
    for name, settings in TASK_SETTINGS.items():
        assert sorted(settings.recipes) == sorted(named), name
        assert all(DATASET_TASK[d] == name for d in settings.datasets)
    assert sorted(DATASET_TASK) == sorted(SEMANTIC_DATASETS + CROSSVIEW_DATASETS)
    # A field of one task, set under the other, is refused with the field's neutral value in the message.
    for field_name, neutral in TASK_SETTINGS["semantic"].own_fields.items():
        other = {"model.local_groups": "2", "model.num_upsampling_layers": "more", "model.class_pool": "mask",
                 "loss.class_ce": "1"}[field_name]
        with pytest.raises(ValueError, match=rf"{re.escape(field_name)}=.* does not apply to model.task='crossview' "
                                             rf"\(leave it at {re.escape(repr(neutral))}\)"):
            apply_overrides(get_preset("synth-views"), [f"{field_name}={other}"])
    with pytest.raises(ValueError, match=r"model.discriminator='pix2pix' does not apply to model.task='semantic'"):
        apply_overrides(get_preset("synth"), ["model.discriminator=pix2pix"])
