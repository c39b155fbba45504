"""Time one whole training iteration (D step + G step) as `lggan train` runs it, against a release-style reference.

    python -m benchmarks.train_step                               # 256x128, batch 1, 1 and all threads, 3 repeats
    python -m benchmarks.train_step --sizes 256x128,512x256 --batches 1,4 --repeats 3 --json out.json
    python -m benchmarks.train_step --report out.json --markdown out.md
    python -m benchmarks.train_step --profile profile.md             # torch.profiler breakdown of default vs reference

Every variant is a real run built by `lggan.training.build_run` from the `cityscapes` preset (official widths: ngf 64,
SPADE hidden 128, 9 residual blocks, layout "more", 35 classes + instance edges), on a synthetic city of the
benchmark size (street scenes with Cityscapes' classes and layout), with VGG off (its ImageNet weights are never
downloaded) and everything else as released: hinge + feature matching + class CE + local L1. One iteration is
`lggan.training.train_iteration` (the loop's own function: learning rates, input preparation, the two steps in the
config's order, counters), timed on a fixed batch (data loading runs in loader workers and is not part of it).

Variants, interleaved in one process (the order rotates every repeat), reported as ratios of medians:

| variant | what |
|---|---|
| default | the preset as `lggan train` runs it (train.amp=auto, train.channels_last=auto, the release's G-then-D order) |
| one_forward | default with train.step_order=one_forward (the D step judges the G step's fakes: one G forward fewer) |
| checkpointed | default with train.activation_checkpointing=true (SPADE and residual blocks recomputed in the backward) |
| fp32 | default with autocast and channels-last off |
| reference | as the release computes: fp32, contiguous, fakes regenerated after the G step, SPADE's convs over the whole image (each SPADE resizing the map, mlp_gamma and mlp_beta apart), E's conv1 and D's first conv dense over the one-hot map for every image, and the class-specific local branch computed densely for every class (benchmarks/reference.py) |

--profile OUT.md: instead of timing, profiles --repeats iterations (after one warm-up and one unprofiled timed
iteration) of each variant in --variants (default there: default,reference), interleaved, at the first --sizes /
--batches / --threads with torch.profiler on the CPU, and writes where the CPU time goes (benchmarks/step_profile.py:
global generator, local branch, discriminators, losses, optimiser; forward / backward; G step / D step; each part's
minimum over the profiled iterations) and the top ops by self CPU time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

from benchmarks.generator_step import machine_info, machine_line, parse_size
from benchmarks.memory import cpu_step_peak
from benchmarks.reference import concatenating_discriminator, reference_forward

VARIANTS = ("default", "one_forward", "checkpointed", "fp32", "reference")


def variant_overrides(name: str, known_fields: set[str]) -> list[str]:
    """`--set` items of a variant; fields this version of lggan lacks are left out (and reported)."""
    fast_off = ["train.amp=off", "train.channels_last=off", "train.activation_checkpointing=false",
                "train.compile=false"]
    items = {"default": [], "one_forward": ["train.step_order=one_forward"],
             "checkpointed": ["train.activation_checkpointing=true"], "fp32": fast_off,
             "reference": fast_off + ["train.step_order=g_then_d"]}[name]
    return [i for i in items if i.split("=")[0] in known_fields]


def build_variant(name: str, city: Path, size: tuple[int, int], batch: int, work: Path, extra: list[str] = ()):
    from lggan.config import Config, apply_overrides, get_preset
    from lggan.training import announce, build_run

    known = {f"{section}.{key}" for section, values in Config().to_dict().items() if isinstance(values, dict)
             for key in values}
    items = [f"data.load_size={size[0]}x{size[1]}", "data.crop_size=none", "data.num_workers=0", "data.flip=false",
             f"train.batch_size={batch}", "loss.vgg=0", "train.progress=false", "train.log_every=1000000",
             "train.sample_every=1000000", "train.checkpoint_every=1000000", "train.num_samples=1"]
    cfg = apply_overrides(get_preset("cityscapes"), items + variant_overrides(name, known) + list(extra))
    cfg.data.root = str(city)
    run = build_run(cfg, work / name, None, False)
    announce(run)  # config.json, run_info.json (read by run_info) and the banner, as lggan train writes them
    if name == "reference":
        G = run.G
        G.forward = types.MethodType(lambda self, S: reference_forward(self, S), G)
        for D in run.Ds.values():
            concatenating_discriminator(getattr(D, "module", D))
    batch_data = next(iter(run.data.epoch_batches(0, 0)))
    return run, batch_data


def one_iteration(run, batch) -> None:
    from lggan.training import LoopStats, train_iteration

    train_iteration(run, batch, 0, LoopStats())


@contextlib.contextmanager
def variant_runs(size: tuple[int, int], batch: int, variants: list[str], seed: int, extra: list[str] = ()):
    """(work folder, {variant: (run, batch)}) on a synthetic city of the benchmark size; the runs are closed after."""
    from lggan.data.synthetic import generate_synth_city
    from lggan.training import close_run

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        city = work / "city"
        generate_synth_city(city, num_train=max(2 * batch, 4), num_val=1, size=size, seed=seed, progress=False,
                            workers=0)
        runs = {v: build_variant(v, city, size, batch, work, extra) for v in variants}
        try:
            yield work, runs
        finally:
            for run, _ in runs.values():
                close_run(run)


def run_info(work: Path, variant: str) -> dict | None:
    """The speed decisions a variant's run recorded (run_info.json), if any."""
    info = work / variant / "run_info.json"
    return json.loads(info.read_text()) if info.is_file() else None


