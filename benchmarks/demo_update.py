"""One demo update (a painted map -> every panel) at the default run's size: what a stroke waits for.

The default run's generator (synth preset, 128x64, ngf 16), randomly initialised (its speed is the architecture's),
on the demo's starting street scene; the minimum and median of `--repeats` calls after one warm-up.

    python -m benchmarks.demo_update --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.generator_step import machine_info, machine_line


def main(argv: list[str] | None = None) -> None:
    from lggan.config import get_preset
    from lggan.demo import demo_model, starting_map, synthesize
    from lggan.generate import Synthesizer
    from lggan.tasks import make_task

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--amp", default="auto", choices=["auto", "off"])
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = get_preset("synth")
    torch.manual_seed(0)
    model = demo_model(Synthesizer(make_task(cfg).build_generator(), cfg, torch.device("cpu"), amp=a.amp), "synth")
    ids = starting_map(model.names, model.size)
    synthesize(model, ids)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        synthesize(model, ids)
        times.append(time.perf_counter() - t0)
    print(machine_line(machine_info(torch.device("cpu"), a.threads)))
    print(f"demo update {model.size[0]}x{model.size[1]} amp={a.amp}: min {min(times) * 1000:.0f} ms, median "
          f"{statistics.median(times) * 1000:.0f} ms over {a.repeats}")


if __name__ == "__main__":
    main()
