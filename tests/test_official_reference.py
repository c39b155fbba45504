"""Converted official checkpoints against an independent re-implementation of the release's semantic forward pass.

The reference below is written from ../shared/reference/official-release-facts.md (§2, §3, §7) in plain
torch.nn.functional over the official state-dict names; it uses none of lggan's modules.  Random official-format
state dicts (random weights, spectral-norm u/v vectors that are not converged singular vectors, batch-norm running
statistics gathered by a calibration pass of the reference itself) are converted with `lggan convert-official` and
our generator in eval mode must reproduce the reference: Cityscapes ('more' layout, 35 label channels + instance
edges) and ADE20K (52 local groups over 151 channels, 'normal').
"""

import json
import re
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lggan.cli import main
from lggan.convert import convert_official, convert_official_file, export_official_file, load_converted
from lggan.data.common import make_semantic_input
from lggan.data.synthetic import layout_scene
from lggan.generate import load_generator
from lggan.models import LGGANGenerator, MultiscaleDiscriminator

# The release's key layout and its key-list reader are shared with the converter's tests; the forward pass below is
# this file's own.
from reference_files import REFERENCE, needs_reference_file
from test_convert import official_layout, read_key_file

CITYSCAPES_KEYS = REFERENCE / "official-cityscapes-generator-keys.txt"

# The two releases (facts §1a, §3): label channels, extra instance-edge channels, local groups, scored groups, layout,
# and the aspect ratio the release's start grid uses (sh = round(sw / aspect_ratio)).
CITYSCAPES = dict(name="cityscapes", classes=35, edges=1, groups=35, scored=35, layout="more", aspect=2.0)
ADE20K = dict(name="ade20k", classes=151, edges=0, groups=52, scored=51, layout="normal", aspect=1.0)
LAYOUT_UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}


# ----------------------------------------------------------------------------------------------- official state dicts

def official_discriminator_layout(in_channels, ndf=64, n_layers=4, num_d=2):
    """Names and shapes of SPADE's MultiscaleDiscriminator with spectralinstance middle layers (facts §3)."""
    s = {}
    for d in range(num_d):
        p = f"discriminator_{d}"
        s.update({f"{p}.model0.0.weight": (ndf, in_channels, 4, 4), f"{p}.model0.0.bias": (ndf,)})
        nf = ndf
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(2 * nf, 512)
            s.update({f"{p}.model{n}.0.0.weight_orig": (nf, nf_prev, 4, 4), f"{p}.model{n}.0.0.weight_u": (nf,),
                      f"{p}.model{n}.0.0.weight_v": (nf_prev * 16,)})
        s.update({f"{p}.model{n_layers}.0.weight": (1, nf, 4, 4), f"{p}.model{n_layers}.0.bias": (1,)})
    return s


