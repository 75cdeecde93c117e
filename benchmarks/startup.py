"""Wall time from the shell of `netspec check` and `netspec --help`, beside the floors.

    python benchmarks/startup.py [--runs 40] [--spec specs/lenet5.yaml]

Each command runs `--runs` times in a fresh process (after warm-up runs that also write the
bytecode caches a first run would), in turns, so that load from other processes hits them
alike. The table shows the minimum wall time (what the machine can do), the median (what a
user meets on it) and the least CPU time (user + system, less moved by other processes).

The floors: the interpreter alone, NumPy's import (which `check` must not pay), and the
libraries a check cannot do without (typer, rich's table, PyYAML, and pydantic with one
validator built: the first build imports its schema machinery).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = "import typer, rich.table, yaml; from pydantic import TypeAdapter; TypeAdapter(int)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs of each command")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each first")
    parser.add_argument("--spec", default="specs/lenet5.yaml")
    return parser.parse_args()


def netspec_command() -> list[str]:
    """The console script next to this interpreter, as a user runs it; else `-m`."""
    script = Path(sys.executable).with_name("netspec")
    found = str(script) if script.exists() else shutil.which("netspec")
    return [found] if found else [sys.executable, "-m", "netspec.cli"]


def commands(spec: str) -> dict[str, list[str]]:
    netspec = netspec_command()
    return {
        f"netspec check {spec}": [*netspec, "check", spec],
        "netspec --help": [*netspec, "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import numpy"': [sys.executable, "-c", "import numpy"],
        "the libraries alone": [sys.executable, "-c", LIBRARIES],
    }


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time of one run, and the CPU time (user + system) the process used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    args = parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["COLUMNS"] = "100"  # the same table width on a terminal and off one
    runs = commands(args.spec)
    for argv in runs.values():
        for _ in range(args.warmup):
            timed(argv, env)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(args.runs):
        for name, argv in runs.items():
            samples[name].append(timed(argv, env))
    print(f"{args.runs} runs of each, in turns (ms; CPU: user + system of the process)\n")
    print("| command | wall min | wall median | CPU min |")
    print("|---|---:|---:|---:|")
    for name, runs_of_it in samples.items():
        wall = [w for w, _ in runs_of_it]
        cpu = min(c for _, c in runs_of_it)
        print(
            f"| `{name}` | {1e3 * min(wall):.0f} | {1e3 * statistics.median(wall):.0f} "
            f"| {1e3 * cpu:.0f} |"
        )


if __name__ == "__main__":
    main()
