"""Inference throughput of the generator, loaded and called the way `lggan generate` / `evaluate` / the Python API do.

    python -m benchmarks.inference                  # 256x128 and 512x256, batch 1 and 4, 1 and all threads
    python -m benchmarks.inference --sizes 256x128 --batches 1 --threads 1 --repeats 5
    python -m benchmarks.inference --repeats 3 --large-repeats 2 --json out.json --markdown out.md
    python -m benchmarks.inference --report a.json b.json --json ab.json --markdown ab.md   # merge runs, no measuring

The generator is built from a preset (default `cityscapes`: official widths, ngf 64, SPADE hidden 128, 9 residual
blocks, layout "more", 35 classes + instance edges), written as a checkpoint with `lggan.checkpoint.save_checkpoint`
and loaded back with `lggan.generate.load_generator` once per variant -- the same load path, eval mode, precision plan
(`lggan.precision.inference_plan`) and layout conversion as `lggan generate` and `lggan evaluate`. One timed call is
`Synthesizer.__call__(label, instance)`: class ids [B,H,W] + instance ids -> one-hot S (+ edges) on the device ->
G forward under no_grad (and autocast when the plan says so) -> every output as float32. PNG encoding and file
reading are not part of it. Weights are the preset's initialisation, with batch-norm statistics from one train-mode
pass on another label map (`calibrate_batch_norm`), so that eval-mode activations have a trained model's scale (speed
does not depend on the values; `--no-calibrate` keeps BN's initial statistics).

Variants (all loaded from the same checkpoint, interleaved in one process; the order rotates every repeat):

| variant | load_generator(amp=..., channels_last=...) |
|---|---|
| fp32 | amp="off", channels_last="off": fp32, contiguous (NCHW) |
| channels_last | amp="off", channels_last="on": fp32, weights and input in channels-last (NHWC) |
| auto | amp="auto", channels_last="auto": what a user gets (bf16 + channels-last only where bf16 is native) |
| bf16 | amp="bf16", channels_last="auto": forced bf16 autocast (not run by default: emulated, slow, without native bf16) |
| today | as fp32, with the path before the region-constant work: every SPADE's convs over the whole image as released (benchmarks/reference.py `reference_global`) and E's conv1 dense |
| today_auto | as auto, with that same dense path |

Label maps: Cityscapes-like street scenes with 15-20 classes present (benchmarks/labels.py; 10-15 of 151 for an
ade20k-like preset); batch 1 uses the first image of the batch-4 set. Per configuration (size, batch, threads):
one untimed warm-up call per variant (its time is kept in --json as `first_call_s`), then `--repeats` interleaved
timed calls (`--large-repeats` for calls of >= 4 x 512 x 256 pixels); images/s = batch / median call time.
`--memory` adds one call per variant under the profiler's memory events (benchmarks/memory.py): the peak bytes of
tensor storage that call allocates (activations and temporaries; the weights are loaded before it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from benchmarks.generator_step import machine_info, machine_line, parse_size, resolve_device
from benchmarks.labels import label_batch

VARIANTS = {  # name: (amp, channels_last, the region-constant path) as load_generator / `lggan generate` take them
    "fp32": ("off", "off", True),
    "channels_last": ("off", "on", True),
    "auto": ("auto", "auto", True),
    "bf16": ("bf16", "auto", True),
    "today": ("off", "off", False),
    "today_auto": ("auto", "auto", False),
}
DEFAULT_VARIANTS = ("today", "fp32", "channels_last", "auto")  # the first is what the ratios compare with
LARGE_PIXELS = 4 * 512 * 256  # calls with at least this many pixels (batch x W x H) use --large-repeats
FEATURES = ("avx2", "avx512_f", "avx512_bf16", "amx_bf16", "avx_vnni")


# ----------------------------------------------------------------------------------------------------- set-up

def build_config(preset: str, overrides: list[str]):
    from lggan.config import apply_overrides, get_preset

    return apply_overrides(get_preset(preset), list(overrides))


def calibrate_batch_norm(G: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Sets every batch norm's running statistics to those of one train-mode forward pass on `inputs`.

    A freshly initialised generator keeps BN's initial statistics (mean 0, var 1), so in eval mode nothing normalises
    SPADE's activations: at the official widths they grow to ~1e30 and the output's sign then depends on the
    summation order of each backend (a channels-last image differed from a contiguous one by up to 2). After one
    train-mode pass (no grad) the eval-mode activations have the scale of a trained model's. Speed is unaffected."""
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one pass, exactly that pass's statistics
    G.train()
    with torch.no_grad():
        G(*inputs)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    G.eval()


