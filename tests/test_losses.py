"""Loss functions: values against hand-computed formulas (Eq. 2, 5, 8; SPADE's hinge, feature matching, VGG)."""

import math

import pytest
import torch
import torch.nn.functional as F

from lggan import losses
from lggan.models import ClassSpecificConv


def test_hinge_values():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 0.5])
    assert losses.hinge_d_real(real).item() == pytest.approx((0 + 0.5 + 2.0) / 3)
    assert losses.hinge_d_fake(fake).item() == pytest.approx((0 + 1.0 + 1.5) / 3)
    assert losses.hinge_g(fake).item() == pytest.approx(1.5 / 3)  # -mean(-2, 0, 0.5)
    assert losses.discriminator_loss(real, fake, "hinge").item() == pytest.approx(2.5 / 3 + 2.5 / 3)


def test_vanilla_values_and_halved_d_loss():
    real, fake = torch.tensor([1.0, -0.5]), torch.tensor([0.3, -2.0])
    sp = lambda x: math.log1p(math.exp(x))
    bce_r = (sp(-1.0) + sp(0.5)) / 2  # -log sigmoid(x)
    bce_f = (sp(0.3) + sp(-2.0)) / 2  # -log(1 - sigmoid(x))
    assert losses.bce_real(real).item() == pytest.approx(bce_r)
    assert losses.bce_fake(fake).item() == pytest.approx(bce_f)
    assert losses.discriminator_loss(real, fake, "vanilla").item() == pytest.approx(0.5 * (bce_r + bce_f))
    assert losses.generator_gan_loss(fake, "vanilla").item() == pytest.approx((sp(-0.3) + sp(2.0)) / 2)
    with pytest.raises(ValueError, match="gan mode"):
        losses.generator_gan_loss(fake, "wgan")


def test_multiscale_uses_last_output_of_each_scale_and_averages():
    s0 = [torch.randn(2, 4, 5, 5), torch.full((2, 1, 3, 3), 0.5)]
    s1 = [torch.randn(2, 4, 3, 3), torch.full((2, 1, 2, 2), -3.0)]
    assert losses.generator_gan_loss([s0, s1]).item() == pytest.approx((-0.5 + 3.0) / 2)
    real = [[torch.zeros(1), torch.full((1, 1, 2, 2), 0.0)], [torch.zeros(1), torch.full((1, 1, 2, 2), 2.0)]]
    fake = [[torch.zeros(1), torch.full((1, 1, 2, 2), 0.0)], [torch.zeros(1), torch.full((1, 1, 2, 2), -2.0)]]
    # real: (1 + 0)/2, fake: (1 + 0)/2
    assert losses.discriminator_loss(real, fake).item() == pytest.approx(1.0)


def test_feature_matching_spade_average():
    fake = [[torch.ones(1, 2, 4, 4), torch.zeros(1, 3, 2, 2), torch.full((1, 1, 1, 1), 9.0)],
            [torch.full((1, 2, 2, 2), 2.0), torch.zeros(1, 3, 1, 1), torch.zeros(1, 1, 1, 1)]]
    real = [[torch.zeros(1, 2, 4, 4), torch.full((1, 3, 2, 2), 3.0), torch.zeros(1, 1, 1, 1)],
            [torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 1, 1), torch.zeros(1, 1, 1, 1)]]
    # Scale 0: 1 + 3; scale 1: 2 + 0; predictions (last) excluded; divided by num_d = 2.
    assert losses.feature_matching_loss(fake, real).item() == pytest.approx((1 + 3 + 2 + 0) / 2)
    real_req = [[t.clone().requires_grad_() for t in s] for s in real]
    fake_req = [[t.clone().requires_grad_() for t in s] for s in fake]
    losses.feature_matching_loss(fake_req, real_req).backward()
    assert all(t.grad is None for s in real_req for t in s)  # real features are detached
    assert fake_req[0][0].grad is not None
    with pytest.raises(ValueError, match="scales"):
        losses.feature_matching_loss(fake, real[:1])