def measure(size: tuple[int, int], batch: int, threads: int, repeats: int, variants: list[str], seed: int,
            extra: list[str] = ()) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    with variant_runs(size, batch, variants, seed, extra) as (work, runs):
        times: dict[str, list[float]] = {v: [] for v in variants}
        for v in variants:  # warm-up: first-call allocations and kernel selection
            one_iteration(*runs[v])
        for r in range(repeats):
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            for v in order:
                t0 = time.perf_counter()
                one_iteration(*runs[v])
                times[v].append(time.perf_counter() - t0)
                print(f"  {size[0]}x{size[1]} b{batch} t{threads} {v}: {times[v][-1]:.2f} s", file=sys.stderr)
        peaks = {v: cpu_step_peak(lambda v=v: one_iteration(*runs[v])) for v in variants}
        decisions = {v: run_info(work, v) for v in variants}
    return {"size": list(size), "batch": batch, "threads": threads, "times": times,
            "median": {v: statistics.median(t) for v, t in times.items()},
            "peak_mib": {v: peaks[v] / 2**20 for v in variants}, "run_info": decisions}


def profile_variants(size: tuple[int, int], batch: int, threads: int, variants: list[str], seed: int,
                     extra: list[str] = (), repeats: int = 3, log=sys.stderr) -> dict:
    """Per variant: one warm-up and one unprofiled timed iteration, then `repeats` profiled iterations (interleaved,
    rotating order); the breakdown (step_profile) is the per-cell minimum over the profiled iterations."""
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.step_profile import Breakdown, Scopes, attribute, instrument
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out: dict = {"size": list(size), "batch": batch, "threads": threads, "overrides": list(extra),
                 "repeats": repeats, "variants": {}}
    with variant_runs(size, batch, variants, seed, extra) as (work, runs):
        for v in variants:
            one_iteration(*runs[v])
        timed = {}
        for v in variants:
            t0 = time.perf_counter()
            one_iteration(*runs[v])
            timed[v] = time.perf_counter() - t0
            print(f"  {size[0]}x{size[1]} b{batch} t{threads} {v}: {timed[v]:.2f} s (unprofiled)", file=log)
        found: dict[str, list] = {v: [] for v in variants}
        walls: dict[str, list[float]] = {v: [] for v in variants}
        missing: dict[str, list[str]] = {}
        for r in range(repeats):
            for v in variants[r % len(variants):] + variants[: r % len(variants)]:
                run, data = runs[v]
                G = getattr(run.G, "module", run.G)  # a DDP wrapper's module
                with Scopes() as scopes:
                    missing[v] = instrument(scopes, G, list(run.Ds.values()))
                    with profile(activities=[ProfilerActivity.CPU]) as prof:
                        t0 = time.perf_counter()
                        one_iteration(run, data)
                        walls[v].append(time.perf_counter() - t0)
                found[v].append(attribute(prof.events()))
                del prof
                print(f"  {size[0]}x{size[1]} b{batch} t{threads} {v}: {walls[v][-1]:.2f} s profiled, "
                      f"{found[v][-1].total / 1e6:.2f} s of attributed CPU time", file=log)
        for v in variants:
            out["variants"][v] = {"unprofiled_s": timed[v], "profiled_s": walls[v], "not_hooked": missing[v],
                                  "run_info": run_info(work, v),
                                  "breakdown": Breakdown.minimum(found[v]).to_dict(),
                                  "breakdowns": [{k: x for k, x in b.to_dict().items() if k != "ops"}
                                                 for b in found[v]]}
    return out