def write_checkpoint(cfg, where: Path, seed: int, calibration: tuple[torch.Tensor, ...] | None = None) -> Path:
    """A checkpoint folder (generator weights + config.json) of a freshly initialised generator of `cfg`, its batch
    norms calibrated on the generator inputs `calibration` when given."""
    from lggan.checkpoint import save_checkpoint
    from lggan.tasks import make_task

    torch.manual_seed(seed)
    G = make_task(cfg).build_generator()
    if calibration is not None:
        calibrate_batch_norm(G, calibration)
    return save_checkpoint(where, 0, G, None, {}, cfg.to_dict(), keep_last=1)


def load_variant(checkpoint: Path, name: str, device: torch.device):
    import types

    from benchmarks.reference import reference_global
    from lggan.generate import load_generator

    amp, channels_last, regions = VARIANTS[name]
    synth = load_generator(checkpoint, device, use_ema=True, amp=amp, channels_last=channels_last)
    if not regions:  # the dense path: G_g as released, E's conv1 over the one-hot map
        G = synth.generator
        G.region_constant = False
        G.global_generator.forward = types.MethodType(reference_global, G.global_generator)
    return synth


def repeats_for(size: tuple[int, int], batch: int, repeats: int, large_repeats: int | None) -> int:
    if large_repeats is not None and batch * size[0] * size[1] >= LARGE_PIXELS:
        return large_repeats
    return repeats


def rotation(variants: list[str], r: int) -> list[str]:
    """The order of repeat r: the variant list rotated by r, so every variant runs first / last equally often."""
    k = r % len(variants)
    return variants[k:] + variants[:k]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(synth, label, instance, device: torch.device) -> tuple[float, torch.Tensor]:
    _sync(device)
    t0 = time.perf_counter()
    out = synth(label, instance, native=True)  # at the benchmark size, not the training size
    _sync(device)
    return time.perf_counter() - t0, out.image


# ----------------------------------------------------------------------------------------------------- measuring

@dataclass
class Options:
    sizes: list[tuple[int, int]]
    batches: list[int]
    threads: list[int]
    variants: list[str]
    repeats: int
    large_repeats: int | None
    seed: int
    device: torch.device
    calibrate: bool = True
    memory: bool = False


def measure(cfg, opts: Options, log=sys.stderr) -> tuple[list[dict], dict]:
    """Times every (threads, size, batch) configuration; returns (results, plans of the variants)."""
    from lggan.tasks import make_task

    use_instance = bool(cfg.data.use_instance)
    calibration = None
    if opts.calibrate:
        label, instance, _ = label_batch(cfg.data.num_classes, use_instance, 1, opts.sizes[0], opts.seed + 1)
        calibration = make_task(cfg).generator_inputs(label, instance)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_checkpoint(cfg, Path(tmp) / "run", opts.seed, calibration)
        synths = {v: load_variant(ckpt, v, opts.device) for v in opts.variants}
    plans = {v: {**s.plan.to_dict(), "line": s.plan.line()} for v, s in synths.items()}
    params = sum(p.numel() for p in next(iter(synths.values())).generator.parameters())
    results = []
    for threads in opts.threads:
        torch.set_num_threads(threads)
        for size in opts.sizes:
            labels, instances, counts = label_batch(cfg.data.num_classes, use_instance, max(opts.batches), size,
                                                    opts.seed)
            for batch in opts.batches:
                label = labels[:batch].to(opts.device)
                instance = instances[:batch].to(opts.device) if instances is not None else None
                n = repeats_for(size, batch, opts.repeats, opts.large_repeats)
                first, images = {}, {}
                for v in opts.variants:  # warm-up: oneDNN primitive creation, first allocations
                    first[v], images[v] = timed_call(synths[v], label, instance, opts.device)
                    print(f"  {size[0]}x{size[1]} b{batch} t{threads} {v}: warm-up {first[v]:.2f} s", file=log)
                times: dict[str, list[float]] = {v: [] for v in opts.variants}
                for r in range(n):
                    for v in rotation(list(opts.variants), r):
                        t, _ = timed_call(synths[v], label, instance, opts.device)
                        times[v].append(t)
                        print(f"  {size[0]}x{size[1]} b{batch} t{threads} {v}: {t:.2f} s ({batch / t:.3f} img/s)",
                              file=log)
                base = images[opts.variants[0]].float().cpu()
                diff = {v: float((images[v].float().cpu() - base).abs().max()) for v in opts.variants}
                med = {v: statistics.median(t) for v, t in times.items()}
                peaks = {}
                if opts.memory:
                    from benchmarks.memory import cpu_step_peak

                    peaks = {v: cpu_step_peak(lambda v=v: synths[v](label, instance)) / 2**20 for v in opts.variants}
                results.append({
                    "peak_mib": peaks,
                    "size": list(size), "batch": batch, "threads": threads, "repeats": n,
                    "classes_present": counts[:batch], "times": times, "first_call_s": first,
                    "median_s": med, "min_s": {v: min(t) for v, t in times.items()},
                    "images_per_s": {v: batch / m for v, m in med.items()},
                    "max_abs_diff_vs_first_variant": diff,
                })
    return results, {"plans": plans, "generator_parameters": params}


