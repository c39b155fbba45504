"""Generator forward+backward time and peak memory: LGGAN (S5) vs global-only S1 vs the plain per-class reference.

    python -m benchmarks.generator_step                      # the full table (slow on CPU: ngf=64 is ~8 s/image)
    python -m benchmarks.generator_step --quick              # synth widths at 128x64, a minute or two
    python -m benchmarks.generator_step --widths 16 --classes 35 --batches 1 --repeats 5 --json out.json

Variants, all timed in the same process, interleaved (the order rotates every repeat) so that load from other
processes hits them alike; times are per image (step time / batch), the table shows the median over the repeats:

* ``lggan``: LGGANGenerator (full S5: local branch with conv combine, classifier, weight maps), sparse local branch.
* ``s1``: LGGANGenerator(use_local=False), the global generator only.
* ``reference``: the same LGGAN model and weights, but the class-specific part of G_l computed by the plain dense
  per-class code of benchmarks/reference.py (every class's conv7x7 over the whole image, present or not).
* local branch alone (``local ours`` / ``local ref``): only the class-specific part of G_l, i.e. from f' and the masks
  M to the class images I^l_i (Eq. 1) and I^L (Eq. 4), forward + backward of L1(I^L) + the local L1 of Eq. 2.  G_l's
  residual blocks and up-convs are the same code in both and are left out (they are part of the generator rows).

The generator step's loss is the generator-only part of a training step: L1 on every output the GAN/L1 terms use
(I^C, I^G, I^L for LGGAN; I^C for S1), plus for LGGAN the class CE (Eq. 5) and the local L1 (Eq. 2) -- no
discriminator or VGG, which cost the same for every variant.  Models are in train mode; parameter gradients are set
to None before every step, so their allocation is part of the step.

Peak memory (see benchmarks/memory.py): on CPU the peak of PyTorch allocator bytes recorded by the profiler during the
first (warm-up) step, which is not timed; on CUDA torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # the CPU profiler (memory pass) otherwise logs to stderr

import torch

from benchmarks.labels import KINDS, make_batch
from benchmarks.memory import PeakMemory, step_peak
from benchmarks.reference import reference_forward, reference_local_head
from lggan import losses as L
from lggan.config import PRESETS
from lggan.models.class_conv import combine_class_images
from lggan.models.generator import LGGANGenerator

GEN_VARIANTS = ("lggan", "s1", "reference")
LOCAL_VARIANTS = ("local_ours", "local_ref")
MiB = 2**20


# ----------------------------------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Width:
    ngf: int
    spade_hidden: int
    num_res_blocks: int
    name: str


def width_spec(ngf: int) -> Width:
    """64: the official widths (cityscapes preset); 16: the synth preset; other n: synth-like (2n hidden, 3 blocks)."""
    if ngf == 64:
        m = PRESETS["cityscapes"]().model
        return Width(m.ngf, m.spade_hidden, m.num_res_blocks, "official")
    m = PRESETS["synth"]().model
    if ngf == m.ngf:
        return Width(m.ngf, m.spade_hidden, m.num_res_blocks, "synth")
    return Width(ngf, 2 * ngf, m.num_res_blocks, "synth-like")


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 256x128, got {text!r}") from None
    if w % 32 or h % 32 or w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"size {text}: width and height must be positive multiples of 32")
    return w, h


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def size_list(text: str) -> list[tuple[int, int]]:
    return [parse_size(v) for v in text.split(",") if v.strip()]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available in this torch build / machine")
    return device


# ----------------------------------------------------------------------------------------------------- machine

def machine_info(device: torch.device, threads: int) -> dict:
    cpu, physical = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
        phys = core = None
        for line in text.splitlines() + [""]:
            if line.startswith("physical id"):
                phys = line.split(":", 1)[1].strip()
            elif line.startswith("core id"):
                core = line.split(":", 1)[1].strip()
            elif not line.strip():
                if core is not None:
                    physical.add((phys, core))
                phys = core = None
    except OSError:
        pass
    info = {"cpu": cpu, "logical_cpus": os.cpu_count(), "physical_cores": len(physical) or None,
            "torch": torch.__version__, "python": platform.python_version(), "threads": threads,
            "device": str(device), "load_average_start": [round(v, 2) for v in os.getloadavg()]}
    # glibc malloc settings change CPU step times a lot (page faults of big temporaries, see README).
    info["allocator_env"] = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "LD_PRELOAD"}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_line(info: dict) -> str:
    cores = f"{info['logical_cpus']} logical CPUs"
    if info.get("physical_cores"):
        cores += f" ({info['physical_cores']} cores)"
    dev = info["device"] + (f" ({info['gpu']})" if info.get("gpu") else "")
    load = "/".join(str(v) for v in info["load_average_start"])
    end = info.get("load_average_end")
    load = f"{load} at start" + (f", {'/'.join(str(v) for v in end)} at end" if end else "")
    alloc = ""
    if "allocator_env" in info:
        env = info["allocator_env"]
        alloc = "; " + (" ".join(f"{k}={v}" for k, v in env.items()) if env else "default glibc malloc settings")
    return (f"CPU: {info['cpu']}, {cores}; torch {info['torch']}, Python {info['python']}; "
            f"torch.set_num_threads({info['threads']}); device {dev}{alloc}; load average (1/5/15 min) {load}")


# ----------------------------------------------------------------------------------------------------- steps

def generator_loss(out, target: torch.Tensor, M: torch.Tensor, use_local: bool) -> torch.Tensor:
    loss = L.l1_loss(out.image, target)
    if use_local:
        loss = (loss + L.l1_loss(out.image_global, target) + L.l1_loss(out.image_local, target)
                + L.class_ce_loss(out.class_logits, out.class_valid)
                + L.local_l1_loss(out.class_images, target, M))
    return loss


def zero_grad(params: list[torch.nn.Parameter]) -> None:
    for p in params:
        p.grad = None


@dataclass
class Case:
    """One timed variant: a step function plus the tensors live before it (for the memory base)."""

    step: Callable[[], None]
    live: list[torch.Tensor]
    times: list[float] = field(default_factory=list)
    memory: PeakMemory | None = None


def build_cases(lggan: LGGANGenerator, s1: LGGANGenerator, S: torch.Tensor, parts: set[str],
                seed: int, with_reference: bool = True) -> dict[str, Case]:
    C = lggan.num_classes
    M = S[:, :C]
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(S.shape[0], 3, *S.shape[-2:], generator=g) * 2 - 1).to(S.device)
    params_l = list(lggan.parameters())
    params_s1 = list(s1.parameters())
    state_l = params_l + list(lggan.buffers())
    state_s1 = params_s1 + list(s1.buffers())
    cases: dict[str, Case] = {}

    if "generator" in parts:
        def step_lggan() -> None:
            zero_grad(params_l)
            generator_loss(lggan(S), target, M, True).backward()

        def step_s1() -> None:
            zero_grad(params_s1)
            generator_loss(s1(S), target, M, False).backward()

        def step_reference() -> None:
            zero_grad(params_l)
            generator_loss(reference_forward(lggan, S), target, M, True).backward()

        cases["lggan"] = Case(step_lggan, state_l + [S, target])
        cases["s1"] = Case(step_s1, state_s1 + [S, target])
        if with_reference:
            cases["reference"] = Case(step_reference, state_l + [S, target])

    if "local" in parts:
        local = lggan.local
        ngf = local.class_conv.in_channels
        f = torch.relu(torch.randn(S.shape[0], ngf, *S.shape[-2:], generator=g)).to(S.device).requires_grad_()
        params_h = [local.class_conv.weight, local.class_conv.bias, local.combine.weight, local.combine.bias]

        def step_local_ours() -> None:
            zero_grad(params_h + [f])
            I = local.class_conv(f, M)
            I_L = torch.tanh(combine_class_images(I, local.combine.weight, local.combine.bias))
            (L.l1_loss(I_L, target) + L.local_l1_loss(I, target, M)).backward()

        def step_local_ref() -> None:
            zero_grad(params_h + [f])
            I, I_L = reference_local_head(local, f, M)
            (L.l1_loss(I_L, target) + L.local_l1_loss(I, target, M)).backward()

        cases["local_ours"] = Case(step_local_ours, params_h + [f, S, target])
        if with_reference:
            cases["local_ref"] = Case(step_local_ref, params_h + [f, S, target])
    return cases


def tile_stats(lggan: LGGANGenerator, S: torch.Tensor) -> dict:
    """How many (sample, class, tile) windows the sparse branch computes, out of all B*C*tiles."""
    conv = lggan.local.class_conv
    M = S[:, : lggan.num_classes]
    f = torch.zeros(S.shape[0], conv.in_channels, *S.shape[-2:], device=S.device)
    with torch.no_grad():
        I = conv(f, M)
    ny, nx = I.grid
    total = S.shape[0] * lggan.num_classes * ny * nx
    n = int(I.delta.shape[0])
    return {"tiles_computed": n, "tiles_total": total, "tile_fraction": n / total,
            "tiles_per_image": n / S.shape[0], "tiles_per_class_image": ny * nx}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_config(width: Width, size: tuple[int, int], num_classes: int, batches: list[int], repeats: int,
               device: torch.device, parts: set[str], seed: int, log: Callable[[str], None],
               ref_batches: list[int] | None = None) -> list[dict]:
    kind = KINDS[num_classes]
    semantic_nc = num_classes + (1 if kind.use_instance else 0)
    kw = {"ngf": width.ngf, "spade_hidden": width.spade_hidden, "num_res_blocks": width.num_res_blocks}
    torch.manual_seed(seed)
    lggan = LGGANGenerator(num_classes, semantic_nc, **kw).to(device).train()
    torch.manual_seed(seed)
    s1 = LGGANGenerator(num_classes, semantic_nc, use_local=False, **kw).to(device).train()
    results = []
    for batch in batches:
        S, counts = make_batch(num_classes, batch, size, seed)
        S = S.to(device)
        cases = build_cases(lggan, s1, S, parts, seed, ref_batches is None or batch in ref_batches)
        names = list(cases)
        label = f"ngf={width.ngf} {size[0]}x{size[1]} C={num_classes} B={batch}"
        # Warm-up = memory pass (not timed): one step of each variant under the allocation tracker.
        for name in names:
            t = time.perf_counter()
            cases[name].memory = step_peak(cases[name].step, device, cases[name].live)
            log(f"{label} {name}: warm-up/memory {time.perf_counter() - t:.1f} s, "
                f"peak {cases[name].memory.peak / MiB:.0f} MiB")
        for r in range(repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                sync(device)
                t = time.perf_counter()
                cases[name].step()
                sync(device)
                cases[name].times.append(time.perf_counter() - t)
            log(f"{label} repeat {r + 1}/{repeats}: "
                + ", ".join(f"{n} {cases[n].times[-1] / batch:.3f}" for n in names) + " s/img")
        entry = dict(ngf=width.ngf, spade_hidden=width.spade_hidden, num_res_blocks=width.num_res_blocks,
                     width_name=width.name, size=list(size), num_classes=num_classes, label_kind=kind.name,
                     batch=batch, repeats=repeats, threads=torch.get_num_threads(), present_classes=counts, **tile_stats(lggan, S), variants={})
        for name, case in cases.items():
            median = statistics.median(case.times)
            entry["variants"][name] = {
                "times_s": case.times, "median_s": median, "min_s": min(case.times),
                "median_s_per_image": median / batch, "min_s_per_image": min(case.times) / batch,
                "memory_base_bytes": case.memory.base, "memory_increase_bytes": case.memory.increase,
                "memory_peak_bytes": case.memory.peak}
        results.append(entry)
        del cases
    return results


# ----------------------------------------------------------------------------------------------------- report

def _v(entry: dict, name: str, key: str) -> float:
    v = entry["variants"].get(name)
    return v[key] if v else math.nan


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _mib(x: float) -> str:
    return "–" if math.isnan(x) else f"{x / MiB:,.0f}"


def _config_cols(e: dict) -> str:
    pc = e["present_classes"]
    present = f"{min(pc)}–{max(pc)}" if min(pc) != max(pc) else str(pc[0])
    return (f"| {e['ngf']} ({e['width_name']}) | {e['size'][0]}x{e['size'][1]} | {e['num_classes']} ({present}) "
            f"| {e['batch']} ")


def find(results: list[dict], **kw) -> dict | None:
    for e in results:
        if all(e[k] == v for k, v in kw.items()):
            return e
    return None


def markdown(results: list[dict], infos: list[dict]) -> str:
    """The README tables; `infos` are the machine descriptions of the runs that produced `results`."""
    out = []
    for info in infos:
        run = f" (run: {info['run']})" if len(infos) > 1 and info.get("run") else ""
        out += [f"**Machine{run}.** " + machine_line(info) + ".", ""]
    reps = sorted({e.get("repeats") for e in results if e.get("repeats")})
    out += ["Times are the median of " + "/".join(map(str, reps)) + " interleaved repeats after one warm-up step "
            "(the warm-up step is the memory pass), per image (step time / batch). Reference: the same model and "
            "weights with the class-specific part of G_l computed densely per class (benchmarks/reference.py); "
            "– = not run.", ""]
    gens = [e for e in results if "lggan" in e["variants"]]
    if gens:
        out += ["**Generator step (forward + backward), s/image**", "",
                "| ngf | size | classes (present) | batch | LGGAN | S1 | reference | LGGAN / S1 | reference / LGGAN |",
                "|---|---|---|---|---|---|---|---|---|"]
        for e in gens:
            lg, s1, ref = (_v(e, n, "median_s_per_image") for n in GEN_VARIANTS)
            out.append(_config_cols(e) + f"| {_fmt(lg)} | {_fmt(s1)} | {_fmt(ref)} | {_fmt(lg / s1, 2)} "
                       f"| {_fmt(ref / lg, 2)} |")
        out += ["", ("**Peak memory of a generator step, MiB** (PyTorch allocator bytes: weights + input + the step's "
                     "peak of activations, temporaries and gradients; per image = peak / batch)"), "",
                ("| ngf | size | classes (present) | batch | LGGAN peak | S1 peak | reference peak "
                 "| LGGAN step increase | LGGAN peak / image |"), "|---|---|---|---|---|---|---|---|---|"]
        for e in gens:
            out.append(_config_cols(e) + "| " + " | ".join(_mib(_v(e, n, "memory_peak_bytes")) for n in GEN_VARIANTS)
                       + f" | {_mib(_v(e, 'lggan', 'memory_increase_bytes'))}"
                       f" | {_mib(_v(e, 'lggan', 'memory_peak_bytes') / e['batch'])} |")
    locs = [e for e in results if "local_ours" in e["variants"]]
    if locs:
        out += ["", ("**Local branch alone** (class-specific part of G_l: f', M -> I^l_i -> I^L, forward + "
                     "backward), ms/image"), "",
                ("| ngf | size | classes (present) | batch | tiles computed | ours | reference | speed-up "
                 "| ours peak MiB | ref peak MiB |"), "|---|---|---|---|---|---|---|---|---|---|"]
        for e in locs:
            ours, ref = (_v(e, n, "median_s_per_image") * 1000 for n in LOCAL_VARIANTS)
            out.append(_config_cols(e) + f"| {100 * e['tile_fraction']:.1f} % | {_fmt(ours, 1)} | {_fmt(ref, 1)} "
                       f"| {_fmt(ref / ours, 1)}{'' if math.isnan(ref) else 'x'} | {_mib(_v(e, 'local_ours', 'memory_peak_bytes'))} "
                       f"| {_mib(_v(e, 'local_ref', 'memory_peak_bytes'))} |")
    goals = goal_rows(results)
    if goals:
        ngfs = sorted({e["ngf"] for e in results})
        note = "" if 64 in ngfs else f"; the goals are stated for ngf=64, shown here for ngf={ngfs[-1]}"
        out += ["", f"**Goals** (issue 7: CPU, ngf=64, 256x128{note})", "",
                "| goal | configuration | measured | met |", "|---|---|---|---|"]
        out += [f"| {g} | {c} | {m} | {'yes' if ok else 'no'} |" for g, c, m, ok in goals]
    return "\n".join(out) + "\n"


def goal_rows(results: list[dict]) -> list[tuple[str, str, str, bool]]:
    """The issue's goals for every measured configuration at the official width (or whatever width was run)."""
    rows = []
    widths = sorted({e["ngf"] for e in results}, reverse=True)
    ngf = 64 if 64 in widths else widths[0] if widths else None
    for e in results:
        if e["ngf"] != ngf:
            continue
        where = f"ngf={e['ngf']}, {e['size'][0]}x{e['size'][1]}, {e['num_classes']} classes, batch {e['batch']}"
        C = e["num_classes"]
        if "lggan" in e["variants"] and "s1" in e["variants"]:
            limit = 1.6 if C <= 35 else 1.8
            med = _v(e, "lggan", "median_s") / _v(e, "s1", "median_s")
            mn = _v(e, "lggan", "min_s") / _v(e, "s1", "min_s")
            rows.append((f"LGGAN / S1 step <= {limit}", where, f"{med:.2f} (min-based {mn:.2f})", med <= limit))
        if "local_ours" in e["variants"] and "local_ref" in e["variants"]:
            need = 4 if C <= 35 else 10
            med = _v(e, "local_ref", "median_s") / _v(e, "local_ours", "median_s")
            mn = _v(e, "local_ref", "min_s") / _v(e, "local_ours", "min_s")
            rows.append((f"local branch >= {need}x faster than reference", where,
                         f"{med:.1f}x (min-based {mn:.1f}x)", med >= need))
    for e4 in results:
        if e4["ngf"] != ngf or e4["batch"] == 1 or "lggan" not in e4["variants"]:
            continue
        e1 = find(results, ngf=e4["ngf"], size=e4["size"], num_classes=e4["num_classes"], batch=1)
        if not e1:
            continue
        where = (f"ngf={e4['ngf']}, {e4['size'][0]}x{e4['size'][1]}, {e4['num_classes']} classes, "
                 f"batch {e4['batch']} vs 1, LGGAN")
        p4, p1 = _v(e4, "lggan", "memory_peak_bytes"), _v(e1, "lggan", "memory_peak_bytes")
        i4, i1 = _v(e4, "lggan", "memory_increase_bytes"), _v(e1, "lggan", "memory_increase_bytes")
        b = e4["batch"]
        measured = (f"{p4 / p1:.2f}x total peak ({i4 / i1:.2f}x step increase alone; per image "
                    f"{p4 / b / p1:.2f}x)")
        rows.append((f"peak memory, batch {b} step <= 2x batch 1 step", where, measured, p4 / p1 <= 2))
    return rows


