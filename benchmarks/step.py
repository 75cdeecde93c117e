"""One training step (forward, loss, backward, update), netspec vs PyTorch, in one run.

    python benchmarks/step.py [--device cpu|cuda] [--batch-size 64] [--threads 2] [specs...]
    python benchmarks/step.py --device cuda --capture    # netspec's step from CUDA graphs
    python benchmarks/step.py --eval --batch-size 1 --threads 1 specs/zoo/resnet18.yaml

`--eval` times the eval forward instead (inference: net.eval(), torch.no_grad()).

Time: both steps are built in this process and run in turns of several steps (see
`interleaved`), so that load from other processes hits both alike; the table shows the
median step of each and their ratio. Being in one process, both run under the allocator
settings netspec makes (backend.keep_freed_memory), which speed PyTorch up as well.

Memory: each framework's step runs again in a fresh subprocess that imports only what it
needs. The number is the growth of the peak resident set size (VmHWM, reset through
/proc/self/clear_refs after setup) over the resident size before the first step: every byte
the step touches, whoever allocated it (NumPy, BLAS workspaces, PyTorch's allocator), and
none of the imports, the model's parameters or the batch. On CUDA it is the device
allocator's peak instead (CuPy's memory pool vs torch.cuda.max_memory_allocated).

Neither network computes the gradient of its input (PyTorch's input does not require grad;
netspec is told with `backward(..., input_grad=False)`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SPECS = ["specs/lenet5.yaml", "specs/vgg_small.yaml"]
TURN_PAUSE = 0.3  # seconds between turns: the other library's threads go to sleep
FRAMEWORKS = ("netspec", "torch")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="turns of each framework")
    parser.add_argument("--block", type=int, default=10, help="timed steps in a turn")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--eval", action="store_true", help="time the eval forward only")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="with --threads 1: the calling thread's CPU time, not wall time (see CLOCKS)",
    )
    parser.add_argument(
        "--capture", action="store_true", help="cuda: replay netspec's step from CUDA graphs"
    )
    parser.add_argument("--memory-worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.capture and args.device != "cuda":
        parser.error("--capture needs --device cuda")
    return args


def limit_threads(threads: int) -> None:
    """Before NumPy loads: BLAS and OpenMP pools of `threads`, nothing oversubscribed."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


# -- the two steps --------------------------------------------------------------------------
def batch(spec, batch_size: int):
    import numpy as np

    import netspec

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, *spec.input.shape)).astype(np.float32)
    classes = netspec.infer(spec).output_shapes[0][1]
    y = rng.integers(0, classes, batch_size).astype(np.int64)
    return x, y


def netspec_step(spec, x, y, device, evaluate=False, capture=False):
    import netspec

    net = netspec.compile(spec, device=device, dtype="float32", seed=0).train(not evaluate)
    xs = net.xp.asarray(x)
    if evaluate:
        return (lambda: net(xs)), net.synchronize
    loss = netspec.compile_loss(spec.loss, device=device, dtype="float32")
    opt = netspec.compile_optimizer(spec.train.optimizer, net)
    ys = net.xp.asarray(y)
    if capture:  # the trainer's halves, replayed from CUDA graphs after a warm-up
        from netspec.training.step_graph import CapturedStep, CupyGraphs

        halves = CapturedStep(net, opt, CupyGraphs())

        def step():
            loss(halves.forward(xs), ys)
            halves.update(loss.backward())

        step.captured = halves  # the caller reports `failure`: why it stayed eager
        return step, net.synchronize

    def step():
        opt.zero_grad()
        loss(net(xs), ys)
        net.backward(loss.backward(), input_grad=False)
        opt.step()

    return step, net.synchronize


def torch_step(spec, x, y, device, evaluate=False):
    import torch

    from tests.torch_oracle import TorchGraph, torch_loss

    dev = torch.device(device)
    model = TorchGraph(spec).to(dev).float().train(not evaluate)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if evaluate:
        tx = torch.from_numpy(x).to(dev)

        def forward():
            with torch.no_grad():
                model(tx)

        return forward, sync
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

    return step, sync


def set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


# -- time -------------------------------------------------------------------------------------
# Wall time by default. On a shared machine whose other tenants keep both cores busy, the wall
# time of a step swings 2-10x from turn to turn; with one thread, the CPU time of the thread
# that runs it (time.thread_time) is what the step costs, whoever else runs. Meaningless with
# more threads: the BLAS and OpenMP workers' time is not counted.
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def interleaved(steps, rounds: int, block: int, clock: str = "wall") -> list[float]:
    """Median seconds of each (step, sync): `rounds` turns of `block` timed steps each.

    Turns of several steps, not single steps: right after the other library ran, its worker
    threads still spin (OpenBLAS spins up to ~0.1 s after a GEMM; OpenMP briefly) and slowed
    this one down up to 2x on 2 cores, so each turn starts after a pause and one untimed step.
    Turns, not one long run each: the machine's speed drifts (other tenants), and both
    libraries should see the same drift.
    """
    for step, sync in steps:
        for _ in range(3):  # allocator, caches, lazy initialisation
            step()
        sync()
    times: list[list[float]] = [[] for _ in steps]
    now = CLOCKS[clock]
    for _ in range(rounds):
        for (step, sync), own in zip(steps, times, strict=True):
            time.sleep(TURN_PAUSE)
            step()
            sync()
            for _ in range(block):
                start = now()
                step()
                sync()
                own.append(now() - start)
    return [statistics.median(own) for own in times]


