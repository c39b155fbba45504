"""Region-constant evaluation of the convs that read only S (models/semantic_layout.py) is the dense function.

Forward values, every parameter's gradient and the input gradient (the features x that SPADE normalises) are
compared in float64 against the dense convs, max |diff| <= 1e-10, on label maps of several kinds: street scenes
with instance edges, many small regions, one class only, every pixel on a boundary (checkerboard), a don't-care
channel, maps in a batch that differ.
"""

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds benchmarks/

import lggan.models.semantic_layout as sl
from benchmarks.labels import label_batch
from lggan.data.common import make_semantic_input
from lggan.models import SPADE, LGGANGenerator, SPADEResBlock
from lggan.models.semantic_layout import SemanticLayout, layout_conv, spade_modulation

TOL = 1e-10


def _street(B=2, size=(64, 32), instance=True):
    label, inst, _ = label_batch(35, True, B, size, 0)
    return make_semantic_input(label, 35, inst if instance else None).double()


def _small_regions(B=2, size=(48, 32), C=6):
    g = torch.Generator().manual_seed(3)
    coarse = torch.randint(0, C, (B, 1, size[1] // 4, size[0] // 4), generator=g).float()
    label = F.interpolate(coarse, size=(size[1], size[0]), mode="nearest")[:, 0].long()
    noise = torch.rand(B, size[1], size[0], generator=g) < 0.05  # single-pixel specks
    label = torch.where(noise, (label + 1) % C, label)
    return make_semantic_input(label, C, label).double()  # instance edges from the labels themselves


def _one_class(B=1, size=(32, 32), C=4):
    return make_semantic_input(torch.full((B, size[1], size[0]), 2), C, None).double()


def _checkerboard(B=1, size=(32, 32), C=3):
    y, x = torch.meshgrid(torch.arange(size[1]), torch.arange(size[0]), indexing="ij")
    label = ((y + x) % C).expand(B, -1, -1)
    return make_semantic_input(label, C, None).double()


def _dontcare(B=2, size=(32, 32)):
    # A custom dataset with don't-care: its own one-hot channel after the classes (data.dontcare), plus edges.
    g = torch.Generator().manual_seed(5)
    coarse = torch.randint(0, 5, (B, 1, 4, 4), generator=g).float()
    label = F.interpolate(coarse, size=(size[1], size[0]), mode="nearest")[:, 0].long()
    return make_semantic_input(label, 5, torch.randint(0, 3, label.shape, generator=g)).double()


MAPS = {"street": _street, "small_regions": _small_regions, "one_class": _one_class,
        "checkerboard": _checkerboard, "dontcare": _dontcare}


@pytest.fixture
def always_regions(monkeypatch):
    """Take the region path at every resolution (the speed thresholds would send small maps to the dense convs)."""
    monkeypatch.setattr(sl, "MAX_BOUNDARY_FRACTION", 1.0)
    monkeypatch.setattr(sl, "MIN_PIXELS", 0)
    monkeypatch.setattr(sl, "MAX_CONV_FRACTION", 1.0)


def _max_diff(a, b):
    return (a - b).abs().max().item() if a.numel() else 0.0


@pytest.mark.parametrize("kind", list(MAPS))
def test_layout_holds_s_exactly(kind):
    S = MAPS[kind]()
    L = SemanticLayout.from_semantic(S)
    assert L is not None
    assert torch.equal(L.vectors[L.keys].permute(0, 3, 1, 2), S)
    assert torch.equal(L.vectors[-1], torch.zeros(S.shape[1], dtype=S.dtype))  # the zero-padding row
    # Resizing the keys gives exactly the keys of the resized map.
    for size in [(S.shape[2] // 2, S.shape[3] // 2), (S.shape[2] // 4, S.shape[3] // 4), (7, 5)]:
        at = L.at(size)
        assert torch.equal(at.vectors[at.keys].permute(0, 3, 1, 2), F.interpolate(S, size=size, mode="nearest"))


def test_layout_refuses_what_is_not_a_label_map():
    S = _street()
    assert SemanticLayout.from_semantic(torch.rand(1, 4, 16, 16, dtype=torch.float64)) is None  # every pixel unique
    assert SemanticLayout.from_semantic(S.clone().requires_grad_()) is None  # gradient to S: dense convs
    soft = S * 0.5  # few distinct values, not 0/1: still a layout, and exact
    L = SemanticLayout.from_semantic(soft)
    assert L is not None and torch.equal(L.vectors[L.keys].permute(0, 3, 1, 2), soft)


def test_windows_mark_mixed_and_border_pixels():
    S = _one_class(size=(12, 10))
    w5 = SemanticLayout.from_semantic(S).at((10, 12)).windows(5, 1, 2, "zeros")
    mixed = w5.table_index >= 1  # one key (0); K + u marks a mixed window
    expected = torch.ones(1, 10, 12, dtype=torch.bool)
    expected[:, 2:-2, 2:-2] = False  # only the 2-pixel border (zero padding) is mixed for a single class
    assert torch.equal(mixed, expected)
    # Distinct patterns: a border pixel's window is determined by its distance to each edge.
    assert w5.patterns.shape[0] < int(expected.sum())
    reflect = SemanticLayout.from_semantic(S).at((10, 12)).windows(7, 1, 3, "reflect")
    assert reflect.patterns.shape[0] == 0  # mirrored keys: no border effect


@pytest.mark.parametrize("kind", list(MAPS))
@pytest.mark.parametrize("k,stride,padding,mode", [(3, 1, 1, "zeros"), (7, 1, 3, "reflect"), (4, 2, 2, "zeros"),
                                                   (5, 1, 2, "reflect")])
def test_layout_conv_is_the_conv(kind, k, stride, padding, mode):
    S = MAPS[kind]()
    L = SemanticLayout.from_semantic(S).at(S.shape[-2:])
    weight = torch.randn(5, S.shape[1], k, k, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    dense = F.conv2d(F.pad(S, (padding,) * 4, mode="constant" if mode == "zeros" else mode), weight, bias, stride)
    region = layout_conv(L, weight, bias, stride, padding, mode)
    assert region.shape == dense.shape
    assert _max_diff(region, dense) <= TOL
    g = torch.randn_like(dense)
    gd = torch.autograd.grad(dense, (weight, bias), g)
    gr = torch.autograd.grad(region, (weight, bias), g)
    for a, b in zip(gd, gr):
        assert _max_diff(a, b) <= TOL


def _dense_spade_mlp(S, ws, bs, wgb, bgb):
    return F.conv2d(F.relu(F.conv2d(S, ws, bs, padding=1)), wgb, bgb, padding=1)


@pytest.mark.parametrize("kind", list(MAPS))
def test_spade_modulation_is_the_dense_mlp(kind):
    S = MAPS[kind]()
    L = SemanticLayout.from_semantic(S).at(S.shape[-2:])
    hidden, out = 6, 8
    params = [torch.randn(hidden, S.shape[1], 3, 3, dtype=torch.float64), torch.randn(hidden, dtype=torch.float64),
              torch.randn(out, hidden, 3, 3, dtype=torch.float64), torch.randn(out, dtype=torch.float64)]
    params = [p.requires_grad_() for p in params]
    dense = _dense_spade_mlp(S, *params)
    for channels_last in (False, True):
        region = spade_modulation(L, *params, channels_last=channels_last)
        assert region.shape == dense.shape
        assert _max_diff(region, dense) <= TOL
        g = torch.randn_like(dense)
        for a, b in zip(torch.autograd.grad(dense, params, g, retain_graph=True), torch.autograd.grad(region, params, g)):
            assert _max_diff(a, b) <= TOL
    assert region.is_contiguous(memory_format=torch.channels_last)


def test_relu_kink_is_exercised():
    """Some activations are negative (ReLU clips them) in both the per-key and the per-pattern rows, so the
    equality above covers both sides of the ReLU."""
    S = _street()
    L = SemanticLayout.from_semantic(S).at(S.shape[-2:])
    ws = torch.randn(6, S.shape[1], 3, 3, dtype=torch.float64)
    pre = F.conv2d(S, ws, torch.zeros(6, dtype=torch.float64), padding=1)
    assert (pre < 0).any() and (pre > 0).any()
    assert L.windows(5, 1, 2, "zeros").patterns.shape[0] > 0 and L.num_keys > 1


def _spade_pair(cls, *args):
    torch.manual_seed(0)
    m = cls(*args).double().train()
    return m, copy.deepcopy(m)


@pytest.mark.parametrize("kind", ["street", "small_regions", "checkerboard"])
def test_spade_forward_and_all_gradients(kind, always_regions):
    S = MAPS[kind]()
    L = SemanticLayout.from_semantic(S)
    region, dense = _spade_pair(SPADE, 5, S.shape[1], 7)
    x = torch.randn(S.shape[0], 5, S.shape[2] // 2, S.shape[3] // 2, dtype=torch.float64)  # resized S
    xr, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yd = region(xr, S, L), dense(xd, S)
    assert _max_diff(yr, yd) <= TOL
    g = torch.randn_like(yd)
    (yr * g).sum().backward()
    (yd * g).sum().backward()
    assert _max_diff(xr.grad, xd.grad) <= TOL
    for (name, p), q in zip(region.named_parameters(), dense.parameters()):
        assert p.grad is not None and _max_diff(p.grad, q.grad) <= TOL, name


@pytest.mark.parametrize("kind,channels_last", [("street", False), ("dontcare", False), ("street", True)])
def test_spade_block_forward_and_all_gradients(kind, channels_last, always_regions):
    S = MAPS[kind]()
    L = SemanticLayout.from_semantic(S)
    region, dense = _spade_pair(SPADEResBlock, 6, 4, S.shape[1], 5)  # learned shortcut: three SPADEs
    x = torch.randn(S.shape[0], 6, *S.shape[-2:], dtype=torch.float64)
    if channels_last:  # the modulation is filled and its gradient summed in NHWC order (train.channels_last)
        x = x.to(memory_format=torch.channels_last)
        region = region.to(memory_format=torch.channels_last)
    xr, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yd = region(xr, S, L), dense(xd, S)
    assert _max_diff(yr, yd) <= TOL
    g = torch.randn_like(yd)
    (yr * g).sum().backward()
    (yd * g).sum().backward()
    assert _max_diff(xr.grad, xd.grad) <= TOL
    for (name, p), q in zip(region.named_parameters(), dense.parameters()):
        assert _max_diff(p.grad, q.grad) <= TOL, name
    # The batch-norm statistics the two updated are the same too.
    for a, b in zip(region.buffers(), dense.buffers()):
        assert _max_diff(a.double(), b.double()) <= TOL


def _generator_pair(S, C, **kw):
    torch.manual_seed(0)
    G = LGGANGenerator(C, S.shape[1], ngf=4, spade_hidden=6, num_res_blocks=1, **kw).double().train()
    G_dense = copy.deepcopy(G)
    G_dense.region_constant = False
    return G, G_dense


@pytest.mark.parametrize("layout,groups", [("normal", None), ("more", None), ("normal", 4)])
def test_generator_region_path_is_the_dense_one(layout, groups, always_regions):
    S = _street(B=2, size=(128, 64))
    G, G_dense = _generator_pair(S, 35, num_upsampling_layers=layout, local_groups=groups)
    out, ref = G(S), G_dense(S)
    for name in ("image", "image_global", "image_local", "weight_local", "class_logits"):
        assert _max_diff(getattr(out, name), getattr(ref, name)) <= TOL, name
    g = torch.randn_like(ref.image)
    ((out.image + out.image_global) * g).sum().backward()
    ((ref.image + ref.image_global) * g).sum().backward()
    for (name, p), q in zip(G.named_parameters(), G_dense.parameters()):
        if q.grad is None:
            assert p.grad is None, name
            continue
        assert _max_diff(p.grad, q.grad) <= TOL * max(1.0, q.grad.abs().max().item()), name


def test_generator_default_thresholds_mix_both_paths():
    """With the shipped thresholds a street scene takes the region path at the large resolutions and the dense convs
    at the small ones, and the result still equals the dense generator."""
    S = _street(B=1, size=(256, 128))
    L = SemanticLayout.from_semantic(S)
    used = [sl.worth_regions(L.at((128 // d, 256 // d))) for d in (1, 2, 4, 8, 16, 32)]
    assert used[0] and not used[-1]
    G, G_dense = _generator_pair(S, 35)
    G.eval(), G_dense.eval()
    with torch.no_grad():
        assert _max_diff(G(S).image, G_dense(S).image) <= TOL


def test_s_that_needs_a_gradient_gets_it(always_regions):
    """An S with requires_grad takes the dense convs, so its gradient is the dense one (and not silently zero)."""
    S = _street(B=1)
    G, G_dense = _generator_pair(S, 35)
    Sr, Sd = S.clone().requires_grad_(), S.clone().requires_grad_()
    G(Sr).image.sum().backward()
    G_dense(Sd).image.sum().backward()
    assert Sr.grad.abs().max() > 0
    assert _max_diff(Sr.grad, Sd.grad) <= TOL


def test_bf16_autocast_region_tables_stay_float32(always_regions):
    """Under bf16 autocast the dense convs run in bf16, while the region path computes its (small) tables in float32:
    each row stands for many pixels, so it is kept as accurate as the weights; its output is then closer to the
    float64 value than the dense bf16 conv's."""
    S = _street(B=1, size=(64, 32)).float()
    L = SemanticLayout.from_semantic(S).at(S.shape[-2:])
    torch.manual_seed(0)
    ws, bs = torch.randn(8, S.shape[1], 3, 3) * 0.3, torch.randn(8) * 0.1
    wgb, bgb = torch.randn(6, 8, 3, 3) * 0.2, torch.randn(6) * 0.1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        region = spade_modulation(L, ws, bs, wgb, bgb)
        dense = _dense_spade_mlp(S, ws, bs, wgb, bgb)
    exact = _dense_spade_mlp(S.double(), ws.double(), bs.double(), wgb.double(), bgb.double())
    assert region.dtype == torch.float32 and dense.dtype == torch.bfloat16
    scale = exact.abs().max().item()
    assert scale > 0.5
    assert _max_diff(region.double(), exact) <= 1e-5 * scale
    assert 1e-4 * scale < _max_diff(dense.double(), exact) <= 0.03 * scale  # bf16 really ran in the dense path


@pytest.mark.slow
@pytest.mark.parametrize("size", [(256, 128), (512, 256)])
def test_float32_official_widths(size):
    """float32 at the Cityscapes release's widths (ngf 64, hidden 128, layout more): the region path's images are
    within 1e-4 of the dense path's (train and eval mode). Gradients: float32 itself carries ~1e-3 relative error
    through G_g's seven batch-normalised blocks (dense against float64: ~3e-4 of each weight gradient's norm), so at
    256x128 both are compared with float64: every weight gradient of the region path within 1e-3 of the float64 one
    (relative to its norm), and its median error no larger than 1.5x the dense float32 path's."""
    label, inst, _ = label_batch(35, True, 1, size, 0)
    S = make_semantic_input(label, 35, inst)
    torch.manual_seed(0)
    G = LGGANGenerator(35, 36, ngf=64, spade_hidden=128, num_upsampling_layers="more").train()
    G_dense = copy.deepcopy(G)
    G_dense.region_constant = False
    G64 = copy.deepcopy(G_dense).double() if size == (256, 128) else None
    runs = [(G, S), (G_dense, S)] + ([(G64, S.double())] if G64 is not None else [])
    outs, grads = [], []
    for model, s in runs:
        out = model(s)
        out.image_global.mean().backward()
        outs.append(out)
        grads.append({n: p.grad.double() for n, p in model.global_generator.named_parameters() if "weight" in n})
    assert _max_diff(outs[0].image, outs[1].image) <= 1e-4
    assert _max_diff(outs[0].image_global, outs[1].image_global) <= 1e-4
    if G64 is not None:
        errors = {name: [((g[name] - exact).norm() / exact.norm()).item() for g in grads[:2]]
                  for name, exact in grads[2].items()}
        for name, (err_region, _) in errors.items():
            assert err_region <= 1e-3, (name, err_region)
        assert np.median([e[0] for e in errors.values()]) <= 1.5 * np.median([e[1] for e in errors.values()])
    G.eval(), G_dense.eval()
    with torch.no_grad():
        assert _max_diff(G(S).image, G_dense(S).image) <= 1e-4


def test_numpy_free_of_literal_classes():
    """The layout takes its channel count from S: 151 one-hot channels (ADE20K) work as 36 do."""
    rng = np.random.default_rng(0)
    label = torch.from_numpy(rng.integers(0, 151, (1, 4, 4))).repeat_interleave(8, 1).repeat_interleave(8, 2)
    S = make_semantic_input(label, 151, None).double()
    L = SemanticLayout.from_semantic(S)
    assert L.vectors.shape[1] == 151 and torch.equal(L.vectors[L.keys].permute(0, 3, 1, 2), S)


@pytest.mark.parametrize("which", ["multiscale", "multiscale_dense", "patchgan"])
def test_discriminator_with_a_condition_is_the_conv_of_the_concatenation(which, always_regions):
    """D(S, images) with n images per map equals D(concat(S, image)) per image: forward and every gradient (the
    condition's part of the first conv is computed once, per region of the label map for the multiscale D)."""
    from lggan.models import MultiscaleDiscriminator, PatchGANDiscriminator

    S = _street(B=2, size=(64, 32))
    n = 3
    torch.manual_seed(0)
    if which == "patchgan":
        D = PatchGANDiscriminator(S.shape[1] + 3, ndf=4).double().train()
    else:
        D = MultiscaleDiscriminator(S.shape[1] + 3, ndf=4, n_layers=3, num_d=2).double().train()
        D.region_constant = which == "multiscale"
    D_cat = copy.deepcopy(D)
    images = torch.randn(n * 2, 3, 32, 64, dtype=torch.float64)
    xi, xc = images.clone().requires_grad_(), images.clone().requires_grad_()
    got = D(S, xi)
    want = D_cat(torch.cat([S.repeat(n, 1, 1, 1), xc], 1))
    assert [len(s) for s in got] == [len(s) for s in want]
    loss_got = sum((f * (k + 1)).sum() for scale in got for k, f in enumerate(scale))
    loss_want = sum((f * (k + 1)).sum() for scale in want for k, f in enumerate(scale))
    for a, b in zip([f for s in got for f in s], [f for s in want for f in s]):
        assert _max_diff(a, b) <= TOL
    loss_got.backward()
    loss_want.backward()
    assert _max_diff(xi.grad, xc.grad) <= TOL
    for (name, p), q in zip(D.named_parameters(), D_cat.parameters()):
        assert _max_diff(p.grad, q.grad) <= TOL * max(1.0, q.grad.abs().max().item()), name
    with pytest.raises(ValueError, match="n\\*B"):
        D(S, images[:5])


def test_unique_rows_is_torch_unique_and_survives_collisions(monkeypatch):
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(0, 4, (500, 9), generator=g)
    patterns, inverse = sl.unique_rows(rows)
    want = torch.unique(rows, dim=0)
    assert torch.equal(patterns[inverse], rows)
    assert patterns.shape == want.shape and torch.equal(torch.unique(patterns, dim=0), want)
    # A hash that collides (every weight 1: rows with the same sum share a code) falls back to torch.unique.
    monkeypatch.setattr(sl, "_row_weights", lambda n, device: torch.ones(n, dtype=torch.long, device=device))
    patterns, inverse = sl.unique_rows(rows)
    assert torch.equal(patterns, want) and torch.equal(patterns[inverse], rows)


def test_bf16_gradients_are_as_accurate_as_the_dense_bf16_ones(always_regions):
    """Under bf16 autocast the region path's parameter gradients are as close to float64 as the dense bf16 path's
    (over all of a block's weights: single bias sums are dominated by cancellation in both)."""
    S = _street(B=2, size=(128, 64)).float()
    L = SemanticLayout.from_semantic(S)
    torch.manual_seed(0)
    # A block: norm_1 normalises conv_0's output, which autocast computes in bf16.
    base = SPADEResBlock(8, 8, S.shape[1], 16).train()
    x = torch.randn(2, 8, 64, 128)
    g = torch.randn(2, 8, 64, 128)

    def grads(model, dtype, layout, amp):
        m = copy.deepcopy(model).to(dtype)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = m(x.to(dtype), S.to(dtype), layout)
        (y.to(dtype) * g.to(dtype)).sum().backward()
        return torch.cat([p.grad.double().reshape(-1) for n, p in m.named_parameters() if n.endswith("weight")
                          or n.endswith("weight_orig")])

    exact = grads(base, torch.float64, None, False)
    err_dense = ((grads(base, torch.float32, None, True) - exact).norm() / exact.norm()).item()
    err_region = ((grads(base, torch.float32, L, True) - exact).norm() / exact.norm()).item()
    assert 0 < err_region <= 1.5 * err_dense, (err_region, err_dense)
