"""Official-checkpoint conversion: key map against the released key list, and a forward written from the official layout."""

import json
import re

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from lggan.convert import (
    convert_official,
    convert_official_crossview,
    convert_official_file,
    convert_official_semantic,
    export_official_crossview,
    export_official_file,
    export_official_semantic,
    load_converted,
    stack_indexed,
    unstack_indexed,
)
from lggan.convert.names import CROSSVIEW_NAMES, SEMANTIC_NAMES
from lggan.data.crossview import class_masks
from lggan.generate import load_generator
from lggan.models import CrossViewGenerator, LGGANGenerator, MultiscaleDiscriminator

from reference_files import REFERENCE, needs_reference_file

CITYSCAPES_KEYS = REFERENCE / "official-cityscapes-generator-keys.txt"
CROSSVIEW_KEYS = REFERENCE / "official-crossview-generator-keys.txt"


def read_key_file(path):
    shapes = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, shape = line.split(" ", 1)
            shapes[name] = tuple(int(d) for d in re.findall(r"\d+", shape))
    return shapes


def official_layout(ngf, C, semantic_nc, hidden=128, n_res=9, scored=None, most=False):
    """Names and shapes of the official semantic LGGANGenerator state dict, written from the released layout.

    C per-group convs, `scored` classifier rows (default C; C - 1 for an unscored union group as ADE20K's); most: SPADE's
    'most' layout (an extra block up_4, ngf -> ngf/2, and conv_img reading ngf/2)."""
    nf, s = ngf, {}

    def spade(p, c):
        s.update({f"{p}.param_free_norm.running_mean": (c,), f"{p}.param_free_norm.running_var": (c,),
                  f"{p}.param_free_norm.num_batches_tracked": (),
                  f"{p}.mlp_shared.0.weight": (hidden, semantic_nc, 3, 3), f"{p}.mlp_shared.0.bias": (hidden,),
                  f"{p}.mlp_gamma.weight": (c, hidden, 3, 3), f"{p}.mlp_gamma.bias": (c,),
                  f"{p}.mlp_beta.weight": (c, hidden, 3, 3), f"{p}.mlp_beta.bias": (c,)})

    def sn_conv(p, cout, cin, k, bias=True):
        if bias:
            s[f"{p}.bias"] = (cout,)
        s.update({f"{p}.weight_orig": (cout, cin, k, k), f"{p}.weight_u": (cout,), f"{p}.weight_v": (cin * k * k,)})

    def conv(p, cout, cin, k):
        s.update({f"{p}.weight": (cout, cin, k, k), f"{p}.bias": (cout,)})

    s.update({"fc.weight": (16 * nf, semantic_nc, 3, 3), "fc.bias": (16 * nf,)})
    blocks = [("head_0", 16 * nf, 16 * nf), ("G_middle_0", 16 * nf, 16 * nf), ("G_middle_1", 16 * nf, 16 * nf),
              ("up_0", 16 * nf, 8 * nf), ("up_1", 8 * nf, 4 * nf), ("up_2", 4 * nf, 2 * nf), ("up_3", 2 * nf, nf)]
    for name, fin, fout in blocks + ([("up_4", nf, nf // 2)] if most else []):
        fmid = min(fin, fout)
        sn_conv(f"{name}.conv_0", fmid, fin, 3)
        sn_conv(f"{name}.conv_1", fout, fmid, 3)
        if fin != fout:
            sn_conv(f"{name}.conv_s", fout, fin, 1, bias=False)
        spade(f"{name}.norm_0", fin)
        spade(f"{name}.norm_1", fmid)
        if fin != fout:
            spade(f"{name}.norm_s", fin)
    conv("conv_img", 3, nf // 2 if most else nf, 3)
    conv("conv1", nf, semantic_nc, 7)
    for k, (cout, cin) in enumerate([(2 * nf, nf), (4 * nf, 2 * nf), (8 * nf, 4 * nf), (16 * nf, 8 * nf)], start=2):
        conv(f"conv{k}", cout, cin, 3)
    for k in range(1, n_res + 1):
        conv(f"resnet_blocks{k}.conv1", 4 * nf, 4 * nf, 3)
        conv(f"resnet_blocks{k}.conv2", 4 * nf, 4 * nf, 3)
    s.update({"deconv3_local.weight": (4 * nf, 2 * nf, 3, 3), "deconv3_local.bias": (2 * nf,),
              "deconv4_local.weight": (2 * nf, nf, 3, 3), "deconv4_local.bias": (nf,)})
    conv("deconv9", 3, 3 * C, 3)
    for i in range(C):
        conv(f"deconv5_{i}", 3, nf, 7)
    scored = C if scored is None else scored
    s.update({"fc2.weight": (scored, nf), "fc2.bias": (scored,),
              "deconv3_attention.weight": (4 * nf, 2 * nf, 3, 3), "deconv3_attention.bias": (2 * nf,),
              "deconv4_attention.weight": (2 * nf, nf, 3, 3), "deconv4_attention.bias": (nf,)})
    conv("deconv5_attention", 2, nf, 1)
    return s


def random_official_state_dict(layout, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in layout.items():
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            sd[name] = torch.rand(shape, generator=g, dtype=dtype) + 0.5
        elif name.endswith(("running_mean", "bias")):
            sd[name] = 0.1 * torch.randn(shape, generator=g, dtype=dtype)
        elif name.endswith(("weight_u", "weight_v")):
            sd[name] = F.normalize(torch.randn(shape, generator=g, dtype=dtype), dim=0)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            if ".weight" in name and name.split(".")[0].startswith(("deconv3", "deconv4")):
                fan_in = shape[0] * shape[2] * shape[3]  # transposed conv: [in, out, k, k]
            sd[name] = torch.randn(shape, generator=g, dtype=dtype) / fan_in**0.5
    return sd


def official_forward(sd, S, C, layout="normal", groups=None):
    """The official semantic LGGAN generator (eval mode), written directly on the official names with F.conv2d.

    C label channels; layout: SPADE's num_upsampling_layers; groups: None (one per label channel) or the number of
    local groups, the last one the sum of the remaining label channels and not classified (ADE20K release)."""
    IN, relu = F.instance_norm, F.relu

    def sn(p):
        W = sd[f"{p}.weight_orig"]
        return W / (sd[f"{p}.weight_u"] @ W.flatten(1) @ sd[f"{p}.weight_v"])

    def spade(p, x, seg):
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        mean, var = sd[f"{p}.param_free_norm.running_mean"], sd[f"{p}.param_free_norm.running_var"]
        x_hat = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-5)
        a = relu(F.conv2d(seg, sd[f"{p}.mlp_shared.0.weight"], sd[f"{p}.mlp_shared.0.bias"], padding=1))
        gamma = F.conv2d(a, sd[f"{p}.mlp_gamma.weight"], sd[f"{p}.mlp_gamma.bias"], padding=1)
        beta = F.conv2d(a, sd[f"{p}.mlp_beta.weight"], sd[f"{p}.mlp_beta.bias"], padding=1)
        return x_hat * (1 + gamma) + beta

    def spade_block(p, x, seg):
        x_s = F.conv2d(spade(f"{p}.norm_s", x, seg), sn(f"{p}.conv_s")) if f"{p}.conv_s.weight_orig" in sd else x
        dx = F.conv2d(F.leaky_relu(spade(f"{p}.norm_0", x, seg), 0.2), sn(f"{p}.conv_0"), sd[f"{p}.conv_0.bias"], padding=1)
        dx = F.conv2d(F.leaky_relu(spade(f"{p}.norm_1", dx, seg), 0.2), sn(f"{p}.conv_1"), sd[f"{p}.conv_1.bias"], padding=1)
        return x_s + dx

    def c(name, x, **kw):
        return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], **kw)

    def up_in_relu(name, x):
        return relu(IN(F.conv_transpose2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], stride=2, padding=1,
                                          output_padding=1)))

    def up(x):
        return F.interpolate(x, scale_factor=2, mode="nearest")

    H, W = S.shape[2:]
    x = relu(IN(c("conv1", F.pad(S, (3, 3, 3, 3), mode="reflect"))))
    x = relu(IN(c("conv2", x, stride=2, padding=1)))
    x_encode = relu(IN(c("conv3", x, stride=2, padding=1)))
    x = relu(IN(c("conv4", x_encode, stride=2, padding=1)))
    x = relu(IN(c("conv5", x, stride=2, padding=1)))
    step = 2 ** {"normal": 5, "more": 6, "most": 7}[layout]
    x = F.interpolate(x, size=(H // step, W // step), mode="nearest")
    x = up(spade_block("head_0", x, S))
    x = spade_block("G_middle_0", x, S)
    if layout != "normal":
        x = up(x)  # 'more' / 'most': the extra upsampling between the middle blocks
    x = spade_block("G_middle_1", x, S)
    for name in ("up_0", "up_1", "up_2", "up_3") + (("up_4",) if layout == "most" else ()):
        x = spade_block(name, up(x), S)
    I_G = torch.tanh(c("conv_img", F.leaky_relu(x, 0.2), padding=1))

    h = x_encode
    k = 1
    while f"resnet_blocks{k}.conv1.weight" in sd:
        t = relu(IN(c(f"resnet_blocks{k}.conv1", F.pad(h, (1, 1, 1, 1), mode="reflect"))))
        h = h + IN(c(f"resnet_blocks{k}.conv2", F.pad(t, (1, 1, 1, 1), mode="reflect")))
        k += 1
    f = up_in_relu("deconv4_local", up_in_relu("deconv3_local", h))
    G = C if groups is None else groups
    masks = [S[:, i : i + 1] for i in range(G - 1)] + [S[:, G - 1 : C].sum(1, keepdim=True)]
    results = [torch.tanh(c(f"deconv5_{i}", F.pad(f * masks[i], (3, 3, 3, 3), mode="reflect"))) for i in range(G)]
    I_L = torch.tanh(c("deconv9", torch.cat(results, 1), padding=1))
    a = up_in_relu("deconv4_attention", up_in_relu("deconv3_attention", x_encode))
    att = torch.softmax(c("deconv5_attention", a), 1)
    I_C = att[:, 0:1] * I_L + att[:, 1:2] * I_G
    K = sd["fc2.weight"].shape[0]
    pooled = torch.stack([(f * masks[i]).mean((2, 3)) for i in range(K)], 1)  # [B, K, ngf]
    logits = pooled @ sd["fc2.weight"].t() + sd["fc2.bias"]
    return dict(image=I_C, image_global=I_G, image_local=I_L, class_images=torch.stack(results, 1), logits=logits,
                weight_local=att[:, 0:1])


def semantic_map(B, C, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, C, (B, H // 4, W // 4), generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
    lab[:, :, : W // 2] = lab[:, :, : W // 2] % 3  # fewer classes on the left half
    S = F.one_hot(lab, C).permute(0, 3, 1, 2).double()
    return torch.cat([S, (torch.rand(B, 1, H, W, generator=g) < 0.1).double()], 1)


NGF, C, SEM, HID = 8, 5, 6, 16


@pytest.fixture(scope="module")
def small_official():
    return random_official_state_dict(official_layout(NGF, C, SEM, HID, n_res=2))


@needs_reference_file(CITYSCAPES_KEYS)
def test_official_cityscapes_key_list_maps_exactly():
    official = read_key_file(CITYSCAPES_KEYS)
    assert official == official_layout(64, 35, 36)  # the synthetic layout used below is the released one
    sd = {k: torch.empty(s, device="meta") for k, s in official.items()}
    ours, report = convert_official_semantic(sd)
    # The released Cityscapes model: 35 label channels + instance edge, trained with SPADE's 'more' layout.
    assert report.arguments == dict(num_classes=35, semantic_nc=36, ngf=64, spade_hidden=128, num_res_blocks=9,
                                    local_combine="conv", use_local=True, use_weight_map=True, class_pool="image",
                                    num_upsampling_layers="more", local_groups=None)
    assert report.dataset == "cityscapes" and "detected from the shapes" in report.detected
    assert report.unused == ["fc.bias", "fc.weight"]
    with torch.device("meta"):
        model = LGGANGenerator(35, 36, ngf=64, num_upsampling_layers="more")
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.items()} == expected
    assert len(ours) == len(official) - 2 - 2 * 35 + 2  # fc dropped, 35 per-class convs stacked into 2 tensors
    back = export_official_semantic(ours)  # the unused fc comes back (zeros) so the release loads it strictly
    assert {k: tuple(v.shape) for k, v in back.items()} == official


def test_converted_weights_reproduce_the_official_forward(small_official):
    ours, report = convert_official_semantic(small_official)
    assert report.arguments["num_res_blocks"] == 2 and report.arguments["ngf"] == NGF
    G = LGGANGenerator(**report.arguments, tile_size=8).double()
    G.load_state_dict(ours)  # strict
    G.eval()
    S = semantic_map(2, C, 32, 64)
    out = G(S)
    ref = official_forward(small_official, S, C)
    for name in ("image", "image_global", "image_local", "weight_local"):
        torch.testing.assert_close(getattr(out, name), ref[name], rtol=1e-9, atol=1e-9, msg=name)
    torch.testing.assert_close(out.class_images.dense(), ref["class_images"], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out.class_logits, ref["logits"], rtol=1e-9, atol=1e-9)
    assert (ref["image"] - ref["image_global"]).abs().max() > 1e-3  # the local branch matters in this check


def test_export_round_trip(small_official):
    ours, report = convert_official_semantic(small_official)
    back = export_official_semantic(ours, {k: small_official[k] for k in report.unused})
    assert set(back) == set(small_official)
    for k, v in back.items():
        assert torch.equal(v, small_official[k]), k
    zero_fc = export_official_semantic(ours)  # without the kept tensors: the never-read fc is zeros
    assert zero_fc["fc.weight"].shape == small_official["fc.weight"].shape and not zero_fc["fc.weight"].any()
    with pytest.raises(ValueError, match="fc.weight"):
        export_official_semantic(ours, {"fc.weight": torch.zeros(2, 2)})
    no_fusion = {k: v for k, v in ours.items() if not k.startswith("local.combine.")}
    with pytest.raises(ValueError, match="deconv9.weight"):
        export_official_semantic(no_fusion)
    w, b, used = stack_indexed(small_official)
    assert w.shape == (C, 3, NGF, 7, 7) and len(used) == 2 * C
    torch.testing.assert_close(w[3], small_official["deconv5_3.weight"])
    one_based = unstack_indexed(w, b, "deconv5_{}", first_index=1)  # the cross-view layout numbers classes from 1
    assert torch.equal(stack_indexed(one_based, first_index=1)[0], w)
    with pytest.raises(ValueError, match="indices"):
        stack_indexed(one_based, first_index=0)


def test_plain_weight_for_spectral_norm_layer_is_accepted(small_official):
    # A trained layer's u, v are its leading singular vectors; a plain saved weight is then W / sigma_max.
    official = dict(small_official)
    W = official["up_1.conv_0.weight_orig"]
    U, sv, Vh = torch.linalg.svd(W.flatten(1), full_matrices=False)
    official["up_1.conv_0.weight_u"], official["up_1.conv_0.weight_v"] = U[:, 0], Vh[0]
    sd = {k: v for k, v in official.items() if not k.startswith("up_1.conv_0.weight_")}
    sd["up_1.conv_0.weight"] = W / sv[0]
    ours, report = convert_official_semantic(sd)
    assert any("up_1.conv_0.weight" in n for n in report.notes)
    G = LGGANGenerator(**report.arguments, tile_size=8).double()
    G.load_state_dict(ours)
    S = semantic_map(1, C, 32, 64)
    torch.testing.assert_close(G.eval()(S).image_global, official_forward(official, S, C)["image_global"],
                               rtol=1e-6, atol=1e-6)


def test_spectral_norm_saved_without_weight_v(small_official):
    # PyTorch < 1.1 saved weight_orig, weight_u and the normalised weight (no weight_v); eval mode must give exactly
    # that saved weight.  With weight_orig and weight_u only, v follows from u (one power-iteration half step).
    base = "up_1.conv_0.weight"
    W = small_official[base + "_orig"]
    u, v = small_official[base + "_u"], small_official[base + "_v"]
    saved = W / (u @ W.flatten(1) @ v)
    old = {k: x for k, x in small_official.items() if k != base + "_v"}
    old[base] = saved
    ours, report = convert_official_semantic(old)
    assert any("PyTorch < 1.1" in n for n in report.notes)
    G = LGGANGenerator(**report.arguments, tile_size=8).double()
    G.load_state_dict(ours)
    G.eval()
    S = semantic_map(1, C, 32, 64)
    torch.testing.assert_close(G(S).image, official_forward(small_official, S, C)["image"], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(G.global_generator.up_1.conv_0.weight, saved, rtol=1e-12, atol=1e-12)
    assert torch.equal(ours["global_generator.up_1.conv_0.weight_u"], u)  # u as stored

    no_v = {k: x for k, x in small_official.items() if k != base + "_v"}
    ours, report = convert_official_semantic(no_v)
    assert any("normalise(W^T u)" in n for n in report.notes)
    torch.testing.assert_close(ours["global_generator.up_1.conv_0.weight_v"], F.normalize(W.flatten(1).t() @ u, dim=0))


@pytest.mark.parametrize("layout", ["normal", "more", "most"])
def test_layouts_convert_and_reproduce_the_official_forward(layout):
    sd = random_official_state_dict(official_layout(NGF, C, SEM, HID, n_res=1, most=layout == "most"), seed=5)
    # The layout is visible in the weights only for 'most' (up_4); the others are told.
    ours, report = convert_official_semantic(sd, num_upsampling_layers=None if layout == "most" else layout)
    assert report.arguments["num_upsampling_layers"] == layout and report.dataset is None
    G = LGGANGenerator(**report.arguments, tile_size=8).double().eval()
    G.load_state_dict(ours)
    S = semantic_map(1, C, 128, 128)
    ref = official_forward(sd, S, C, layout=layout)
    torch.testing.assert_close(G(S).image, ref["image"], rtol=1e-9, atol=1e-9)
    if layout == "most":
        assert G.global_generator.conv_img.weight.shape == (3, NGF // 2, 3, 3)
        with pytest.raises(ValueError, match="up_4"):
            convert_official_semantic(sd, num_upsampling_layers="more")
    else:
        with pytest.raises(ValueError, match="no up_4"):
            convert_official_semantic(sd, num_upsampling_layers="most")
    with pytest.raises(ValueError, match="multiples of"):
        G(semantic_map(1, C, {"normal": 48, "more": 96, "most": 192}[layout], 128))  # 1.5 x the layout's step


def test_grouped_checkpoint_with_an_unscored_union_group():
    # Like ADE20K's release at a small size: 9 label channels, 4 groups (3 + the union of channels 3..8), fc2 scores 3.
    channels, groups = 9, 4
    sd = random_official_state_dict(official_layout(NGF, groups, channels, HID, n_res=1, scored=groups - 1), seed=6)
    ours, report = convert_official_semantic(sd)
    a = report.arguments
    assert (a["num_classes"], a["semantic_nc"], a["local_groups"], a["num_upsampling_layers"]) == (9, 9, 4, "normal")
    assert "4 groups (3 scored + the union of channels 3..8)" in report.detected
    G = LGGANGenerator(**a, tile_size=8).double().eval()
    G.load_state_dict(ours)
    S = semantic_map(2, channels, 32, 64)[:, :channels]  # no instance channel
    out, ref = G(S), official_forward(sd, S, channels, groups=groups)
    for name in ("image", "image_global", "image_local", "weight_local"):
        torch.testing.assert_close(getattr(out, name), ref[name], rtol=1e-9, atol=1e-9, msg=name)
    torch.testing.assert_close(out.class_images.dense(), ref["class_images"], rtol=1e-9, atol=1e-9)
    assert out.class_logits.shape == (2, 3, 3)
    torch.testing.assert_close(out.class_logits, ref["logits"], rtol=1e-9, atol=1e-9)
    assert (S[:, 3:].sum(1) > 0).any()  # the union group is exercised


def test_dataset_override_and_its_errors(small_official):
    with pytest.raises(ValueError, match="--dataset ade20k has 151 label channels"):
        convert_official_semantic(small_official, dataset="ade20k")
    with pytest.raises(ValueError, match="--dataset 'mars'"):
        convert_official_semantic(small_official, dataset="mars")
    sd = random_official_state_dict(official_layout(4, 35, 36, 8, n_res=1), seed=1)
    _, report = convert_official_semantic(sd, dataset="cityscapes")
    assert report.dataset == "cityscapes" and report.arguments["num_upsampling_layers"] == "more"
    assert "(given)" in report.detected
    _, report = convert_official_semantic(sd, num_upsampling_layers="normal")  # the layout is overridden alone
    assert report.dataset == "cityscapes" and report.arguments["num_upsampling_layers"] == "normal"
    with pytest.raises(ValueError, match="cross-view"):
        convert_official(random_official_state_dict(official_crossview_layout(4, 7, n_res=1)), dataset="cityscapes")


@pytest.mark.parametrize("edit,message", [
    (lambda sd: sd.pop("conv_img.weight"), "missing keys.*conv_img.weight"),
    (lambda sd: sd.pop("G_middle_1.conv_0.weight_u"), "missing keys.*G_middle_1.conv_0.weight_u"),
    (lambda sd: sd.__setitem__("foo.weight", torch.zeros(1)), "unexpected keys: foo.weight"),
    (lambda sd: sd.__setitem__("up_1.conv_0.bias", torch.zeros(3)), r"shape mismatches: global_generator.up_1.conv_0.bias"),
    (lambda sd: sd.pop("deconv5_2.weight"), "deconv5"),
])
def test_wrong_state_dicts_are_rejected_clearly(small_official, edit, message):
    sd = dict(small_official)
    edit(sd)
    with pytest.raises(ValueError, match=message):
        convert_official_semantic(sd, source="bad.pth")
    with pytest.raises(ValueError, match="not an official LGGAN"):
        convert_official_semantic({"encoder.weight": torch.zeros(1)})


def test_convert_file_writes_safetensors_and_arguments(tmp_path, small_official):
    wrapped = {"state_dict": {f"module.{k}": v.float() for k, v in small_official.items()}, "epoch": 3}
    src = tmp_path / "latest_net_G.pth"
    torch.save(wrapped, src)
    out = tmp_path / "out" / "lggan.safetensors"
    report = convert_official_file(src, out)
    # no temp files left; the unused fc is kept beside the weights for export-official
    assert sorted(p.name for p in out.parent.iterdir()) == ["lggan.json", "lggan.safetensors", "lggan.unused.safetensors"]
    info = json.loads((out.parent / "lggan.json").read_text())
    assert info["arguments"] == report.arguments and info["arguments"]["num_classes"] == C
    assert info["unused"] == ["fc.bias", "fc.weight"]
    assert dict(report) == report.to_dict() and dict(report)["arguments"]["ngf"] == NGF
    tensors = load_file(str(out))
    expected, _ = convert_official_semantic({k: v.float() for k, v in small_official.items()})
    assert set(tensors) == set(expected) and all(torch.equal(tensors[k], expected[k]) for k in expected)
    G = load_converted(out)
    assert isinstance(G, LGGANGenerator)
    assert torch.equal(G.state_dict()["local.class_conv.weight"], expected["local.class_conv.weight"])


def test_convert_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        convert_official_file(tmp_path / "missing.pth", tmp_path / "o.safetensors")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        convert_official_file(garbage, tmp_path / "o.safetensors")
    other = tmp_path / "other.pth"
    torch.save({"net": {"layer.weight": torch.zeros(2)}}, other)
    with pytest.raises(ValueError, match="other.pth.*not an official LGGAN"):
        convert_official_file(other, tmp_path / "o.safetensors")
    assert not (tmp_path / "o.safetensors").exists()


def test_convert_file_output_loads_with_load_generator(tmp_path, small_official):
    official = {k: v.float() for k, v in small_official.items()}
    torch.save(official, tmp_path / "sem.pth")
    out = tmp_path / "sem.safetensors"
    convert_official_file(tmp_path / "sem.pth", out)
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["task"] == "semantic" and info["model"] == "LGGANGenerator"
    cfg = info["config"]
    assert cfg["model"]["task"] == "semantic" and cfg["data"]["num_classes"] == C and cfg["data"]["use_instance"]
    assert {k: cfg["model"][k] for k in ("ngf", "spade_hidden", "num_res_blocks", "local_combine",
                                         "num_upsampling_layers", "local_groups")} == dict(
        ngf=NGF, spade_hidden=HID, num_res_blocks=2, local_combine="conv", num_upsampling_layers="normal",
        local_groups=None)
    synth = load_generator(out, device="cpu")
    assert isinstance(synth.generator, LGGANGenerator) and synth.task_name == "semantic"
    S = semantic_map(1, C, 32, 64).float()
    ref = official_forward(official, S, C)
    with torch.no_grad():
        got = synth.generator(S)
    torch.testing.assert_close(got.image, ref["image"], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------- cross-view


def official_crossview_layout(ngf, K, n_res=9, in_nc=6):
    """Names and shapes of the official cross-view ResnetGenerator_local state dict (K per-class convs)."""
    nf, s = ngf, {}

    def conv(p, cout, cin, k):
        s.update({f"{p}.weight": (cout, cin, k, k), f"{p}.bias": (cout,)})

    def deconv(p, cin, cout):
        s.update({f"{p}.weight": (cin, cout, 3, 3), f"{p}.bias": (cout,)})

    conv("conv1", nf, in_nc, 7)
    conv("conv2", 2 * nf, nf, 3)
    conv("conv3", 4 * nf, 2 * nf, 3)
    for k in range(1, n_res + 1):
        conv(f"resnet_blocks{k}.conv1", 4 * nf, 4 * nf, 3)
        conv(f"resnet_blocks{k}.conv2", 4 * nf, 4 * nf, 3)
    deconv("deconv3_local", 4 * nf, 2 * nf)
    deconv("deconv4_local", 2 * nf, nf)
    for i in range(1, K + 1):
        conv(f"deconv5_{i}", 3, nf, 7)
    deconv("deconv3_global", 4 * nf, 2 * nf)
    deconv("deconv4_global", 2 * nf, nf)
    conv("deconv5_global", 3, nf, 7)
    deconv("deconv3_attention", 4 * nf, 2 * nf)
    deconv("deconv4_attention", 2 * nf, nf)
    conv("deconv5_attention", 2, nf, 1)
    return s


def official_crossview_forward(sd, x, M):
    """The official cross-view generator, written directly on the official names with F.conv2d (classes 1..C)."""
    IN, relu, tanh = F.instance_norm, F.relu, torch.tanh

    def c(name, h, **kw):
        return F.conv2d(h, sd[f"{name}.weight"], sd[f"{name}.bias"], **kw)

    def up(name, h):
        return relu(IN(F.conv_transpose2d(h, sd[f"{name}.weight"], sd[f"{name}.bias"], stride=2, padding=1,
                                          output_padding=1)))

    def pad(h, r):
        return F.pad(h, (r, r, r, r), mode="reflect")

    h = relu(IN(c("conv1", pad(x, 3))))
    h = relu(IN(c("conv2", h, stride=2, padding=1)))
    h = relu(IN(c("conv3", h, stride=2, padding=1)))
    k = 1
    while f"resnet_blocks{k}.conv1.weight" in sd:
        t = relu(IN(c(f"resnet_blocks{k}.conv1", pad(h, 1))))
        h = h + IN(c(f"resnet_blocks{k}.conv2", pad(t, 1)))
        k += 1
    I_G = tanh(c("deconv5_global", pad(up("deconv4_global", up("deconv3_global", h)), 3)))
    f = up("deconv4_local", up("deconv3_local", h))
    results = [tanh(c(f"deconv5_{i + 1}", pad(f * M[:, i : i + 1], 3))) for i in range(M.shape[1])]
    I_L = sum(results)
    att = torch.softmax(c("deconv5_attention", up("deconv4_attention", up("deconv3_attention", h))), 1)
    I_C = I_G * att[:, 1:2] + I_L * att[:, 0:1]
    return dict(image=I_C, image_global=I_G, image_local=I_L, class_images=torch.stack(results, 1),
                weight_local=att[:, 0:1], weight_global=att[:, 1:2])


CV_NGF, CV_C = 8, 6
CLASS_W = "local.class_conv.weight"


@pytest.fixture(scope="module")
def small_crossview():
    return random_official_state_dict(official_crossview_layout(CV_NGF, CV_C + 1, n_res=2), seed=3)


def crossview_inputs(B, H, W, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, CV_C, (B, H // 4, W // 4), generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
    label[:, :, : W // 3] = torch.where(label[:, :, : W // 3] < 2, 255, 1)  # void and fewer classes on the left
    x = torch.rand(B, 6, H, W, generator=g, dtype=dtype) * 2 - 1
    return x, label, class_masks(label, CV_C).to(dtype)


@needs_reference_file(CROSSVIEW_KEYS)
def test_official_crossview_key_list_maps_exactly():
    official = read_key_file(CROSSVIEW_KEYS)
    assert official == official_crossview_layout(64, 7)  # the synthetic layout used below is the released one
    sd = {k: torch.empty(s, device="meta") for k, s in official.items()}
    ours, report = convert_official(sd)
    assert report.task == "crossview"
    assert report.arguments == dict(in_channels=6, num_classes=6, ngf=64, num_res_blocks=9, use_local=True,
                                    use_weight_map=True, local_combine="sum", tile_size=16, use_classifier=False,
                                    class_pool="image")
    assert report.unused == ["deconv5_7.bias", "deconv5_7.weight"]
    assert any("deconv5_7" in n for n in report.notes)
    with torch.device("meta"):
        model = CrossViewGenerator(in_channels=6, num_classes=6, ngf=64)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(ours) == len(official) - 2 * 7 + 2  # deconv5_1..6 stacked into 2 tensors, deconv5_7 dropped
    back = export_official_crossview(ours)
    assert {k: tuple(v.shape) for k, v in back.items()} == official
    assert set(export_official_crossview(ours, spare_class_conv=False)) == set(official) - set(report.unused)


@needs_reference_file(CITYSCAPES_KEYS)
@needs_reference_file(CROSSVIEW_KEYS)
def test_name_tables_are_bijections_on_the_release_names():
    with torch.device("meta"):
        released = [(SEMANTIC_NAMES, CITYSCAPES_KEYS, LGGANGenerator(35, 36, ngf=64, num_upsampling_layers="more")),
                    (CROSSVIEW_NAMES, CROSSVIEW_KEYS, CrossViewGenerator(in_channels=6, num_classes=6, ngf=64))]
        options = [(SEMANTIC_NAMES, LGGANGenerator(5, 6, ngf=8, spade_hidden=16, num_upsampling_layers="most")),
                   (CROSSVIEW_NAMES, CrossViewGenerator(6, 4, ngf=8, local_combine="conv", use_classifier=True))]
    for table, key_file, model in released:
        official = list(read_key_file(key_file))
        stacked = [k for k in official if re.fullmatch(table.stacked.pattern, k)]
        rows = sorted(int(re.fullmatch(table.stacked.pattern, k)[1]) for k in stacked if k.endswith(".weight"))
        assert rows == list(range(table.stacked.first_index, table.stacked.first_index + len(rows)))
        named = [k for k in official if k not in stacked and not table.is_unused(k)]
        ours = [table.ours_name(k) for k in named]
        assert len(set(ours)) == len(named) and None not in ours  # one of ours each, never the same one twice
        assert [table.official_name(k) for k in ours] == named  # and back to itself
        assert set(ours) == set(model.state_dict()) - {table.stacked.weight, table.stacked.bias}  # every tensor
    assert SEMANTIC_NAMES.ours_name("resnet_blocks9.conv2.bias") == "local.res_blocks.8.conv2.bias"
    assert CROSSVIEW_NAMES.official_name("encoder.res_blocks.0.conv1.weight") == "resnet_blocks1.conv1.weight"
    assert [k for k in read_key_file(CITYSCAPES_KEYS) if SEMANTIC_NAMES.is_unused(k)] == ["fc.weight", "fc.bias"]
    for table, model in options:  # what the releases do not build (up_4, deconv9 and fc2 in the cross-view G) too
        for key in set(model.state_dict()) - {table.stacked.weight, table.stacked.bias}:
            assert table.ours_name(table.official_name(key)) == key, key


def test_converted_crossview_weights_reproduce_the_official_forward(small_crossview):
    ours, report = convert_official_crossview(small_crossview)
    assert report.arguments["ngf"] == CV_NGF and report.arguments["num_res_blocks"] == 2
    G = CrossViewGenerator(**{**report.arguments, "tile_size": 8}).double()
    G.load_state_dict(ours)  # strict
    x, _, M = crossview_inputs(2, 36, 52)  # not multiples of the tile size
    out = G(x, M)
    ref = official_crossview_forward(small_crossview, x, M)
    for name in ("image", "image_global", "image_local", "weight_local", "weight_global"):
        torch.testing.assert_close(getattr(out, name), ref[name], rtol=1e-9, atol=1e-9, msg=name)
    torch.testing.assert_close(out.class_images.dense(), ref["class_images"], rtol=1e-9, atol=1e-9)
    assert (ref["image"] - ref["image_global"]).abs().max() > 1e-3  # the local branch matters in this check
    assert (M.sum(1) == 0).any()  # void pixels are part of the check


def test_crossview_export_round_trip_and_num_classes(small_crossview):
    ours, _ = convert_official_crossview(small_crossview)
    back = export_official_crossview(ours)
    assert set(back) == set(small_crossview)
    for k, v in back.items():
        if k.startswith("deconv5_7."):
            assert not v.any()  # the spare conv is written as zeros
        else:
            assert torch.equal(v, small_crossview[k]), k
    fewer, report = convert_official_crossview(small_crossview, num_classes=4)
    assert report.arguments["num_classes"] == 4 and fewer[CLASS_W].shape[0] == 4
    assert report.unused == sorted(f"deconv5_{i}.{p}" for i in (5, 6, 7) for p in ("weight", "bias"))
    torch.testing.assert_close(fewer[CLASS_W][3], small_crossview["deconv5_4.weight"])
    with pytest.raises(ValueError, match="num_classes=8"):
        convert_official_crossview(small_crossview, num_classes=8)
    # A global-only checkpoint (no G_l, no G_w): I^C = I^G.
    glob = {k: v for k, v in small_crossview.items() if not k.startswith(("deconv3_l", "deconv4_l", "deconv5_",
                                                                          "deconv3_a", "deconv4_a"))}
    glob["deconv5_global.weight"] = small_crossview["deconv5_global.weight"]
    glob["deconv5_global.bias"] = small_crossview["deconv5_global.bias"]
    only_global, report = convert_official(glob)
    assert report.arguments["use_local"] is False and report.arguments["num_classes"] == 6
    G = CrossViewGenerator(**report.arguments).double()
    G.load_state_dict(only_global)
    x, _, M = crossview_inputs(1, 16, 16)
    torch.testing.assert_close(G(x, M).image, official_crossview_forward(small_crossview, x, M)["image_global"])


@pytest.mark.parametrize("edit,message", [
    (lambda sd: sd.pop("deconv4_global.bias"), "missing keys: global_generator.deconv_2.bias"),
    (lambda sd: sd.pop("deconv5_3.weight"), "deconv5"),
    (lambda sd: sd.pop("deconv5_3.bias"), "deconv5.*biases"),
    (lambda sd: sd.__setitem__("resnet_blocks7.conv1.weight", torch.zeros(1)), "unexpected keys"),
    (lambda sd: sd.__setitem__("deconv5_global.bias", torch.zeros(4)), "shape mismatches: global_generator.to_image"),
])
def test_wrong_crossview_state_dicts_are_rejected_clearly(small_crossview, edit, message):
    sd = dict(small_crossview)
    edit(sd)
    with pytest.raises(ValueError, match=f"bad.pth.*{message}"):
        convert_official(sd, source="bad.pth")


def test_convert_crossview_file_and_load_generator(tmp_path, small_crossview):
    official = {k: v.float() for k, v in small_crossview.items()}
    src = tmp_path / "latest_net_G.pth"
    torch.save({"netG": official}, src)
    out = tmp_path / "cv" / "dayton.safetensors"
    report = convert_official_file(src, out)
    assert report.task == "crossview"
    assert sorted(p.name for p in out.parent.iterdir()) == ["dayton.json", "dayton.safetensors",
                                                            "dayton.unused.safetensors"]
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["task"] == "crossview" and info["model"] == "CrossViewGenerator"
    assert info["unused"] == ["deconv5_7.bias", "deconv5_7.weight"] and info["arguments"] == report.arguments
    cfg = info["config"]
    assert cfg["preset"] == "dayton-a2g" and cfg["model"]["task"] == "crossview"
    assert (cfg["data"]["num_classes"], cfg["model"]["ngf"], cfg["model"]["num_res_blocks"]) == (CV_C, CV_NGF, 2)
    assert isinstance(load_converted(out), CrossViewGenerator)

    synth = load_generator(out, device="cpu", amp="off")  # fp32 like the reference (not bf16 on AMX CPUs)
    assert isinstance(synth.generator, CrossViewGenerator) and synth.task_name == "crossview"
    x, label, M = crossview_inputs(2, 32, 32, dtype=torch.float32)
    ref = official_crossview_forward(official, x, M)
    got = synth(label, aerial=x, native=True)  # at 32x32, not the preset's 256x256; masks from the label (255 void)
    for name in ("image", "image_global", "image_local"):
        torch.testing.assert_close(getattr(got, name), ref[name], rtol=1e-4, atol=1e-5, msg=name)


def test_convert_official_command_line(tmp_path, small_official, capsys):
    from lggan.cli import main

    torch.save({k: v.float() for k, v in small_official.items()}, tmp_path / "latest_net_G.pth")
    out = tmp_path / "converted.safetensors"
    assert main(["convert-official", str(tmp_path / "latest_net_G.pth"), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fc.weight" in printed and out.is_file() and out.with_suffix(".json").is_file()
    assert main(["convert-official", str(tmp_path / "nope.pth"), str(tmp_path / "x.safetensors")]) == 2
    assert "nope.pth" in capsys.readouterr().err
    assert main(["convert-official", str(tmp_path / "latest_net_G.pth"), str(tmp_path / "m.safetensors"),
                 "--num-upsampling-layers", "more"]) == 0
    assert "layout 'more'" in capsys.readouterr().out
    assert json.loads((tmp_path / "m.json").read_text())["config"]["model"]["num_upsampling_layers"] == "more"
    assert main(["convert-official", str(tmp_path / "latest_net_G.pth"), str(tmp_path / "a.safetensors"),
                 "--dataset", "ade20k"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "latest_net_G.pth" in err and "--dataset ade20k" in err

    # export-official: the release's file back, exactly; errors name the argument.
    assert main(["export-official", str(out), str(tmp_path / "back.pth")]) == 0
    assert "semantic layout" in capsys.readouterr().out
    back, original = torch.load(tmp_path / "back.pth", weights_only=True), torch.load(tmp_path / "latest_net_G.pth")
    assert set(back) == set(original) and all(torch.equal(back[k], original[k]) for k in original)
    assert main(["export-official", str(tmp_path / "none.safetensors"), str(tmp_path / "b.pth")]) == 2
    assert "none.safetensors" in capsys.readouterr().err
    assert main(["export-official", str(tmp_path), str(tmp_path / "b.pth")]) == 2  # a folder without checkpoints
    assert "generator.safetensors" in capsys.readouterr().err


def test_export_official_from_a_checkpoint_folder_and_crossview_spare_conv(tmp_path, small_official, small_crossview):
    from lggan.cli import main

    ours, _ = convert_official_semantic(small_official)
    ckpt = tmp_path / "run" / "checkpoints" / "iter_00000010"
    ckpt.mkdir(parents=True)
    save_file({k: v.float().contiguous() for k, v in ours.items()}, str(ckpt / "generator.safetensors"))
    D = MultiscaleDiscriminator(SEM + 3, ndf=4)
    save_file({f"D_s.{k}": v.contiguous() for k, v in D.state_dict().items()}, str(ckpt / "discriminator.safetensors"))
    assert main(["export-official", str(tmp_path / "run"), str(tmp_path / "g.pth")]) == 0
    g = torch.load(tmp_path / "g.pth", weights_only=True)
    assert torch.equal(g["deconv5_2.weight"], small_official["deconv5_2.weight"].float()) and not g["fc.weight"].any()
    assert main(["export-official", str(ckpt), str(tmp_path / "d.pth"), "--part", "discriminator"]) == 0
    d = torch.load(tmp_path / "d.pth", weights_only=True)
    assert torch.equal(d["discriminator_1.model2.0.0.weight_orig"], D.scales[1].layers[2][0].weight_orig)
    assert torch.equal(d["discriminator_0.model4.0.bias"], D.scales[0].layers[4][0].bias)
    back, report = convert_official(d)
    assert report.part == "discriminator" and all(torch.equal(back[k], v) for k, v in D.state_dict().items())

    # Cross-view: the release's spare deconv5_7 is kept by the conversion and written back as it was.
    torch.save({k: v.float() for k, v in small_crossview.items()}, tmp_path / "cv.pth")
    convert_official_file(tmp_path / "cv.pth", tmp_path / "cv.safetensors")
    export_official_file(tmp_path / "cv.safetensors", tmp_path / "cv_back.pth")
    cv = torch.load(tmp_path / "cv_back.pth", weights_only=True)
    assert set(cv) == set(small_crossview)
    assert all(torch.equal(cv[k], v.float()) for k, v in small_crossview.items())
