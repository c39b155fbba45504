"""Speed paths give the same results: bf16 autocast (within a stated tolerance), channels-last, activation
checkpointing, persistent loader workers; the amp / channels-last decisions and what a run records about them.

Tiny models on CPU. Timing is never asserted here (benchmarks/ measures it)."""

import contextlib
import copy
import json
import multiprocessing
import time
import warnings

import pytest
import torch
import torch.nn.functional as F

from lggan import checkpoint as ckpt
from lggan import precision
from lggan.config import apply_overrides, get_preset
from lggan.data.common import make_semantic_input
from lggan.models import CrossViewGenerator, LGGANGenerator, set_activation_checkpointing
from lggan.models.class_conv import ClassSpecificConv, combine_class_images
from lggan.tasks import make_task
from lggan.precision import amp_settings
from lggan.training import STEP_ORDERS, build_run, close_run, train

from test_crossview_train import tiny_cfg as crossview_cfg
from test_crossview_train import towns  # noqa: F401 (a fixture)
from test_train import read_log, tiny_cfg

BF16 = torch.bfloat16


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    from lggan.data.synthetic import generate_synth_city

    root = tmp_path_factory.mktemp("city") / "synth"
    generate_synth_city(root, num_train=6, num_val=2, size=(64, 32), seed=3, progress=False)
    return root


def _tiny_semantic_generator(seed: int = 0, dtype=torch.float32, gain: float = 0.02
                             ) -> tuple[LGGANGenerator, torch.Tensor]:
    """The synth preset's G at tiny widths (xavier init, instance edges), and an S [2, 36, 32, 64]."""
    torch.manual_seed(seed)
    cfg = apply_overrides(get_preset("synth"), ["model.ngf=4", "model.spade_hidden=8", "model.num_res_blocks=2",
                                                "data.load_size=64x32", f"model.init_gain={gain}"])
    G = make_task(cfg).build_generator().to(dtype)
    label = torch.randint(0, 35, (2, 32, 64))
    S = make_semantic_input(label, 35, torch.randint(0, 5, (2, 32, 64))).to(dtype)
    return G, S


def _calibrate_batch_norms(G: torch.nn.Module, *inputs: torch.Tensor) -> torch.nn.Module:
    """Running statistics = the statistics of one training batch, so that eval mode is well conditioned.

    (A fresh G in eval mode normalises with mean 0 / var 1 and its activations grow to ~1e17: no precision
    comparison means anything there.)"""
    for m in G.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average: after one batch, exactly its statistics
            m.reset_running_stats()
    G.train()
    with torch.no_grad():
        G(*inputs)
    return G.eval()


# -- the decisions ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, device, native, expected", [
    ("auto", "cpu", True, (BF16, False)),  # AMX / AVX512-BF16 CPU: bf16
    ("auto", "cpu", False, (None, False)),  # no native bf16 (e.g. AVX2 only): fp32
    ("auto", "cuda", True, (BF16, False)),  # Ampere or later
    ("auto", "cuda", False, (None, False)),  # older GPUs emulate bf16
    ("bf16", "cpu", False, (BF16, False)),  # forced: emulated, same numbers
    ("off", "cuda", True, (None, False)),
    ("fp16", "cuda", True, (torch.float16, True)),  # with a GradScaler
])
def test_the_amp_decision_follows_the_device_capability(mode, device, native, expected):
    assert precision.amp_decision(mode, device, native) == expected
    assert amp_settings(mode, torch.device(device), bf16_native=native) == expected


def test_fp16_on_cpu_is_a_one_line_error_naming_the_field():
    with pytest.raises(ValueError, match=r"^train\.amp='fp16' needs a CUDA device") as e:
        precision.amp_decision("fp16", "cpu", True)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("flags, native", [
    ({"avx2", "fma3"}, False),
    ({"avx512_f", "avx512_bw"}, False),  # AVX-512 without its bf16 instructions
    ({"avx512_f", "avx512_bf16"}, True),  # e.g. Zen 4, Cooper Lake
    ({"amx_tile", "amx_bf16"}, True),  # Sapphire Rapids and later
    ({"neon", "bf16"}, True),  # ARM with the bf16 extension (Neoverse V1/V2)
])
def test_native_bf16_is_read_from_the_cpu_flags(flags, native):
    assert precision.cpu_bf16_native(flags) is native


