"""`lggan ablation`, metrics during training (train.eval_every) and the time budget (train.max_seconds)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lggan import checkpoint as ckpt
from lggan.ablation import (SMALL_CLASSES, Budget, curve_change, paired_difference, parse_budget, parse_per_variant,
                            parse_seeds, study_markdown)
from lggan.cli import main
from lggan.config import ABLATION_VARIANTS, ablation_variant, config_changes, get_preset
from lggan.training import train
from test_train import read_log, tiny_cfg

@pytest.fixture(scope="module")
def city_and_segmenter(tmp_path_factory):
    from lggan.data.synthetic import generate_synth_city

    tmp = tmp_path_factory.mktemp("abl")
    city = tmp / "city"
    generate_synth_city(city, num_train=6, num_val=5, size=(64, 32), seed=4, progress=False, workers=0)
    seg = tmp / "seg.safetensors"
    assert main(["train-segmenter", "--data", str(city), "--dataset", "cityscapes", "--out", str(seg),
                 "--iterations", "6", "--batch-size", "2", "--width", "4", "--device", "cpu"]) == 0
    return city, seg


@pytest.mark.parametrize("text, kind, amount", [
    ("300", "iterations", 300), ("10min", "seconds", 600.0), ("90s", "seconds", 90.0), ("1.5h", "seconds", 5400.0),
    (" 2 m ", "seconds", 120.0),
])
def test_budgets_are_iterations_or_training_time(text, kind, amount):
    assert parse_budget(text) == Budget(kind, amount)


@pytest.mark.parametrize("text", ["abc", "0", "2.5", "5days", "-3", ""])
def test_bad_budgets_name_the_option(text):
    with pytest.raises(ValueError, match="--budget"):
        parse_budget(text)


def test_ablation_variants_switch_only_the_components_of_table_3_on_any_base():
    base = get_preset("cityscapes")
    switched = {"model.use_local", "model.local_combine", "loss.class_ce", "model.use_weight_map", "loss.local_l1"}
    flags = []
    for v in ABLATION_VARIANTS:
        cfg = ablation_variant(base, v)
        assert set(config_changes(base.to_dict(), cfg.to_dict())) <= switched
        assert cfg.model.ngf == 64 and cfg.train.step_order == base.train.step_order
        flags.append((cfg.model.use_local, cfg.model.local_combine if cfg.model.use_local else None,
                      cfg.loss.class_ce > 0, cfg.model.use_weight_map))
    assert flags == [(False, None, False, False), (True, "sum", False, False), (True, "conv", False, False),
                     (True, "conv", True, False), (True, "conv", True, True)]
    assert base.model.use_weight_map  # the base is untouched (copies)
    with pytest.raises(ValueError, match="S6"):
        ablation_variant(base, "S6")


def test_eval_every_logs_the_segmenter_protocol_of_evaluate(city_and_segmenter, tmp_path):
    city, seg = city_and_segmenter
    cfg = tiny_cfg(city, "train.iterations=4", "train.eval_every=2", "train.eval_images=3",
                   f"train.eval_segmenter={seg}")
    train(cfg, tmp_path / "run")
    evals = [r for r in read_log(tmp_path / "run") if r.get("kind") == "eval"]
    assert [r["iteration"] for r in evals] == [2, 4]
    assert all(r["eval_images"] == 3 and 0 <= r["eval_pixel_accuracy"] <= 100 for r in evals)
    assert "eval_miou_real" in evals[0] and "eval_miou_real" not in evals[1]  # the ceiling, once
    assert "road" in evals[0]["eval_per_class_iou"]
    # The logged numbers at iteration 4 are those of `lggan evaluate` on the saved checkpoint (uint8 images).
    out = tmp_path / "res.json"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--metrics", "miou", "--segmenter", str(seg),
                 "--limit", "3", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    res = json.loads(out.read_text())["metrics"]
    assert evals[1]["eval_pixel_accuracy"] == pytest.approx(res["segmentation"]["pixel_accuracy"], abs=0.05)
    assert evals[1]["eval_miou"] == pytest.approx(res["segmentation"]["miou"], abs=0.05)
    assert evals[0]["eval_miou_real"] == pytest.approx(res["segmentation_real"]["miou"], abs=0.05)


def test_evaluation_during_training_does_not_change_the_training(city_and_segmenter, tmp_path):
    city, seg = city_and_segmenter
    torch.manual_seed(0)
    plain = train(tiny_cfg(city, "train.iterations=3"), tmp_path / "a").generator.state_dict()
    torch.manual_seed(0)
    scored = train(tiny_cfg(city, "train.iterations=3", "train.eval_every=1", f"train.eval_segmenter={seg}"),
                   tmp_path / "b").generator.state_dict()
    for k in plain:
        assert torch.equal(plain[k], scored[k]), k


def test_the_evaluator_restores_the_rng_even_when_the_forward_draws_from_it(city_and_segmenter):
    # The guard itself: the tiny generator's eval forward draws no random numbers, so the training comparison above
    # would pass without the restore; a forward that draws (dropout, noise inputs) must not move training's RNG.
    from lggan.config import apply_overrides
    from lggan.tasks import make_task
    from lggan.training.evaluator import TrainingEvaluator

    city, seg = city_and_segmenter
    cfg = tiny_cfg(city)
    task = make_task(apply_overrides(cfg, []), str(city))
    evaluator = TrainingEvaluator.build(task, str(seg), 2, torch.device("cpu"))
    G = task.build_generator()

    def noisy_forward(inputs):
        torch.rand(1000)  # consumes the global generator, as a stochastic layer would
        return G(*inputs)

    torch.manual_seed(123)
    before = torch.get_rng_state()
    scores = evaluator(G, noisy_forward)
    assert torch.equal(torch.get_rng_state(), before) and 0 <= scores["miou"] <= 100
    assert G.training  # and the mode is restored


def test_eval_every_needs_a_readable_segmenter(city_and_segmenter, tmp_path):
    city, _ = city_and_segmenter
    with pytest.raises(ValueError, match="train.eval_segmenter"):
        tiny_cfg(city, "train.eval_every=5")
    with pytest.raises(FileNotFoundError, match="train.eval_segmenter"):
        train(tiny_cfg(city, "train.eval_every=5", f"train.eval_segmenter={tmp_path / 'nope.safetensors'}"),
              tmp_path / "run")
    assert not any((tmp_path / "run").glob("checkpoints/*"))


def test_a_time_budget_stops_training_saves_and_is_counted_across_resumes(city_and_segmenter, tmp_path):
    city, _ = city_and_segmenter
    cfg = tiny_cfg(city, "train.iterations=50", "train.max_seconds=1e-6")
    result = train(cfg, tmp_path / "run")
    assert result.stopped_by == "time budget" and result.iteration == 1 and result.train_seconds > 0
    found = ckpt.load_latest(tmp_path / "run")
    assert found.iteration == 1 and found.state["train_seconds"] == pytest.approx(result.train_seconds)
    again = train(cfg, tmp_path / "run", resume=True)  # the budget is spent: nothing more is trained
    assert again.iteration == 1 and again.stopped_by == "time budget"
    with pytest.raises(ValueError, match="train.max_seconds"):
        tiny_cfg(city, "train.max_seconds=0")


def test_ablation_quick_end_to_end_then_resumes_without_training(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["ablation", "--quick", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    runs = sorted(p.name for p in out.iterdir() if p.is_dir() and (p / "checkpoints").is_dir())
    assert runs == [f"{v}-seed0" for v in ABLATION_VARIANTS]
    study = json.loads((out / "study.json").read_text())
    assert [r["variant"] for r in study["rows"]] == list(ABLATION_VARIANTS)
    for r in study["runs"]:
        assert r["iterations"] == 2 and r["stopped_by"] == "finished" and r["train_seconds"] > 0
        assert 0 <= r["miou"] <= 100 and 0 <= r["pixel_accuracy"] <= 100
        assert [c["iteration"] for c in r["curve"]] == [1, 2]  # eval_every: a fifth of the budget, at least 1
        # The run's config is the variant of the base, with the study's seed and budget.
        assert r["config"]["train"]["iterations"] == 2 and r["config"]["train"]["seed"] == 0
    s5 = next(r for r in study["runs"] if r["variant"] == "S5")
    assert s5["config"]["model"]["use_weight_map"] and s5["config"]["model"]["ngf"] == 4
    # The rows are the means of the runs (one seed: equal, no spread).
    for row, run in zip(study["rows"], study["runs"]):
        assert row["miou"] == pytest.approx(run["miou"]) and row["miou_std"] is None
    md = (out / "study.md").read_text()
    assert md == study_markdown(study)
    assert "Smoke test (`--quick`)" in md and study["protocol"]["quick"] is True  # not numbers to quote
    import hashlib

    seg = study["protocol"]["segmenter"]
    assert seg["sha256"] == hashlib.sha256(open(seg["file"], "rb").read()).hexdigest()
    # One seed: each variant's paired difference to S1 has no spread and no interval.
    assert [d["variant"] for d in study["paired_differences"]] == ["S2", "S3", "S4", "S5"]
    s1 = next(r for r in study["runs"] if r["variant"] == "S1")["miou"]
    assert study["paired_differences"][-1]["mean"] == pytest.approx(s5["miou"] - s1)
    assert study["paired_differences"][-1]["ci95"] is None
    assert "| S5 | + weight-map fusion (full LGGAN) |" in md and "| real photos |" in md
    for name in ("study.png", "strip.png"):
        Image.open(out / name).verify()
    strip = np.asarray(Image.open(out / "strip.png"))
    # Columns: label map, five variants, real photo; each 64 px wide plus 2 px padding.
    assert strip.shape[1] == 7 * (64 + 2) + 2
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("S*-seed0/checkpoints/*/*")}
    capsys.readouterr()
    assert main(["ablation", "--quick", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("S*-seed0/checkpoints/*/*")} == stamps
    again = json.loads((out / "study.json").read_text())
    assert [r["miou"] for r in again["runs"]] == [r["miou"] for r in study["runs"]]
    # Another segmenter (--segmenter-iterations is honoured with --quick): the runs are not retrained, but every
    # run is rescored with it, never reported under its name with the old scores.
    assert main(["ablation", "--quick", "--out", str(out), "--no-progress", "--device", "cpu",
                 "--segmenter-iterations", "3"]) == 0
    third = json.loads((out / "study.json").read_text())
    new_seg = third["protocol"]["segmenter"]
    assert "-3it-" in new_seg["file"] and new_seg["sha256"] != seg["sha256"]
    assert {p: p.stat().st_mtime_ns for p in out.glob("S*-seed0/checkpoints/*/*")} == stamps
    for r in third["runs"]:
        scored = json.loads((out / f"{r['variant']}-seed0" / "eval.json").read_text())
        assert scored["study_protocol"]["segmenter_sha256"] == new_seg["sha256"]


def test_small_classes_are_cityscapes_train_ids():
    from lggan.metrics.segmentation import CITYSCAPES_CLASS_NAMES

    assert set(SMALL_CLASSES) <= set(CITYSCAPES_CLASS_NAMES)


def test_ablation_errors_are_one_line(tmp_path, capsys):
    assert main(["ablation", "--out", str(tmp_path), "--variants", "S1,S9", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lggan ablation: error: --variants S1,S9") and "\n" not in err
    assert main(["ablation", "--out", str(tmp_path), "--budget", "soon"]) == 2
    assert "--budget 'soon'" in capsys.readouterr().err
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep")
    assert main(["ablation", "--out", str(theirs), "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"lggan ablation: error: --out {theirs}: holds files that are not a study's (notes.txt); choose "
                   "a new, empty or study folder")
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]


def test_per_variant_seeds_and_budgets():
    variants = ("S1", "S2", "S5")
    assert parse_per_variant("3", parse_seeds, "--seeds", variants) == {"S1": 3, "S2": 3, "S5": 3}
    assert parse_per_variant("S1=3,S2=2,S5=3", parse_seeds, "--seeds", variants) == {"S1": 3, "S2": 2, "S5": 3}
    assert parse_per_variant("S5=4000,S1=7600,S2=4000", parse_budget, "--budget", variants) == {
        "S1": Budget("iterations", 7600), "S2": Budget("iterations", 4000), "S5": Budget("iterations", 4000)}
    with pytest.raises(ValueError, match="no value for S2"):
        parse_per_variant("S1=3,S5=3", parse_seeds, "--seeds", variants)
    with pytest.raises(ValueError, match="--seeds"):
        parse_per_variant("S1=3,S7=2", parse_seeds, "--seeds", variants)
    with pytest.raises(ValueError, match="--seeds '0'"):
        parse_seeds("0")


def test_paired_difference_and_its_confidence_interval():
    runs = [{"variant": "S1", "seed": k, "miou": m} for k, m in enumerate([30.0, 32.0, 31.0])]
    runs += [{"variant": "S5", "seed": k, "miou": m} for k, m in enumerate([33.0, 33.0, 35.0, 40.0])]  # seed 3: no pair
    d = paired_difference(runs, "S5", "S1")
    assert d["seeds"] == [0, 1, 2] and d["differences"] == [3.0, 1.0, 4.0]
    assert d["mean"] == pytest.approx(8 / 3)
    sd = np.std([3.0, 1.0, 4.0], ddof=1)
    half = 4.302652729911275 * sd / np.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert d["ci95"] == pytest.approx([8 / 3 - half, 8 / 3 + half])
    assert paired_difference(runs, "S5", "S3") is None


def test_curve_change_measures_the_last_fifth():
    flat = [{"iteration": i, "miou": 40.0 + (0.5 if i % 200 else 0.0)} for i in range(100, 2001, 100)]
    c = curve_change(flat)
    assert (c["from_iteration"], c["to_iteration"], c["points"]) == (1600, 2000, 5)
    assert abs(c["trend_change"]) < 0.5 and c["range"] == pytest.approx(0.5)
    rising = [{"iteration": i, "miou": i / 100} for i in range(100, 2001, 100)]
    assert curve_change(rising)["trend_change"] == pytest.approx(4.0)  # 1600 -> 2000: +4 points
    assert curve_change(rising[:2]) is None
