"""The sparse class-specific convolutions of G_l (Eq. 1-4) against a plain per-class reference on the full image."""

import pytest
import torch
import torch.nn.functional as F

from lggan.models import ClassSpecificConv, LocalClassGenerator, combine_class_images


def reference_class_images(f, M, weight, bias):
    """Eq. 1 literally: for every class, F_i = M_i * f' on the whole image, reflect-pad 3, conv7x7, tanh -> [B,C,3,H,W]."""
    out = []
    for i in range(M.shape[1]):
        F_i = M[:, i : i + 1] * f
        out.append(torch.tanh(F.conv2d(F.pad(F_i, (3, 3, 3, 3), mode="reflect"), weight[i], bias[i])))
    return torch.stack(out, 1)


def reference_combine(class_images, w, b):
    """Eq. 4 literally: tanh(conv3x3(concat_i I^l_i)) with zero padding 1."""
    B, C, _, H, W = class_images.shape
    return torch.tanh(F.conv2d(class_images.reshape(B, C * 3, H, W), w, b, padding=1))


def blob_masks(B, C, H, W, present, seed=0, dtype=torch.float64):
    """One-hot masks: per sample a background class plus rectangles of other classes (some touching the borders)."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.empty(B, H, W, dtype=torch.long)
    for b in range(B):
        classes = present[b]
        lab[b] = classes[0]
        for c in classes[1:]:
            y0 = int(torch.randint(-2, H - 1, (1,), generator=g))
            x0 = int(torch.randint(-2, W - 1, (1,), generator=g))
            h = int(torch.randint(1, max(2, H // 2), (1,), generator=g))
            w = int(torch.randint(1, max(2, W // 2), (1,), generator=g))
            lab[b, max(y0, 0) : y0 + h, max(x0, 0) : x0 + w] = c
    return F.one_hot(lab, C).permute(0, 3, 1, 2).to(dtype)


CASES = [
    # B, C, H, W, tile, classes present per sample
    (2, 5, 20, 27, 8, [[0, 2, 3], [2, 4]]),  # size not a multiple of the tile; class 1 absent everywhere
    (1, 4, 16, 16, 16, [[3, 0, 1]]),
    (3, 7, 24, 40, 16, [[6, 1, 2, 3], [0], [5, 6]]),
    (1, 3, 9, 13, 32, [[1, 2]]),  # one tile larger than the image
]


@pytest.mark.parametrize("path", ["per_class_conv", "batched_matmul"])
@pytest.mark.parametrize("B,C,H,W,T,present", CASES)
def test_sparse_class_conv_matches_per_class_reference_forward_and_grads(B, C, H, W, T, present, path, monkeypatch):
    import lggan.models.class_conv as cc

    # Both ways of running the class convs on the windows (chosen by the input width) give the reference's values.
    monkeypatch.setattr(cc, "PER_CLASS_CONV_MAX_CHANNELS", 64 if path == "per_class_conv" else 0)
    n = 6
    conv = ClassSpecificConv(C, n, tile_size=T).double()
    f = torch.randn(B, n, H, W, dtype=torch.float64, requires_grad=True)
    M = blob_masks(B, C, H, W, present)
    w_c = torch.randn(3, 3 * C, 3, 3, dtype=torch.float64, requires_grad=True)
    b_c = torch.randn(3, dtype=torch.float64, requires_grad=True)

    I = conv(f, M)
    ref = reference_class_images(f, M, conv.weight, conv.bias)
    torch.testing.assert_close(I.dense(), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(I.sum(), ref.sum(1), rtol=0, atol=1e-12)  # Eq. 3
    ours_conv = torch.tanh(combine_class_images(I, w_c, b_c))
    ref_conv = reference_combine(ref, w_c, b_c)
    torch.testing.assert_close(ours_conv, ref_conv, rtol=0, atol=1e-12)  # Eq. 4

    g1, g2 = torch.randn_like(ref_conv), torch.randn_like(ref_conv)
    params = [f, conv.weight, conv.bias, w_c, b_c]
    ours = torch.autograd.grad((ours_conv * g1).sum() + (I.sum() * g2).sum(), params)
    theirs = torch.autograd.grad((ref_conv * g1).sum() + (ref.sum(1) * g2).sum(), params)
    for name, a, b in zip(["f'", "weight", "bias", "combine.weight", "combine.bias"], ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")


def test_soft_overlapping_masks_match_reference():
    # The sparse path only relies on where M_i is non-zero, not on one-hot values.
    B, C, H, W, n = 2, 4, 18, 22, 5
    conv = ClassSpecificConv(C, n, tile_size=8).double()
    f = torch.randn(B, n, H, W, dtype=torch.float64)
    M = torch.rand(B, C, H, W, dtype=torch.float64) * (torch.rand(B, C, H, W, dtype=torch.float64) < 0.05)
    torch.testing.assert_close(conv(f, M).dense(), reference_class_images(f, M, conv.weight, conv.bias), rtol=0, atol=1e-12)


def test_absent_class_is_its_constant_and_never_computed():
    B, C, H, W = 2, 5, 16, 24
    conv = ClassSpecificConv(C, 4, tile_size=8).double()
    f = torch.randn(B, 4, H, W, dtype=torch.float64)
    M = blob_masks(B, C, H, W, [[0, 2], [2, 3]])  # classes 1 and 4 absent from the batch, 0 only in sample 0
    I = conv(f, M)
    assert not set(I.class_idx.tolist()) & {1, 4}
    assert set(I.class_idx[I.batch_idx == 1].tolist()) <= {2, 3}
    dense = I.dense()
    for i in (1, 4):
        torch.testing.assert_close(dense[:, i], torch.tanh(conv.bias[i]).view(1, 3, 1, 1).expand(B, 3, H, W))
    torch.testing.assert_close(dense[1, 0], torch.tanh(conv.bias[0]).view(3, 1, 1).expand(3, H, W))
    # An absent class's conv weight receives exactly zero gradient (its F_i is 0), but its bias does not.
    I.sum().sum().backward()
    assert conv.weight.grad[[1, 4]].abs().max() == 0
    assert conv.bias.grad[[1, 4]].abs().min() > 0


def test_no_class_present_gives_constants():
    conv = ClassSpecificConv(3, 4, tile_size=8)
    M = torch.zeros(2, 3, 16, 16)
    I = conv(torch.randn(2, 4, 16, 16), M)
    assert I.delta.shape[0] == 0
    torch.testing.assert_close(I.sum(), torch.tanh(conv.bias).sum(0).view(1, 3, 1, 1).expand(2, 3, 16, 16))
    w_c, b_c = torch.randn(3, 9, 3, 3), torch.randn(3)
    torch.testing.assert_close(combine_class_images(I, w_c, b_c),
                               F.conv2d(I.dense().reshape(2, 9, 16, 16), w_c, b_c, padding=1))


def test_masking_eq1_features_outside_a_class_do_not_reach_its_image():
    # Eq. 1: F_i = M_i * f' is zero outside class i, so changing f' there must leave I^l_i untouched.
    B, C, H, W, n = 1, 3, 16, 16, 4
    conv = ClassSpecificConv(C, n, tile_size=8).double()
    M = blob_masks(B, C, H, W, [[0, 1, 2]])
    f = torch.randn(B, n, H, W, dtype=torch.float64)
    base = conv(f, M).dense()
    for i in range(C):
        outside = (M[:, i : i + 1] == 0).expand_as(f)
        changed = conv(torch.where(outside, f + torch.randn_like(f), f), M).dense()
        torch.testing.assert_close(changed[:, i], base[:, i], rtol=0, atol=0)
        others = [j for j in range(C) if j != i and M[:, j].any()]
        assert all((changed[:, j] - base[:, j]).abs().max() > 1e-3 for j in others)


@pytest.mark.parametrize("T", [4, 8, 16, 64])
def test_result_does_not_depend_on_tile_size(T):
    B, C, H, W, n = 2, 4, 24, 32, 3
    torch.manual_seed(1)
    ref_conv = ClassSpecificConv(C, n, tile_size=8).double()
    conv = ClassSpecificConv(C, n, tile_size=T).double()
    conv.load_state_dict(ref_conv.state_dict())
    f = torch.randn(B, n, H, W, dtype=torch.float64)
    M = blob_masks(B, C, H, W, [[0, 1, 3], [2, 3]])
    torch.testing.assert_close(conv(f, M).dense(), ref_conv(f, M).dense(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("combine", ["sum", "conv"])
def test_local_generator_matches_reference(combine):
    B, C, ngf, H, W = 2, 4, 4, 32, 32
    G_l = LocalClassGenerator(C, ngf, num_res_blocks=2, combine=combine, tile_size=8).double()
    x = torch.randn(B, 4 * ngf, H // 4, W // 4, dtype=torch.float64)
    M = blob_masks(B, C, H, W, [[0, 1], [1, 2, 3]])
    out = G_l(x, M)
    assert out.features.shape == (B, ngf, H, W)
    ref = reference_class_images(out.features, M, G_l.class_conv.weight, G_l.class_conv.bias)
    torch.testing.assert_close(out.class_images.dense(), ref, rtol=0, atol=1e-12)
    expected = ref.sum(1) if combine == "sum" else reference_combine(ref, G_l.combine.weight, G_l.combine.bias)
    torch.testing.assert_close(out.image, expected, rtol=0, atol=1e-12)
    assert hasattr(G_l, "combine") == (combine == "conv")


def test_bad_inputs_are_rejected():
    conv = ClassSpecificConv(3, 4)
    with pytest.raises(ValueError, match="masks M"):
        conv(torch.randn(1, 4, 16, 16), torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="f'"):
        conv(torch.randn(1, 5, 16, 16), torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="local_combine"):
        LocalClassGenerator(3, 4, combine="max")
    with pytest.raises(ValueError, match="combine weight"):
        combine_class_images(conv(torch.randn(1, 4, 16, 16), torch.zeros(1, 3, 16, 16)), torch.zeros(3, 6, 3, 3), None)


def test_combine_with_other_kernel_sizes_matches_dense_conv():
    B, C, H, W = 2, 3, 20, 12
    conv = ClassSpecificConv(C, 4, tile_size=8).double()
    I = conv(torch.randn(B, 4, H, W, dtype=torch.float64), blob_masks(B, C, H, W, [[0, 1], [2]]))
    for k in (1, 5):
        w, b = torch.randn(2, 3 * C, k, k, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
        expected = F.conv2d(I.dense().reshape(B, 3 * C, H, W), w, b, padding=k // 2)
        torch.testing.assert_close(combine_class_images(I, w, b), expected, rtol=0, atol=1e-12)


def test_chunked_correlation_equals_one_batch_and_conv2d_forward_and_grads():
    from lggan.models.class_conv import batched_correlation

    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 4, 12, 12, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 3, 4, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    outs, grads = [], []
    for chunk in (1000, 3, 1):  # one batch; uneven chunks; one window at a time
        out = batched_correlation(x, w, b, chunk=chunk)
        outs.append(out)
        grads.append(torch.autograd.grad((out * out.detach().cos()).sum(), (x, w, b)))
    conv = torch.stack([torch.nn.functional.conv2d(x[n : n + 1], w[n], b[n])[0] for n in range(7)])
    torch.testing.assert_close(outs[0], conv)
    for out, grad in zip(outs[1:], grads[1:]):
        torch.testing.assert_close(out, outs[0])
        for a, e in zip(grad, grads[0]):
            torch.testing.assert_close(a, e)


# ----------------------------------------------------------------------------------------------- local groups

def test_group_masks_keep_the_first_channels_and_unite_the_rest():
    from lggan.models.class_conv import group_masks

    C, N = 9, 4
    M = blob_masks(2, C, 12, 16, [[0, 2, 5, 8], [3, 4, 1]])
    assert group_masks(M, None) is M  # no groups: the class masks themselves, unchanged
    G = group_masks(M, N)
    assert G.shape == (2, N, 12, 16)
    torch.testing.assert_close(G[:, : N - 1], M[:, : N - 1], rtol=0, atol=0)
    union = (M[:, N - 1 :] > 0).any(1).to(M.dtype)  # channels 3..8: one binary mask
    torch.testing.assert_close(G[:, N - 1], union, rtol=0, atol=0)
    assert torch.equal(G.sum(1), torch.ones(2, 12, 16, dtype=M.dtype))  # still one group per pixel
    assert torch.equal(group_masks(M, C), M)  # N = C: every channel its own group
    for bad in (1, C + 1):
        with pytest.raises(ValueError, match=f"local_groups={bad}"):
            group_masks(M, bad)


def test_grouped_generator_local_branch_classifier_and_local_l1_match_a_per_group_reference():
    from lggan import losses as L
    from lggan.config import get_preset
    from lggan.models import LGGANGenerator
    from lggan.models.class_conv import group_masks
    from lggan.tasks import make_task

    # 8 label channels + instance edge; 3 groups: channel 0, channel 1 and the union of channels 2..7.
    C, N, B, H, W = 8, 3, 2, 32, 32
    cfg = get_preset("synth")
    cfg.data.num_classes, cfg.model.local_groups = C, N
    cfg.model.ngf, cfg.model.spade_hidden, cfg.model.num_res_blocks = 4, 8, 1
    task = make_task(cfg)
    G = task.build_generator().double().eval()
    assert isinstance(G, LGGANGenerator) and G.local.class_conv.num_classes == N
    assert G.classifier.fc.out_features == N - 1 and G.local.combine.weight.shape == (3, 3 * N, 3, 3)

    label = torch.zeros(B, H, W, dtype=torch.long)
    label[0, :16] = 1
    label[0, 16:, :8] = 5
    label[1, :, 16:] = 7
    label[1, :8, :8] = 2
    batch = {"label": label, "instance": label.clone(), "image": torch.rand(B, 3, H, W) * 2 - 1}
    prep = task.prepare(batch, torch.device("cpu"))
    S = prep.gen_inputs[0].double()
    M = S[:, :C]
    assert prep.masks.shape == (B, N, H, W) and torch.equal(prep.masks, group_masks(prep.gen_inputs[0][:, :C], N))
    M_g = torch.cat([M[:, :2], M[:, 2:].sum(1, keepdim=True)], 1)  # written out: channels 0, 1, union of 2..7

    with torch.no_grad():
        out = G(S)
        E = G.encoder(S)
        x = E.features
        for block in G.local.res_blocks:
            x = block(x)
        from lggan.models.local_generator import upconv_in_relu

        f = upconv_in_relu(upconv_in_relu(x, G.local.deconv_1), G.local.deconv_2)
    ref = reference_class_images(f, M_g, G.local.class_conv.weight, G.local.class_conv.bias)
    torch.testing.assert_close(out.class_images.dense(), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.image_local, reference_combine(ref, G.local.combine.weight, G.local.combine.bias),
                               rtol=0, atol=1e-12)
    # Eq. 5: groups 0 and 1 are classified (image pooling: sum over the mask / (H*W)); the union group is not.
    pooled = torch.stack([(f * M_g[:, g : g + 1]).sum((2, 3)) / (H * W) for g in range(N - 1)], 1)
    torch.testing.assert_close(out.class_logits, G.classifier.fc(pooled), rtol=0, atol=1e-12)
    assert out.class_valid.tolist() == [[True, True], [True, False]]
    # Eq. 2 with the task's group masks: sum over groups of the full-tensor mean |I_g * M_g - I^l_g|.
    real = batch["image"].double()
    expected = sum((real * M_g[:, g : g + 1] - ref[:, g]).abs().mean() for g in range(N))
    torch.testing.assert_close(L.local_l1_loss(out.class_images, real, prep.masks.double()), expected,
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(L.local_l1_loss(ref, real, M_g), expected, rtol=1e-12, atol=1e-12)
    # The class loss takes the [B, N-1, N-1] logits as they are.
    assert torch.isfinite(L.class_ce_loss(out.class_logits, out.class_valid))
