"""Start-up of the command line: `lggan --help` and `lggan COMMAND --help` for every command, as a user runs them.

Each command line runs as a fresh process (the installed `lggan` entry point) `--repeats` times; the table gives the
minimum and median wall time. The parser imports neither PyTorch, torchvision, Gradio nor matplotlib
(tests/test_cli.py checks that), so these times are Python's start-up plus the parser.

    python -m benchmarks.startup --repeats 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from benchmarks.generator_step import machine_info, machine_line


def commands() -> list[list[str]]:
    """`--help` of the top level and of every command and sub-command."""
    from lggan.cli import build_parser

    lines = [["--help"]]
    for action in build_parser()._subparsers._group_actions:  # argparse keeps sub-parsers here
        for name, parser in action.choices.items():
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if subs:
                lines += [[name, s, "--help"] for a in subs for s in a.choices]
            else:
                lines.append([name, "--help"])
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    exe = shutil.which("lggan") or sys.exit("the lggan entry point is not on PATH (pip install -e .)")
    import torch

    info = machine_info(torch.device("cpu"), 1)
    print(machine_line(info))
    print("| command | min s | median s |\n|---|---:|---:|")
    for line in commands():
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            subprocess.run([exe, *line], check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
        print(f"| lggan {' '.join(line)} | {min(times):.2f} | {statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()