def test_l1_and_tv():
    a = torch.tensor([[[[0.0, 1.0], [3.0, 1.0]]]])
    assert losses.l1_loss(a, torch.zeros_like(a)).item() == pytest.approx(5 / 4)
    # vertical diffs: 3, 0 -> mean 1.5; horizontal diffs: 1, -2 -> mean 1.5
    assert losses.tv_loss(a).item() == pytest.approx(3.0)
    # sum (the cross-view release): |3| + |0| + |1| + |-2| = 6
    assert losses.tv_loss(a, "sum").item() == pytest.approx(6.0)
    with pytest.raises(ValueError, match="tv_reduction"):
        losses.tv_loss(a, "max")


def test_class_ce_counts_only_present_classes():
    torch.manual_seed(0)
    B, C = 2, 4
    logits = torch.randn(B, C, C, requires_grad=True)
    valid = torch.tensor([[True, False, True, False], [False, False, True, True]])  # class 1 absent everywhere
    loss = losses.class_ce_loss(logits, valid)
    pairs = [(0, 0), (0, 2), (1, 2), (1, 3)]
    expected = sum(F.cross_entropy(logits[b, i][None], torch.tensor([i])) for b, i in pairs) / len(pairs)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad[:, 1].abs().max() == 0  # absent from every sample: contributes nothing
    assert logits.grad[0, 3].abs().max() == 0 and logits.grad[1, 0].abs().max() == 0  # absent from that sample
    changed = logits.detach().clone()
    changed[:, 1] += 100
    changed[0, 3] -= 50
    torch.testing.assert_close(losses.class_ce_loss(changed, valid), expected.detach())
    assert losses.class_ce_loss(logits, torch.zeros(B, C, dtype=torch.bool)).item() == 0
    with pytest.raises(ValueError, match="logits"):
        losses.class_ce_loss(torch.randn(2, 3, 4), valid)