# ----------------------------------------------------------------------------------------------------- report

LABELS = {"fp32": "fp32 contiguous", "channels_last": "fp32 channels-last", "auto": "`--amp auto`",
          "bf16": "`--amp bf16`", "today": "fp32, dense SPADE", "today_auto": "`--amp auto`, dense SPADE"}


def _present(counts: list[int]) -> str:
    lo, hi = min(counts), max(counts)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _plan_word(plan: dict) -> str:
    cast = plan["autocast"] or "fp32"
    return f"{cast}, {'channels-last' if plan['channels_last'] else 'contiguous'}"


def markdown(runs: list[dict]) -> str:
    """One table over the results of one or more runs (the same variants); each run's machine line above it."""
    variants = list(runs[0]["results"][0]["median_s"]) if runs and runs[0]["results"] else []
    if any(list(r["median_s"]) != variants for run in runs for r in run["results"]):
        return "\n".join(markdown([run]) for run in runs)
    results = [r for run in runs for r in run["results"]]
    extra = runs[0]["setup"]
    plans = extra["plans"]
    lines = []
    for i, run in enumerate(runs):
        info = run["machine"]
        took = f" ({info['wall_s'] / 60:.0f} min)" if "wall_s" in info else ""
        lines += [(f"Run {i + 1}{took}: " if len(runs) > 1 else "") + machine_line(info), ""]
    lines += [f"CPU features: {runs[0]['machine'].get('cpu_features', '?')}. Model: preset `{extra['preset']}`"
              f"{' with ' + ' '.join(extra['overrides']) if extra['overrides'] else ''} "
              f"({extra['generator_parameters'] / 1e6:.1f} M generator parameters"
              + (", batch norm calibrated on one label map" if extra.get("batch_norm_calibrated") else "")
              + "), loaded with "
              "`lggan.generate.load_generator`; one call = `Synthesizer(label, instance)`, outputs float32.",
              "Plans: " + "; ".join(f"{v} = {_plan_word(plans[v])} (amp={plans[v]['amp']}, channels_last="
                                    f"{plans[v]['channels_last_mode']})" for v in variants) + ".", ""]
    head = " | ".join(f"{LABELS.get(v, v)} img/s" for v in variants)
    ratios = [v for v in variants if v != variants[0]]
    rhead = "".join(f" | {LABELS.get(v, v)} / {LABELS.get(variants[0], variants[0])}" for v in ratios)
    lines += [f"| size | batch | threads | classes present | repeats | {head}{rhead} | "
              f"{LABELS.get(variants[0], variants[0])} s/image |",
              "|---|---|---|---|---|" + "---|" * (len(variants) + len(ratios) + 1)]
    for res in results:
        ips = res["images_per_s"]
        cells = " | ".join(f"{ips[v]:.3f}" for v in variants)
        rcells = "".join(f" | {ips[v] / ips[variants[0]]:.2f}x" for v in ratios)
        lines.append(f"| {res['size'][0]}x{res['size'][1]} | {res['batch']} | {res['threads']} | "
                     f"{_present(res['classes_present'])} | {res['repeats']} | {cells}{rcells} | "
                     f"{1 / ips[variants[0]]:.2f} |")
    if any(r.get("peak_mib") for r in results):
        lines += ["", "Peak tensor memory of one call, MiB (activations and temporaries, benchmarks/memory.py):", "",
                  "| call | " + " | ".join(LABELS.get(v, v) for v in variants) + " |",
                  "|---|" + "---|" * len(variants)]
        for res in results:
            if res.get("peak_mib"):
                lines.append(f"| {res['size'][0]}x{res['size'][1]}, batch {res['batch']}, {res['threads']} thread(s) | "
                             + " | ".join(f"{res['peak_mib'][v]:,.0f}" for v in variants) + " |")
    lines += ["", "images/s = batch / median time of one call over the interleaved repeats (after one untimed "
              "warm-up call per variant); the ratios are ratios of these medians (> 1: faster than "
              f"{LABELS.get(variants[0], variants[0])})."]
    if ratios:
        worst = {v: max(r["max_abs_diff_vs_first_variant"][v] for r in results) for v in ratios}
        lines.append("Largest |difference| of the synthesised images (range [-1, 1]) from "
                     f"{LABELS.get(variants[0], variants[0])}, over all rows: "
                     + ", ".join(f"{LABELS.get(v, v)} {worst[v]:.1e}" for v in ratios) + ".")
    return "\n".join(lines) + "\n"


