"""Wall time from the shell of `netspec check` and `netspec --help`, beside the floors.

    python benchmarks/startup.py [--runs 40] [--spec specs/lenet5.yaml]

Each command runs `--runs` times in a fresh process (after warm-up runs that also write the
bytecode caches a first run would), in turns, so that load from other processes hits them
alike; the table shows the minimum (what the machine can do) and the median (what a user
meets on it). The floors: the interpreter alone, NumPy's import (which `check` must not
pay), and the libraries a check cannot do without (typer, rich's table, PyYAML, and pydantic
with one validator built: the first build imports its schema machinery).
"""

from __future__ import annotations

import argparse
import os
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


def wall_time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["COLUMNS"] = "100"  # the same table width on a terminal and off one
    runs = commands(args.spec)
    for argv in runs.values():
        for _ in range(args.warmup):
            wall_time(argv, env)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.runs):
        for name, argv in runs.items():
            times[name].append(wall_time(argv, env))
    print(f"{args.runs} runs of each, in turns; wall time from process start to exit\n")
    print("| command | min (ms) | median (ms) |")
    print("|---|---|---|")
    for name, samples in times.items():
        low, middle = 1e3 * min(samples), 1e3 * statistics.median(samples)
        print(f"| `{name}` | {low:.0f} | {middle:.0f} |")


if __name__ == "__main__":
    main()
