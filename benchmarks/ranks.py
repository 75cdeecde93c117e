"""Data-parallel throughput on this machine: 1 and 2 MPI ranks (1 BLAS thread each) against
one process with 2 BLAS threads, and the allreduce's share of a step.

    python benchmarks/ranks.py [--batch-size 64] [--steps 30] [specs...]

Each configuration runs in fresh processes (`mpiexec -n K` for the ranks) on the spec's
synthetic batch of the global size, timed over `--steps` training steps after warm-up; the
figures are rank 0's. "allreduce" is the time inside the step's sums, waiting for the slower
rank included (so it also holds the imbalance between the two). Needs the mpi extra
(`pip install -e ".[mpi]"`). With `--device cuda` the ranks sum over NCCL, one per GPU.

"2 thread ranks" is the same split within one process: two threads, each a rank with its
own replica (tests/test_distributed.py's ThreadWorld: the sums through a barrier), one BLAS
thread in all. What issue 13 measures as the lever for 2-thread training on the CPU; the
trainer does not run this way (yet).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPECS = ["specs/lenet5.yaml", "specs/vgg_small.yaml", "specs/resnet_tiny.yaml"]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# (label, processes, BLAS threads per process, ranks as threads within the process)
CONFIGURATIONS = [
    ("1 process, 1 thread", 1, 1, 1),
    ("1 process, 2 threads", 1, 2, 1),
    ("2 ranks x 1 thread", 2, 1, 1),
    ("2 thread ranks", 1, 1, 2),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--thread-ranks", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    mpiexec = Path(sys.executable).parent / "mpiexec"
    print(f"{'spec':<14} {'configuration':<22} {'samples/s':>10} {'step ms':>8} {'allreduce':>10}")
    for spec in args.specs:
        base = None
        for label, processes, threads, thread_ranks in CONFIGURATIONS:
            env = dict(os.environ)
            env.update({name: str(threads) for name in THREAD_VARIABLES})
            command = [sys.executable, __file__, "--worker", spec, "--device", args.device]
            command += ["--batch-size", str(args.batch_size), "--steps", str(args.steps)]
            command += ["--thread-ranks", str(thread_ranks)]
            if processes > 1:
                command = [str(mpiexec), "-n", str(processes), *command]
            done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
            if done.returncode != 0:
                print(f"{Path(spec).stem:<14} {label:<22} failed: {done.stderr.strip()[-300:]}")
                continue
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            base = base or figures["samples_per_second"]
            ranks = processes * thread_ranks
            share = f"{figures['allreduce_share']:.1%}" if ranks > 1 else "-"
            rate = figures["samples_per_second"]
            print(
                f"{Path(spec).stem:<14} {label:<22} {rate:>10.0f} "
                f"{figures['step_ms']:>8.1f} {share:>10}   x{rate / base:.2f}"
            )


def worker(args: argparse.Namespace) -> None:
    if args.thread_ranks > 1:
        return thread_ranks_worker(args)

    import netspec
    from netspec.ops.backend import get_xp
    from netspec.optim import compile_optimizer
    from netspec.training.data_parallel import DataParallel
    from netspec.training.distributed import device_for, launched_world
    from netspec.training.setup import prepare

    world = launched_world()
    if world is not None and args.device == "cuda":
        device_for(world)
    spec = netspec.load(ROOT / args.specs[0])
    setup = prepare(spec, args.device, 0, get_xp(args.device))
    optimizer = compile_optimizer(spec.train.optimizer, setup.net)
    parallel = DataParallel(world, setup, optimizer) if world is not None else None
    x, y = global_batch(setup, args.batch_size)

    def step() -> None:
        if parallel is not None:
            parallel.step(x, y, None, lambda loss: None)
            return
        setup.net.zero_grad()
        xp = setup.xp
        out = setup.net(xp.asarray(x))
        setup.loss(out, xp.asarray(y))
        setup.net.backward(setup.loss.backward(), input_grad=False)
        optimizer.step()

    if world is None or world.rank == 0:
        timed(args, step, setup.net.synchronize, world)
    else:
        timed(args, step, setup.net.synchronize, None, report=False)


def global_batch(setup, batch_size: int):
    """The spec's training data, repeated up to one batch, in train mode."""
    import numpy as np

    data = setup.data
    repeats = -(-batch_size // len(data.x_train))  # a small dataset: repeat it
    setup.net.train()
    return (np.concatenate([a] * repeats)[:batch_size] for a in (data.x_train, data.y_train))


def timed(args, step, synchronize, world, report: bool = True) -> None:
    """Warm-up, then `--steps` steps; rank 0 prints the figures as one JSON line."""
    for _ in range(5):
        step()
    synchronize()
    waited = world.waited if world is not None else 0.0
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize()
    seconds = time.perf_counter() - started
    if report:
        reduce_seconds = (world.waited - waited) if world is not None else 0.0
        print(json.dumps({
            "samples_per_second": args.batch_size * args.steps / seconds,
            "step_ms": 1000 * seconds / args.steps,
            "allreduce_share": reduce_seconds / seconds,
        }))  # fmt: skip


def thread_ranks_worker(args: argparse.Namespace) -> None:
    """`--thread-ranks K` ranks as threads of this process, each with its own replica of
    the run (network, loss, optimizer), summing through tests' ThreadWorld; rank 0 (this
    thread) times whole steps, the others run theirs alongside."""
    import threading

    import netspec
    from netspec.ops.backend import get_xp
    from netspec.optim import compile_optimizer
    from netspec.training.data_parallel import DataParallel
    from netspec.training.setup import prepare

    sys.path.insert(0, str(ROOT))  # the tests' ThreadWorld
    from tests.test_distributed import Hub, ThreadWorld

    class TimedThreadWorld(ThreadWorld):
        def sum_in_place(self, *buffers):
            started = time.perf_counter()
            super().sum_in_place(*buffers)
            self.waited += time.perf_counter() - started

    spec = netspec.load(ROOT / args.specs[0])
    hub = Hub(args.thread_ranks)
    ranks = []
    for rank in range(args.thread_ranks):
        world = TimedThreadWorld(hub, rank)
        setup = prepare(spec, args.device, 0, get_xp(args.device))
        parallel = DataParallel(world, setup, compile_optimizer(spec.train.optimizer, setup.net))
        ranks.append((world, parallel, *global_batch(setup, args.batch_size)))
    start = [threading.Semaphore(0) for _ in ranks]
    finished = threading.Barrier(len(ranks))

    def run_steps(rank: int) -> None:
        _, parallel, x, y = ranks[rank]
        while True:
            start[rank].acquire()
            parallel.step(x, y, None, lambda loss: None)
            finished.wait()

    for rank in range(1, len(ranks)):
        threading.Thread(target=run_steps, args=(rank,), daemon=True).start()
    world, parallel, x, y = ranks[0]

    def step() -> None:
        for semaphore in start[1:]:
            semaphore.release()
        parallel.step(x, y, None, lambda loss: None)
        finished.wait()

    timed(args, step, parallel.setup.net.synchronize, world)


if __name__ == "__main__":
    main()
