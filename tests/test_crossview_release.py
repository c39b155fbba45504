"""The cross-view part of the official release, fact by fact: pix2pix PatchGAN D_i / D_s, normal(0, 0.02) init,
BCE losses (D real term weighing 1.5), TV as a sum, VGG19 on raw [-1, 1] input, the data transform (bicubic resize
of every panel, one crop offset from [0, load - fine - 1], exact-match masks), seeded test crops, mask palettes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lggan import losses as L
from lggan.config import get_preset
from lggan.data.crossview import (
    CROSSVIEW_CLASS_NAMES,
    CROSSVIEW_NUM_CLASSES,
    VOID_LABEL,
    CrossViewDataError,
    CrossViewDataset,
    crop_offset,
    join_panels,
    mask_from_gray,
    read_crossview_inputs,
    split_panels,
)
from lggan.data.inspect import format_crossview_report, inspect_crossview
from lggan.data.palette import builtin_label_palette, load_label_palette_json
from lggan.models.discriminator import MultiscaleDiscriminator, PatchGANDiscriminator
from lggan.tasks import CrossViewTask, Prepared, SemanticTask

# ----------------------------------------------------------------------------------------------- discriminator

# The release's NLayerDiscriminator state dict (n_layers 3, ndf 64, 6 input channels, instance norm).
OFFICIAL_D_KEYS = {
    "model.0.weight": (64, 6, 4, 4), "model.0.bias": (64,),
    "model.2.weight": (128, 64, 4, 4), "model.2.bias": (128,),
    "model.3.running_mean": (128,), "model.3.running_var": (128,), "model.3.num_batches_tracked": (),
    "model.5.weight": (256, 128, 4, 4), "model.5.bias": (256,),
    "model.6.running_mean": (256,), "model.6.running_var": (256,), "model.6.num_batches_tracked": (),
    "model.8.weight": (512, 256, 4, 4), "model.8.bias": (512,),
    "model.9.running_mean": (512,), "model.9.running_var": (512,), "model.9.num_batches_tracked": (),
    "model.11.weight": (1, 512, 4, 4), "model.11.bias": (1,),
}


def test_patchgan_state_dict_is_the_official_one():
    D = PatchGANDiscriminator(6, ndf=64, n_layers=3)
    assert {k: tuple(v.shape) for k, v in D.state_dict().items()} == OFFICIAL_D_KEYS
    assert list(D.state_dict()) == list(OFFICIAL_D_KEYS)  # same order as the official file
    # A state dict in the official layout loads strictly.
    official = {k: torch.randn(s) if s else torch.tensor(0) for k, s in OFFICIAL_D_KEYS.items()}
    D.load_state_dict(official, strict=True)
    torch.testing.assert_close(D.model[11].bias, official["model.11.bias"])


@pytest.mark.parametrize("size,patch", [(256, 30), (64, 6)])
def test_patchgan_outputs_and_forward_contract(size, patch):
    D = PatchGANDiscriminator(6, ndf=8, n_layers=3)
    cond, img = torch.randn(2, 3, size, size), torch.randn(2, 3, size, size)
    out = D(cond, img)
    assert len(out) == 1  # one scale, in the multiscale discriminators' contract
    shapes = [tuple(t.shape) for t in out[0]]
    s2, s4, s8 = size // 2, size // 4, size // 8
    assert shapes == [(2, 8, s2, s2), (2, 16, s4, s4), (2, 32, s8, s8), (2, 64, s8 - 1, s8 - 1), (2, 1, patch, patch)]
    # D(c, image) is D on the channel concatenation; the block outputs are after LeakyReLU 0.2.
    torch.testing.assert_close(D(torch.cat([cond, img], 1))[0][-1], out[0][-1])
    h = F.leaky_relu(D.model[0](torch.cat([cond, img], 1)), 0.2)
    torch.testing.assert_close(out[0][0], h)
    with pytest.raises(ValueError, match="6 channels"):
        D(cond)


def test_patchgan_instance_norm_tracks_running_stats_like_the_release():
    D = PatchGANDiscriminator(6, ndf=4, n_layers=3)
    x = torch.randn(3, 6, 32, 32) * 2 + 1
    D(x)
    norm = D.model[3]
    # Train mode normalises each sample by its own statistics; the running mean moves by momentum 0.1 towards
    # the batch average of the per-sample means.
    h = D.model[2](D.model[1](D.model[0](x)))  # [3, 8, 8, 8] conv output before the norm
    torch.testing.assert_close(norm.running_mean, 0.1 * h.detach().mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
    per_sample = (h - h.mean((2, 3), keepdim=True)) / torch.sqrt(h.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(norm(h), per_sample, rtol=1e-4, atol=1e-5)


def test_bce_with_logits_equals_sigmoid_then_bce():
    x = torch.linspace(-9, 9, 37).view(1, 1, 37, 1)
    # The release: nn.Sigmoid at the end of D, then nn.BCELoss against 1 (real) or 0 (fake).
    torch.testing.assert_close(L.bce_real(x), F.binary_cross_entropy(torch.sigmoid(x), torch.ones_like(x)))
    torch.testing.assert_close(L.bce_fake(x), F.binary_cross_entropy(torch.sigmoid(x), torch.zeros_like(x)))
    D = PatchGANDiscriminator(6, ndf=4, n_layers=3)
    logits = D(torch.randn(2, 6, 32, 32))[0][-1]
    probs = torch.sigmoid(logits)
    # The G term on a PatchGAN map: BCE(D(out), 1) averaged over the 30x30 (here 2x2) patches and the batch.
    torch.testing.assert_close(L.generator_gan_loss([[logits]], "vanilla"),
                               F.binary_cross_entropy(probs, torch.ones_like(probs)))


# ----------------------------------------------------------------------------------------------- init


def _conv_weights(module):
    return [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]


def test_crossview_task_builds_the_release_networks_with_normal_init():
    cfg = get_preset("dayton-a2g-64")
    task = CrossViewTask(cfg)
    Ds = task.build_discriminators()
    assert set(Ds) == {"D_i", "D_s"} and all(type(D) is PatchGANDiscriminator for D in Ds.values())
    for D in Ds.values():
        assert {k: tuple(v.shape) for k, v in D.state_dict().items()} == OFFICIAL_D_KEYS
        weights = torch.cat([m.weight.flatten() for m in _conv_weights(D)])
        assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 0.001
        assert all((m.bias == 0).all() for m in _conv_weights(D))
    G = task.build_generator()
    big = [m for m in _conv_weights(G) if m.weight.numel() > 50_000]
    assert big and all(abs(m.weight.std().item() - 0.02) < 0.002 for m in big)  # N(0, 0.02) whatever the fans
    assert all(m.bias is None or (m.bias == 0).all() for m in _conv_weights(G))
    cfg.model.num_d = 2
    with pytest.raises(ValueError, match="model.num_d=2"):
        CrossViewTask(cfg).build_discriminators()
    cfg.model.num_d, cfg.model.discriminator = 2, "spade"
    assert all(type(D) is MultiscaleDiscriminator for D in CrossViewTask(cfg).build_discriminators().values())


def test_semantic_task_follows_model_init():
    cfg = get_preset("synth")
    cfg.model.init, cfg.model.init_gain = "normal", 0.05
    G = SemanticTask(cfg).build_generator()
    big = [m for m in _conv_weights(G) if m.weight.numel() > 20_000]
    assert big and all(abs(m.weight.std().item() - 0.05) < 0.005 for m in big)
    cfg.model.init, cfg.model.init_gain = "xavier", 0.02
    D = SemanticTask(cfg).build_discriminators()["D_s"]
    conv = D.scales[0].layers[-1][0]  # plain conv 4x4 -> 1
    fan_in, fan_out = conv.weight.shape[1] * 16, conv.weight.shape[0] * 16
    expected = 0.02 * math.sqrt(2 / (fan_in + fan_out))
    assert abs(conv.weight.std().item() - expected) < 0.15 * expected


# ----------------------------------------------------------------------------------------------- losses


class _StubD(torch.nn.Module):
    """A 'discriminator' whose logit map is the image's channel mean: D(c, images) = mean_c image, [n*B, 1, H, W]
    (the tasks call D with the condition and the images stacked on the batch axis)."""

    def forward(self, cond, images):
        assert images.shape[0] % cond.shape[0] == 0 and images.shape[1] == 3
        return [[images.mean(1, keepdim=True)]]


def _softplus(v):
    return math.log1p(math.exp(v))


def _release_prep(B=1, H=4, W=4):
    real = torch.full((B, 3, H, W), 0.5)
    cond = torch.zeros(B, 3, H, W)
    masks = torch.zeros(B, 6, H, W)
    masks[:, 1, :, : W // 2] = 1
    masks[:, 4, :, W // 2 :] = 1
    return Prepared((), masks, real, {"D_i": cond, "D_s": cond}, torch.zeros(B, H, W, dtype=torch.long))


def test_discriminator_loss_is_the_release_sum_with_real_weight_one_and_a_half():
    task = CrossViewTask(get_preset("dayton-a2g"))
    prep = _release_prep()
    fakes = {"C": torch.full((1, 3, 4, 4), -1.0), "G": torch.full((1, 3, 4, 4), 0.2),
             "L": torch.full((1, 3, 4, 4), 0.9)}
    total, terms = task.discriminator_losses({"D_i": _StubD(), "D_s": _StubD()}, prep, fakes)
    # Per D: sum_out 0.5 * (BCE(D(fake_out), 0) + BCE(D(real), 1)) = 0.5 * sum softplus(l_out) + 1.5 * softplus(-0.5)
    per_d = 0.5 * (_softplus(-1.0) + _softplus(0.2) + _softplus(0.9)) + 1.5 * _softplus(-0.5)
    assert total.item() == pytest.approx(2 * per_d, rel=1e-6)
    assert terms["D_D_i_G"].item() == pytest.approx(0.5 * (_softplus(0.2) + _softplus(-0.5)), rel=1e-6)
    # The real logit's gradient: 1.5 * d softplus(-r)/dr per D = -1.5 * sigmoid(-r).
    r = torch.tensor(0.5, requires_grad=True)
    loss = sum(L.discriminator_loss(r.view(1, 1), torch.tensor([[v]]), "vanilla") for v in (-1.0, 0.2, 0.9))
    loss.backward()
    assert r.grad.item() == pytest.approx(-1.5 * torch.sigmoid(torch.tensor(-0.5)).item(), rel=1e-6)


def test_generator_loss_is_the_release_formula():
    cfg = get_preset("dayton-a2g")
    task = CrossViewTask(cfg)
    prep = _release_prep(B=2)
    g = torch.Generator().manual_seed(0)
    image, glob, local = (torch.rand(2, 3, 4, 4, generator=g) * 2 - 1 for _ in range(3))
    class_images = torch.rand(2, 6, 3, 4, 4, generator=g) * 2 - 1
    out = SimpleNamespace(image=image, image_global=glob, image_local=local, class_images=class_images)
    def vgg(x, y):  # a stand-in for VGGLoss(x, real): only its weight and its three calls are under test here
        return (x - y).pow(2).mean()

    total, terms = task.generator_losses({"D_i": _StubD(), "D_s": _StubD()}, prep, out, vgg=vgg)
    real, masks = prep.real, prep.masks
    outs = [image, glob, local]
    perceptual = 10 * sum(vgg(o, real) for o in outs)
    gan = 2 * sum(F.binary_cross_entropy(torch.sigmoid(o.mean(1, keepdim=True)), torch.ones(2, 1, 4, 4)) for o in outs)
    l1 = 100 * sum((o - real).abs().mean() for o in outs)
    local_l1 = 100 * sum((class_images[:, k] - real * masks[:, k : k + 1]).abs().mean() for k in range(6))
    tv = 1e-6 * sum((o[..., 1:] - o[..., :-1]).abs().sum() + (o[..., 1:, :] - o[..., :-1, :]).abs().sum() for o in outs)
    torch.testing.assert_close(total, gan + l1 + local_l1 + tv + perceptual, rtol=1e-5, atol=1e-6)
    assert sorted(k for k in terms if k.startswith("G_gan")) == sorted(
        f"G_gan_{d}_{k}" for d in ("D_i", "D_s") for k in "CGL")  # 6 BCE terms
    assert not any(k.startswith(("G_fm", "G_class")) for k in terms)


def test_tv_sum_by_hand():
    x = torch.arange(2 * 2 * 3 * 4, dtype=torch.float64).view(2, 2, 3, 4) ** 1.5
    expected = 0.0
    for b in range(2):
        for c in range(2):
            for i in range(3):
                for j in range(4):
                    if j + 1 < 4:
                        expected += abs(x[b, c, i, j + 1].item() - x[b, c, i, j].item())
                    if i + 1 < 3:
                        expected += abs(x[b, c, i + 1, j].item() - x[b, c, i, j].item())
    assert L.tv_loss(x, "sum").item() == pytest.approx(expected, rel=1e-12)
    assert L.tv_loss(x, "mean").item() < L.tv_loss(x, "sum").item() / 10


def test_vgg_raw_input_layers_and_weights_against_torchvision(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    # A stub VGG19 of random weights in torchvision's layout, saved as a weights file: nothing is downloaded.
    torch.manual_seed(3)
    reference = torchvision.models.vgg19(weights=None).eval()
    path = tmp_path / "vgg19-random.pth"
    torch.save(reference.state_dict(), path)
    vgg = L.VGGLoss(weights_path=path, input_mode="raw")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    ends = {1: 1 / 32, 6: 1 / 16, 11: 1 / 8, 20: 1 / 4, 29: 1.0}  # relu1_1 .. relu5_1 = features[:2], ..., [:30]
    expected, hx, hy = 0.0, x, y
    with torch.no_grad():
        for i, layer in enumerate(reference.features[:30]):
            hx, hy = layer(hx), layer(hy)  # raw [-1, 1] input: no ImageNet mean/std
            if i in ends:
                assert isinstance(layer, torch.nn.ReLU)
                expected += ends[i] * (hx - hy).abs().mean()
    torch.testing.assert_close(vgg(x, y), expected, rtol=1e-5, atol=1e-7)
    # The target's features carry no gradient (the release's .detach()); the output's do.
    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    vgg(xr, yr).backward()
    assert yr.grad is None and xr.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------- data


def _save(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    return np.rint((t.permute(1, 2, 0).numpy() + 1.0) * 127.5).astype(np.uint8)


def _coded_sample(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """6 panels whose pixels carry their position: R = row, G = col (photos and colour maps, B = panel id);
    F's first channel is the gray code of class (row + col) % 6. Returns the file array and the class map."""
    rows, cols = np.mgrid[:size, :size]
    panels = {}
    for i, name in enumerate("ABCDE"):
        panels[name] = np.stack([rows * 4, cols * 4, np.full_like(rows, 30 * i)], -1).astype(np.uint8)
    classes = (rows + cols) % 6
    panels["F"] = np.repeat((10 * (classes + 1))[..., None], 3, -1).astype(np.uint8)
    return join_panels(panels), classes


