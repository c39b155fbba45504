"""Cross-view LGGAN generator (§3, §4.1): equations, masking, ablation switches, training step, dual discriminator."""

import pytest
import torch
import torch.nn.functional as F

from lggan import losses as L
from lggan.data.crossview import class_masks
from lggan.models import CrossViewGenerator, init_weights
from lggan.models.discriminator import PatchGANDiscriminator

SMALL = dict(ngf=4, num_res_blocks=1, tile_size=8)


def crossview_batch(B=2, C=6, H=32, W=48, void=True, seed=0):
    """x = concat(I_a, S_g colour) in [-1, 1], a blocky target label map (255 = void) and its class masks."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, C, (B, H // 8, W // 8), generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)
    if void:
        label[:, : H // 4, : W // 4] = 255  # a void corner: all masks are 0 there
    x = torch.rand(B, 6, H, W, generator=g) * 2 - 1
    return x, label, class_masks(label, C)


def randomised(G, seed=1):
    """Non-zero biases everywhere (init_weights zeroes them), so constants like tanh(b_i) are distinguishable."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in G.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.dim() > 2 else 0.5))
    return G


def test_arguments_and_output_shapes():
    G = CrossViewGenerator(num_classes=6, **SMALL)
    assert G.arguments == dict(in_channels=6, num_classes=6, ngf=4, num_res_blocks=1, use_local=True,
                               use_weight_map=True, local_combine="sum", tile_size=8, use_classifier=False,
                               class_pool="image")
    assert CrossViewGenerator(**G.arguments).state_dict().keys() == G.state_dict().keys()
    x, _, M = crossview_batch(H=40, W=56)  # multiples of 4, not of the tile size
    out = G(x, M)
    for name in ("image", "image_global", "image_local"):
        assert getattr(out, name).shape == (2, 3, 40, 56), name
    assert out.image_global.abs().max() <= 1  # tanh; I^L (Eq. 3) is a sum of C tanh images, not bounded by 1
    assert out.weight_local.shape == out.weight_global.shape == (2, 1, 40, 56)
    assert out.class_images.dense().shape == (2, 6, 3, 40, 56)
    assert out.class_logits is None and out.class_valid is None  # the cross-view release has no class CE


def test_fusion_equation_and_weight_maps_sum_to_one():
    G = randomised(CrossViewGenerator(num_classes=5, **SMALL))
    x, _, M = crossview_batch(C=5)
    out = G(x, M)
    torch.testing.assert_close(out.weight_local + out.weight_global, torch.ones_like(out.weight_local))
    assert out.weight_local.std() > 1e-3  # really predicted per pixel
    # Eq. 7: I^C = I^G * W_g + I^L * W_l
    torch.testing.assert_close(out.image, out.image_global * out.weight_global + out.image_local * out.weight_local)
    # Eq. 6: W_f = softmax(G_w(E)); channel 0 is the local weight
    E = G.encoder(x).features
    logits = G.weight_map.to_weights(F.relu(F.instance_norm(G.weight_map.deconv_2(
        F.relu(F.instance_norm(G.weight_map.deconv_1(E)))))))
    torch.testing.assert_close(out.weight_local, torch.softmax(logits, 1)[:, :1])


def test_local_image_is_the_sum_of_the_class_images():
    G = randomised(CrossViewGenerator(num_classes=6, **SMALL))
    x, _, M = crossview_batch()
    out = G(x, M)
    torch.testing.assert_close(out.image_local, out.class_images.dense().sum(1))  # Eq. 3


def test_class_image_is_tanh_bias_outside_its_reach():
    C, H, W = 4, 32, 48
    G = randomised(CrossViewGenerator(num_classes=C, **SMALL))
    label = torch.zeros(1, H, W, dtype=torch.long)
    label[0, 8:12, 20:26] = 2  # class 2: one small box; class 3 absent
    x = torch.rand(1, 6, H, W) * 2 - 1
    out = G(x, class_masks(label, C))
    dense = out.class_images.dense()[0]  # [C, 3, H, W]
    const = torch.tanh(G.local.class_conv.bias)  # [C, 3]
    # The 7x7 conv sees class 2's features only within 3 px of its box.
    far = torch.ones(H, W, dtype=torch.bool)
    far[8 - 3 : 12 + 3, 20 - 3 : 26 + 3] = False
    assert torch.equal(dense[2][:, far], const[2].view(3, 1).expand(3, int(far.sum())))
    assert (dense[2][:, 8:12, 20:26] - const[2].view(3, 1, 1)).abs().amin() > 0  # inside: the features matter
    assert torch.equal(dense[3], const[3].view(3, 1, 1).expand(3, H, W))  # absent class: constant everywhere
    # Reference for class 2 computed densely: tanh(conv(reflect_pad(M_2 * f'))).
    f = G.local(G.encoder(x).features, class_masks(label, C)).features
    m2 = (label == 2).float().unsqueeze(1)
    ref = torch.tanh(F.conv2d(F.pad(f * m2, (3, 3, 3, 3), mode="reflect"), G.local.class_conv.weight[2],
                              G.local.class_conv.bias[2]))
    torch.testing.assert_close(dense[2], ref[0])


