"""What `lggan train` shows and takes: the start-up banner, progress (bar or plain lines), --config / --print-config /
shortcuts, the custom preset, `lggan plot`, sample grids in TensorBoard, --version and --help."""

import argparse
import contextlib
import io
import json
import re
import sys
import types
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lggan
from lggan.training import report as R
from lggan.training import RunLog, steps, train
from lggan.cli import _config_from_args, _Formatter, build_parser, main
from lggan.config import Config, apply_config_file, apply_overrides, get_preset
from lggan.tasks import make_task
from test_train import city  # noqa: F401  (the shared tiny city fixture)
from test_train import tiny_cfg as train_tiny_cfg

TINY = [
    "data.load_size=64x32", "model.ngf=4", "model.ndf=8", "model.spade_hidden=8", "model.num_res_blocks=1",
    "train.batch_size=2", "data.num_workers=0", "train.progress=false", "train.sample_every=1000",
    "train.checkpoint_every=1000", "train.epochs_const=100", "train.device=cpu",
]


class FakeSummaryWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter (tensorboard is an optional extra)."""

    instances: list["FakeSummaryWriter"] = []

    def __init__(self, log_dir):
        self.log_dir, self.scalars, self.images = log_dir, [], []
        FakeSummaryWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_image(self, tag, image, step, dataformats="CHW"):
        self.images.append((tag, np.asarray(image), step, dataformats))

    def close(self):
        pass


def tiny_cfg(city, *extra):
    return train_tiny_cfg(city, *(TINY + list(extra)))


@pytest.fixture(scope="module")
def lines_run(city, tmp_path_factory):
    """A 5-iteration run without the bar (train.progress=false), logging every 2 iterations, samples every 2, with
    a stand-in TensorBoard writer: (cfg, result, stdout)."""
    cfg = tiny_cfg(city, "train.iterations=5", "train.log_every=2", "train.sample_every=2")
    out = io.StringIO()
    FakeSummaryWriter.instances.clear()
    fake_tb = types.ModuleType("torch.utils.tensorboard")
    fake_tb.SummaryWriter = FakeSummaryWriter
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setitem(sys.modules, "torch.utils.tensorboard", fake_tb)
        result = train(cfg, tmp_path_factory.mktemp("lines") / "run")
    return cfg, result, out.getvalue()


def _count(text: str, pattern: str) -> int:
    m = re.search(pattern, text)
    assert m, (pattern, text)
    return int(m.group(1).replace(",", ""))


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- banner --------------------------------------------------------------------------------------------------------


def test_banner_numbers_are_the_real_parameter_counts_data_sizes_and_schedule(lines_run):
    cfg, result, text = lines_run
    G = result.generator
    Ds = make_task(cfg, None).build_discriminators()
    assert f"lggan train: run folder {result.run_dir}" in text
    from lggan.precision import cpu_bf16_native

    # The speed plan, folded in: train.amp=auto is fp32 on a CPU without native bf16, bf16 on one with it.
    plan = "autocast on (bfloat16)" if cpu_bf16_native() else "autocast off (fp32)"
    assert "device:     cpu" in text and plan in text
    assert text.count("autocast") == 1  # printed once (no separate plan line any more)
    assert _count(text, r"G ([\d,]+) parameters") == _params(G)
    parts = {"encoder": G.encoder, "global G_g": G.global_generator, "local G_l": G.local,
             "classifier": G.classifier, "weight map": G.weight_map}
    for label, module in parts.items():
        assert _count(text, rf"{label} ([\d,]+)") == _params(module)
    assert sum(_params(m) for m in parts.values()) == _params(G)
    assert _count(text, r"D ([\d,]+) parameters") == _params(Ds)
    assert _count(text, r"D_s ([\d,]+)") == _params(Ds["D_s"])
    assert _count(text, r"(\d+) train images") == 6 and _count(text, r"(\d+) val images") == 2
    assert _count(text, r"batch (\d+)") == 2
    assert _count(text, r"(\d+) iterations per epoch") == 3  # 6 images, batch 2
    assert _count(text, r"(\d+) iterations in total") == 5


def test_generator_parameter_counts_split_global_and_local_and_add_up():
    cfg = apply_overrides(get_preset("synth"), TINY)
    G = make_task(cfg, None).build_generator()
    counts = R.generator_parameter_counts(G)
    assert list(counts) == ["encoder", "global G_g", "local G_l", "classifier", "weight map"]
    assert counts["global G_g"] == _params(G.global_generator) and counts["local G_l"] == _params(G.local)
    assert sum(counts.values()) == R.parameter_count(G) == _params(G)
    s1 = make_task(apply_overrides(get_preset("S1"), TINY), None).build_generator()  # global generator only
    assert "local G_l" not in R.generator_parameter_counts(s1)


# -- progress --------------------------------------------------------------------------------------------------------


def test_without_the_bar_a_plain_line_per_log_step_with_eta(lines_run):
    cfg, result, text = lines_run
    lines = [line for line in text.splitlines() if line.startswith("iter ")]
    logged = [json.loads(x)["iteration"] for x in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 4, 5]  # the first iteration, every train.log_every, and the last
    assert [int(re.match(r"iter (\d+)/5 ", line).group(1)) for line in lines] == logged
    for line in lines:
        pattern = r"iter \d+/5 \(\d+%\) epoch \d+ [\d.]+ img/s D -?[\d.]+ G -?[\d.]+ eta (\d+[hms]\d*[ms]?|\?)"
        assert re.fullmatch(pattern, line), line
    assert lines[0].startswith("iter 1/5 (20%) epoch 0 ") and lines[-1].startswith("iter 5/5 (100%) epoch 1 ")
    assert lines[-1].endswith("eta 0s")


def test_a_heartbeat_record_whatever_log_every_is(city, tmp_path, monkeypatch, capsys):
    """A record (log.jsonl and a line) at the first iteration and whenever HEARTBEAT_SECONDS have passed since the
    last, however large train.log_every is; a resumed session starts with a record too."""
    monkeypatch.setattr(steps, "HEARTBEAT_SECONDS", 1e9)
    run = train(tiny_cfg(city, "train.iterations=3", "train.log_every=1000"), tmp_path / "run")
    assert [json.loads(x)["iteration"] for x in (run.run_dir / "log.jsonl").read_text().splitlines()] == [1, 3]
    monkeypatch.setattr(steps, "HEARTBEAT_SECONDS", 0.0)  # every iteration is a minute after the last record
    train(tiny_cfg(city, "train.iterations=6", "train.log_every=1000"), tmp_path / "run", resume=True)
    logged = [json.loads(x)["iteration"] for x in (run.run_dir / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 3, 4, 5, 6]
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("iter ")] == \
        ["1/3", "3/3", "4/6", "5/6", "6/6"]


def test_the_bar_spans_the_whole_run_and_replaces_the_lines(city, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(R, "progress_bar_wanted", lambda progress: progress)  # as on a terminal
    train(tiny_cfg(city, "train.iterations=4", "train.log_every=1", "train.progress=true"), tmp_path / "run")
    captured = capsys.readouterr()
    assert "(progress: bar)" in captured.out
    assert not [line for line in captured.out.splitlines() if line.startswith("iter ")]
    # One bar over the run (not one per epoch of 3 iterations): it reaches 4/4 and stays on screen.
    assert "4/4" in captured.err and "epoch 1" in captured.err and "img_s=" in captured.err
    assert "3/3" not in captured.err


def test_the_bar_is_off_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert R.progress_bar_wanted(True) is False and R.progress_bar_wanted(False) is False

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    assert R.progress_bar_wanted(True) is True and R.progress_bar_wanted(False) is False


def test_durations_and_the_eta_under_a_time_budget():
    assert [R.format_duration(s) for s in (0, 45, 190, 7500)] == ["0s", "45s", "3m10s", "2h05m"]
    tc = types.SimpleNamespace(max_seconds=None, progress=False)
    run = types.SimpleNamespace(iteration=0, train_seconds=0.0, total=100, cfg=types.SimpleNamespace(train=tc))
    p = R.Progress(run, enabled=False)
    run.iteration = 25
    assert p.eta_seconds(50.0) == pytest.approx(150.0)  # 75 iterations left at 2 s each
    run.cfg.train.max_seconds = 80.0
    assert p.eta_seconds(50.0) == pytest.approx(30.0)  # the time budget ends it sooner


# -- TensorBoard -------------------------------------------------------------------------------------------------------


def test_sample_grids_go_to_tensorboard_when_it_is_installed(lines_run):
    cfg, result, _ = lines_run
    (writer,) = FakeSummaryWriter.instances
    assert [(tag, step, fmt) for tag, _, step, fmt in writer.images] == [("samples", 2, "HWC"), ("samples", 4, "HWC"),
                                                                         ("samples", 5, "HWC")]
    grid = np.asarray(Image.open(result.run_dir / "samples" / "iter_00000004.png"))
    assert np.array_equal(writer.images[1][1], grid)
    assert any(tag == "D_total" and step == 2 for tag, _, step in writer.scalars)


def test_without_tensorboard_add_image_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    log = RunLog(tmp_path, True)
    assert log.tb is None
    log.add_image("samples", np.zeros((4, 4, 3), np.uint8), 1)
    log.close()


# -- configuration -----------------------------------------------------------------------------------------------------


def _train_args(*argv):
    return build_parser().parse_args(["train", *argv])


def test_config_file_equals_the_same_set_items(tmp_path):
    sections = {"train": {"batch_size": 8, "lr_g": 1e-3, "iterations": 7}, "model": {"ngf": 32},
                "data": {"load_size": [128, 64], "flip": False}}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(sections))
    via_file = _config_from_args(_train_args("--config", str(path)))
    via_set = _config_from_args(_train_args(*sum((["--set", s] for s in (
        "train.batch_size=8", "train.lr_g=1e-3", "train.iterations=7", "model.ngf=32", "data.load_size=128x64",
        "data.flip=false")), [])))
    assert via_file == via_set
    assert via_file != _config_from_args(_train_args())
    # Order: preset, then --config, then --set (the last word wins).
    assert _config_from_args(_train_args("--config", str(path), "--set", "train.batch_size=2")).train.batch_size == 2
    # A recipe in the file fills its fields first; the file's other fields refine it.
    path.write_text(json.dumps({"train": {"lr_g": 5e-4, "recipe": "release"}}))
    cfg = _config_from_args(_train_args("--config", str(path)))
    assert (cfg.train.lr_g, cfg.train.lr_d, cfg.train.recipe) == (5e-4, 4e-4, "custom")


def test_a_run_config_json_as_config_file_gives_that_config(tmp_path):
    cfg = apply_overrides(get_preset("cityscapes"), ["train.batch_size=3", "model.ngf=16"])
    cfg.save_json(tmp_path / "config.json")
    assert _config_from_args(_train_args("--config", str(tmp_path / "config.json"))) == cfg  # its preset too
    with pytest.raises(ValueError, match=r"--config .*config.json: names preset 'cityscapes' but --preset synth"):
        _config_from_args(_train_args("--config", str(tmp_path / "config.json"), "--preset", "synth"))


def test_yaml_config_files(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  batch_size: 8\nmodel:\n  ngf: 32\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        pass
    else:
        assert _config_from_args(_train_args("--config", str(path))) == \
            _config_from_args(_train_args("--set", "train.batch_size=8", "--set", "model.ngf=32"))
    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML not installed
    with pytest.raises(ValueError, match=r"^--config .*c\.yaml: reading YAML needs the PyYAML package"):
        apply_config_file(get_preset("synth"), path)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{nope", "not valid JSON"),
    ('["train"]', "expected a mapping of sections"),
    ('{"trian": {}}', "unknown section 'trian'"),
    ('{"train": {"batch_size": "x"}}', "train.batch_size=x: must be an integer"),
    ('{"train": {"bach_size": 8}}', "unknown field 'train.bach_size'"),
])
def test_config_file_errors_are_one_line_naming_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content)
    assert main(["train", "--config", str(path), "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lggan train: error: --config {path}: ") and message in err and "\n" not in err


def test_shortcuts_equal_their_set_items():
    short = _config_from_args(_train_args("--batch-size", "8", "--device", "cpu", "--iterations", "12"))
    long = _config_from_args(_train_args("--set", "train.batch_size=8", "--set", "train.device=cpu",
                                         "--set", "train.iterations=12"))
    assert short == long and (short.train.batch_size, short.train.device, short.train.iterations) == (8, "cpu", 12)
    # --set comes after the shortcuts.
    assert _config_from_args(_train_args("--batch-size", "8", "--set", "train.batch_size=2")).train.batch_size == 2


def test_print_config_prints_the_resolved_config_and_trains_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {"ngf": 8}}))
    argv = ["--preset", "cityscapes", "--config", str(path), "--data", "/data/city", "--batch-size", "2",
            "--set", "train.lr_d=1e-3"]
    assert main(["train", *argv, "--print-config"]) == 0
    printed = Config.from_dict(json.loads(capsys.readouterr().out))
    assert printed == _config_from_args(_train_args(*argv))
    assert (printed.model.ngf, printed.train.batch_size, printed.data.root) == (8, 2, "/data/city")
    assert not (tmp_path / "runs").exists()


# -- the custom preset -------------------------------------------------------------------------------------------------


def test_custom_preset_needs_num_classes_from_the_user(capsys):
    cfg = get_preset("custom")
    assert cfg.data.dataset == "custom" and cfg.data.num_classes is None and cfg.train.recipe == "release"
    with pytest.raises(ValueError, match=r"data.num_classes is not set.*--set data.num_classes=N"):
        apply_overrides(cfg, [])
    assert apply_overrides(cfg, ["data.num_classes=5"]).data.semantic_nc == 5
    with pytest.raises(ValueError, match=r"data.num_classes is not set"):  # the library's train() says so too
        train(cfg, Path("never-created"))
    assert not Path("never-created").exists()
    assert main(["train", "--preset", "custom", "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert "data.num_classes" in err and "--set data.num_classes=N" in err and "\n" not in err


def _write_custom_dataset(root: Path, splits: dict[str, int], classes: int) -> None:
    rng = np.random.default_rng(0)
    for split, n in splits.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(n):
            label = np.zeros((32, 64), np.uint8)
            for c in range(1, classes):  # a band per class
                label[:, c * 64 // classes:] = c
            photo = (rng.random((32, 64, 3)) * 40 + label[..., None] * 60).astype(np.uint8)
            Image.fromarray(photo).save(root / split / "images" / f"scene_{i:03d}.jpg")
            Image.fromarray(label).save(root / split / "labels" / f"scene_{i:03d}.png")


def test_custom_preset_trains_on_a_folder_of_images_and_label_pngs(tmp_path, capsys):
    root = tmp_path / "mydata"
    _write_custom_dataset(root, {"train": 4, "val": 2}, classes=3)
    out = tmp_path / "run"
    sets = ["data.num_classes=3", "data.load_size=64x32", "model.ngf=4", "model.ndf=8", "model.spade_hidden=8",
            "model.num_res_blocks=1", "loss.vgg=0", "data.num_workers=0", "train.progress=false",
            "train.sample_every=1000"]
    argv = ["train", "--preset", "custom", "--data", str(root), "--out", str(out), "--batch-size", "2",
            "--iterations", "2", "--device", "cpu"] + sum((["--set", s] for s in sets), [])
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"custom at {root}: 4 train images, 2 val images" in text
    assert _count(text, r"(\d+) iterations per epoch") == 2 and _count(text, r"(\d+) iterations in total") == 2
    assert json.loads((out / "config.json").read_text())["data"]["num_classes"] == 3
    assert f"curves: lggan plot {out}" in text


# -- lggan plot ------------------------------------------------------------------------------------------------------


def test_plot_draws_loss_and_metric_curves(lines_run, tmp_path, capsys):
    _, result, _ = lines_run
    run = tmp_path / "run"
    run.mkdir()
    log = (result.run_dir / "log.jsonl").read_text()
    evals = [{"iteration": i, "kind": "eval", "eval_images": 2, "eval_miou": m, "eval_pixel_accuracy": 50 + m,
              "eval_seconds": 0.1, "eval_per_class_iou": {"road": m}} for i, m in ((2, 10.0), (4, 20.0))]
    evals[0].update(eval_miou_real=60.0, eval_pixel_accuracy_real=90.0)
    (run / "log.jsonl").write_text(log + "".join(json.dumps(e) + "\n" for e in evals) + '{"iteration": 6, "D_t')
    assert main(["plot", str(run)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {run / 'curves.png'}: ") and "2 metric panel(s)" in printed
    assert "iterations 1..5" in printed  # the cut-off last line is skipped
    with Image.open(run / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 500
    from lggan.plot import loss_panels, read_log

    train_records, eval_records = read_log(run)
    titles = [t for t, _ in loss_panels(train_records)]
    assert titles[0] == "totals (D_total, G_total)" and "G local L1 (per class)" in titles
    panels = dict(loss_panels(train_records))
    assert panels["totals (D_total, G_total)"] == ["D_total", "G_total"]
    every_term = {k for r in train_records for k in r if k.startswith(("D_", "G_"))}
    assert set(sum(panels.values(), [])) == every_term  # each loss term is drawn
    assert [r["iteration"] for r in eval_records] == [2, 4]
    # --out elsewhere; a run without eval records has loss panels only.
    assert main(["plot", str(result.run_dir), "--out", str(tmp_path / "c.png")]) == 0
    assert "no eval records" in capsys.readouterr().out and (tmp_path / "c.png").is_file()


def test_plot_errors_are_one_line(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lggan plot: error: {tmp_path / 'nope'}: no such run folder or log file"
    assert main(["plot", str(tmp_path)]) == 2
    assert f"{tmp_path}: no log.jsonl in this folder" in capsys.readouterr().err
    (tmp_path / "log.jsonl").write_text("")
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "log.jsonl: no log records yet" in err and "\n" not in err
    (tmp_path / "log.jsonl").write_text('{"iteration": 1, "D_total": 1.0}\n')
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.jpg")]) == 2
    assert "--out" in capsys.readouterr().err


# -- version and help --------------------------------------------------------------------------------------------------


def test_version_prints_lggan_and_torch_versions(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip()
    import torch

    assert out.startswith(f"lggan {lggan.__version__} (torch {torch.__version__}, Python ")
    assert metadata.version("torch") in out and "\n" not in out


def _parsers(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_help_shows_defaults_everywhere_and_names_the_cache():
    parser = build_parser()
    paths = []
    for path, p in _parsers(parser):
        paths.append(path)
        assert issubclass(p.formatter_class, _Formatter), path
    assert ("plot",) in paths and ("train",) in paths
    text = parser.format_help()
    assert "LGGAN_CACHE" in text and "--version" in text
    train = dict(_parsers(parser))[("train",)].format_help()
    assert "--config FILE" in train and "--print-config" in train and "--batch-size N" in train
    synth = dict(_parsers(parser))[("data", "synth-city")].format_help()
    # An option without a help text, and a default of 0, still show their defaults.
    assert re.search(r"--num-val NUM_VAL\s+\(default: 100\)", synth)
    assert re.search(r"--seed SEED\s+\(default: 0\)", synth)


def test_yaml_aliases_are_refused_before_they_expand(tmp_path, capsys):
    pytest.importorskip("yaml")
    from lggan.cli import main

    # 9 levels of 9 aliases each: 9^9 (387 million) strings if expanded; 357 bytes of text.
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    lines.append("train: {batch_size: *i}")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    code = main(["train", "--config", str(path), "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lggan train: error: --config {path}: YAML aliases (*name) are not supported; write the values out"]
    assert not (tmp_path / "run").exists()


def test_a_config_error_is_one_bounded_line(tmp_path, capsys):
    from lggan.cli import main

    path = tmp_path / "long.json"
    path.write_text(json.dumps({"train": {"batch_size": ["x"] * 100_000}}))  # 500 kB of value in one field
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and len(err[0]) < 1100 and "train.batch_size=" in err[0], err[0][:200]
    big = tmp_path / "big.json"
    big.write_text(" " * (2 << 20) + "{}")
    assert main(["train", "--config", str(big), "--out", str(tmp_path / "run")]) == 2
    assert "a config file is at most 1,048,576 bytes" in capsys.readouterr().err
