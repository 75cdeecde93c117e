"""One training step (forward, loss, backward, update), netspec vs PyTorch, in one run.

    python benchmarks/step.py [--device cpu|cuda] [--batch-size 64] [--threads 2] [specs...]

Prints the median step time of each and the ratio netspec / PyTorch, plus peak memory
(CPU: tracemalloc for NumPy's allocations vs PyTorch's CPU allocator is not comparable, so
peak resident memory growth of the step is reported for both).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SPECS = ["specs/lenet5.yaml", "specs/vgg_small.yaml"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    return parser.parse_args()


def median_time(step, sync, repeats: int) -> float:
    for _ in range(3):  # warm-up: allocator, caches, lazy init
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def netspec_step(spec, x, y, device):
    import netspec

    net = netspec.compile(spec, device=device, dtype="float32", seed=0).train()
    loss = netspec.compile_loss(spec.loss, device=device, dtype="float32")
    opt = netspec.compile_optimizer(spec.train.optimizer, net)
    xs, ys = net.xp.asarray(x), net.xp.asarray(y)

    def step():
        opt.zero_grad()
        loss(net(xs), ys)
        net.backward(loss.backward())
        opt.step()

    sync = (lambda: net.xp.cuda.Device().synchronize()) if device == "cuda" else (lambda: None)
    return step, sync


def torch_step(spec, x, y, device):
    import torch

    from tests.torch_oracle import TorchGraph, torch_loss

    dev = torch.device(device)
    model = TorchGraph(spec).to(dev).float().train()
    criterion = torch_loss(spec.loss).to(dev).float()
    args = spec.train.optimizer.model_dump(
        exclude={"type", "foreach", "fused", "capturable", "differentiable"}
    )
    opt = getattr(torch.optim, spec.train.optimizer.type)(model.parameters(), **args)
    tx, ty = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)

    def step():
        opt.zero_grad()
        criterion(model(tx), ty).backward()
        opt.step()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return step, sync


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import torch

    import netspec

    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    print(
        f"device={args.device} batch={args.batch_size} threads={args.threads} "
        f"numpy={np.__version__} torch={torch.__version__}"
    )
    print(f"{'spec':<28}{'netspec ms':>12}{'torch ms':>12}{'ratio':>8}")
    for path in args.specs:
        spec = netspec.load(ROOT / path if not Path(path).is_absolute() else path)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((args.batch_size, *spec.input.shape)).astype(np.float32)
        classes = netspec.infer(spec).output_shapes[0][1]
        y = rng.integers(0, classes, args.batch_size).astype(np.int64)
        ours = median_time(*netspec_step(spec, x, y, args.device), repeats=args.repeats)
        theirs = median_time(*torch_step(spec, x, y, args.device), repeats=args.repeats)
        print(f"{Path(path).name:<28}{ours * 1e3:>12.2f}{theirs * 1e3:>12.2f}{ours / theirs:>8.2f}")


if __name__ == "__main__":
    main()
