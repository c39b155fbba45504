"""End-to-end training, resume, checkpoint safety, DDP on gloo, and generation at tiny sizes on CPU."""

import json
import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lggan import checkpoint as ckpt
from lggan.config import apply_overrides, get_preset
from lggan.training import learning_rate, train

TINY = [
    "data.load_size=64x32", "model.ngf=4", "model.ndf=8", "model.spade_hidden=8", "model.num_res_blocks=1",
    "train.batch_size=2", "data.num_workers=0", "train.progress=false", "train.log_every=1",
    "train.sample_every=1000", "train.checkpoint_every=1000", "data.flip=true", "train.epochs_const=100",
]


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    from lggan.data.synthetic import generate_synth_city

    root = tmp_path_factory.mktemp("city") / "synth"
    generate_synth_city(root, num_train=6, num_val=2, size=(64, 32), seed=3, progress=False)
    return root


def tiny_cfg(city, *extra):
    cfg = apply_overrides(get_preset("synth"), TINY + list(extra))
    cfg.data.root = str(city)
    return cfg


def read_log(run):
    return [json.loads(line) for line in (Path(run) / "log.jsonl").read_text().splitlines()]


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    assert learning_rate(1.0, 0, 10, 10) == 1.0 and learning_rate(1.0, 9, 10, 10) == 1.0
    assert learning_rate(1.0, 15, 10, 10) == pytest.approx(0.5)
    assert learning_rate(1.0, 20, 10, 10) == 0.0 and learning_rate(1.0, 99, 10, 10) == 0.0


def test_training_decreases_the_reconstruction_losses(city, tmp_path):
    # Feature matching is off here: in the first few dozen steps it pulls the class features around faster than
    # the local L1 can settle (the term rises before it falls), which a 40-step test cannot wait out.
    cfg = tiny_cfg(city, "train.iterations=40", "train.lr_g=1e-3", "train.lr_d=1e-3", "loss.image_l1=10", "loss.local_l1=30",
                   "loss.feat_match=0")
    result = train(cfg, tmp_path / "run")
    log = read_log(tmp_path / "run")
    assert [r["iteration"] for r in log] == list(range(1, 41))
    for key in ("G_l1_C", "G_local_l1"):
        first = np.mean([r[key] for r in log[:5]])
        last = np.mean([r[key] for r in log[-5:]])
        assert last < 0.8 * first, (key, first, last)
    # Every loss term of the paper is logged, and the run folder holds what the README promises.
    for key in ("D_D_s_C", "D_D_s_G", "D_D_s_L", "G_gan_D_s_C", "G_gan_D_s_L", "G_class_ce", "lr_g", "img_per_s"):
        assert key in log[-1]
    assert "G_fm_D_s_C" not in log[-1]  # a weight of 0 switches a loss off (not computed, not logged)
    assert result.iteration == 40 and result.last_checkpoint.name == "iter_00000040"
    assert (tmp_path / "run" / "config.json").is_file()
    grids = list((tmp_path / "run" / "samples").glob("*.png"))
    assert len(grids) == 1
    w, h = Image.open(grids[0]).size
    assert w > 7 * 64 and h > 2 * 32  # 7 columns: label | I^G | I^L | W_g | W_l | I^C | real


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(city, tmp_path):
    base = ["train.checkpoint_every=3", "train.keep_last=5"]
    train(tiny_cfg(city, *base, "train.iterations=6"), tmp_path / "a")
    train(tiny_cfg(city, *base, "train.iterations=3"), tmp_path / "b")
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "b")] == ["iter_00000003"]
    train(tiny_cfg(city, *base, "train.iterations=6"), tmp_path / "b", resume=True)
    a = ckpt.load_latest(tmp_path / "a")
    b = ckpt.load_latest(tmp_path / "b")
    assert a.iteration == b.iteration == 6
    for name in ("generator", "discriminator"):
        sa, sb = getattr(a, name), getattr(b, name)
        assert sa.keys() == sb.keys()
        for k in sa:  # bitwise: one torch thread (conftest), the same data order, RNG state and optimiser state
            assert torch.equal(sa[k], sb[k]), f"{name}.{k}: max |diff| {(sa[k] - sb[k]).abs().max()}"
    # Same data order and learning rate after the resume: the logged losses of iterations 4..6 agree.
    la = {r["iteration"]: r for r in read_log(tmp_path / "a")}
    lb = {r["iteration"]: r for r in read_log(tmp_path / "b")}
    for it in (4, 5, 6):
        assert la[it]["G_total"] == pytest.approx(lb[it]["G_total"], rel=1e-4)
        assert la[it]["lr_g"] == lb[it]["lr_g"]


