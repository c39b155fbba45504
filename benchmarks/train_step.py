"""Time one whole training iteration (D step + G step) as `lggan train` runs it, against a release-style reference.

    python -m benchmarks.train_step                               # 256x128, batch 1, 1 and all threads, 3 repeats
    python -m benchmarks.train_step --sizes 256x128,512x256 --batches 1,4 --repeats 3 --json out.json
    python -m benchmarks.train_step --report out.json --markdown out.md

Every variant is a real run built by `lggan.train.build_run` from the `cityscapes` preset (official widths: ngf 64,
SPADE hidden 128, 9 residual blocks, layout "more", 35 classes + instance edges), on a synthetic city of the
benchmark size (street scenes with Cityscapes' classes and layout), with VGG off (its ImageNet weights are never
downloaded) and everything else as released: hinge + feature matching + class CE + local L1. One iteration is
`lggan.train.train_iteration` (the loop's own function: learning rates, input preparation, the two steps in the
config's order, counters), timed on a fixed batch (data loading runs in loader workers and is not part of it).

Variants, interleaved in one process (the order rotates every repeat), reported as ratios of medians:

| variant | what |
|---|---|
| default | the preset as `lggan train` runs it (train.amp=auto, train.channels_last=auto, the release's G-then-D order) |
| one_forward | default with train.step_order=one_forward (the D step judges the G step's fakes: one G forward fewer) |
| checkpointed | default with train.activation_checkpointing=true (SPADE and residual blocks recomputed in the backward) |
| fp32 | default with autocast and channels-last off |
| reference | as the release computes: fp32, contiguous, fakes regenerated after the G step, and the class-specific local branch computed densely for every class (benchmarks/reference.py) |
"""

from __future__ import annotations

import argparse
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
from benchmarks.reference import reference_forward

VARIANTS = ("default", "one_forward", "checkpointed", "fp32", "reference")


def variant_overrides(name: str, known_fields: set[str]) -> list[str]:
    """`--set` items of a variant; fields this version of lggan lacks are left out (and reported)."""
    fast_off = ["train.amp=off", "train.channels_last=off", "train.activation_checkpointing=false",
                "train.compile=false"]
    items = {"default": [], "one_forward": ["train.step_order=one_forward"],
             "checkpointed": ["train.activation_checkpointing=true"], "fp32": fast_off,
             "reference": fast_off + ["train.step_order=g_then_d"]}[name]
    return [i for i in items if i.split("=")[0] in known_fields]


def build_variant(name: str, city: Path, size: tuple[int, int], batch: int, work: Path):
    from lggan.config import Config, apply_overrides, get_preset
    from lggan.train import _start, build_run

    known = {f"{section}.{key}" for section, values in Config().to_dict().items() if isinstance(values, dict)
             for key in values}
    items = [f"data.load_size={size[0]}x{size[1]}", "data.crop_size=none", "data.num_workers=0", "data.flip=false",
             f"train.batch_size={batch}", "loss.vgg=0", "train.progress=false", "train.log_every=1000000",
             "train.sample_every=1000000", "train.checkpoint_every=1000000", "train.num_samples=1"]
    cfg = apply_overrides(get_preset("cityscapes"), items + variant_overrides(name, known))
    cfg.data.root = str(city)
    run = build_run(cfg, work / name, None, False)
    _start(run, False)
    if name == "reference":
        G = run.G
        G.forward = types.MethodType(lambda self, S: reference_forward(self, S), G)
    batch_data = next(iter(run.data.epoch_batches(0, 0)))
    return run, batch_data


def one_iteration(run, batch) -> None:
    from lggan.train import LoopStats, train_iteration

    train_iteration(run, batch, 0, LoopStats())


def measure(size: tuple[int, int], batch: int, threads: int, repeats: int, variants: list[str], seed: int) -> dict:
    from lggan.data.synthetic import generate_synth_city

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        city = work / "city"
        generate_synth_city(city, num_train=max(2 * batch, 4), num_val=1, size=size, seed=seed, progress=False,
                            workers=0)
        runs = {v: build_variant(v, city, size, batch, work) for v in variants}
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
        decisions = {v: json.loads((work / v / "run_info.json").read_text()) if (work / v / "run_info.json").is_file()
                     else None for v in variants}
        for run, _ in runs.values():
            run.log.close()
            if run.lock is not None:
                run.lock.release()
    return {"size": list(size), "batch": batch, "threads": threads, "times": times,
            "median": {v: statistics.median(t) for v, t in times.items()},
            "peak_mib": {v: peaks[v] / 2**20 for v in variants}, "run_info": decisions}


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
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write every time, peak and the machine here")
    p.add_argument("--markdown", default=None, help="write the table here too")
    p.add_argument("--report", nargs="+", default=None, help="render earlier --json files without measuring")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import os

    args = parse_args(argv)
    if args.report:
        docs = [json.loads(Path(f).read_text()) for f in args.report]
        text = "\n".join(markdown(d["results"], d["machine"]) for d in docs)
    else:
        variants = [v for v in args.variants.split(",") if v]
        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown:
            raise SystemExit(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
        threads = [os.cpu_count() or 1 if t == "all" else int(t) for t in args.threads.split(",")]
        info = machine_info(torch.device("cpu"), threads[0])
        results = [measure(parse_size(s), b, t, args.repeats, variants, args.seed)
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