def random_official(layout, seed=0, dtype=torch.float64, power_steps=2):
    """Random weights for a layout.  Spectral-norm u, v: a few power-iteration steps from random vectors (as a trained
    checkpoint stores them: close to, not exactly, the leading singular vectors).  BN statistics: placeholders until
    `calibrate` fills them."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in layout.items():
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.tensor(123456)
        elif name.endswith("running_var"):
            sd[name] = torch.ones(shape, dtype=dtype)
        elif name.endswith("running_mean"):
            sd[name] = torch.zeros(shape, dtype=dtype)
        elif name.endswith(("weight_u", "weight_v")):
            continue  # below, from weight_orig
        elif name.endswith("bias"):
            sd[name] = 0.1 * torch.randn(shape, generator=g, dtype=dtype)
        else:
            transposed = re.match(r"deconv[34]_", name) is not None
            fan_in = shape[0] * shape[2] * shape[3] / 4 if transposed else int(np.prod(shape[1:]))
            sd[name] = torch.randn(shape, generator=g, dtype=dtype) / fan_in**0.5
    for name in [n for n in layout if n.endswith("weight_orig")]:
        base = name[: -len("_orig")]
        W = sd[name].flatten(1)
        u = F.normalize(torch.randn(W.shape[0], generator=g, dtype=dtype), dim=0)
        for _ in range(power_steps):
            v = F.normalize(W.t() @ u, dim=0)
            u = F.normalize(W @ v, dim=0)
        sd[base + "_u"], sd[base + "_v"] = u, v
    return sd


# ----------------------------------------------------------------------------------------------- reference forward

class Reference:
    """The release's semantic LGGANGenerator in eval mode, written from the facts sheet over the official keys.

    calibrate=True runs SPADE's batch norms on batch statistics instead and stores them (mean, unbiased variance) as
    the running statistics: "trained" statistics that keep every activation in a realistic range.
    """

    def __init__(self, sd, release, calibrate=False):
        self.sd, self.r, self.calibrate = sd, release, calibrate

    def w(self, name):
        return self.sd[name]

    def conv(self, name, x, **kw):
        return F.conv2d(x, self.w(f"{name}.weight"), self.w(f"{name}.bias"), **kw)

    def sn(self, name):
        # Eval-mode spectral norm: W / (u^T W v) with the stored u, v; no power iteration (facts §7).
        W = self.w(f"{name}.weight_orig")
        sigma = self.w(f"{name}.weight_u") @ W.flatten(1) @ self.w(f"{name}.weight_v")
        return W / sigma

    def spade(self, p, x, seg):
        # Parameter-free (Sync)BatchNorm, then x * (1 + gamma) + beta from a shared 3x3 conv (ReLU) on the seg map
        # nearest-resized to x (facts §2).
        mean_key, var_key = f"{p}.param_free_norm.running_mean", f"{p}.param_free_norm.running_var"
        if self.calibrate:
            self.sd[mean_key] = x.mean((0, 2, 3)).detach()
            self.sd[var_key] = x.var((0, 2, 3), unbiased=True).detach()
        x = F.batch_norm(x, self.sd[mean_key], self.sd[var_key], training=False, eps=1e-5)
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = F.relu(self.conv(f"{p}.mlp_shared.0", seg, padding=1))
        return x * (1 + self.conv(f"{p}.mlp_gamma", actv, padding=1)) + self.conv(f"{p}.mlp_beta", actv, padding=1)

    def resblock(self, p, x, seg):
        # (norm -> leaky ReLU 0.2 -> 3x3 conv) twice; learned 1x1 shortcut without bias when fin != fout.
        if f"{p}.conv_s.weight_orig" in self.sd:
            x_s = F.conv2d(self.spade(f"{p}.norm_s", x, seg), self.sn(f"{p}.conv_s"))
        else:
            x_s = x
        dx = F.conv2d(F.leaky_relu(self.spade(f"{p}.norm_0", x, seg), 0.2), self.sn(f"{p}.conv_0"),
                      self.w(f"{p}.conv_0.bias"), padding=1)
        dx = F.conv2d(F.leaky_relu(self.spade(f"{p}.norm_1", dx, seg), 0.2), self.sn(f"{p}.conv_1"),
                      self.w(f"{p}.conv_1.bias"), padding=1)
        return x_s + dx

    def up_in_relu(self, name, x):
        y = F.conv_transpose2d(x, self.w(f"{name}.weight"), self.w(f"{name}.bias"), stride=2, padding=1,
                               output_padding=1)
        return F.relu(F.instance_norm(y))

    def masks(self, S):
        """The local branch's masks: Cityscapes one per label channel (instance edge excluded); ADE20K channels
        0..50 one each and group 51 = the sum of channels 51..150 (facts §3)."""
        r = self.r
        single = [S[:, g : g + 1] for g in range(r["groups"] - 1)]
        last = S[:, r["groups"] - 1 : r["classes"]].sum(1, keepdim=True)
        return single + [last]

    def __call__(self, S):
        IN, relu, up = F.instance_norm, F.relu, lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
        H, W = S.shape[2:]
        # Encoder: reflect-pad 3 + conv1 7x7, then stride-2 3x3 convs with zero padding 1; IN (no affine) + ReLU.
        x = relu(IN(self.conv("conv1", F.pad(S, (3, 3, 3, 3), mode="reflect"))))
        x = relu(IN(self.conv("conv2", x, stride=2, padding=1)))
        x_encode = relu(IN(self.conv("conv3", x, stride=2, padding=1)))
        x = relu(IN(self.conv("conv4", x_encode, stride=2, padding=1)))
        x = relu(IN(self.conv("conv5", x, stride=2, padding=1)))
        # Start grid (SPADE's compute_latent_vector_size): sw = W / 2^n, sh = round(sw / aspect_ratio).
        sw = W // 2 ** LAYOUT_UPSAMPLINGS[self.r["layout"]]
        sh = round(sw / self.r["aspect"])
        x = F.interpolate(x, size=(sh, sw))  # default mode: nearest
        x = up(self.resblock("head_0", x, S))
        x = self.resblock("G_middle_0", x, S)
        if self.r["layout"] in ("more", "most"):
            x = up(x)
        x = self.resblock("G_middle_1", x, S)
        for name in ("up_0", "up_1", "up_2", "up_3"):
            x = self.resblock(name, up(x), S)
        result_global = torch.tanh(self.conv("conv_img", F.leaky_relu(x, 0.2), padding=1))

        h = x_encode
        k = 1
        while f"resnet_blocks{k}.conv1.weight" in self.sd:
            t = relu(IN(self.conv(f"resnet_blocks{k}.conv1", F.pad(h, (1, 1, 1, 1), mode="reflect"))))
            h = h + IN(self.conv(f"resnet_blocks{k}.conv2", F.pad(t, (1, 1, 1, 1), mode="reflect")))
            k += 1
        feat = self.up_in_relu("deconv4_local", self.up_in_relu("deconv3_local", h))  # F, [B, ngf, H, W]
        masks = self.masks(S)
        results = [torch.tanh(self.conv(f"deconv5_{g}", F.pad(feat * m, (3, 3, 3, 3), mode="reflect")))
                   for g, m in enumerate(masks)]
        result_local = torch.tanh(self.conv("deconv9", torch.cat(results, 1), padding=1))
        # Classifier: AdaptiveAvgPool2d(1) of F * mask_g (sum over the mask / (H*W)), fc2, groups 0..K-1 only.
        K = self.w("fc2.weight").shape[0]
        pooled = torch.stack([(feat * m).mean((2, 3)) for m in masks[:K]], 1)  # [B, K, ngf]
        logits = pooled @ self.w("fc2.weight").t() + self.w("fc2.bias")
        valid = torch.stack([(m != 0).flatten(1).any(1) for m in masks[:K]], 1)
        # Attention from x_encode (not the resnet output); softmax channel 0 weighs the local image.
        a = self.up_in_relu("deconv4_attention", self.up_in_relu("deconv3_attention", x_encode))
        att = torch.softmax(self.conv("deconv5_attention", a), 1)
        final = att[:, 0:1] * result_local + att[:, 1:2] * result_global
        return dict(image=final, image_global=result_global, image_local=result_local,
                    class_images=torch.stack(results, 1), class_logits=logits, class_valid=valid,
                    weight_local=att[:, 0:1])


def reference_discriminator(sd, x):
    """SPADE's multiscale D (facts §3): per scale, 4x4 convs with zero padding 2, strides 2,2,2,1,1; spectral norm and
    IN on the middle convs (no bias), LeakyReLU 0.2, no sigmoid; the next scale sees avg_pool(3, 2, 1, no pad count)."""
    outs, d = [], 0
    while f"discriminator_{d}.model0.0.weight" in sd:
        if d > 0:
            x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        p, feats = f"discriminator_{d}", []
        h = F.leaky_relu(F.conv2d(x, sd[f"{p}.model0.0.weight"], sd[f"{p}.model0.0.bias"], stride=2, padding=2), 0.2)
        feats.append(h)
        n = 1
        while f"{p}.model{n}.0.0.weight_orig" in sd:
            q = f"{p}.model{n}.0.0"
            W = sd[f"{q}.weight_orig"]
            W = W / (sd[f"{q}.weight_u"] @ W.flatten(1) @ sd[f"{q}.weight_v"])
            last_middle = f"{p}.model{n + 1}.0.0.weight_orig" not in sd
            h = F.leaky_relu(F.instance_norm(F.conv2d(h, W, stride=1 if last_middle else 2, padding=2)), 0.2)
            feats.append(h)
            n += 1
        feats.append(F.conv2d(h, sd[f"{p}.model{n}.0.weight"], sd[f"{p}.model{n}.0.bias"], stride=1, padding=2))
        outs.append(feats)
        d += 1
    return outs


# ----------------------------------------------------------------------------------------------- inputs

def cityscapes_input(size, batch, seed, dtype=torch.float64):
    """Synthetic street scenes in Cityscapes labelIds (+ instance edges): S [B, 36, H, W]."""
    labels, instances = [], []
    for b in range(batch):
        layout = layout_scene(np.random.default_rng(seed + b), size)
        labels.append(torch.from_numpy(layout.label.astype(np.int64)))
        instances.append(torch.from_numpy(layout.instance.astype(np.int64)))
    return make_semantic_input(torch.stack(labels), CITYSCAPES["classes"], torch.stack(instances), dtype=dtype)


def ade_input(size, batch, seed, dtype=torch.float64):
    """ADE20K-like maps: rectangles of classes from both sides of the group boundary (< 51 and the union 51..150)."""
    W, H = size
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros(batch, H, W, dtype=torch.long)
    for b in range(batch):
        lab[b] = int(torch.randint(0, 151, (1,), generator=g))
        for _ in range(12):
            c = int(torch.randint(0, 151, (1,), generator=g))
            y, x = int(torch.randint(0, H, (1,), generator=g)), int(torch.randint(0, W, (1,), generator=g))
            h, w = int(torch.randint(2, H // 2, (1,), generator=g)), int(torch.randint(2, W // 2, (1,), generator=g))
            lab[b, y : y + h, x : x + w] = c
        lab[b, : H // 4, : W // 4] = 17 + b  # scored groups ...
        lab[b, -H // 4 :, -W // 4 :] = 140 - b  # ... and the union group are always present
    return make_semantic_input(lab, ADE20K["classes"], None, dtype=dtype)


def make_input(release, size, batch, seed, dtype=torch.float64):
    return (cityscapes_input if release["name"] == "cityscapes" else ade_input)(size, batch, seed, dtype)


def official_checkpoint(release, ngf, hidden, S, seed=0, n_res=9):
    """A random official generator state dict (dtype of S) whose BN statistics a calibration pass of the reference
    gathered on S plus another label map.  Including S keeps the check well conditioned: a channel that is dead on
    every calibration map (running_var 0) is also 0 on S, rather than amplified by 1/sqrt(eps)."""
    r = release
    sd = random_official(official_layout(ngf, r["groups"], r["classes"] + r["edges"], hidden, n_res, r["scored"]),
                         seed=seed, dtype=S.dtype)
    other = make_input(r, (S.shape[3], S.shape[2]), 1, seed=1000 + seed, dtype=S.dtype)
    with torch.no_grad():
        Reference(sd, r, calibrate=True)(torch.cat([S, other]))
    return sd


def converted_model(sd, dtype):
    """`convert_official` + our generator loaded strictly (built on the meta device: its random init is not needed)."""
    ours, report = convert_official(sd)
    with torch.device("meta"):
        G = LGGANGenerator(**report.arguments)
    G.load_state_dict(ours, assign=True)  # strict: every name and shape must fit
    return G.to(dtype).eval(), report


OUTPUTS = ("image", "image_global", "image_local", "weight_local", "class_logits")


def max_diffs(G, ref, S):
    with torch.no_grad():
        out = G(S)
        want = ref(S)
    diffs = {k: (getattr(out, k) - want[k]).abs().max().item() for k in OUTPUTS}
    diffs["class_images"] = (out.class_images.dense() - want["class_images"]).abs().max().item()
    assert torch.equal(out.class_valid, want["class_valid"])
    return diffs, out, want


# ----------------------------------------------------------------------------------------------- tests

@needs_reference_file(CITYSCAPES_KEYS)
def test_layout_written_from_the_facts_is_the_released_key_list():
    keys = read_key_file(CITYSCAPES_KEYS)
    assert official_layout(64, 35, 36, scored=35) == keys
    _, report = convert_official({k: torch.empty(s, device="meta") for k, s in keys.items()})
    assert report.dataset == "cityscapes"
    assert (report.arguments["num_upsampling_layers"], report.arguments["local_groups"]) == ("more", None)
    assert (report.arguments["num_classes"], report.arguments["semantic_nc"]) == (35, 36)


@pytest.mark.parametrize("release,size", [(CITYSCAPES, (128, 64)), (ADE20K, (64, 64))], ids=["cityscapes", "ade20k"])
def test_converted_generator_reproduces_the_release_float64(release, size):
    S = make_input(release, size, 2, seed=7)
    sd = official_checkpoint(release, ngf=4, hidden=16, S=S)
    G, report = converted_model(sd, torch.float64)
    assert report.dataset == release["name"] and report.arguments["num_upsampling_layers"] == release["layout"]
    assert report.arguments["local_groups"] == (None if release["groups"] == release["classes"] else release["groups"])
    u_before = G.global_generator.up_1.conv_0.weight_u.clone()
    diffs, out, want = max_diffs(G, Reference(sd, release), S)
    assert max(diffs.values()) <= 1e-12, diffs  # the README states 1.5e-14 / 9.4e-15
    # Eval mode divides by the stored u^T W v: no power iteration, u untouched (and not a converged vector).
    assert torch.equal(G.global_generator.up_1.conv_0.weight_u, u_before)
    # The check is not vacuous: realistic outputs, the local branch and every group matter.
    assert 0.05 < want["image"].std() and (want["image"].abs() < 0.99).float().mean() > 0.5
    assert (want["image"] - want["image_global"]).abs().max() > 1e-2
    assert want["class_valid"].any(1).all() and not want["class_valid"].all()
    if release is ADE20K:
        assert want["class_logits"].shape == (2, 51, 51) and out.class_images.dense().shape[1] == 52
        union = S[:, 51:].sum(1) > 0
        assert union.any() and (S[:, :51].sum(1) > 0).any()


def test_layout_is_what_makes_the_cityscapes_release_match():
    # The same weights in the 'normal' layout give another image: the 'more' start grid and extra upsampling matter.
    S = cityscapes_input((128, 64), 1, seed=7)
    sd = official_checkpoint(CITYSCAPES, ngf=4, hidden=16, S=S)
    ours, report = convert_official(sd, num_upsampling_layers="normal")
    G = LGGANGenerator(**report.arguments).double().eval()
    G.load_state_dict(ours)
    with torch.no_grad():
        assert (G(S).image_global - Reference(sd, CITYSCAPES)(S)["image_global"]).abs().max() > 1e-2


def float32_errors(G, sd, release, S):
    """In float32, our converted generator and the release's computation against the release's computation in
    float64 (the same weights): ({output: our max |error|}, {output: the release's own float32 max |error|}).

    At the official widths a float32 forward carries ~1e-4 of rounding error in I^G on some CPUs (AVX-512 oneDNN
    kernels; ~2e-5 on an AVX2 EPYC), in the release's computation as in ours, so our float32 output is judged by how
    close it comes to the exact (float64) result, next to the release's float32 output."""
    with torch.no_grad():
        out = G(S)
        want32 = Reference(sd, release)(S)
        exact = Reference({k: v.double() for k, v in sd.items()}, release)(S.double())
    ours = {k: (getattr(out, k).double() - exact[k]).abs().max().item() for k in OUTPUTS}
    theirs = {k: (want32[k].double() - exact[k]).abs().max().item() for k in OUTPUTS}
    return ours, theirs, exact


@pytest.mark.parametrize("release,size", [(CITYSCAPES, (128, 64)), (ADE20K, (64, 64))], ids=["cityscapes", "ade20k"])
def test_converted_generator_reproduces_the_release_float32_at_real_widths(release, size):
    # ngf 64, SPADE hidden 128, 9 residual blocks as released (images smaller than released, see the slow test).
    S = make_input(release, size, 1, seed=11, dtype=torch.float32)
    sd = official_checkpoint(release, ngf=64, hidden=128, S=S, seed=3)
    G, _ = converted_model(sd, torch.float32)
    ours, theirs, exact = float32_errors(G, sd, release, S)
    for k in OUTPUTS:
        assert ours[k] < max(1e-4, 1.5 * theirs[k]), (k, ours, theirs)
    assert (exact["image"] - exact["image_global"]).abs().max() > 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("release,size", [(CITYSCAPES, (512, 256)), (ADE20K, (256, 256))], ids=["cityscapes", "ade20k"])
def test_converted_generator_reproduces_the_release_float32_at_real_size(release, size):
    # Released widths and image sizes, float32, against the float64 computation (about a minute each on one CPU
    # thread, hence slow).
    start = time.perf_counter()
    S = make_input(release, size, 1, seed=13, dtype=torch.float32)
    sd = official_checkpoint(release, ngf=64, hidden=128, S=S, seed=5)
    G, _ = converted_model(sd, torch.float32)
    ours, theirs, _ = float32_errors(G, sd, release, S)
    print(f"{release['name']} {size[0]}x{size[1]} float32 max |error| vs float64: ours {ours}, the release's "
          f"computation in float32 {theirs} ({time.perf_counter() - start:.0f} s)")
    for k in OUTPUTS:
        assert ours[k] < max(1e-4, 1.5 * theirs[k]), (k, ours, theirs)


@pytest.mark.parametrize("release", [CITYSCAPES, ADE20K], ids=["cityscapes", "ade20k"])
def test_converted_discriminator_reproduces_the_release(release):
    in_channels = release["classes"] + release["edges"] + 3
    sd = random_official(official_discriminator_layout(in_channels, ndf=8), seed=2)
    ours, report = convert_official(sd)
    assert report.part == "discriminator" and report.dataset == release["name"]
    assert report.arguments == dict(in_channels=in_channels, ndf=8, n_layers=4, num_d=2, spectral=True)
    D = MultiscaleDiscriminator(**report.arguments).double().eval()
    D.load_state_dict(ours)
    x = torch.cat([make_input(release, (64, 64), 2, seed=3),
                   torch.rand(2, 3, 64, 64, dtype=torch.float64) * 2 - 1], 1)
    with torch.no_grad():
        got, want = D(x), reference_discriminator(sd, x)
    assert [len(s) for s in got] == [len(s) for s in want] == [5, 5]
    for s in range(2):
        for a, b in zip(got[s], want[s]):
            assert a.shape == b.shape and (a - b).abs().max() < 1e-10


def _official_file(tmp_path, name, sd):
    path = tmp_path / name
    torch.save({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, path)
    return path


@pytest.mark.parametrize("release,size", [(CITYSCAPES, (128, 64)), (ADE20K, (64, 64))], ids=["cityscapes", "ade20k"])
def test_round_trip_official_ours_official_is_exact_and_the_config_is_the_release(tmp_path, capsys, release, size):
    S = make_input(release, size, 1, seed=21)
    sd_g = official_checkpoint(release, ngf=4, hidden=16, S=S)
    in_channels = release["classes"] + release["edges"] + 3
    sd_d = random_official(official_discriminator_layout(in_channels, ndf=8), seed=4)
    for part, sd in (("G", sd_g), ("D", sd_d)):
        src = _official_file(tmp_path, f"200_net_{part}.pth", sd)
        out = tmp_path / f"{part}.safetensors"
        assert main(["convert-official", str(src), str(out)]) == 0
        printed = capsys.readouterr().out
        assert printed.startswith(f"detected: {release['name']} (detected from the shapes)")
        back = tmp_path / f"back_{part}.pth"
        assert main(["export-official", str(out), str(back)]) == 0
        assert "release's" in capsys.readouterr().out
        original = torch.load(src, weights_only=True)
        exported = torch.load(back, weights_only=True)
        assert type(exported) is dict and set(exported) == set(original)
        for k, v in original.items():
            assert exported[k].dtype == v.dtype and torch.equal(exported[k], v), k

    info = json.loads((tmp_path / "G.json").read_text())
    data, model = info["config"]["data"], info["config"]["model"]
    assert data["dataset"] == release["name"] and data["num_classes"] == release["classes"]
    assert data["use_instance"] == bool(release["edges"])
    assert model["num_upsampling_layers"] == release["layout"]
    assert model["local_groups"] == (None if release["groups"] == release["classes"] else release["groups"])
    assert info["unused"] == ["fc.bias", "fc.weight"] and info["unused_file"] == "G.unused.safetensors"
    d_info = json.loads((tmp_path / "D.json").read_text())
    assert d_info["model"] == "MultiscaleDiscriminator" and d_info["config"]["data"]["dataset"] == release["name"]
    assert (d_info["config"]["model"]["ndf"], d_info["config"]["model"]["num_d"]) == (8, 2)
    assert isinstance(load_converted(tmp_path / "D.safetensors"), MultiscaleDiscriminator)

    # `lggan generate` builds the right model from the sidecar config and reproduces the release (float32).
    synth = load_generator(tmp_path / "G.safetensors", device="cpu")
    sd32 = {k: v.float() if v.is_floating_point() else v for k, v in sd_g.items()}
    with torch.no_grad():
        got = synth.generator(S.float()).image
    assert (got - Reference(sd32, release)(S.float())["image"]).abs().max() < 1e-4


def test_export_without_the_kept_tensors_writes_a_zero_fc(tmp_path):
    sd = official_checkpoint(CITYSCAPES, ngf=4, hidden=16, S=cityscapes_input((128, 64), 1, seed=0))
    out = tmp_path / "c.safetensors"
    convert_official_file(_official_file(tmp_path, "g.pth", sd), out)
    (tmp_path / "c.unused.safetensors").unlink()
    info = export_official_file(out, tmp_path / "back.pth")
    assert info["kind"] == "semantic" and info["unused_file"] is None
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert back["fc.weight"].shape == sd["fc.weight"].shape and not back["fc.weight"].any()
    assert set(back) == set(sd) and torch.equal(back["deconv5_34.weight"], sd["deconv5_34.weight"].float())