def test_a_new_run_refuses_to_overwrite_an_existing_one(city, tmp_path):
    train(tiny_cfg(city, "train.iterations=1"), tmp_path / "run")
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_cfg(city, "train.iterations=2"), tmp_path / "run")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_checkpoint_is_reported_and_the_previous_one_is_used(city, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(city, "train.iterations=4", "train.checkpoint_every=2"), run)
    newest = ckpt.list_checkpoints(run)[-1]
    (newest / ckpt.G_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ckpt.CheckpointError, match=r"generator\.safetensors"):
        ckpt.load_checkpoint(newest)
    with pytest.warns(UserWarning, match="falling back"):
        found = ckpt.load_latest(run)
    assert found.iteration == 2
    (ckpt.list_checkpoints(run)[0] / ckpt.STATE_FILE).write_bytes(b"\x80garbage")
    with pytest.raises(ckpt.CheckpointError, match=r"state\.pt"):
        ckpt.load_checkpoint(ckpt.list_checkpoints(run)[0])
    # A half-written checkpoint (temp folder of an interrupted write) is never picked up.
    (run / "checkpoints" / ".iter_00000009.abc").mkdir()
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["iter_00000002", "iter_00000004"]


def test_non_finite_losses_skip_steps_then_stop_without_touching_saved_weights(city, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny_cfg(city, "train.iterations=2", "train.checkpoint_every=2"), run)
    before = ckpt.load_latest(run).generator
    import lggan.losses as L

    monkeypatch.setattr(L, "l1_loss", lambda a, b: (a - b).abs().mean() * float("nan"))
    with pytest.warns(UserWarning, match="non-finite"), pytest.raises(FloatingPointError, match="max_nonfinite=3"):
        train(tiny_cfg(city, "train.iterations=10", "train.checkpoint_every=1", "train.max_nonfinite=3",
                       "loss.image_l1=1"), run, resume=True)
    after = ckpt.load_latest(run)
    for k, v in after.generator.items():
        if v.is_floating_point():
            assert torch.isfinite(v).all(), k
    # Skipped steps leave the weights where they were.
    for k in before:
        if "running" not in k and "num_batches" not in k and "weight_u" not in k and "weight_v" not in k:
            torch.testing.assert_close(after.generator[k], before[k], msg=k)


def test_sigint_saves_a_checkpoint_and_stops(city, tmp_path, monkeypatch):
    import lggan.tasks as tasks

    calls = {"n": 0}
    original = tasks.SemanticTask.prepare

    def prepare(self, batch, device):
        calls["n"] += 1
        if calls["n"] == 4:  # the 3rd training batch (the 1st call prepares the sample grid's batch)
            signal.raise_signal(signal.SIGINT)
        return original(self, batch, device)

    monkeypatch.setattr(tasks.SemanticTask, "prepare", prepare)
    result = train(tiny_cfg(city, "train.iterations=50"), tmp_path / "run")
    assert result.stopped_by == "signal"
    assert result.iteration == 3
    assert ckpt.load_latest(tmp_path / "run").iteration == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, cfg_dict, out):
    from lggan.config import Config
    from lggan.training import train as run

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = run(Config.from_dict(cfg_dict), out)
    torch.save({k: v.detach().clone() for k, v in result.generator.state_dict().items()},
               Path(out) / f"rank{rank}.pt")


def test_two_process_gloo_ddp_ends_with_identical_weights(city, tmp_path):
    import torch.multiprocessing as mp

    cfg = tiny_cfg(city, "train.iterations=3")
    mp.spawn(_ddp_worker, args=(2, _free_port(), cfg.to_dict(), str(tmp_path / "run")), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "run" / "rank0.pt")
    w1 = torch.load(tmp_path / "run" / "rank1.pt")
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0, msg=k)
    # Rank 0 alone wrote the checkpoint, and it holds the same weights.
    saved = ckpt.load_latest(tmp_path / "run")
    assert saved.iteration == 3
    for k in w0:
        torch.testing.assert_close(saved.generator[k], w0[k].float() if w0[k].is_floating_point() else w0[k])


def _ddp_cli_worker(rank, world, port, config_file, out):
    import contextlib

    from lggan.cli import main

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    with open(Path(out).parent / f"stdout{rank}.txt", "w") as f, contextlib.redirect_stdout(f):
        assert main(["train", "--config", config_file, "--out", out]) == 0


def test_under_torchrun_only_rank_0_reports(city, tmp_path):
    """`lggan train` in two processes: rank 0 prints the banner, the lines and the end-of-run summary; rank 1 nothing."""
    import json

    import torch.multiprocessing as mp

    config = tmp_path / "config.json"
    config.write_text(json.dumps(tiny_cfg(city, "train.iterations=2").to_dict()))
    mp.spawn(_ddp_cli_worker, args=(2, _free_port(), str(config), str(tmp_path / "run")), nprocs=2, join=True)
    rank0, rank1 = ((tmp_path / f"stdout{r}.txt").read_text() for r in (0, 1))
    assert "finished 2 iterations" in rank0 and "last checkpoint: " in rank0 and "iter 2/2" in rank0
    assert rank1 == ""