def profile_markdown(doc: dict) -> str:
    from benchmarks.step_profile import (G_LOCAL_HEAD, PARTS, Breakdown, breakdown_table, comparison_table,
                                         summary_rows, top_ops_table)

    res = doc["profile"]
    size = f"{res['size'][0]}x{res['size'][1]}"
    names = list(res["variants"])
    n = res.get("repeats", 1)
    bds = {v: Breakdown.from_dict(res["variants"][v]["breakdown"]) for v in names}
    lines = ["# One training iteration, profiled (torch.profiler, CPU)", "", machine_line(doc["machine"]), "",
             f"`python -m benchmarks.train_step --profile ...`: preset `cityscapes` "
             + (f"with {' '.join(res['overrides'])}" if res.get("overrides") else "at official widths (ngf 64, "
                "SPADE hidden 128, 9 residual blocks, layout more, 35 classes + instance edges)")
             + f", {size}, batch {res['batch']}, torch.set_num_threads({res['threads']}), VGG off. Per variant one "
             f"warm-up iteration, one unprofiled timed iteration, then {n} profiled iteration{'s' if n > 1 else ''} "
             "(variants interleaved). Times are self CPU time on the main thread in seconds (the profiler's clock is "
             "wall time, so load from other processes inflates them); "
             + ("each part (and each op) is its minimum over the profiled iterations -- load only ever adds time -- "
                "and totals are sums of these minima. " if n > 1 else "")
             + "benchmarks/step_profile.py explains the attribution.", ""]
    lines += ["| variant | unprofiled iteration s | profiled iterations s (wall) | sum of the parts s |",
              "|---|---|---|---|"]
    for v in names:
        r = res["variants"][v]
        walls = r["profiled_s"] if isinstance(r["profiled_s"], list) else [r["profiled_s"]]
        lines.append(f"| {v} | {r['unprofiled_s']:.2f} | {', '.join(f'{w:.2f}' for w in walls)} | "
                     f"{bds[v].total / 1e6:.2f} |")
    for v in names:
        b = bds[v]
        lines += ["", f"## Where the time goes: `{v}`", "", "| what | s | share |", "|---|---|---|"]
        lines += [f"| {what} | {t / 1e6:.2f} | {100 * t / b.total:.1f} % |" for what, t in summary_rows(b)]
        lines += ["", f"All parts by phase and direction (`{v}`):", ""] + breakdown_table(b)
        lines += ["", f"Top 15 ops by self CPU time (`{v}`):", ""] + top_ops_table(b)
        missing = res["variants"][v].get("not_hooked")
        if missing:
            lines += ["", f"Not instrumented (missing in this lggan): {', '.join(missing)}."]
    if "default" in bds and "reference" in bds:
        d, r = bds["default"], bds["reference"]
        head_d, head_r = d.part(G_LOCAL_HEAD), r.part(G_LOCAL_HEAD)
        common_d, common_r = d.total - head_d, r.total - head_r
        model = (common_d + head_r) / d.total
        ceiling = (common_d + head_r) / common_d
        need = d.total - (common_d + head_r) / 1.5
        unprof = res["variants"]["reference"]["unprofiled_s"] / res["variants"]["default"]["unprofiled_s"]
        big = sorted(((d.part(p), p) for p in PARTS if p != G_LOCAL_HEAD), reverse=True)[:4]
        lines += ["", "## default vs reference", ""] + comparison_table(d, r, "default", "reference")
        plan = res["variants"]["default"].get("run_info") or {}
        same = not plan.get("autocast") and not plan.get("channels_last")
        how = ("on this CPU `default` runs fp32 and contiguous, like the reference" if same else
               f"`default` also runs {plan.get('autocast') or 'fp32'}"
               f"{', channels-last' if plan.get('channels_last') else ''} here, so the shared parts differ too")
        lines += ["", f"The class-specific head is the only part the two variants compute differently ({how}): "
                  f"{head_d / 1e6:.2f} s in `default` "
                  f"against {head_r / 1e6:.2f} s in the reference ({100 * head_d / d.total:.1f} % vs "
                  f"{100 * head_r / r.total:.1f} % of the iteration). Everything else is the same code: "
                  f"{common_d / 1e6:.2f} s in `default`, {common_r / 1e6:.2f} s in the reference (same work; they "
                  f"differ by measurement noise). With the shared parts at `default`'s {common_d / 1e6:.2f} s the "
                  "reference would take "
                  f"{model:.2f}x the time of `default` (this profile's totals: {r.total / d.total:.2f}x; the "
                  f"unprofiled iterations: {unprof:.2f}x). Amdahl's bound: even a head of zero cost would give at most "
                  f"{ceiling:.2f}x. 1.5x needs `default` to lose {need / 1e6:.2f} s ({100 * need / d.total:.1f} % of "
                  "its iteration)"
                  + (f", more than the whole head ({head_d / 1e6:.2f} s) costs: the rest would have to come out of the "
                     "shared parts, of which the largest are " if need > head_d else ". The largest shared parts are ")
                  + ", ".join(f"{p} {t / 1e6:.2f} s ({100 * t / d.total:.0f} %)" for t, p in big) + "."]
    return "\n".join(lines) + "\n"


