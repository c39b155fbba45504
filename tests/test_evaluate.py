"""`lggan evaluate` and `lggan train-segmenter` end to end on tiny synthetic data (CPU, random-free weights)."""

import json

import numpy as np
import pytest
from PIL import Image

from lggan.cli import main
from lggan.config import apply_overrides, get_preset
from lggan.training import train

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


@pytest.mark.parametrize("broken", ["empty", "corrupt", "truncated"])
@pytest.mark.parametrize("side", ["generated", "real"])
@pytest.mark.parametrize("metric", ["ssim", "fid"])
def test_unreadable_image_in_a_folder_is_one_line_naming_it(tmp_path, capsys, monkeypatch, broken, side, metric):
    import torch

    import lggan.metrics.fid as fid

    class MeanColour(torch.nn.Module):  # stands in for Inception, whose weights are not available here
        def forward(self, x):
            return x.float().mean(dim=(2, 3))

    monkeypatch.setattr(fid, "build_inception_extractor", lambda *args, **kwargs: MeanColour())
    folders = {name: tmp_path / name for name in ("generated", "real")}
    rng = np.random.default_rng(0)
    for folder in folders.values():
        folder.mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    bad = folders[side] / "1.png"
    data = bad.read_bytes()
    bad.write_bytes({"empty": b"", "corrupt": b"not an image at all", "truncated": data[: len(data) // 2]}[broken])
    out = tmp_path / "r.json"
    code = main(["evaluate", "--generated", str(folders["generated"]), "--real", str(folders["real"]), "--metrics",
                 metric, "--out", str(out), "--no-progress", "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lggan evaluate: error: cannot read image {bad}")
    assert not out.exists()


def test_corrupt_image_is_named_even_when_weights_load(tmp_path, capsys):
    gen, real = tmp_path / "gen", tmp_path / "real"
    gen.mkdir()
    real.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(gen / f"{i}.png")
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(real / f"{i}.png")
    (real / "1.png").write_bytes(b"")
    code = main(["evaluate", "--generated", str(gen), "--real", str(real), "--task", "crossview", "--metrics",
                 "psnr", "--out", str(tmp_path / "r.json"), "--no-progress", "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot read image {real / '1.png'}" in err[0]


def test_a_second_run_with_a_smaller_limit_scores_only_its_own_images(city_run, tmp_path):
    tmp, _ = city_run
    work, out = tmp_path / "work", tmp_path / "r.json"
    args = ["evaluate", "--checkpoint", str(tmp / "run"), "--split", "train", "--metrics", "ssim", "psnr",
            "--work-dir", str(work), "--out", str(out), "--device", "cpu", "--no-progress"]
    assert main(args + ["--limit", "4"]) == 0
    first = json.loads(out.read_text())
    assert first["num_images"] == 4 and first["metrics"]["images"]["num_images"] == 4
    assert main(args + ["--limit", "2", "--overwrite"]) == 0
    second = json.loads(out.read_text())
    assert second["num_images"] == 2 and second["metrics"]["images"]["num_images"] == 2
    for sub in ("generated", "real", "labels"):
        assert len(list((work / sub).iterdir())) == 2, sub
    assert sorted(p.name for p in (work / "generated").iterdir()) == sorted(
        p.name for p in (work / "real").iterdir())
    manifest = json.loads((work / ".lggan-evaluate.json").read_text())["files"]
    assert sorted(manifest) == sorted(f"{sub}/{p.name}" for sub in ("generated", "real", "labels")
                                      for p in (work / sub).iterdir())


def test_files_lggan_did_not_write_in_the_work_folder_are_kept_and_refused(city_run, tmp_path, capsys):
    tmp, _ = city_run
    work = tmp_path / "work"
    (work / "generated").mkdir(parents=True)
    (work / "generated" / "mine.png").write_bytes(b"a person's file")
    code = main(["evaluate", "--checkpoint", str(tmp / "run"), "--metrics", "ssim", "--work-dir", str(work),
                 "--out", str(tmp_path / "r.json"), "--device", "cpu", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "not written by `lggan evaluate`" in err and "generated/mine.png" in err
    assert [p.name for p in (work / "generated").iterdir()] == ["mine.png"]
    assert (work / "generated" / "mine.png").read_bytes() == b"a person's file"
    assert not (work / "real").exists()


@pytest.mark.parametrize("metric,flag,file_name", [
    ("fid", "--inception-weights", "weights-inception-2015-12-05-6726825d.pth"),
    ("kl", "--places365-weights", "alexnet_places365.pth.tar"),
    ("miou", "--segmenter", "seg.safetensors"),
])
def test_missing_weights_fail_before_any_image_is_generated(city_run, tmp_path, capsys, monkeypatch, metric, flag,
                                                            file_name):
    import lggan.evaluate as ev

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def must_not_run(*args, **kwargs):
        raise AssertionError("images were generated before the weights were checked")

    monkeypatch.setattr(ev, "_generate_images", must_not_run)
    tmp, _ = city_run
    work = tmp_path / "work"
    extra = ["--segmenter", str(tmp_path / file_name)] if flag == "--segmenter" else []
    code = main(["evaluate", "--checkpoint", str(tmp / "run"), "--metrics", metric, "--work-dir", str(work),
                 "--out", str(tmp_path / "r.json"), "--device", "cpu", "--no-progress", *extra])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0] and file_name in err[0]
    if flag != "--segmenter":
        assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in err[0]
    assert not work.exists()


def test_folder_mode_pairs_cityscapes_names_with_gtfine_label_maps(tmp_path):
    """`generate` names outputs X_leftImg8bit.png; evaluate pairs them with gtFine/CITY/X_gtFine_labelIds.png."""
    from lggan.metrics.segmenter import CompactSegmenter, save_segmenter

    gen, real, labels = tmp_path / "gen", tmp_path / "real", tmp_path / "gtFine" / "val" / "aachen"
    for d in (gen, real, labels):
        d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        stem = f"aachen_00000{i}_000019"
        photo = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
        Image.fromarray(photo).save(gen / f"{stem}_leftImg8bit.png")
        Image.fromarray(photo).save(real / f"{stem}_leftImg8bit.png")
        ids = rng.choice([7, 8, 11, 21, 26], size=(32, 64)).astype(np.uint8)
        Image.fromarray(ids).save(labels / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(photo).save(labels / f"{stem}_gtFine_color.png")  # beside it, as in gtFine: not a label map
    seg = tmp_path / "seg.safetensors"
    save_segmenter(CompactSegmenter(19, width=4), seg, label_protocol="cityscapes")
    out = tmp_path / "r.json"
    assert main(["evaluate", "--generated", str(gen), "--real", str(real), "--labels", str(tmp_path / "gtFine"),
                 "--metrics", "miou", "--segmenter", str(seg), "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert m["segmentation"]["num_images"] == m["segmentation_real"]["num_images"] == 2
    # Identical photos: the generated and the real score agree exactly.
    assert m["segmentation"]["miou"] == pytest.approx(m["segmentation_real"]["miou"])


def _full_size_city(tmp_path, gen_hw=(32, 64), real_hw=(64, 128), n=2):
    """generate's outputs at the training size beside Cityscapes photos and label maps at full size."""
    gen, real, labels = tmp_path / "gen", tmp_path / "real", tmp_path / "gtFine" / "val" / "aachen"
    for d in (gen, real, labels):
        d.mkdir(parents=True)
    rng = np.random.default_rng(3)
    stems = [f"aachen_00000{i}_000019" for i in range(n)]
    for stem in stems:
        Image.fromarray(rng.integers(0, 256, (*gen_hw, 3), dtype=np.uint8)).save(gen / f"{stem}_leftImg8bit.png")
        Image.fromarray(rng.integers(0, 256, (*real_hw, 3), dtype=np.uint8)).save(real / f"{stem}_leftImg8bit.png")
        ids = np.repeat(rng.choice([7, 8, 11, 21, 26], size=(real_hw[0] // 8, 1)), real_hw[1], axis=1)
        Image.fromarray(np.repeat(ids, 8, axis=0).astype(np.uint8)).save(labels / f"{stem}_gtFine_labelIds.png")
    return gen, real, tmp_path / "gtFine", stems


@pytest.mark.parametrize("eval_size", [None, (48, 24)])
def test_evaluate_scores_what_generate_wrote_against_full_size_photos(tmp_path, eval_size):
    """Generated images at the training size, real photos at full size: every metric compares the same resized
    pairs (default: at the generated size), and the real photos' mIoU is their score at that size."""
    from lggan.metrics.crossview import PIXEL_METRICS
    from lggan.metrics.files import load_image_uint8, resize_uint8, uint8_to_unit
    from lggan.metrics.segmenter import CompactSegmenter, save_segmenter

    gen, real, labels, stems = _full_size_city(tmp_path)
    seg = tmp_path / "seg.safetensors"
    save_segmenter(CompactSegmenter(19, width=4), seg, label_protocol="cityscapes")
    out = tmp_path / "r.json"
    extra = ["--eval-size", f"{eval_size[0]}x{eval_size[1]}"] if eval_size else []
    assert main(["evaluate", "--generated", str(gen), "--real", str(real), "--labels", str(labels), "--metrics",
                 "psnr", "ssim", "miou", "--segmenter", str(seg), "--out", str(out), "--no-progress",
                 "--device", "cpu", *extra]) == 0
    result = json.loads(out.read_text())
    hw = (eval_size[1], eval_size[0]) if eval_size else (32, 64)
    names = [f"{s}_leftImg8bit.png" for s in stems]

    def at(path):
        return uint8_to_unit(resize_uint8(load_image_uint8(path), hw))[None]

    expected = np.mean([PIXEL_METRICS["psnr"](at(gen / n), at(real / n)).item() for n in names])
    assert result["metrics"]["images"]["psnr"] == pytest.approx(expected, rel=1e-6)
    assert result["protocol"]["comparison"]["applies_to"] == "every metric"
    assert result["protocol"]["comparison"]["size"] == (f"{eval_size[0]}x{eval_size[1]} (WxH)" if eval_size
                                                        else "each generated image's size")
    # The real photos' score equals the score of the same photos resized beforehand and scored at that size.
    resized = tmp_path / "real_resized"
    resized.mkdir()
    for n in names:
        Image.fromarray(resize_uint8(load_image_uint8(real / n), (32, 64)).permute(1, 2, 0).numpy()).save(resized / n)
    out2 = tmp_path / "r2.json"
    assert main(["evaluate", "--generated", str(gen), "--real", str(resized), "--labels", str(labels), "--metrics",
                 "miou", "--segmenter", str(seg), "--out", str(out2), "--no-progress", "--device", "cpu",
                 *extra]) == 0
    again = json.loads(out2.read_text())["metrics"]
    strip = lambda d: {k: v for k, v in d.items() if k != "protocol"}  # noqa: E731
    if eval_size is None:  # at another size the pre-resized photos would be resized twice
        assert strip(result["metrics"]["segmentation_real"]) == strip(again["segmentation_real"])
    assert result["metrics"]["segmentation_real"]["num_pixels"] == len(names) * hw[0] * hw[1]
    assert result["metrics"]["segmentation"] == again["segmentation"]
