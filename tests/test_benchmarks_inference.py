"""benchmarks/inference.py (tiny widths) and the profile attribution of benchmarks/step_profile.py."""

import json
import sys
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds benchmarks/

from benchmarks import inference
from benchmarks.step_profile import ACCUM, LOSSES, PHASE, Scopes, attribute

TINY = ["--set", "model.ngf=4", "--set", "model.spade_hidden=8", "--set", "model.num_res_blocks=1"]


def test_rotation_runs_every_variant_first_once():
    names = ["a", "b", "c"]
    firsts = [inference.rotation(names, r)[0] for r in range(3)]
    assert sorted(firsts) == names
    assert all(sorted(inference.rotation(names, r)) == names for r in range(5))


def test_large_repeats_only_for_large_calls():
    assert inference.repeats_for((512, 256), 4, 3, 2) == 2
    assert inference.repeats_for((512, 256), 1, 3, 2) == 3
    assert inference.repeats_for((256, 128), 4, 3, 2) == 3
    assert inference.repeats_for((512, 256), 4, 3, None) == 3


def test_label_batches_share_their_first_images():
    l4, i4, c4 = inference.label_batch(35, True, 4, (128, 64), seed=0)
    l1, i1, c1 = inference.label_batch(35, True, 1, (128, 64), seed=0)
    assert l4.shape == i4.shape == (4, 64, 128) and l4.dtype == torch.int64
    assert torch.equal(l4[:1], l1) and torch.equal(i4[:1], i1) and c1 == c4[:1]
    assert all(15 <= c <= 20 for c in c4)
    _, none, _ = inference.label_batch(151, False, 1, (128, 64), seed=0)
    assert none is None


def test_inference_benchmark_runs_the_load_path_and_reports(tmp_path, capsys):
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    assert inference.main(["--sizes", "128x64", "--batches", "1,2", "--threads", "1", "--repeats", "1", "--memory",
                           "--json", str(out_json), "--markdown", str(out_md), *TINY]) == 0
    doc = json.loads(out_json.read_text())
    assert [(r["batch"], r["repeats"]) for r in doc["results"]] == [(1, 1), (2, 1)]
    variants = list(inference.DEFAULT_VARIANTS)
    for r in doc["results"]:
        assert list(r["images_per_s"]) == variants
        assert all(len(r["times"][v]) == 1 and r["images_per_s"][v] > 0 for v in variants)
        # channels-last changes only the layout, the region path only how SPADE is computed: the same images as the
        # dense path (the first variant) up to float rounding
        assert r["max_abs_diff_vs_first_variant"]["channels_last"] < 1e-3
        assert r["max_abs_diff_vs_first_variant"]["fp32"] < 1e-3
        assert all(r["peak_mib"][v] > 0 for v in variants)
    plans = doc["setup"]["plans"]
    assert plans["fp32"]["autocast"] is None and not plans["fp32"]["channels_last"]
    assert plans["channels_last"]["channels_last"] and plans["channels_last"]["autocast"] is None
    from lggan.precision import inference_plan

    assert plans["auto"]["autocast"] == inference_plan(torch.device("cpu")).autocast
    if plans["auto"]["autocast"] is None and not plans["auto"]["channels_last"]:
        assert all(r["max_abs_diff_vs_first_variant"]["auto"] == 0 for r in doc["results"])
    md = out_md.read_text()
    assert "| 128x64 | 2 | 1 |" in md and "bf16 native" in md
    capsys.readouterr()
    assert inference.main(["--report", str(out_json)]) == 0
    assert capsys.readouterr().out.strip() == md.strip()
    merged = tmp_path / "merged.json"  # two runs -> one table with both runs' rows; the merged file renders the same
    assert inference.main(["--report", str(out_json), str(out_json), "--json", str(merged)]) == 0
    twice = capsys.readouterr().out
    assert twice.count("| 128x64 | 2 | 1 |") == 2 and twice.startswith("Run 1")
    assert inference.main(["--report", str(merged)]) == 0
    assert capsys.readouterr().out == twice


def _attribution(run):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = prof.events()
    return attribute(events), sum(e.self_cpu_time_total for e in events)