def markdown(results: list[dict], info: dict) -> str:
    lines = [machine_line(info), "",
             "| size | batch | threads | variant | s / iteration (median) | vs reference | peak alloc MiB | vs reference |",
             "|---|---|---|---|---|---|---|---|"]
    for res in results:
        ref_t = res["median"].get("reference")
        ref_m = res["peak_mib"].get("reference")
        for v, t in res["median"].items():
            speed = f"{ref_t / t:.2f}x" if ref_t else "-"
            mem = f"{res['peak_mib'][v] / ref_m:.2f}x" if ref_m else "-"
            lines.append(f"| {res['size'][0]}x{res['size'][1]} | {res['batch']} | {res['threads']} | {v} | {t:.2f} | "
                         f"{speed} | {res['peak_mib'][v]:,.0f} | {mem} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_step", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256x128", help="comma-separated WxH (multiples of 64: layout 'more')")
    p.add_argument("--batches", default="1", help="comma-separated batch sizes")
    p.add_argument("--threads", default="1,all", help="comma-separated torch thread counts; 'all' = every CPU")
    p.add_argument("--variants", default=None,
                   help=f"comma-separated, of {', '.join(VARIANTS)} (default: all; with --profile: default,reference)")
    p.add_argument("--repeats", type=int, default=3, help="timed iterations per variant (with --profile: profiled "
                   "iterations per variant; the breakdown takes each part's minimum over them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every variant, e.g. model.ngf=16 (repeatable; default: none, "
                        "the official widths)")
    p.add_argument("--json", default=None, help="write every time, peak and the machine here")
    p.add_argument("--markdown", default=None, help="write the table here too")
    p.add_argument("--report", nargs="+", default=None, help="render earlier --json files without measuring")
    p.add_argument("--profile", default=None, metavar="OUT.md",
                   help="profile --repeats iterations per variant (first size, batch and thread count) and write "
                        "the breakdown here instead of timing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import os

    args = parse_args(argv)
    if args.report:
        docs = [json.loads(Path(f).read_text()) for f in args.report]
        text = "\n".join(profile_markdown(d) if "profile" in d else markdown(d["results"], d["machine"])
                         for d in docs)
    elif args.profile:
        variants = [v for v in (args.variants or "default,reference").split(",") if v]
        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown:
            raise SystemExit(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
        t = args.threads.split(",")[0]
        threads = os.cpu_count() or 1 if t == "all" else int(t)
        info = machine_info(torch.device("cpu"), threads)
        res = profile_variants(parse_size(args.sizes.split(",")[0]), int(args.batches.split(",")[0]), threads,
                               variants, args.seed, args.overrides, args.repeats)
        info["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
        doc = {"machine": info, "profile": res}
        text = profile_markdown(doc)
        Path(args.profile).write_text(text)
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    else:
        variants = [v for v in (args.variants or ",".join(VARIANTS)).split(",") if v]
        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown:
            raise SystemExit(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
        threads = [os.cpu_count() or 1 if t == "all" else int(t) for t in args.threads.split(",")]
        info = machine_info(torch.device("cpu"), threads[0])
        results = [measure(parse_size(s), b, t, args.repeats, variants, args.seed, args.overrides)
                   for s in args.sizes.split(",") for b in map(int, args.batches.split(",")) for t in threads]
        info["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
        text = markdown(results, info)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
