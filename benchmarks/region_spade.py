"""Region-constant vs dense SPADE, one residual block at a time: where the per-region path pays off.

Each `SPADEResBlock` of the official Cityscapes G_g (ngf 64, hidden 128, layout 'more') runs forward + backward at its
own resolution, on the semantic map of a synthetic street scene, once with the dense convs (layout None) and once per
region (`SemanticLayout`), interleaved. The table gives, per block, the fraction of pixels whose 5x5 label window is
mixed, the distinct mixed patterns per pixel (what the boundary GEMM costs, and what
`semantic_layout.MAX_BOUNDARY_FRACTION` compares) and both times. The thresholds are lifted for the measurement, so every block runs both paths.

    python -m benchmarks.region_spade --size 512x256
    python -m benchmarks.region_spade --size 256x128 --amp bf16 --channels-last
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from benchmarks.generator_step import machine_info, machine_line, parse_size
from benchmarks.labels import label_batch

NGF, HIDDEN, NUM_CLASSES = 64, 128, 35
# (in, out) channel multipliers of ngf and the downsampling of each block of the 'more' layout, top last.
BLOCKS = ((16, 16, 64), (16, 16, 32), (16, 16, 16), (16, 8, 8), (8, 4, 4), (4, 2, 2), (2, 1, 1))


def measure_block(fin: int, fout: int, size: tuple[int, int], S: torch.Tensor, layout, repeats: int, amp: bool,
                  channels_last: bool) -> dict:
    """Median forward + backward seconds of one block, dense and per region, at `size` = (h, w)."""
    from lggan.models import SPADEResBlock

    torch.manual_seed(0)
    block = SPADEResBlock(fin, fout, S.shape[1], HIDDEN).train()
    x = torch.randn(1, fin, *size)
    if channels_last:
        block, x = block.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    x.requires_grad_()

    def step(lay) -> None:
        for p in block.parameters():
            p.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = block(x, S, lay)
        y.float().sum().backward()

    times = {"dense": [], "region": []}
    step(None), step(layout)  # warm-up
    for r in range(repeats):
        for name in (("dense", "region") if r % 2 == 0 else ("region", "dense")):
            t0 = time.perf_counter()
            step(None if name == "dense" else layout)
            times[name].append(time.perf_counter() - t0)
    at = layout.at(size)
    windows = at.windows(5, 1, 2, "zeros")
    mixed = (windows.table_index >= at.num_keys).float().mean().item()  # uniform windows index a key's row
    return {"size": f"{size[1]}x{size[0]}", "in": fin, "out": fout, "mixed": mixed,
            "patterns": windows.fraction, "dense_s": statistics.median(times["dense"]),
            "region_s": statistics.median(times["region"])}


def main(argv: list[str] | None = None) -> int:
    from lggan.data.common import make_semantic_input
    from lggan.models import semantic_layout
    from lggan.models.semantic_layout import SemanticLayout

    p = argparse.ArgumentParser(prog="python -m benchmarks.region_spade", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, default=(512, 256), help="WxH of the label map (multiple of 64)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--amp", choices=("off", "bf16"), default="off", help="bf16 autocast around each block")
    p.add_argument("--channels-last", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    W, H = args.size
    if W % 64 or H % 64:
        p.error(f"--size {W}x{H}: width and height must be multiples of 64 (the 'more' layout)")
    labels, instances, _ = label_batch(NUM_CLASSES, True, 1, (W, H), seed=0)
    S = make_semantic_input(labels, NUM_CLASSES, instances)
    layout = SemanticLayout.from_semantic(S)
    # Both paths everywhere: the thresholds decide which one the model takes, this measures both.
    semantic_layout.MAX_BOUNDARY_FRACTION, semantic_layout.MIN_PIXELS = 1.0, 0
    info = machine_info(torch.device("cpu"), args.threads)
    rows = []
    for fin, fout, down in BLOCKS:
        row = measure_block(fin * NGF, fout * NGF, (H // down, W // down), S, layout, args.repeats,
                            args.amp == "bf16", args.channels_last)
        print(f"  {row['size']}: dense {row['dense_s'] * 1e3:.1f} ms, region {row['region_s'] * 1e3:.1f} ms",
              file=sys.stderr, flush=True)
        rows.append(row)
    print(f"{machine_line(info)}; amp {args.amp}, channels-last {'on' if args.channels_last else 'off'}; "
          f"label map {W}x{H}, forward + backward of each SPADEResBlock, medians of {args.repeats}\n")
    print("| block size | channels | mixed 5x5 windows | distinct patterns / pixel | dense ms | region ms | dense / region |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['in']}->{r['out']} | {r['mixed']:.3f} | {r['patterns']:.3f} | "
              f"{r['dense_s'] * 1e3:.1f} | {r['region_s'] * 1e3:.1f} | {r['dense_s'] / r['region_s']:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