# ----------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.generator_step", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=size_list, default=None, help="WxH list, e.g. 256x128,512x256 (default 256x128)")
    p.add_argument("--classes", type=int_list, default=None, help="35 (Cityscapes-like) and/or 151 (ADE20K-like)")
    p.add_argument("--batches", type=int_list, default=None, help="batch sizes (default 1,4)")
    p.add_argument("--widths", type=int_list, default=None,
                   help="ngf list: 64 = official widths, 16 = synth preset (default 64,16)")
    p.add_argument("--repeats", type=int, default=None, help="timed steps per variant (default 3, --quick 2)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1, for repeatability)")
    p.add_argument("--parts", default="generator,local", help="generator and/or local (default both)")
    p.add_argument("--ref-batches", type=int_list, default=None,
                   help="run the (slow, memory-hungry) reference variants only at these batch sizes (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", nargs="+", metavar="JSON",
                   help="no benchmark: print the tables of earlier --json files (merged, e.g. one run per width)")
    p.add_argument("--quick", action="store_true",
                   help="fast subset: ngf 16, 128x64, 35 and 151 classes, batch 1 and 4, 2 repeats")
    p.add_argument("--json", metavar="OUT", help="write all measurements (raw times, memory) as JSON")
    p.add_argument("--markdown", metavar="OUT", help="also write the markdown tables to this file")
    args = p.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([(128, 64)] if quick else [(256, 128)])
    args.classes = args.classes or [35, 151]
    args.batches = args.batches or [1, 4]
    args.widths = args.widths or ([16] if quick else [64, 16])
    args.repeats = args.repeats or (2 if quick else 3)
    bad = [c for c in args.classes if c not in KINDS]
    if bad:
        p.error(f"--classes: supported are {sorted(KINDS)}, got {bad}")
    parts = {s.strip() for s in args.parts.split(",") if s.strip()}
    if not parts or parts - {"generator", "local"}:
        p.error("--parts: generator and/or local")
    args.parts = parts
    if args.repeats < 1 or args.threads < 1 or min(args.batches) < 1:
        p.error("--repeats, --threads and --batches must be >= 1")
    return args


