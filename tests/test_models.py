"""Networks of LGGAN (§3): equations, invariants, ablation switches, any number of classes."""

import copy
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lggan.models import (
    SPADE,
    ClassificationModule,
    LGGANGenerator,
    MultiscaleDiscriminator,
    SharedEncoder,
    SPADEGenerator,
    SPADEResBlock,
    WeightMapGenerator,
    init_weights,
)

SMALL = dict(ngf=4, spade_hidden=8, num_res_blocks=1, tile_size=8)


def semantic_input(B, C, H, W, present=None, instance=True, seed=0):
    """S = one-hot labels (classes drawn from `present[b]`, blocky layout) + an instance-edge channel."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.empty(B, H, W, dtype=torch.long)
    for b in range(B):
        classes = torch.tensor(present[b]) if present else torch.arange(C)
        coarse = classes[torch.randint(len(classes), (B, H // 8, W // 8), generator=g)[b]]
        lab[b] = coarse.repeat_interleave(8, 0).repeat_interleave(8, 1)
    S = F.one_hot(lab, C).permute(0, 3, 1, 2).float()
    if instance:
        S = torch.cat([S, (torch.rand(B, 1, H, W, generator=g) < 0.1).float()], 1)
    return S


def test_encoder_layout_and_resolutions():
    E = SharedEncoder(7, ngf=4)
    out = E(torch.randn(2, 7, 32, 64))
    assert out.features.shape == (2, 16, 8, 16)  # 1/4 resolution, 4*ngf channels: feeds G_l and G_w
    assert out.deep.shape == (2, 64, 2, 4)  # 1/16 resolution, 16*ngf: feeds G_g
    assert [tuple(getattr(E, f"conv{k}").weight.shape) for k in range(1, 6)] == [
        (4, 7, 7, 7), (8, 4, 3, 3), (16, 8, 3, 3), (32, 16, 3, 3), (64, 32, 3, 3)]
    # IN without affine, then ReLU: every channel of the 1/4 map is non-negative with per-channel mean > 0.
    assert out.features.min() >= 0
    assert SharedEncoder(6, 4, num_deep=0)(torch.randn(1, 6, 16, 16)).deep is None
    with pytest.raises(ValueError, match="encoder input S"):
        E(torch.randn(1, 6, 32, 32))


def test_spade_equation():
    spade = SPADE(5, 3, hidden=6).eval()
    spade.param_free_norm.running_mean.normal_()
    spade.param_free_norm.running_var.uniform_(0.5, 2)
    x, S = torch.randn(2, 5, 4, 6), torch.randn(2, 3, 8, 12)
    S_small = F.interpolate(S, size=(4, 6), mode="nearest")
    actv = F.relu(F.conv2d(S_small, spade.mlp_shared[0].weight, spade.mlp_shared[0].bias, padding=1))
    gamma = F.conv2d(actv, spade.mlp_gamma.weight, spade.mlp_gamma.bias, padding=1)
    beta = F.conv2d(actv, spade.mlp_beta.weight, spade.mlp_beta.bias, padding=1)
    bn = spade.param_free_norm
    x_hat = (x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
    torch.testing.assert_close(spade(x, S), x_hat * (1 + gamma) + beta)
    assert not bn.affine and isinstance(bn, nn.BatchNorm2d)


@pytest.mark.parametrize("fin,fout", [(8, 4), (6, 6)])
def test_spade_resblock_equation(fin, fout):
    block = SPADEResBlock(fin, fout, 3, hidden=4).eval()
    x, S = torch.randn(2, fin, 4, 4), torch.randn(2, 3, 8, 8)
    conv = lambda m, t: F.conv2d(t, m.weight, m.bias, padding=m.padding)
    block(x, S)  # materialise the spectral-norm weights
    dx = conv(block.conv_0, F.leaky_relu(block.norm_0(x, S), 0.2))
    dx = conv(block.conv_1, F.leaky_relu(block.norm_1(dx, S), 0.2))
    x_s = conv(block.conv_s, block.norm_s(x, S)) if fin != fout else x
    torch.testing.assert_close(block(x, S), x_s + dx)
    assert block.conv_0.weight.shape[0] == min(fin, fout)
    keys = set(block.state_dict())
    assert {"conv_0.weight_orig", "conv_0.weight_u", "conv_0.weight_v"} <= keys
    assert ("conv_s.weight_orig" in keys) == (fin != fout) and "conv_s.bias" not in keys
    # weight = weight_orig / sigma with sigma = u^T W v
    W = block.conv_1.weight_orig.flatten(1)
    sigma = block.conv_1.weight_u @ W @ block.conv_1.weight_v
    torch.testing.assert_close(block.conv_1.weight, block.conv_1.weight_orig / sigma)


def test_spade_generator_grid_and_range():
    G = SPADEGenerator(3, ngf=2, hidden=4)
    seen = []
    G.head_0.register_forward_hook(lambda m, a, o: seen.append(tuple(a[0].shape[-2:])))
    out = G(torch.randn(2, 32, 5, 7), torch.randn(2, 3, 64, 96))
    assert seen == [(2, 3)]  # starting grid (H, W) / 2^5
    assert out.shape == (2, 3, 64, 96) and out.abs().max() < 1
    with pytest.raises(ValueError, match="multiples of 32"):
        G(torch.randn(1, 32, 2, 2), torch.randn(1, 3, 48, 64))


@pytest.mark.parametrize("layout,start,middle_1,final_nc", [
    ("normal", (2, 3), (4, 6), 2), ("more", (1, 2), (4, 8), 2), ("most", (1, 1), (4, 4), 1)])
def test_spade_generator_layouts(layout, start, middle_1, final_nc):
    # SPADE's num_upsampling_layers: start grid (H, W)/2^5, 2^6, 2^7; "more" and "most" upsample between the middle
    # blocks; "most" adds up_4 (ngf -> ngf/2) and conv_img reads ngf/2.
    H, W = {"normal": (64, 96), "more": (64, 128), "most": (128, 128)}[layout]
    G = SPADEGenerator(3, ngf=2, hidden=4, num_upsampling_layers=layout)
    seen = {}
    for name in ("head_0", "G_middle_0", "G_middle_1", "up_3"):
        getattr(G, name).register_forward_hook(lambda m, a, o, name=name: seen.update({name: tuple(a[0].shape[-2:])}))
    deep = torch.randn(2, 32, H // 16, W // 16)
    out = G(deep, torch.randn(2, 3, H, W))
    assert out.shape == (2, 3, H, W) and out.abs().max() < 1
    assert seen["head_0"] == start and seen["G_middle_1"] == middle_1
    assert seen["G_middle_0"] == (2 * start[0], 2 * start[1])
    assert seen["up_3"] == ((H // 2, W // 2) if layout == "most" else (H, W))
    assert hasattr(G, "up_4") == (layout == "most") and G.conv_img.weight.shape == (3, final_nc, 3, 3)
    # The start grid is E's 1/16 output resized with nearest interpolation (the release's F.interpolate default).
    x0 = {}
    G.head_0.register_forward_pre_hook(lambda m, a: x0.update(x=a[0]))  # returns None: the input is kept
    G(deep, torch.randn(2, 3, H, W))
    torch.testing.assert_close(x0["x"], F.interpolate(deep, size=start), rtol=0, atol=0)
    step = G.step
    with pytest.raises(ValueError, match=f"multiples of {step}"):
        G(deep, torch.randn(2, 3, H + step // 2, W))
    with pytest.raises(ValueError, match="num_upsampling_layers"):
        SPADEGenerator(3, ngf=2, num_upsampling_layers="many")


def test_generator_layout_and_groups_arguments():
    G = LGGANGenerator(6, 7, num_upsampling_layers="more", local_groups=3, **SMALL).eval()
    assert G.arguments["num_upsampling_layers"] == "more" and G.arguments["local_groups"] == 3
    assert LGGANGenerator(**G.arguments).state_dict().keys() == G.state_dict().keys()
    assert G.local.class_conv.weight.shape[0] == 3 and G.classifier.fc.out_features == 2
    out = G(semantic_input(1, 6, 64, 64, present=[[0, 4, 5]]))
    assert out.class_logits.shape == (1, 2, 2) and out.class_valid.tolist() == [[True, False]]
    assert out.class_images.dense().shape == (1, 3, 3, 64, 64)
    with pytest.raises(ValueError, match="multiples of 64"):
        G(semantic_input(1, 6, 32, 64))
    with pytest.raises(ValueError, match="local_groups"):
        LGGANGenerator(6, 7, local_groups=7, **SMALL)
    with pytest.raises(ValueError, match="local_groups"):
        LGGANGenerator(6, 7, local_groups=1, **SMALL)
    with pytest.raises(ValueError, match="num_scored"):
        ClassificationModule(3, 4, num_scored=4)
    with pytest.raises(ValueError, match=r"masks must be \[B, 3"):
        ClassificationModule(3, 4)(torch.randn(1, 4, 8, 8), torch.zeros(1, 2, 8, 8))


def test_weight_maps_are_a_per_pixel_softmax():
    Gw = WeightMapGenerator(ngf=4)
    W_l, W_g = Gw(torch.randn(2, 16, 8, 12) * 5)
    assert W_l.shape == W_g.shape == (2, 1, 32, 48)
    assert (W_l > 0).all() and (W_g > 0).all()
    torch.testing.assert_close(W_l + W_g, torch.ones_like(W_l))
    assert W_l.std() > 1e-3  # not a constant map


def test_generator_fusion_equation_and_outputs():
    torch.manual_seed(0)
    G = LGGANGenerator(5, 6, **SMALL)
    S = semantic_input(2, 5, 32, 64, present=[[0, 1, 2], [2, 3]])
    out = G(S)
    torch.testing.assert_close(out.image, out.image_global * out.weight_global + out.image_local * out.weight_local)
    torch.testing.assert_close(out.weight_local + out.weight_global, torch.ones_like(out.weight_local))
    assert out.class_logits.shape == (2, 5, 5)
    assert out.class_valid.tolist() == [[True, True, True, False, False], [False, False, True, True, False]]
    assert out.class_images.dense().shape == (2, 5, 3, 32, 64)
    # Eq. 4 (default combine) from the class images
    dense = out.class_images.dense().reshape(2, 15, 32, 64)
    torch.testing.assert_close(out.image_local, torch.tanh(G.local.combine(dense)), rtol=1e-5, atol=1e-6)


def test_switch_s2_sum_and_fixed_weights():
    G = LGGANGenerator(4, 5, local_combine="sum", use_weight_map=False, **SMALL)
    out = G(semantic_input(2, 4, 32, 32))
    torch.testing.assert_close(out.image_local, out.class_images.dense().sum(1))  # Eq. 3
    torch.testing.assert_close(out.image, 0.5 * (out.image_global + out.image_local))
    assert (out.weight_local == 0.5).all() and (out.weight_global == 0.5).all()
    assert not any(k.startswith(("weight_map.", "local.combine")) for k in G.state_dict())


def test_switch_s5_full_model_has_all_branches():
    keys = LGGANGenerator(4, 5, **SMALL).state_dict()
    for prefix in ("encoder.", "global_generator.", "local.combine.", "local.class_conv.", "classifier.fc.", "weight_map."):
        assert any(k.startswith(prefix) for k in keys), prefix


def test_class_pooling_image_and_mask():
    torch.manual_seed(0)
    B, C, n, H, W = 2, 3, 4, 6, 8
    f = torch.randn(B, n, H, W)
    M = semantic_input(B, C, 8, 8, present=[[0, 1], [1, 2]], instance=False)[:, :, :H, :W]
    for pool in ("image", "mask"):
        cls = ClassificationModule(C, n, pool)
        out = cls(f, M)
        for b in range(B):
            for i in range(C):
                F_i = M[b, i] * f[b]  # Eq. 1
                if pool == "image":
                    v = F_i.mean((1, 2))
                else:
                    area = M[b, i].sum()
                    v = F_i.sum((1, 2)) / area if area > 0 else torch.zeros(n)
                    if area > 0:  # the paper's semantic-guided pooling: mean of f' over the class's own pixels
                        torch.testing.assert_close(v, f[b][:, M[b, i] > 0].mean(1))
                torch.testing.assert_close(out.logits[b, i], cls.fc(v), rtol=1e-5, atol=1e-6)
        assert out.valid.tolist() == [(M[b].flatten(1) > 0).any(1).tolist() for b in range(B)]
    with pytest.raises(ValueError, match="class_pool"):
        ClassificationModule(C, n, "max")


@pytest.mark.parametrize("C", [2, 183])
def test_any_number_of_classes(C):
    G = LGGANGenerator(C, C + 1, ngf=2, spade_hidden=4, num_res_blocks=1, tile_size=16)
    present = [list(range(0, C, max(1, C // 12)))]
    S = semantic_input(1, C, 32, 64, present=present)
    out = G(S)
    assert out.image.shape == (1, 3, 32, 64) and torch.isfinite(out.image).all()
    assert out.class_logits.shape == (1, C, C)
    assert out.class_valid.tolist() == S[:, :C].flatten(2).any(-1).tolist()
    assert 2 <= out.class_valid.sum() <= len(present[0])
    assert G.local.class_conv.weight.shape == (C, 3, 2, 7, 7) and G.local.combine.weight.shape == (3, 3 * C, 3, 3)


def test_sync_batchnorm_conversion_keeps_keys_and_outputs():
    G = LGGANGenerator(4, 5, **SMALL).eval()
    S = semantic_input(1, 4, 32, 32)
    ref = G(S).image
    keys = list(G.state_dict())
    G_sync = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(G)).eval()
    n_sync = sum(isinstance(m, nn.SyncBatchNorm) for m in G_sync.modules())
    assert n_sync == sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) > 0
    assert list(G_sync.state_dict()) == keys
    torch.testing.assert_close(G_sync(S).image, ref)


def test_generator_rejects_bad_input():
    G = LGGANGenerator(4, 5, **SMALL)
    with pytest.raises(ValueError, match="S must be"):
        G(torch.zeros(1, 4, 32, 32))
    with pytest.raises(ValueError, match="multiples of 32"):
        G(torch.zeros(1, 5, 32, 40))
    with pytest.raises(ValueError, match="more than one value per channel"):
        G(torch.zeros(1, 5, 32, 32))
    with pytest.raises(ValueError, match="semantic_nc"):
        LGGANGenerator(5, 4)
    with pytest.raises(ValueError, match="local_combine"):
        LGGANGenerator(4, 5, local_combine="mean", **{k: v for k, v in SMALL.items()})
    with pytest.raises(ValueError, match="num_classes"):
        LGGANGenerator(1, 2)


def test_official_width_at_ngf_64_on_meta_device():
    with torch.device("meta"):
        G = LGGANGenerator(35, 36)
    sd = G.state_dict()
    assert sd["local.class_conv.weight"].shape == (35, 3, 64, 7, 7)
    assert sd["global_generator.head_0.conv_0.weight_orig"].shape == (1024, 1024, 3, 3)
    assert sd["weight_map.to_weights.weight"].shape == (2, 64, 1, 1)
    assert 100e6 < sum(p.numel() for p in G.parameters()) < 120e6


def test_discriminator_features_per_scale():
    D = MultiscaleDiscriminator(6, ndf=4, n_layers=4, num_d=2).eval()  # eval: no power iteration between calls
    S, img = torch.randn(2, 3, 32, 64), torch.randn(2, 3, 32, 64)
    out = D(S, img)
    assert len(out) == 2 and all(len(scale) == 5 for scale in out)
    assert [t.shape[1] for t in out[0]] == [4, 8, 16, 32, 1]
    x = torch.cat([S, img], 1)
    torch.testing.assert_close(out[0], D.scales[0](x))
    pooled = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    torch.testing.assert_close(out[1], D.scales[1](pooled))
    assert out[1][-1].shape[-2:] != out[0][-1].shape[-2:]
    keys = set(D.state_dict())
    assert "scales.0.layers.1.0.weight_orig" in keys and "scales.0.layers.1.0.bias" not in keys
    assert "scales.0.layers.0.0.weight" in keys and "scales.0.layers.4.0.weight" in keys
    with pytest.raises(ValueError, match="channels"):
        D(torch.randn(1, 5, 32, 32))
    plain = MultiscaleDiscriminator(6, ndf=4, spectral=False).state_dict()
    assert "scales.0.layers.1.0.weight" in plain and not any(k.endswith("weight_orig") for k in plain)


def test_no_cuda_calls_in_sources():
    root = Path(__file__).parents[1] / "src" / "lggan"
    files = list((root / "models").glob("*.py")) + list((root / "convert").glob("*.py")) + [root / "losses.py"]
    for path in files:
        assert not re.search(r"\.cuda\(", path.read_text()), path


def test_init_weights_official_xavier():
    G = init_weights(LGGANGenerator(40, 41, ngf=8, spade_hidden=16, num_res_blocks=1), "xavier", 0.02)
    w = G.local.class_conv.weight  # [C, 3, ngf, 7, 7]: fans of one class's conv, not of the stack
    expected = 0.02 * (2 / (8 * 49 + 3 * 49)) ** 0.5
    assert abs(w.std().item() / expected - 1) < 0.05 and G.local.class_conv.bias.abs().max() == 0
    v = G.global_generator.head_0.conv_0.weight_orig  # spectral-norm layers are initialised through weight_orig
    assert abs(v.std().item() / (0.02 * (2 / (2 * 128 * 9)) ** 0.5) - 1) < 0.05
    assert G.encoder.conv1.bias.abs().max() == 0 and G.classifier.fc.bias.abs().max() == 0
    with pytest.raises(ValueError, match="init kind"):
        init_weights(G, "uniform")