@pytest.mark.parametrize("mode, device, dtype, expected", [
    ("auto", "cuda", None, True), ("auto", "cuda", BF16, True), ("auto", "cpu", BF16, True),
    ("auto", "cpu", None, False), ("on", "cpu", None, True), ("off", "cuda", BF16, False),
])
def test_the_channels_last_decision(mode, device, dtype, expected):
    assert precision.channels_last_decision(mode, device, dtype) is expected


def test_bad_speed_settings_are_one_line_errors_naming_the_field():
    with pytest.raises(ValueError, match=r"train\.channels_last=yes: must be one of auto, on, off"):
        apply_overrides(get_preset("synth"), ["train.channels_last=yes"])
    with pytest.raises(ValueError, match=r"train\.activation_checkpointing=\w+: must be true or false"):
        apply_overrides(get_preset("synth"), ["train.activation_checkpointing=maybe"])
    with pytest.raises(ValueError, match=r"--amp 'fp16': expected one of auto, bf16, off"):
        precision.check_inference_modes("fp16", "auto")
    with pytest.raises(ValueError, match=r"^train\.compile=true: not supported together with "
                                         r"train\.activation_checkpointing=true"):
        apply_overrides(get_preset("synth"), ["train.compile=true", "train.activation_checkpointing=true"])


# -- bf16 autocast ---------------------------------------------------------------------------------------------------

# Measured on the tiny generator below (ngf 4, the synth preset's init: xavier, gain 0.02; AMD EPYC, torch 2.14):
# max |fp32 - bf16| of the images in [-1, 1], over seeds 0-4, up to 0.016 (I^G; I^C 0.008) in training mode and
# 0.047 (I^C 0.025) in eval mode; seed 0 (the test's): 0.0024 / 0.0064; mean |diff| at most 0.0055; cross-view 0.01.
# The tolerance leaves 2x margin over the worst seed. (A random G with init gain 1 is far less well conditioned:
# there bf16 moves I^G by up to 1.9, but so does rounding its fp32 weights by 2^-9 -- a property of that random
# network, not of autocast. Its local branch stays within 0.02: see the next test.)
BF16_MAX_ABS = 0.1
BF16_MEAN_ABS = 0.01


