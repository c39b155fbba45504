"""`lggan evaluate` and `lggan train-segmenter` end to end on tiny synthetic data (CPU, random-free weights)."""

import json

import numpy as np
import pytest
from PIL import Image

from lggan.cli import main
from lggan.config import apply_overrides, get_preset
from lggan.train import train

TINY = [
    "data.load_size=64x32", "model.ngf=4", "model.ndf=8", "model.spade_hidden=8", "model.num_res_blocks=1",
    "train.batch_size=2", "data.num_workers=0", "train.progress=false", "train.iterations=2", "train.epochs_const=100",
]


@pytest.fixture(scope="module")
def city_run(tmp_path_factory):
    from lggan.data.synthetic import generate_synth_city

    tmp = tmp_path_factory.mktemp("eval")
    city = tmp / "city"
    generate_synth_city(city, num_train=4, num_val=3, size=(64, 32), seed=5, progress=False)
    cfg = apply_overrides(get_preset("synth"), TINY)
    cfg.data.root = str(city)
    train(cfg, tmp / "run")
    return tmp, city


def test_train_segmenter_then_evaluate_a_run_with_miou_and_pixel_metrics(city_run, capsys):
    tmp, city = city_run
    seg = tmp / "seg.safetensors"
    assert main(["train-segmenter", "--data", str(city), "--dataset", "cityscapes", "--out", str(seg),
                 "--iterations", "3", "--batch-size", "2", "--width", "4", "--device", "cpu"]) == 0
    assert seg.is_file()
    out = tmp / "results.json"
    assert main(["evaluate", "--checkpoint", str(tmp / "run"), "--metrics", "ssim", "psnr", "sd", "miou",
                 "--segmenter", str(seg), "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert res["task"] == "semantic" and res["split"] == "val" and res["num_images"] == 3
    img = res["metrics"]["images"]
    for key in ("ssim", "psnr", "sd"):
        assert np.isfinite(img[key])
    # The generated images, the real photos and the label maps were all written with the same names.
    images = tmp / "results_images"
    names = sorted(p.name for p in (images / "generated").iterdir())
    assert names == sorted(p.name for p in (images / "real").iterdir()) == sorted(
        p.name for p in (images / "labels").iterdir())
    assert len(names) == 3 and Image.open(images / "generated" / names[0]).size == (64, 32)
    seg_gen, seg_real = res["metrics"]["segmentation"], res["metrics"]["segmentation_real"]
    for s in (seg_gen, seg_real):
        assert 0 <= s["pixel_accuracy"] <= 100 and s["protocol"]["label_protocol"] == "cityscapes"
        assert "road" in s["per_class_iou"]
    printed = capsys.readouterr().out
    assert "miou" in printed and "psnr" in printed


def test_folder_mode_scores_identical_images_at_the_caps(tmp_path):
    gen, real = tmp_path / "gen", tmp_path / "real"
    gen.mkdir()
    real.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(arr).save(gen / f"{i}.png")
        Image.fromarray(arr).save(real / f"{i}.png")
    out = tmp_path / "r.json"
    assert main(["evaluate", "--generated", str(gen), "--real", str(real), "--task", "crossview",
                 "--metrics", "ssim", "psnr", "sd", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    m = json.loads(out.read_text())["metrics"]["images"]
    assert m["ssim"] == pytest.approx(1.0)
    cap = 10 * np.log10(255**2 / 1e-4)
    assert m["psnr"] == pytest.approx(cap) and m["sd"] == pytest.approx(cap)


def test_missing_inception_weights_name_the_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    gen = tmp_path / "gen"
    gen.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(gen / "a.png")
    code = main(["evaluate", "--generated", str(gen), "--real", str(gen), "--metrics", "fid",
                 "--out", str(tmp_path / "r.json"), "--no-progress", "--device", "cpu"])
    assert code == 2
    assert "weights-inception-2015-12-05-6726825d.pth" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_miou_without_a_segmenter_is_a_clear_error(city_run, tmp_path, capsys):
    run, _ = city_run
    code = main(["evaluate", "--checkpoint", str(run / "run"), "--metrics", "miou", "--out",
                 str(tmp_path / "r.json"), "--no-progress", "--device", "cpu"])
    assert code == 2
    assert "--segmenter" in capsys.readouterr().err