def test_generate_writes_one_image_per_label_map_with_its_size(city, tmp_path):
    from lggan import load_generator
    from lggan.generate import generate_folder

    run = tmp_path / "run"
    train(tiny_cfg(city, "train.iterations=2"), run)
    labels = sorted((city / "gtFine" / "val" / "synth").glob("*_labelIds.png"))
    out = tmp_path / "out"
    written = generate_folder(run, labels[0].parent, out, instances=labels[0].parent, batch_size=3,
                              save_branches=True, progress=False, device="cpu", amp="off")
    assert len(written) == len(labels) == 2
    for p, lab in zip(sorted(written), labels):
        assert Image.open(p).size == Image.open(lab).size == (64, 32)
        assert p.name == lab.name.replace("_gtFine_labelIds", "_leftImg8bit")  # the photo's name
    assert len(list((out / "weight_local").glob("*.png"))) == 2
    # The Python API gives the same image as the command's file (up to uint8 rounding; both fp32, which a CPU with
    # native bf16 would not give by default).
    synth = load_generator(run, device="cpu", amp="off")
    label = torch.from_numpy(np.array(Image.open(labels[0])).astype(np.int64))
    inst = torch.from_numpy(np.array(Image.open(str(labels[0]).replace("labelIds", "instanceIds"))).astype(np.int64))
    res = synth(label, inst)
    img = ((res.image[0].clamp(-1, 1) + 1) / 2 * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    saved = np.array(Image.open(out / labels[0].name.replace("_gtFine_labelIds", "_leftImg8bit")))
    assert np.abs(img.astype(int) - saved.astype(int)).max() <= 1
    assert torch.allclose(res.weight_local + res.weight_global, torch.ones_like(res.weight_local), atol=1e-5)


def test_generate_rejects_out_of_range_labels_naming_the_file(city, tmp_path):
    from lggan.generate import generate_folder

    run = tmp_path / "run"
    train(tiny_cfg(city, "train.iterations=1"), run)
    bad = tmp_path / "labels"
    bad.mkdir()
    Image.fromarray(np.full((32, 64), 200, np.uint8)).save(bad / "x.png")
    with pytest.raises(ValueError, match=r"x\.png"):
        generate_folder(run, bad, tmp_path / "out", progress=False, device="cpu")


def test_ema_generator_is_the_exponential_average_of_the_weights(city, tmp_path):
    from lggan.tasks import make_task

    cfg = tiny_cfg(city, "train.iterations=1", "train.ema_decay=0.9")
    train(cfg, tmp_path / "run")
    torch.manual_seed(cfg.train.seed)
    initial = make_task(cfg).build_generator().state_dict()
    found = ckpt.load_latest(tmp_path / "run")
    params = dict(make_task(cfg).build_generator().named_parameters())
    checked = 0
    for k in params:
        expected = 0.9 * initial[k] + 0.1 * found.generator[k]
        torch.testing.assert_close(found.generator_ema[k], expected, rtol=1e-5, atol=1e-6, msg=k)
        checked += int(not torch.equal(initial[k], found.generator[k]))
    assert checked > 0  # the step moved the weights, so the average is not trivially equal to them


def test_written_files_get_ordinary_permissions_not_owner_only(city, tmp_path):
    import stat

    train(tiny_cfg(city, "train.iterations=1"), tmp_path / "run")
    umask = os.umask(0)
    os.umask(umask)
    ckpt_dir = ckpt.list_checkpoints(tmp_path / "run")[0]
    assert stat.S_IMODE(ckpt_dir.stat().st_mode) == 0o777 & ~umask
    grid = next((tmp_path / "run" / "samples").glob("*.png"))
    assert stat.S_IMODE(grid.stat().st_mode) == 0o666 & ~umask


def test_the_release_recipe_runs_ttur_as_the_semantic_scripts_do(city, tmp_path):
    # S/train_*.sh: G lr 1e-4, D lr 4e-4, Adam betas hard-coded (0, 0.9).
    train(tiny_cfg(city, "train.iterations=1", "train.recipe=release"), tmp_path / "run")
    state = ckpt.load_latest(tmp_path / "run").state
    g, d = state["opt_g"]["param_groups"][0], state["opt_d"]["param_groups"][0]
    assert (g["lr"], d["lr"]) == (pytest.approx(1e-4), pytest.approx(4e-4))
    assert g["betas"] == d["betas"] == (0.0, 0.9)