@pytest.mark.parametrize("training", [True, False])
def test_bf16_and_fp32_generator_forwards_agree_within_the_tolerance(training):
    G, S = _tiny_semantic_generator()
    if not training:
        _calibrate_batch_norms(G, S)
    G.train(training)
    G16 = copy.deepcopy(G)  # training-mode forwards move the BN statistics: each precision gets its own copy
    conv_dtypes = []  # what the convs really computed in: the comparison is void if autocast did not act
    hooks = [m.register_forward_hook(lambda m, i, o: conv_dtypes.append(o.dtype)) for m in G16.modules()
             if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        ref = G(S)
        with torch.autocast("cpu", dtype=BF16):
            out = precision.to_float(G16(S))
    for h in hooks:
        h.remove()
    assert conv_dtypes and set(conv_dtypes) == {BF16}
    for name in ("image", "image_global", "image_local", "weight_local", "class_logits"):
        a, b = getattr(ref, name), getattr(out, name)
        assert b.dtype == torch.float32, name
        diff = (a - b).abs()
        assert diff.max() <= BF16_MAX_ABS and diff.mean() <= BF16_MEAN_ABS, (name, diff.max().item())
        # Relative to the output's own spread (measured: at most 0.17 of it, W_l): an output that ignored its input
        # (a constant) would be ~0.8 of it away, so the absolute bounds above cannot pass by the outputs being small.
        assert diff.mean() <= 0.3 * a.std(), (name, (diff.mean() / a.std()).item())
    # The BN statistics and spectral-norm vectors remain fp32 buffers under autocast, and close to the fp32 run's.
    for (name, a), (_, b) in zip(G.named_buffers(), G16.named_buffers()):
        assert b.dtype == a.dtype, name
        if a.is_floating_point():
            torch.testing.assert_close(b, a, rtol=0.02, atol=0.02, msg=name)


def test_bf16_and_fp32_local_branch_outputs_agree_at_a_large_init_gain():
    # At the default init the local branch's outputs are ~1e-5 and agree trivially; at gain 1 they are O(1).
    # Measured over seeds 0-4: max |diff| 0.0135 (I^L), 0.0192 (W_l), 1e-4 (class logits).
    G, S = _tiny_semantic_generator(gain=1.0)
    G.train()
    G16 = copy.deepcopy(G)
    with torch.no_grad():
        ref = G(S)
        with torch.autocast("cpu", dtype=BF16):
            out = precision.to_float(G16(S))
    assert ref.image_local.abs().max() > 0.1  # the branch is really exercised
    for name in ("image_local", "weight_local", "class_logits"):
        assert (getattr(ref, name) - getattr(out, name)).abs().max() <= 0.05, name
    torch.testing.assert_close(out.class_images.dense(), ref.class_images.dense(), rtol=0, atol=0.05)


def test_bf16_and_fp32_cross_view_generator_forwards_agree():
    torch.manual_seed(0)
    G = CrossViewGenerator(in_channels=6, num_classes=6, ngf=4, num_res_blocks=1).eval()
    x = torch.rand(2, 6, 32, 32) * 2 - 1
    M = F.one_hot(torch.randint(0, 6, (2, 32, 32)), 6).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        ref = G(x, M)
        with torch.autocast("cpu", dtype=BF16):
            out = precision.to_float(G(x, M))
    assert out.image.dtype == torch.float32
    assert (ref.image - out.image).abs().max() <= BF16_MAX_ABS


def test_spectral_norm_power_iteration_stays_fp32_under_autocast():
    # torch.mv / torch.dot are not autocast ops: the power iteration computes exactly as without autocast.
    G, S = _tiny_semantic_generator()
    G16 = copy.deepcopy(G)
    conv, conv16 = G.global_generator.head_0.conv_0, G16.global_generator.head_0.conv_0
    with torch.no_grad():
        G(S)
        with torch.autocast("cpu", dtype=BF16):
            G16(S)
    assert conv16.weight_u.dtype == torch.float32 and conv16.weight_v.dtype == torch.float32
    # u, v depend only on weight_orig (fp32, unchanged) and the previous u, v: bitwise the fp32 run's.
    assert torch.equal(conv.weight_u, conv16.weight_u) and torch.equal(conv.weight_v, conv16.weight_v)


# -- channels-last ---------------------------------------------------------------------------------------------------


def test_channels_last_generator_equals_contiguous_in_fp32():
    G, S = _tiny_semantic_generator()
    G_cl = precision.to_channels_last(copy.deepcopy(G))
    assert G_cl.global_generator.head_0.conv_0.weight_orig.is_contiguous(memory_format=torch.channels_last)
    assert G_cl.local.class_conv.weight.dim() == 5  # the stacked class convs keep their layout
    S_cl = precision.channels_last_input(S)
    out, out_cl = G(S), G_cl(S_cl)
    for name in ("image", "image_global", "image_local", "weight_local", "class_logits"):
        torch.testing.assert_close(getattr(out_cl, name), getattr(out, name), rtol=1e-5, atol=1e-5, msg=name)
    torch.testing.assert_close(out_cl.class_images.dense(), out.class_images.dense(), rtol=1e-5, atol=1e-5)
    (out.image.square().mean() + out.class_logits.square().mean()).backward()
    (out_cl.image.square().mean() + out_cl.class_logits.square().mean()).backward()
    for (name, p), (_, q) in zip(G.named_parameters(), G_cl.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_the_sparse_class_convs_equal_on_channels_last_inputs():
    torch.manual_seed(0)
    conv = ClassSpecificConv(5, 6, 3, kernel_size=7, tile_size=8).double()
    f = torch.randn(2, 6, 20, 28, dtype=torch.float64, requires_grad=True)
    M = F.one_hot(torch.randint(0, 5, (2, 20, 28)), 5).permute(0, 3, 1, 2).double()
    weight = torch.randn(3, 15, 3, 3, dtype=torch.float64)
    a = conv(f, M)
    ia = combine_class_images(a, weight, None)
    ga = torch.autograd.grad(ia.square().sum() + a.delta.square().sum(), f)[0]
    f_cl, M_cl = f.contiguous(memory_format=torch.channels_last), M.contiguous(memory_format=torch.channels_last)
    b = conv(f_cl, M_cl)
    ib = combine_class_images(b, weight, None)
    gb = torch.autograd.grad(ib.square().sum() + b.delta.square().sum(), f)[0]
    torch.testing.assert_close(b.delta, a.delta, rtol=1e-12, atol=1e-12)
    assert torch.equal(b.class_idx, a.class_idx) and torch.equal(b.tile_y, a.tile_y)
    torch.testing.assert_close(ib, ia, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gb, ga, rtol=1e-12, atol=1e-12)


# -- activation checkpointing ----------------------------------------------------------------------------------------


def _one_step(G: torch.nn.Module, S: torch.Tensor) -> torch.optim.Optimizer:
    opt = torch.optim.Adam(G.parameters(), lr=1e-2)
    out = G(S)
    loss = (out.image.square().mean() + out.image_global.abs().mean() + out.class_logits.square().mean()
            + out.weight_local.mean())
    loss.backward()
    opt.step()
    return opt


def test_activation_checkpointing_gives_the_same_gradients_and_module_state():
    G, S = _tiny_semantic_generator(dtype=torch.float64)
    G.train()
    G_ck = copy.deepcopy(G)
    assert set_activation_checkpointing(G_ck, True) == 7 + 2  # G_g's SPADE blocks + G_l's residual blocks
    _one_step(G, S)
    _one_step(G_ck, S)
    for (name, p), (_, q) in zip(G.named_parameters(), G_ck.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-12, msg=name)
        torch.testing.assert_close(q, p, rtol=0, atol=1e-12, msg=name)
    # Spectral norm's u, v and batch norm's running statistics advanced once, as without checkpointing.
    for (name, a), (_, b) in zip(G.named_buffers(), G_ck.named_buffers()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12, msg=name)


def test_without_the_recompute_guard_checkpointing_would_change_the_results(monkeypatch):
    # The check above has teeth: a plain recompute runs a second power iteration and a second BN update.
    import lggan.models.checkpointing as ck

    monkeypatch.setattr(ck, "recompute_guard", lambda module: contextlib.nullcontext())
    G, S = _tiny_semantic_generator(dtype=torch.float64)
    G_ck = copy.deepcopy(G)
    set_activation_checkpointing(G_ck, True)
    _one_step(G, S)
    _one_step(G_ck, S)
    bn = G.global_generator.head_0.norm_0.param_free_norm
    bn_ck = G_ck.global_generator.head_0.norm_0.param_free_norm
    assert bn_ck.num_batches_tracked.item() == bn.num_batches_tracked.item() + 1
    assert not torch.equal(G_ck.global_generator.head_0.conv_0.weight_u, G.global_generator.head_0.conv_0.weight_u)


def test_activation_checkpointing_of_the_cross_view_trunk_gives_the_same_gradients():
    torch.manual_seed(0)
    G = CrossViewGenerator(in_channels=6, num_classes=6, ngf=2, num_res_blocks=2).double().train()
    G_ck = copy.deepcopy(G)
    assert set_activation_checkpointing(G_ck, True) == 2
    x = torch.rand(2, 6, 16, 16, dtype=torch.float64) * 2 - 1
    M = F.one_hot(torch.randint(0, 6, (2, 16, 16)), 6).permute(0, 3, 1, 2).double()
    for g in (G, G_ck):
        out = g(x, M)
        (out.image.square().mean() + out.image_global.abs().mean()).backward()
    for (name, p), (_, q) in zip(G.named_parameters(), G_ck.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-12, msg=name)


def test_checkpointing_is_inactive_without_gradients_and_in_eval_mode(monkeypatch):
    import lggan.models.checkpointing as ck

    G, S = _tiny_semantic_generator()
    set_activation_checkpointing(G, True)
    calls = []
    original = ck.checkpointed_call
    monkeypatch.setattr(ck, "checkpointed_call", lambda *a: calls.append(1) or original(*a))
    with torch.no_grad():
        G.train()(S)  # the D step's fakes, sampling
    G.eval()(S)
    assert calls == []
    G.train()(S)
    assert len(calls) == 9


# -- a run -----------------------------------------------------------------------------------------------------------


def test_two_bf16_iterations_on_cpu_keep_weights_optimiser_state_and_norm_statistics_fp32(city, tmp_path):
    cfg = tiny_cfg(city, "train.iterations=2", "train.amp=bf16", "train.channels_last=on",
                   "train.activation_checkpointing=true", "train.checkpoint_every=2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(cfg, tmp_path / "run")
    emulated = [str(w.message) for w in caught if "no native bf16" in str(w.message)]
    assert len(emulated) == (0 if precision.cpu_bf16_native() else 1), emulated
    assert result.iteration == 2
    log = read_log(tmp_path / "run")
    assert len(log) == 2 and all(torch.isfinite(torch.tensor([r["G_total"], r["D_total"]])).all() for r in log)
    for name, t in [*result.generator.named_parameters(), *result.generator.named_buffers()]:
        assert t.dtype in (torch.float32, torch.int64), name
    found = ckpt.load_latest(tmp_path / "run")
    for key in ("opt_g", "opt_d"):
        for state in found.state[key]["state"].values():
            assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.float32
    assert all(t.dtype in (torch.float32, torch.int64) for t in found.generator.values())
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert info["autocast"] == "bfloat16" and info["amp"] == "bf16" and info["channels_last"] is True
    assert info["activation_checkpointing"] is True and info["device"] == "cpu"
    assert info["bf16_native"] is precision.cpu_bf16_native() and info["cpu_name"] == precision.cpu_name()


def test_a_cross_view_run_with_every_speed_option_trains(towns, tmp_path):  # noqa: F811
    # The cross-view release's one_forward order: one G forward under autocast, judged by D_i and D_s, then trained.
    cfg = crossview_cfg(towns, "train.iterations=2", "train.amp=bf16", "train.channels_last=on",
                        "train.activation_checkpointing=true")
    assert cfg.train.step_order == "one_forward"
    result = train(cfg, tmp_path / "run")
    log = read_log(tmp_path / "run")
    assert result.iteration == 2 and all(torch.isfinite(torch.tensor(r["G_total"])) for r in log)
    assert {"D_D_i_C", "D_D_s_C", "G_l1_C"} <= set(log[-1])
    assert all(p.dtype == torch.float32 for p in result.generator.parameters())


def test_the_losses_of_a_bf16_iteration_are_fp32(city, tmp_path):
    run = build_run(tiny_cfg(city, "train.iterations=1", "train.amp=bf16"), tmp_path / "run", None, False)
    try:
        batch = next(iter(run.data.epoch_batches(0, 0)))
        prep = run.task.prepare(batch, run.device)
        out = run.generate(prep)
        assert out.image.dtype == out.image_global.dtype == out.class_logits.dtype == torch.float32
        (d_loss, d_terms, d_ok), (g_loss, g_terms, g_ok) = STEP_ORDERS["d_then_g"](run, prep)
        assert d_ok and g_ok
        assert d_loss.dtype == g_loss.dtype == torch.float32
        assert all(v.dtype == torch.float32 for v in {**d_terms, **g_terms}.values())
    finally:
        close_run(run)


def test_auto_records_the_decision_of_this_machine(city, tmp_path, capsys):
    train(tiny_cfg(city, "train.iterations=1"), tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    native = precision.cpu_bf16_native()
    assert info["amp"] == "auto" and info["autocast"] == ("bfloat16" if native else None)
    assert info["channels_last"] is native and info["compile"] is False
    # The start-up banner's device line (the speed plan folded in).
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.lstrip().startswith("device:     cpu")]
    assert len(line) == 1 and f"bf16 native: {'yes' if native else 'no'}" in line[0] and precision.cpu_name() in line[0]


def test_persistent_workers_give_the_batches_of_an_in_process_loader_and_stop_with_the_run(city, tmp_path):
    # 6 samples, batch 2: 3 iterations per epoch, so 7 iterations cross two epoch boundaries of the kept workers.
    train(tiny_cfg(city, "train.iterations=7", "data.num_workers=0"), tmp_path / "w0")
    train(tiny_cfg(city, "train.iterations=7", "data.num_workers=2"), tmp_path / "w2")
    deadline = time.time() + 10
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.1)
    assert multiprocessing.active_children() == []
    a, b = read_log(tmp_path / "w0"), read_log(tmp_path / "w2")
    assert [r["G_total"] for r in a] == [r["G_total"] for r in b]
    assert [r["D_total"] for r in a] == [r["D_total"] for r in b]


# -- inference -------------------------------------------------------------------------------------------------------


def test_load_generator_bf16_and_channels_last_give_float32_images_close_to_fp32(city, tmp_path):
    from lggan.generate import load_generator

    train(tiny_cfg(city, "train.iterations=2", "train.checkpoint_every=2"), tmp_path / "run")
    label = torch.randint(0, 35, (2, 32, 64))
    inst = torch.randint(0, 4, (2, 32, 64))
    ref = load_generator(tmp_path / "run", "cpu", amp="off", channels_last="off")
    fast = load_generator(tmp_path / "run", "cpu", amp="bf16", channels_last="on")
    cl = load_generator(tmp_path / "run", "cpu", amp="off", channels_last="on")
    assert ref.plan.autocast is None and fast.plan.autocast == "bfloat16" and fast.plan.channels_last
    a, b, c = ref(label, inst), fast(label, inst), cl(label, inst)
    assert b.image.dtype == torch.float32 and b.weight_local.dtype == torch.float32
    assert (a.image - b.image).abs().max() <= BF16_MAX_ABS
    torch.testing.assert_close(c.image, a.image, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"--amp 'fp16'"):
        load_generator(tmp_path / "run", "cpu", amp="fp16")
