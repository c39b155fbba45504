"""Cross-view translation through the shared trainer: tiny synthetic towns, dual discriminator, generate, evaluate."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lggan.config import apply_overrides, get_preset
from lggan.training import train

TINY = [
    "model.ngf=4", "model.ndf=8", "model.num_res_blocks=1", "train.batch_size=2", "data.num_workers=0",
    "train.progress=false", "train.log_every=1", "train.sample_every=1000", "train.checkpoint_every=1000",
    "data.load_size=36x36", "data.crop_size=32x32", "train.epochs_const=100",
]


@pytest.fixture(scope="module")
def towns(tmp_path_factory):
    from lggan.data.synthetic_views import generate_synth_views

    root = tmp_path_factory.mktemp("views") / "towns"
    generate_synth_views(root, num_train=4, num_test=2, size=32, seed=1, workers=1, progress=False)
    return root


def tiny_cfg(root, *extra):
    cfg = apply_overrides(get_preset("synth-views"), TINY + list(extra))
    cfg.data.root = str(root)
    return cfg


def test_crossview_training_reduces_the_l1_losses_and_uses_both_discriminators(towns, tmp_path, capsys):
    cfg = tiny_cfg(towns, "train.iterations=40", "train.lr_g=2e-3", "train.lr_d=2e-3")
    train(cfg, tmp_path / "run")
    assert "4 train images, 2 test images" in capsys.readouterr().out  # the held-out split by its name
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    for key in ("G_l1_C", "G_local_l1"):
        first = np.mean([r[key] for r in log[:5]])
        last = np.mean([r[key] for r in log[-5:]])
        assert last < 0.8 * first, (key, first, last)
    last = log[-1]
    for d in ("D_i", "D_s"):  # the dual discriminator judges all three outputs
        for k in ("C", "G", "L"):
            assert f"D_{d}_{k}" in last and f"G_gan_{d}_{k}" in last
    assert "G_tv_C" in last and "G_class_ce" not in last
    grid = next((tmp_path / "run" / "samples").glob("*.png"))
    assert Image.open(grid).size[0] > 8 * 32  # aerial | map | I^G | I^L | W_g | W_l | I^C | real


def test_crossview_discriminator_losses_are_halved_vanilla_gan(towns):
    from lggan.tasks import make_task, outputs_for_adversarial

    cfg = tiny_cfg(towns)
    task = make_task(cfg)
    train_set, _ = task.build_datasets(with_val=False)
    batch = task.collate([train_set[0], train_set[1]])
    prep = task.prepare(batch, torch.device("cpu"))
    G, Ds = task.build_generator(), task.build_discriminators()
    with torch.no_grad():
        out = G(*prep.gen_inputs)
        total, terms = task.discriminator_losses(dict(Ds.items()), prep, outputs_for_adversarial(out, True))
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        real = Ds["D_i"](torch.cat([prep.conditions["D_i"], prep.real], 1))[0][-1]
        fake = Ds["D_i"](torch.cat([prep.conditions["D_i"], out.image], 1))[0][-1]
        expected = 0.5 * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(terms["D_D_i_C"], expected, rtol=1e-5, atol=1e-6)
    assert total == pytest.approx(sum(float(v) for v in terms.values()), rel=1e-5)
    # a2g wiring: D_i sees the aerial photo, D_s the street colour map, G gets both stacked.
    torch.testing.assert_close(prep.gen_inputs[0][:, :3], prep.conditions["D_i"])
    torch.testing.assert_close(prep.gen_inputs[0][:, 3:], prep.conditions["D_s"])


def test_crossview_generate_and_evaluate_from_panel_files(towns, tmp_path):
    from lggan.cli import main

    run = tmp_path / "run"
    train(tiny_cfg(towns, "train.iterations=2"), run)
    out = tmp_path / "gen"
    assert main(["generate", "--checkpoint", str(run), "--labels", str(towns / "test"), "--out", str(out),
                 "--device", "cpu", "--save-branches"]) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == 2 and Image.open(files[0]).size == (32, 32)
    assert len(list((out / "weight_local").glob("*.png"))) == 2
    res = tmp_path / "r.json"
    assert main(["evaluate", "--checkpoint", str(run), "--metrics", "ssim", "psnr", "sd", "--out", str(res),
                 "--device", "cpu", "--no-progress"]) == 0
    m = json.loads(res.read_text())
    assert m["task"] == "crossview" and m["split"] == "test" and m["num_images"] == 2
    # The crop protocol of the evaluation images is recorded (synth-views: load 36 -> centre crop 32 here).
    data = m["protocol"]["eval_data"]
    assert (data["crop"], data["load_size"], data["crop_size"], data["crop_seed"]) == ("center", 36, 32, None)
    assert 0 < m["metrics"]["images"]["psnr"] < 88
    assert Path(m["images"]).is_dir()