def test_void_pixels():
    C = 6
    G = randomised(CrossViewGenerator(num_classes=C, **SMALL))
    x, _, M = crossview_batch(C=C)
    assert M[:, :, :8, :12].sum() == 0  # void corner
    out = G(x, M)
    const_sum = torch.tanh(G.local.class_conv.bias).sum(0).view(1, 3, 1, 1)
    # Far enough from every labelled pixel (reach 3 px), I^L is the sum of the constants tanh(b_i).
    torch.testing.assert_close(out.image_local[:, :, :5, :9], const_sum.expand(2, 3, 5, 9))
    # An entirely void map: I^L is that constant everywhere and the fusion is still finite, gradients included.
    out = G(x, torch.zeros_like(M))
    torch.testing.assert_close(out.image_local, const_sum.expand_as(out.image_local))
    out.image.mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)


def test_ablation_switches():
    x, _, M = crossview_batch()
    G = CrossViewGenerator(use_local=False, **SMALL)
    assert not any(k.startswith(("local.", "weight_map.")) for k in G.state_dict())
    out = G(x, M)
    assert torch.equal(out.image, out.image_global)
    assert out.image_local is None and out.class_images is None and out.weight_local is None
    assert torch.equal(G(x, None).image, out.image)  # masks unused without G_l
    G = randomised(CrossViewGenerator(use_weight_map=False, **SMALL))
    out = G(x, M)
    assert not hasattr(G, "weight_map")
    assert torch.equal(out.weight_local, torch.full_like(out.weight_local, 0.5))
    torch.testing.assert_close(out.image, 0.5 * (out.image_global + out.image_local))


def test_conv_combine_and_classifier_options():
    C = 6
    G = randomised(CrossViewGenerator(num_classes=C, local_combine="conv", use_classifier=True, **SMALL))
    x, _, M = crossview_batch(C=C)
    out = G(x, M)
    # Eq. 4: I^L = tanh(Conv(concat_i I^l_i))
    dense = out.class_images.dense().flatten(1, 2)
    ref = torch.tanh(F.conv2d(dense, G.local.combine.weight, G.local.combine.bias, padding=1))
    torch.testing.assert_close(out.image_local, ref)
    # Eq. 5: logits of class i = FC(mean over the image of M_i * f'); valid = class present
    f = G.local(G.encoder(x).features, M).features
    pooled = torch.stack([(f * M[:, i : i + 1]).mean((2, 3)) for i in range(C)], 1)
    torch.testing.assert_close(out.class_logits, G.classifier.fc(pooled))
    assert torch.equal(out.class_valid, M.flatten(2).amax(-1) > 0)


def test_input_errors_name_the_argument():
    G = CrossViewGenerator(num_classes=3, **SMALL)
    with pytest.raises(ValueError, match="x must be"):
        G(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="multiples of 4"):
        G(torch.zeros(1, 6, 30, 32), torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="masks M"):
        G(torch.zeros(1, 6, 32, 32), torch.zeros(1, 4, 32, 32))
    with pytest.raises(ValueError, match="masks M"):
        G(torch.zeros(1, 6, 32, 32), None)
    with pytest.raises(ValueError, match="local_combine"):
        CrossViewGenerator(local_combine="max")
    with pytest.raises(ValueError, match="num_classes"):
        CrossViewGenerator(num_classes=0)


def test_release_patchgan_layout():
    """D_i / D_s as the cross-view release builds them: conv4x4 s2 64, 128 s2, 256 s2, 512 s1 (IN), conv -> 1."""
    D = PatchGANDiscriminator(6, 64, n_layers=3)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (6, 64, (4, 4), (2, 2), (1, 1)), (64, 128, (4, 4), (2, 2), (1, 1)), (128, 256, (4, 4), (2, 2), (1, 1)),
        (256, 512, (4, 4), (1, 1), (1, 1)), (512, 1, (4, 4), (1, 1), (1, 1))]
    assert all(c.bias is not None for c in convs)
    norms = [m for m in D.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert [n.num_features for n in norms] == [128, 256, 512]
    assert not any(n.affine for n in norms) and all(n.track_running_stats for n in norms)
    assert {m.negative_slope for m in D.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.2}
    assert not any(hasattr(c, "weight_orig") for c in convs)


def test_training_step_forward_backward():
    C, ndf = 6, 8
    G = init_weights(CrossViewGenerator(num_classes=C, **SMALL), "normal", 0.02)
    D = {name: init_weights(PatchGANDiscriminator(6, ndf, n_layers=3), "normal", 0.02) for name in ("D_i", "D_s")}
    x, _, M = crossview_batch(B=2, C=C, H=32, W=32)
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    cond = {"D_i": x[:, :3], "D_s": x[:, 3:]}
    out = G(x, M)
    fakes = [out.image, out.image_global, out.image_local]
    loss = sum(L.generator_gan_loss(D[n](cond[n], f), "vanilla") for n in D for f in fakes)
    loss = loss + 100 * sum(L.l1_loss(f, real) for f in fakes) + 1e-6 * sum(L.tv_loss(f, "sum") for f in fakes)
    loss = loss + 100 * L.local_l1_loss(out.class_images, real, M)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in G.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    d_loss = sum(L.discriminator_loss(D[n](cond[n], real), D[n](cond[n], out.image.detach()), "vanilla") for n in D)
    d_loss.backward()
    assert all(p.grad is not None for d in D.values() for p in d.parameters())