def load_runs(paths: list[str]) -> list[dict]:
    """The runs in --json files: a file holds one run, or {"runs": [...]} (what --report --json writes)."""
    runs = []
    for f in paths:
        doc = json.loads(Path(f).read_text())
        runs += doc["runs"] if "runs" in doc else [doc]
    return runs


# ----------------------------------------------------------------------------------------------------- command line

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256x128,512x256", help="comma-separated WxH (multiples of 64 for layout 'more')")
    p.add_argument("--batches", default="1,4", help="comma-separated batch sizes")
    p.add_argument("--threads", default="1,all", help="comma-separated torch thread counts; 'all' = every CPU")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per variant and configuration")
    p.add_argument("--large-repeats", type=int, default=None,
                   help="timed calls for configurations of >= 4 x 512 x 256 pixels per call (default: --repeats)")
    p.add_argument("--preset", default="cityscapes", help="config preset the generator is built from")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. model.ngf=16 (repeatable)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="keep the initial batch-norm statistics (default: one train-mode pass on a label map of the "
                        "first size sets them, see calibrate_batch_norm)")
    p.add_argument("--memory", action="store_true", help="also measure each call's peak tensor memory (one more "
                   "call per variant, under the profiler)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write every time, the plans and the machine here (with --report: "
                   "the merged runs)")
    p.add_argument("--markdown", default=None, help="write the table here too")
    p.add_argument("--report", nargs="+", default=None,
                   help="render earlier --json files as one table without measuring")
    args = p.parse_args(argv)
    if args.repeats < 1 or (args.large_repeats is not None and args.large_repeats < 1):
        p.error("--repeats / --large-repeats must be >= 1")
    return args


def cpu_features() -> str:
    from lggan.precision import cpu_bf16_native, cpu_flags

    flags = cpu_flags()
    native = cpu_bf16_native(flags)
    return (", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in FEATURES)
            + f"; bf16 native: {'yes' if native else 'no'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        runs = load_runs(args.report)
        text = markdown(runs)
        if args.json:
            Path(args.json).write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    else:
        variants = [v for v in args.variants.split(",") if v]
        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown or not variants:
            raise SystemExit(f"--variants: unknown {', '.join(unknown) or '(none given)'} "
                             f"(known: {', '.join(VARIANTS)})")
        threads = [os.cpu_count() or 1 if t == "all" else int(t) for t in args.threads.split(",") if t]
        device = resolve_device(args.device)
        opts = Options(sizes=[parse_size(s) for s in args.sizes.split(",") if s],
                       batches=[int(b) for b in args.batches.split(",") if b], threads=threads, variants=variants,
                       repeats=args.repeats, large_repeats=args.large_repeats, seed=args.seed, device=device,
                       calibrate=args.calibrate, memory=args.memory)
        cfg = build_config(args.preset, args.overrides)
        info = machine_info(device, threads[0])
        if len(threads) > 1:  # machine_line prints torch.set_num_threads(<this>); the table has a threads column
            info["threads"] = " or ".join(map(str, threads)) + ", see the threads column"
        info["cpu_features"] = cpu_features()
        started = time.perf_counter()
        results, setup = measure(cfg, opts)
        info["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
        info["wall_s"] = round(time.perf_counter() - started, 1)
        doc = {"machine": info, "setup": {**setup, "preset": args.preset, "overrides": args.overrides,
                                          "batch_norm_calibrated": args.calibrate},
               "results": results}
        text = markdown([doc])
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