def test_one_crop_offset_for_every_panel_drawn_from_the_pix2pix_range(tmp_path):
    array, classes = _coded_sample(40)
    _save(tmp_path / "train" / "a.png", array)
    # load == panel size: no resize, so the position codes survive and give the offset directly.
    ds = CrossViewDataset(tmp_path, "train", "a2g", load_size=40, crop_size=32)
    offsets = []
    for _ in range(300):
        item = ds[0]
        cond, target, sem = (_to_uint8(item[k]) for k in ("cond_image", "image", "semantic"))
        top, left = int(cond[0, 0, 0]) // 4, int(cond[0, 0, 1]) // 4
        for panel, pid in ((cond, 0), (target, 1), (sem, 3)):  # A, B, D: the same window
            np.testing.assert_array_equal(panel[..., 0] // 4, np.arange(top, top + 32)[:, None].repeat(32, 1))
            np.testing.assert_array_equal(panel[..., 1] // 4, np.arange(left, left + 32)[None].repeat(32, 0))
            assert (panel[..., 2] == 30 * pid).all()
        np.testing.assert_array_equal(item["label"].numpy(), classes[top : top + 32, left : left + 32])
        offsets += [top, left]
    # pix2pix: random.randint(0, load - fine - 1): 0..7 here, never 8 = load - fine.
    assert min(offsets) == 0 and max(offsets) == 40 - 32 - 1


def test_crop_offset_modes():
    torch.manual_seed(0)
    draws = np.array([crop_offset(286, 256, "train") for _ in range(400)])
    assert draws.min() == 0 and draws.max() == 29  # [0, 286 - 256 - 1]
    assert crop_offset(64, 64, "train") == (0, 0) and crop_offset(64, 64, "random", 5, 3) == (0, 0)
    assert crop_offset(286, 256, "center") == (15, 15)
    assert crop_offset(286, 256, "random", seed=1, index=4) == crop_offset(286, 256, "random", seed=1, index=4)
    by_seed = {crop_offset(286, 256, "random", seed=s, index=4) for s in range(6)}
    by_index = {crop_offset(286, 256, "random", seed=1, index=i) for i in range(6)}
    assert len(by_seed) > 1 and len(by_index) > 1
    assert all(0 <= v <= 29 for o in by_seed | by_index for v in o)
    with pytest.raises(ValueError, match="test_crop"):
        crop_offset(286, 256, "corner")


def test_bicubic_resize_of_every_panel_then_one_crop(tmp_path):
    rng = np.random.default_rng(1)
    panels = {k: rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for k in "ABCDE"}
    # F: left half gray 40 (class 4 -> 3), right half 50 (class 5 -> 4): bicubic blends the edge.
    f = np.full((40, 40), 40, np.uint8)
    f[:, 20:] = 50
    panels["F"] = np.repeat(f[..., None], 3, -1)
    _save(tmp_path / "train" / "a.png", join_panels(panels))
    resized = {k: np.asarray(Image.fromarray(v).resize((48, 48), Image.Resampling.BICUBIC)) for k, v in panels.items()}
    ds = CrossViewDataset(tmp_path, "train", "a2g", load_size=48, crop_size=32)
    for _ in range(5):
        item = ds[0]
        cond = _to_uint8(item["cond_image"])
        hits = [(t, l) for t in range(16) for l in range(16)
                if np.array_equal(resized["A"][t : t + 32, l : l + 32], cond)]
        assert len(hits) == 1 and max(hits[0]) <= 48 - 32 - 1
        t, l = hits[0]
        win = (slice(t, t + 32), slice(l, l + 32))
        np.testing.assert_array_equal(_to_uint8(item["image"]), resized["B"][win])
        np.testing.assert_array_equal(_to_uint8(item["semantic"]), resized["D"][win])
        first = resized["F"][win][..., 0].astype(int)
        label = item["label"].numpy()
        # Exact equality only: 40 -> 3, 50 -> 4; the blended edge values (41..49, bicubic over/undershoot) -> void.
        np.testing.assert_array_equal(label == 3, first == 40)
        np.testing.assert_array_equal(label == 4, first == 50)
        blended = (first != 40) & (first != 50)
        assert blended.any() and (label[blended] == VOID_LABEL).all()


def test_exact_match_palette_values():
    pal = builtin_label_palette("lggan-gray", CROSSVIEW_NUM_CLASSES)
    row = np.array([[45, 40, 19, 21, 0, 60, 70, 10]], np.uint8)
    np.testing.assert_array_equal(pal.labels(row)[0], [VOID_LABEL, 3, VOID_LABEL, VOID_LABEL, VOID_LABEL, 5,
                                                       VOID_LABEL, 0])
    np.testing.assert_array_equal(pal.labels(row), mask_from_gray(row))
    # The number of classes comes from the argument: 4 classes -> codes 10..40 only.
    np.testing.assert_array_equal(builtin_label_palette("lggan-gray", 4).labels(row)[0],
                                  [VOID_LABEL, 3, VOID_LABEL, VOID_LABEL, VOID_LABEL, VOID_LABEL, VOID_LABEL, 0])


def _test_folder(tmp_path: Path, n: int = 4, size: int = 40) -> Path:
    rng = np.random.default_rng(2)
    for i in range(n):
        panels = {k: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for k in "ABCD"}
        cls = rng.integers(0, 6, (size // 8, size // 8))
        gray = np.kron(10 * (cls + 1), np.ones((8, 8), int)).astype(np.uint8)
        panels["E"] = panels["F"] = np.repeat(gray[..., None], 3, -1)
        _save(tmp_path / "test" / f"{i}.png", join_panels(panels))
    return tmp_path


def test_seeded_random_test_crop_is_reproducible_and_centre_crop_deterministic(tmp_path):
    root = _test_folder(tmp_path)

    def offsets(ds):
        out = []
        for i in range(len(ds)):
            full = np.asarray(Image.fromarray(split_panels(np.asarray(Image.open(ds.files[i])))["A"]).resize(
                (48, 48), Image.Resampling.BICUBIC))
            cond = _to_uint8(ds[i]["cond_image"])
            out.append(next((t, l) for t in range(17) for l in range(17)
                            if np.array_equal(full[t : t + 32, l : l + 32], cond)))
        return out

    seeded = CrossViewDataset(root, "test", load_size=48, crop_size=32, test_crop="random", seed=1)
    first = offsets(seeded)
    torch.manual_seed(123)  # the global RNG plays no part
    assert offsets(seeded) == first == offsets(CrossViewDataset(root, "test", load_size=48, crop_size=32,
                                                                test_crop="random", seed=1))
    assert first == [crop_offset(48, 32, "random", 1, i) for i in range(4)]
    assert all(0 <= v <= 15 for o in first for v in o)
    other = offsets(CrossViewDataset(root, "test", load_size=48, crop_size=32, test_crop="random", seed=2))
    assert other != first
    centre = CrossViewDataset(root, "test", load_size=48, crop_size=32, test_crop="center", seed=1)
    assert offsets(centre) == [(8, 8)] * 4
    assert centre.protocol()["crop"] == "center" and seeded.protocol()["crop"] == "random"
    assert seeded.protocol()["crop_seed"] == 1 and seeded.protocol()["crop_offset_range"] == [0, 15]
    json.dumps(seeded.protocol())
    with pytest.raises(ValueError, match="test_crop"):
        CrossViewDataset(root, "test", test_crop="left")


def test_task_eval_dataset_uses_test_crop_and_train_seed(tmp_path):
    root = _test_folder(tmp_path, size=64)
    cfg = get_preset("dayton-a2g-64")  # load 72 -> crop 64, test_crop random (the release)
    cfg.data.root = str(root)
    ds = CrossViewTask(cfg).eval_dataset("test")
    assert (ds.load_size, ds.crop_size, ds.crop_mode, ds.seed) == (72, 64, "random", cfg.train.seed)
    cfg.train.seed = 7
    assert CrossViewTask(cfg).eval_dataset("test").seed == 7
    cfg.data.test_crop = "center"
    assert CrossViewTask(cfg).eval_dataset("test").protocol()["crop"] == "center"


# ----------------------------------------------------------------------------------------------- palettes

SELECTIONGAN_RGB = np.array([[0, 0, 0], [0, 0, 255], [255, 0, 0], [0, 255, 0]], np.uint8)  # sky, man-made, road, veg.
YELLOW = (slice(40, 56), slice(8, 24))


def _selectiongan_file(root: Path, name: str, seed: int, size: int = 64, unknown: bool = False) -> np.ndarray:
    """A 4-panel JPEG like SelectionGAN's CVUSA files: aerial | street | black aerial map | street map in
    near-pure black/blue/red/green. Returns the street map's colour index per pixel (-1: the unknown colour)."""
    rng = np.random.default_rng(seed)
    index = np.kron(rng.integers(0, 4, (size // 16, size // 16)), np.ones((16, 16), int))
    street_map = SELECTIONGAN_RGB[index]
    if unknown:
        street_map[YELLOW] = (255, 255, 0)
        index[YELLOW] = -1
    panels = {"A": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
              "B": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
              "C": np.zeros((size, size, 3), np.uint8), "D": street_map}
    _save(root / name, join_panels(panels), quality=85)
    return index


def test_selectiongan_cvusa_palette_recovers_the_jpeg_street_masks(tmp_path):
    pal = builtin_label_palette("selectiongan-cvusa", CROSSVIEW_NUM_CLASSES)
    assert pal.panels == "colour" and pal.kind == "rgb"
    names = dict(zip(pal.colour_names, (CROSSVIEW_CLASS_NAMES[k] for k in pal.ids)))
    assert names == {"sky": "sky", "man-made": "structure", "road": "flat", "vegetation": "vegetation"}
    indices = [_selectiongan_file(tmp_path / "test", f"{i}.jpg", seed=i) for i in range(3)]
    ds = CrossViewDataset(tmp_path, "test", "a2g", mask_palette="selectiongan-cvusa")
    for i, index in enumerate(indices):
        label = ds[i]["label"].numpy()
        expected = pal.ids[index]
        void = label == VOID_LABEL
        # Only chroma-blended edges (JPEG keeps colour at half resolution); a 4x4 grid of 16 px cells has many.
        assert void.mean() < 0.08
        np.testing.assert_array_equal(label[~void], expected[~void])
    # The generation path reads the same masks.
    x, label = read_crossview_inputs(ds.files[0], mask_palette="selectiongan-cvusa")
    assert torch.equal(label, ds[0]["label"]) and x.shape == (6, 64, 64)
    # Without the palette the street maps are read with Cityscapes colours: most pixels void or wrong.
    default = CrossViewDataset(tmp_path, "test", "a2g")[0]["label"].numpy()
    assert (default != pal.ids[indices[0]]).mean() > 0.4
    # g2a would read its masks from the black aerial placeholder: refused, naming the file.
    with pytest.raises(CrossViewDataError, match=r"1\.jpg: the aerial map panel C is blank"):
        CrossViewDataset(tmp_path, "test", "g2a", mask_palette="selectiongan-cvusa")[1]
    # The gray palette needs mask panels: a one-line error naming the file.
    with pytest.raises(CrossViewDataError, match=r"0\.jpg.*lggan-gray.*4 panels"):
        CrossViewDataset(tmp_path, "test", mask_palette="lggan-gray")


def test_inspect_reports_void_per_colour_and_the_unknown_one(tmp_path):
    indices = [_selectiongan_file(tmp_path / "train", f"{i}.jpg", seed=10 + i, unknown=(i == 0)) for i in range(3)]
    wrong = inspect_crossview(tmp_path)  # default palette for 4-panel files: Cityscapes colours
    assert wrong.palettes == {"4-panel": "cityscapes-groups"}
    # Black (sky) and green are no Cityscapes colour: a large void share, flagged with the palette hint.
    assert wrong.void_total / wrong.mask_pixels > 0.25
    assert any("void" in p and "selectiongan-cvusa" in p for p in wrong.problems)

    report = inspect_crossview(tmp_path, mask_palette="selectiongan-cvusa")
    assert report.palettes == {"4-panel": "selectiongan-cvusa"}
    assert report.blank_segmentations == {"aerial": 3, "street": 0}  # the black aerial placeholders
    yellow = int((indices[0] == -1).sum())
    assert report.mask_pixels == 3 * 64 * 64
    # The unknown colour is the most frequent void value (JPEG moves some of its pixels to neighbouring bins).
    top, count = next(iter(report.void_colours.items()))
    assert top == "255,255,0" and 0.6 * yellow <= count <= yellow
    assert (report.void_total - yellow) / report.mask_pixels < 0.05  # the rest: chroma-blended edge pixels
    assert report.void_pixels["train/0.jpg"] >= yellow > report.void_pixels["train/1.jpg"]
    matched = {k.split(" ")[1]: v for k, v in report.palette_pixels.items()}
    for p, name in enumerate(("sky", "man-made", "road", "vegetation")):
        true = sum(int((ix == p).sum()) for ix in indices)
        assert 0.9 * true <= matched[name] <= true + 0.01 * report.mask_pixels  # blended edges go either way
    text = format_crossview_report(report)
    assert "255,255,0" in text and "selectiongan-cvusa" in text and "man-made -> structure" in text


def test_json_palette_sets_the_mapping_and_errors_name_the_file(tmp_path):
    indices = _selectiongan_file(tmp_path / "test", "0.jpg", seed=4, unknown=True)
    spec = {"colours": [[0, 0, 0], [0, 0, 255], [255, 0, 0], [0, 255, 0], [255, 255, 0]],
            "classes": [5, 4, 2, 6, 1], "tolerance": 100, "names": ["sky", "man-made", "road", "veg", "car"]}
    path = tmp_path / "palette.json"
    path.write_text(json.dumps(spec))
    pal = load_label_palette_json(path, CROSSVIEW_NUM_CLASSES)
    np.testing.assert_array_equal(pal.ids, [4, 3, 1, 5, 0])  # 1-based in the file, 0-based here
    label = CrossViewDataset(tmp_path, "test", mask_palette=str(path))[0]["label"].numpy()
    assert (label[YELLOW] == 0).mean() > 0.9  # the yellow block is now class 1 (vehicle)
    assert (label == VOID_LABEL).mean() < 0.05
    assert inspect_crossview(tmp_path, mask_palette=str(path)).void_total < 0.05 * 64 * 64
    # Class 0 means void.
    path.write_text(json.dumps({**spec, "classes": [5, 4, 2, 6, 0]}))
    assert (CrossViewDataset(tmp_path, "test", mask_palette=str(path))[0]["label"].numpy()[YELLOW] == VOID_LABEL
            ).mean() > 0.9
    for bad, message in (({**spec, "classes": [5, 4, 2, 6, 7]}, "1..6"), ({**spec, "colour": []}, "unknown"),
                         ({**spec, "tolerance": -1}, "tolerance"), ({**spec, "colours": [[0, 0]] * 5}, "colours")):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=rf"palette\.json.*{message}"):
            load_label_palette_json(path, CROSSVIEW_NUM_CLASSES)
    with pytest.raises(ValueError, match="no-such-palette"):
        CrossViewDataset(tmp_path, "test", mask_palette="no-such-palette")


def test_inspect_command_takes_the_palette_and_exits_by_its_findings(tmp_path, capsys):
    from lggan.cli import main

    for i in range(2):
        _selectiongan_file(tmp_path / "train", f"{i}.jpg", seed=20 + i)
    assert main(["data", "inspect", str(tmp_path), "--dataset", "cvusa"]) == 1  # Cityscapes colours: mostly void
    assert "selectiongan-cvusa" in capsys.readouterr().out
    assert main(["data", "inspect", str(tmp_path), "--dataset", "cvusa", "--palette", "selectiongan-cvusa"]) == 0
    assert "selectiongan-cvusa" in capsys.readouterr().out