def run_description(args: argparse.Namespace) -> str:
    sizes = ",".join(f"{w}x{h}" for w, h in args.sizes)
    ref = "" if args.ref_batches is None else f", reference only at batch {','.join(map(str, args.ref_batches))}"
    return (f"ngf {','.join(map(str, args.widths))}, {sizes}, classes {','.join(map(str, args.classes))}, "
            f"batch {','.join(map(str, args.batches))}, {args.repeats} repeats{ref}")


def report(paths: list[str], markdown_out: str | None) -> int:
    """Renders the tables of one or more --json files (several runs, e.g. one per width) as one markdown text."""
    infos, results = [], []
    for path in paths:
        data = json.loads(Path(path).read_text())
        infos.append(data["machine"])
        results += data["results"]
    text = markdown(results, infos)
    print(text)
    if markdown_out:
        Path(markdown_out).write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return report(args.report, args.markdown)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    info = machine_info(device, args.threads)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    log(machine_line(info))
    results: list[dict] = []
    t0 = time.perf_counter()
    for ngf in args.widths:
        width = width_spec(ngf)
        for size in args.sizes:
            for C in args.classes:
                results += run_config(width, size, C, args.batches, args.repeats, device, args.parts, args.seed, log,
                                      args.ref_batches)
    info["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    info["total_s"] = round(time.perf_counter() - t0, 1)
    info["run"] = run_description(args)
    text = markdown(results, [info])
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json:
        run_args = {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()}
        data = {"machine": info, "args": run_args, "results": results}
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    log(f"done in {info['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
