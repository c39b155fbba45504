"""The benchmark's dense per-class reference computes the same as the model's sparse local branch (same weights)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds benchmarks/

from benchmarks.labels import KINDS, make_batch, make_label_map
from benchmarks.memory import cpu_step_peak
from benchmarks.reference import reference_forward, reference_local_head
from lggan import losses as L
from lggan.models.generator import LGGANGenerator


def _model(C, nc):
    torch.manual_seed(0)
    return LGGANGenerator(C, nc, ngf=4, spade_hidden=8, num_res_blocks=1).double().train()


def test_reference_matches_model_and_gradients():
    S, _ = make_batch(35, 2, (64, 32))
    S = S.double()
    g = _model(35, S.shape[1])
    target = torch.rand(2, 3, 32, 64, dtype=torch.float64)
    M = S[:, :35]
    state = {k: v.clone() for k, v in g.state_dict().items()}  # train mode updates spectral-norm / BN buffers
    grads = []
    for forward in (g, lambda s: reference_forward(g, s)):
        g.load_state_dict(state)
        g.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        out = forward(S)
        loss = (L.l1_loss(out.image, target) + L.class_ce_loss(out.class_logits, out.class_valid)
                + L.local_l1_loss(out.class_images, target, M))
        loss.backward()
        dense = out.class_images if isinstance(out.class_images, torch.Tensor) else out.class_images.dense()
        grads.append((out.image.detach(), dense.detach(), loss.detach(),
                      {n: p.grad.clone() for n, p in g.named_parameters() if p.grad is not None}))
    (i0, d0, l0, g0), (i1, d1, l1, g1) = grads
    torch.testing.assert_close(i0, i1)
    torch.testing.assert_close(d0, d1)
    torch.testing.assert_close(l0, l1)
    assert g0.keys() == g1.keys()
    for n in g0:
        torch.testing.assert_close(g0[n], g1[n], msg=n)


def test_reference_local_head_matches_sparse():
    S, _ = make_batch(151, 1, (64, 32))
    g = _model(151, S.shape[1]).float()
    M = S[:, :151]
    f = torch.rand(1, 4, 32, 64)
    I_dense, _ = reference_local_head(g.local, f, M)
    out = g.local.class_conv(f, M)
    torch.testing.assert_close(I_dense, out.dense(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("C", sorted(KINDS))
def test_label_maps_have_the_requested_class_counts(C):
    lo, hi = KINDS[C].present
    for s in range(5):
        label, instance = make_label_map(np.random.default_rng(s), C, (128, 64))
        assert label.shape == instance.shape == (64, 128)
        assert lo <= np.unique(label).size <= hi
        assert label.min() >= 0 and label.max() < C


def test_cpu_peak_counts_live_allocations():
    def step():
        a = torch.ones(1_000_000)  # 4 MB
        b = torch.ones(500_000)  # +2 MB
        del a
        c = torch.ones(2_000_000)  # +8 MB, a freed: live 10 MB
        return b.sum() + c.sum()

    peak = cpu_step_peak(step)
    assert 10_000_000 <= peak < 10_100_000


def test_cpu_peak_does_not_depend_on_earlier_steps():
    # Gradients of the previous (profiled) step are freed inside the next one; that must not lower its peak.
    model = torch.nn.Linear(256, 256)
    x = torch.randn(64, 256)

    def step():
        model.zero_grad(set_to_none=True)
        model(x).square().sum().backward()

    peaks = [cpu_step_peak(step) for _ in range(3)]
    assert peaks[0] == peaks[1] == peaks[2] > 256 * 256 * 4


def test_generator_step_cli_smoke(tmp_path, capsys):
    from benchmarks import generator_step

    out = tmp_path / "b.json"
    md = tmp_path / "b.md"
    assert generator_step.main(["--sizes", "64x32", "--widths", "4", "--classes", "35", "--batches", "1,2",
                                "--repeats", "1", "--json", str(out), "--markdown", str(md)]) == 0
    text = capsys.readouterr().out
    assert "LGGAN / S1" in text and "speed-up" in text and "Goals" in text
    import json

    data = json.loads(out.read_text())
    assert {e["batch"] for e in data["results"]} == {1, 2}
    for e in data["results"]:
        assert set(e["variants"]) == {"lggan", "s1", "reference", "local_ours", "local_ref"}
        assert all(v["memory_peak_bytes"] > v["memory_base_bytes"] > 0 for v in e["variants"].values())
    assert generator_step.main(["--report", str(out), str(out)]) == 0