def test_profile_attribution_follows_modules_into_backward():
    torch.manual_seed(0)
    a, b = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 1, 3)
    x = torch.randn(1, 3, 16, 16)
    with Scopes() as scopes:
        scopes.hook(a, "A")
        scopes.hook(b, "B")

        def run():
            with record_function(PHASE + "G step"):
                y = b(torch.relu(a(x)))
                (y ** 2).mean().backward()

        bd, total = _attribution(run)
    assert not a._forward_pre_hooks and not a._forward_hooks  # undone on exit
    for part in ("A", "B"):
        assert bd.part(part, "G step", "forward") > 0
        assert bd.part(part, "G step", "backward") > 0
    assert bd.part(LOSSES, "G step", "forward") > 0  # relu, pow, mean: outside the modules
    assert bd.part(ACCUM, "G step", "backward") > 0
    assert abs(bd.total - total) < 1e-6 * max(total, 1.0)  # every event's self time counted exactly once


def test_grad_free_op_before_a_node_does_not_take_its_backward():
    w = torch.randn(256, 256, requires_grad=True)

    def run():
        with record_function(PHASE + "G step"):
            with record_function("scope: N"):
                torch.ones(4) * 3  # grad mode on but nothing requires grad: records the next node's number
            y = (w @ w).sum()  # the node's creator, outside every scope
            y.backward()

    bd, _ = _attribution(run)
    assert bd.part("N", direction="backward") == 0
    assert bd.part(LOSSES, "G step", "backward") > 0


def _breakdown(cells):
    from benchmarks.step_profile import Breakdown

    b = Breakdown()
    for key, us in cells.items():
        b.cells[key] += us
    b.ops = {"aten::x": {"self_cpu_us": sum(cells.values()), "calls": 1, "main_part": "p", "main_part_share": 1.0}}
    return b


def test_minimum_takes_each_part_at_its_least_loaded():
    from benchmarks.step_profile import Breakdown

    a = _breakdown({("p", "G step", "forward"): 5.0, ("q", "G step", "backward"): 1.0})
    b = _breakdown({("p", "G step", "forward"): 3.0, ("q", "G step", "backward"): 2.0})
    m = Breakdown.minimum([a, b])
    assert m.part("p") == 3.0 and m.part("q") == 1.0 and m.total == 4.0
    assert m.ops["aten::x"]["self_cpu_us"] == 5.0  # the op at its smallest (b: 3 + 2)
    assert Breakdown.from_dict(m.to_dict()).cells == m.cells


def test_profile_report_bounds_the_speed_up_by_the_shared_parts():
    from benchmarks.step_profile import G_GLOBAL, G_LOCAL_HEAD
    from benchmarks.train_step import profile_markdown

    s = 1e6  # us per second
    d = _breakdown({(G_GLOBAL, "G step", "forward"): 9 * s, (G_LOCAL_HEAD, "G step", "forward"): 1 * s})
    r = _breakdown({(G_GLOBAL, "G step", "forward"): 9 * s, (G_LOCAL_HEAD, "G step", "forward"): 5 * s})
    machine = {"cpu": "x", "logical_cpus": 2, "torch": "t", "python": "p", "threads": 1, "device": "cpu",
               "load_average_start": [0, 0, 0]}
    variant = {"unprofiled_s": 10.0, "profiled_s": [10.0], "not_hooked": [],
               "run_info": {"autocast": None, "channels_last": False}}
    doc = {"machine": machine, "profile": {
        "size": [256, 128], "batch": 1, "threads": 1, "repeats": 1, "overrides": [],
        "variants": {"default": {**variant, "breakdown": d.to_dict()},
                     "reference": {**variant, "unprofiled_s": 14.0, "breakdown": r.to_dict()}}}}
    text = profile_markdown(doc)
    # shared 9 s: reference 14 s = 1.40x of default's 10 s; a free head: at most 14 / 9 = 1.56x
    assert "would take 1.40x" in text and "at most 1.56x" in text
    assert "fp32 and contiguous" in text


def test_batch_norm_calibration_sets_statistics_and_keeps_momentum():
    cfg = inference.build_config("cityscapes", ["model.ngf=4", "model.spade_hidden=8", "model.num_res_blocks=1"])
    from lggan.tasks import make_task

    task = make_task(cfg)
    G = task.build_generator()
    label, instance, _ = inference.label_batch(35, True, 1, (128, 64), seed=1)
    norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(float(m.running_var.mean()) == 1.0 for m in norms)
    momenta = [m.momentum for m in norms]
    inference.calibrate_batch_norm(G, task.generator_inputs(label, instance))
    assert not G.training
    assert [m.momentum for m in norms] == momenta
    assert all(float(m.running_var.mean()) != 1.0 for m in norms)