# -- memory -----------------------------------------------------------------------------------
def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_resident_mib() -> float:
    with open("/proc/self/status") as f:
        line = next(row for row in f if row.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def memory_worker(args: argparse.Namespace) -> None:
    """In a fresh process: peak memory growth of a few steps of one framework (MiB, JSON)."""
    import netspec

    spec = netspec.load(args.specs[0])
    x, y = batch(spec, args.batch_size)
    if args.memory_worker == "torch":
        set_torch_threads(args.threads)
        step, sync = torch_step(spec, x, y, args.device, args.eval)
    else:
        step, sync = netspec_step(spec, x, y, args.device, args.eval, args.capture)
    if args.device == "cuda":
        print(json.dumps({"mib": cuda_peak_mib(args.memory_worker, step, sync)}))
        return
    sync()
    before = resident_mib()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size (Linux >= 4.0)
    for _ in range(5):
        step()
    sync()
    print(json.dumps({"mib": peak_resident_mib() - before}))


def cuda_peak_mib(framework: str, step, sync) -> float:
    if framework == "torch":
        import torch

        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        for _ in range(5):
            step()
        sync()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    import cupy

    pool = cupy.get_default_memory_pool()
    before = pool.total_bytes()
    for _ in range(5):
        step()
    sync()
    return (pool.total_bytes() - before) / 2**20  # the pool only grows: its size is the peak


def measure_memory(args: argparse.Namespace, spec_path: str, framework: str) -> float:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        spec_path,
        f"--device={args.device}",
        f"--batch-size={args.batch_size}",
        f"--threads={args.threads}",
        f"--memory-worker={framework}",
        *(["--capture"] if args.capture else []),
        *(["--eval"] if args.eval else []),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.splitlines()[-1])["mib"]


# -- the table -------------------------------------------------------------------------------
def captured_note(captured) -> str:
    """How a --capture run went: graphs replayed, or why the step stayed eager."""
    if captured.failure is not None:
        return f"eager, not captured ({captured.failure})"
    return f"{len(captured.graphs)} shape(s) captured, {captured.replays} steps replayed"


def describe_machine(threads: int) -> str:
    import numpy as np
    import torch

    blas = "?"
    try:
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        blas = ", ".join(f"{i['internal_api']} {i['version']} {i['architecture']}" for i in infos)
    except ImportError:
        pass
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(r for r in f if r.startswith("model name")).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    return (
        f"cpu={cpu} cores={os.cpu_count()} threads={threads} numpy={np.__version__} "
        f"torch={torch.__version__} blas=[{blas}]"
    )


def main() -> None:
    args = parse_args()
    if args.cpu_time and args.threads != 1:
        sys.exit("--cpu-time counts the calling thread only: use it with --threads 1")
    limit_threads(args.threads)
    if args.memory_worker:
        memory_worker(args)
        return
    import netspec

    set_torch_threads(args.threads)
    mode = "eval forward" if args.eval else "training step"
    mode += ", CPU time" if args.cpu_time else ""
    print(f"{mode} device={args.device} batch={args.batch_size} {describe_machine(args.threads)}")
    if "OPENBLAS_CORETYPE" in os.environ:
        print(f"note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} pins OpenBLAS' kernel")
    memory = "" if args.no_memory else f"{'netspec MiB':>13}{'torch MiB':>11}{'ratio':>7}"
    print(f"{'spec':<20}{'netspec ms':>11}{'torch ms':>10}{'ratio':>7}{memory}")
    for path in args.specs:
        spec = netspec.load(ROOT / path if not Path(path).is_absolute() else path)
        x, y = batch(spec, args.batch_size)
        steps = [
            netspec_step(spec, x, y, args.device, args.eval, args.capture),
            torch_step(spec, x, y, args.device, args.eval),
        ]
        clock = "cpu" if args.cpu_time else "wall"
        ours, theirs = interleaved(steps, args.rounds, args.block, clock)
        captured = getattr(steps[0][0], "captured", None)
        if captured is not None:
            print(f"note: {Path(path).stem}: {captured_note(captured)}")
        row = f"{Path(path).stem:<20}{ours * 1e3:>11.2f}{theirs * 1e3:>10.2f}{ours / theirs:>7.2f}"
        if not args.no_memory:
            our_mib, their_mib = (measure_memory(args, path, f) for f in FRAMEWORKS)
            row += f"{our_mib:>13.1f}{their_mib:>11.1f}{our_mib / their_mib:>7.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