def one_hot_masks(B, C, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, C - 1, (B, H // 4, W // 4), generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
    return F.one_hot(lab, C).permute(0, 3, 1, 2).double()  # class C-1 never present


def test_local_l1_eq2_formula_dense():
    B, C, H, W = 2, 3, 8, 8
    target = torch.rand(B, 3, H, W, dtype=torch.float64) * 2 - 1
    M = one_hot_masks(B, C, H, W)
    class_images = torch.rand(B, C, 3, H, W, dtype=torch.float64)
    expected = sum((target * M[:, i : i + 1] - class_images[:, i]).abs().mean() for i in range(C))
    torch.testing.assert_close(losses.local_l1_loss(class_images, target, M), expected)


def test_local_l1_every_class_uses_its_own_mask():
    B, C, H, W = 1, 4, 8, 8
    target = torch.rand(B, 3, H, W, dtype=torch.float64) + 0.5
    M = one_hot_masks(B, C, H, W)
    M[:, 3, :2, :2], M[:, 0, :2, :2] = 1, 0  # make every class present
    perfect = target.unsqueeze(1) * M.unsqueeze(2)  # I^l_i = I_g * M_i
    assert losses.local_l1_loss(perfect, target, M).item() == 0
    for i in range(C):  # giving any class another class's mask is penalised
        wrong = perfect.clone()
        wrong[:, i] = target * M[:, (i + 1) % C : (i + 1) % C + 1]
        assert losses.local_l1_loss(wrong, target, M).item() > 0.01


@pytest.mark.parametrize("H,W,T", [(16, 24, 8), (13, 19, 8)])
def test_local_l1_sparse_equals_dense_value_and_grads(H, W, T):
    B, C, n = 2, 5, 4
    conv = ClassSpecificConv(C, n, tile_size=T).double()
    f = torch.randn(B, n, H, W, dtype=torch.float64, requires_grad=True)
    M = F.one_hot(torch.randint(0, C - 1, (B, H, W)), C).permute(0, 3, 1, 2).double()
    target = torch.rand(B, 3, H, W, dtype=torch.float64) * 2 - 1
    I = conv(f, M)
    sparse = losses.local_l1_loss(I, target, M)
    dense = losses.local_l1_loss(I.dense(), target, M)
    torch.testing.assert_close(sparse, dense, rtol=1e-12, atol=1e-12)
    params = [f, conv.weight, conv.bias]
    for a, b in zip(torch.autograd.grad(sparse, params, retain_graph=True), torch.autograd.grad(dense, params)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # a mask permutation changes the loss (the masks passed in are really used)
    assert abs(losses.local_l1_loss(I, target, M[:, [1, 0, 2, 3, 4]]).item() - sparse.item()) > 1e-3
    with pytest.raises(ValueError, match="local L1"):
        losses.local_l1_loss(I, target[:, :, :-1], M[:, :, :-1])


@pytest.mark.parametrize("mode", ["raw", "imagenet"])
def test_vgg_loss_formula_with_random_weights(mode):
    torch.manual_seed(0)
    vgg = losses.VGGLoss(random_init=True, input_mode=mode)
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    y = torch.rand(1, 3, 32, 32) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    feats = torch.nn.Sequential(*[m for s in vgg.slices for m in s])
    ends = [2, 7, 12, 21, 30]  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in torchvision's vgg19().features

    def acts(img):
        # raw (the releases): the [-1, 1] image itself; imagenet: [0, 1] then ImageNet mean/std.
        h, out, k = (img if mode == "raw" else ((img + 1) / 2 - mean) / std), [], 0
        for idx, layer in enumerate(feats):
            h = layer(h)
            if idx + 1 == ends[k]:
                out.append(h)
                k += 1
        return out

    expected = sum(w * (a - b).abs().mean() for w, a, b in zip([1 / 32, 1 / 16, 1 / 8, 1 / 4, 1], acts(x), acts(y)))
    loss = vgg(x, y)
    torch.testing.assert_close(loss, expected)
    assert vgg(y, y).item() == 0
    loss.backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is None for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    assert [type(m).__name__ for m in feats][:5] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d"]
    assert len(feats) == 30 and isinstance(feats[28], torch.nn.Conv2d) and feats[28].in_channels == 512


def test_vgg_default_input_is_raw_and_modes_are_checked():
    torch.manual_seed(0)
    raw, imagenet = losses.VGGLoss(random_init=True), losses.VGGLoss(random_init=True, input_mode="imagenet")
    imagenet.load_state_dict(raw.state_dict())
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    assert raw.input_mode == "raw"
    assert abs(raw(x, y).item() - imagenet(x, y).item()) > 1e-4  # the normalisation really is skipped
    with pytest.raises(ValueError, match="input_mode"):
        losses.VGGLoss(random_init=True, input_mode="caffe")


def test_vgg_loss_loads_local_weights_and_errors_clearly(tmp_path, monkeypatch):
    src = losses.VGGLoss(random_init=True)
    state = {f"features.{k}": v for k, v in torch.nn.Sequential(*[m for s in src.slices for m in s]).state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the full torchvision file also holds the classifier
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    loaded = losses.VGGLoss(weights_path=path)
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(loaded(x, y), src(x, y))

    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        losses.VGGLoss(weights_path=missing)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"hub.checkpoints.vgg19-dcbb9e9d\.pth") as err:
        losses.VGGLoss()
    # The message names the setting, the file, the cache folder and the way out.
    text = str(err.value)
    assert text.startswith("loss.vgg_weights:") and str(tmp_path / "hub" / "checkpoints") in text
    assert "--set loss.vgg_weights=PATH" in text and "--set loss.vgg=0" in text and "\n" not in text
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, bad)
    with pytest.raises(ValueError, match="bad.pth"):
        losses.VGGLoss(weights_path=bad)
