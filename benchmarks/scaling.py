"""How one training step's time grows with batch size, image size and depth, netspec vs PyTorch.

    python benchmarks/scaling.py [--threads 2] [--rounds 3]
    python benchmarks/scaling.py --threads 1 --cpu-time   # steady on a busy machine

The network is VGG-like: `depth` stages of 3x3 Conv2d (16, 32, 64, 64... channels) + ReLU
+ 2x2 MaxPool2d, then Flatten and Linear to 10 classes, on 3-channel square images. One
argument varies at a time around batch 32, image 32, depth 2; each point is timed as
step.py times a spec (both steps in this process, in turns; medians). Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import step  # noqa: E402 (step.py sits next to this file)

BASE = {"batch": 32, "image": 32, "depth": 2}
SWEEPS = {"batch": [8, 32, 64, 128, 256], "image": [32, 64, 128], "depth": [1, 2, 3, 4]}


def spec_text(image: int, depth: int) -> str:
    """A VGG-like spec: `depth` conv + ReLU + pool stages on (3, image, image)."""
    layers = []
    for stage in range(depth):
        channels = min(16 * 2**stage, 64)
        layers.append(f"  - Conv2d: {{out_channels: {channels}, kernel_size: 3, padding: 1}}")
        layers += ["  - ReLU", "  - MaxPool2d: {kernel_size: 2}"]
    layers += ["  - Flatten", "  - Linear: {out_features: 10}"]
    return "\n".join(
        [
            f"name: scaling_{image}_{depth}",
            f"input: {{shape: [3, {image}, {image}]}}",
            "layers:",
            *layers,
            "loss: CrossEntropyLoss",
            "train: {optimizer: {SGD: {lr: 0.01, momentum: 0.9}}}",
        ]
    )


def time_point(batch: int, image: int, depth: int, rounds: int, clock: str):
    """Median step seconds (netspec, PyTorch) of one network and batch size."""
    import netspec

    spec = netspec.loads(spec_text(image, depth))
    x, y = step.batch(spec, batch)
    steps = [make(spec, x, y, "cpu") for make in (step.netspec_step, step.torch_step)]
    ours, theirs = step.interleaved(steps, rounds, block=5, clock=clock)
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="turns of each framework")
    parser.add_argument("--cpu-time", action="store_true", help="as step.py's; --threads 1")
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        sys.exit("--cpu-time counts the calling thread only: use it with --threads 1")
    clock = "cpu" if args.cpu_time else "wall"
    step.limit_threads(args.threads)
    step.set_torch_threads(args.threads)
    print(f"training step, float32, {clock} time, {step.describe_machine(args.threads)}")
    print("| varied | batch | image | depth | netspec ms | torch ms | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for varied, values in SWEEPS.items():
        for value in values:
            point = {**BASE, varied: value}
            ours, theirs = time_point(*point.values(), args.rounds, clock)
            print(
                f"| {varied} | {point['batch']} | {point['image']} | {point['depth']} "
                f"| {ours * 1e3:.2f} | {theirs * 1e3:.2f} | {ours / theirs:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
