"""Data-parallel training (design.md §6, training/data_parallel.py).

Two halves. In one process, K threads stand in for K ranks (`ThreadWorld`: the same sums as
MPI's, through a barrier), so that the arithmetic of every layer and loss under a split is
checked quickly and without MPI: a K-rank run gives the 1-process weights. Then real runs:
`mpiexec -n 2 netspec train` on the loopback, bounded in time, checking the same weights,
one set of files, an exact resume after SIGTERM, a hung and a killed rank. Those skip
where mpi4py cannot load or no mpiexec is found (`pip install -e ".[mpi]"` brings both).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import netspec
from netspec.training.data_parallel import check_splittable, shard_bounds
from netspec.training.distributed import (
    DistributedError,
    MpiWorld,
    PeerFailedError,
    launched_world,
    launcher_size,
    rank_timeout,
)
from netspec.training.setup import prepare
from netspec.training.trainer import Trainer

SPEC = """
name: split
input: {{shape: [3, 8, 8], dtype: float64}}
layers:
  - Conv2d: {{out_channels: 6, kernel_size: 3, padding: 1, bias: false}}
  - BatchNorm2d
  - ReLU
  - Dropout2d: {{p: 0.2}}
  - MaxPool2d: {{kernel_size: 2}}
  - Flatten
  - Dropout: {{p: 0.3}}
  - Linear: {{out_features: {outputs}}}
loss: {loss}
train: {{epochs: {epochs}, batch_size: {batch}, optimizer: {{SGD: {{lr: {lr}, momentum: 0.9}}}}, seed: 3}}
data: {{source: synthetic, samples: {samples}, validation_split: 0.2}}
"""


def spec_text(loss="CrossEntropyLoss", batch=7, samples=61, epochs=2, outputs=5, lr=0.1) -> str:
    return SPEC.format(
        loss=loss, batch=batch, samples=samples, epochs=epochs, outputs=outputs, lr=lr
    )


class ThreadWorld(MpiWorld):
    """Rank `rank` of `size` threads that share a `Hub`: MpiWorld with its two primitive
    collectives (sum and max) done in-process, so that the rest is MpiWorld's own code."""

    def __init__(self, hub: Hub, rank: int):
        self.hub, self.rank, self.size, self.local_rank = hub, rank, hub.size, rank
        self.waited = 0.0

    def sum_in_place(self, *buffers):
        for buffer, parts in zip(buffers, self.hub.exchange(self.rank, buffers), strict=True):
            total = parts[0].copy()
            for part in parts[1:]:  # in rank order, the same bits everywhere
                total += part
            buffer[...] = total

    def agree(self, values):
        (parts,) = self.hub.exchange(self.rank, [np.array(values, dtype=np.float64)])
        return np.max(parts, axis=0)


class Hub:
    """What the threads of a ThreadWorld meet at: every rank's copy of each buffer."""

    def __init__(self, size: int):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=30)
        self.slots: list = [None] * size

    def exchange(self, rank, buffers) -> list[list]:
        """For each buffer, the list of every rank's copy of it (in rank order)."""
        self.barrier.wait()
        self.slots[rank] = [np.array(b, copy=True) for b in buffers]
        self.barrier.wait()
        everything = list(self.slots)
        self.barrier.wait()
        return [[parts[i] for parts in everything] for i in range(len(buffers))]


def train_in_threads(spec, size: int, out: Path | None = None, **options):
    """Train `spec` as `size` ranks in threads; rank 0's result and each rank's trainer."""
    hub = Hub(size)
    trainers = [Trainer(spec, world=ThreadWorld(hub, r), out=out, **options) for r in range(size)]
    results: list = [None] * size
    errors: list = []

    def work(rank):
        try:
            results[rank] = trainers[rank].fit()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)
            hub.barrier.abort()

    threads = [threading.Thread(target=work, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return results[0], trainers


def assert_same_weights(a: dict, b: dict, tol=1e-9):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(
            np.asarray(a[name], dtype=float), np.asarray(b[name], dtype=float), rtol=0, atol=tol,
            err_msg=name,
        )  # fmt: skip


# -- the split -----------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", [0, 1, 2, 7, 64])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_shards_cover_the_batch_once_in_order_and_differ_by_at_most_one(rows, size):
    bounds = [shard_bounds(rows, size, r) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


# -- in-process ranks: the arithmetic --------------------------------------------------------
LOSSES = [
    "CrossEntropyLoss",
    "{CrossEntropyLoss: {weight: [1.0, 2.0, 0.5, 1.0, 3.0], label_smoothing: 0.1}}",
    "{CrossEntropyLoss: {reduction: sum}}",
    "{CrossEntropyLoss: {reduction: none}}",
]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("size", [2, 3])
def test_ranks_in_threads_train_the_one_process_weights(loss, size):
    """BatchNorm, Dropout and Dropout2d in training, batches of 7 over 2 or 3 ranks (uneven
    shards, a last batch of 6), validation sharded: the weights, running statistics,
    optimizer state and every metric of the 1-process run."""
    spec = netspec.loads(spec_text(loss=loss), source="split.yaml")
    alone = Trainer(spec).fit()
    together, trainers = train_in_threads(spec, size)
    assert_same_weights(trainers[0].setup.net.state_dict(), _one_process_state(spec))
    for rank in range(1, size):  # every rank holds the same bits
        assert_same_weights(
            trainers[rank].setup.net.state_dict(), trainers[0].setup.net.state_dict(), 0
        )
    for a, b in zip(alone.history, together.history, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-12), key


def _one_process_state(spec):
    trainer = Trainer(spec)
    trainer.fit()
    return trainer.setup.net.state_dict()


def test_float32_runs_split_too_within_float32_rounding():
    spec = netspec.loads(spec_text().replace("float64", "float32"), source="split.yaml")
    _, trainers = train_in_threads(spec, 2)
    assert_same_weights(trainers[0].setup.net.state_dict(), _one_process_state(spec), 1e-5)


@pytest.mark.parametrize("loss", ["MSELoss", "{L1Loss: {reduction: none}}"])
def test_regression_losses_split_as_well(loss):
    spec = netspec.loads(spec_text(loss=loss, outputs=2, lr=0.01), source="split.yaml")
    _, trainers = train_in_threads(spec, 2)
    assert_same_weights(trainers[0].setup.net.state_dict(), _one_process_state(spec))


def test_more_ranks_than_rows_leave_some_ranks_empty_and_still_agree():
    spec = netspec.loads(spec_text(batch=2, samples=20, epochs=1), source="split.yaml")
    _, trainers = train_in_threads(spec, 3)
    assert_same_weights(trainers[0].setup.net.state_dict(), _one_process_state(spec))


def test_only_rank_0_writes_the_run_folder(tmp_path):
    spec = netspec.loads(spec_text(epochs=1), source="split.yaml")
    result, trainers = train_in_threads(spec, 2, out=tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(
        ["last.npz", "best.npz", "metrics.jsonl", "metrics.png"][: 3 + _has_matplotlib()]
    )
    assert trainers[1].out is None and result.last_checkpoint == tmp_path / "run" / "last.npz"


def _has_matplotlib() -> int:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return 0
    return 1


def test_a_rank_that_fails_to_start_stops_the_others_with_peer_failed(tmp_path):
    """Rank 0 alone claims the folder: when it refuses, the others do not wait for it."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.npz").write_bytes(b"a run")
    spec = netspec.loads(spec_text(epochs=1), source="split.yaml")
    hub = Hub(2)
    errors: dict = {}

    def work(rank):
        try:
            Trainer(spec, world=ThreadWorld(hub, rank), out=tmp_path / "run").fit()
        except Exception as exc:  # noqa: BLE001
            errors[rank] = exc

    threads = [threading.Thread(target=work, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert type(errors[0]).__name__ == "RunExistsError"
    assert isinstance(errors[1], PeerFailedError)


@pytest.mark.parametrize(
    "layer",
    ["Flatten: {start_dim: 0}", "Softmax: {dim: 0}", "Concat: {dim: 0, inputs: [input, input]}"],
)
def test_a_layer_along_the_batch_is_refused_in_one_line(layer):
    text = f"""
name: across
input: {{shape: [4]}}
layers:
  - {layer}
loss: MSELoss
data: {{source: synthetic, samples: 8}}
"""
    spec = netspec.loads(text, source="across.yaml")
    setup = prepare(spec, "cpu", 0, np)
    with pytest.raises(DistributedError, match="along the batch dimension 0"):
        check_splittable(setup)


def test_the_launcher_is_read_from_its_variables(monkeypatch):
    assert launcher_size({}) == 1
    assert launcher_size({"PMI_SIZE": "4"}) == 4
    assert launcher_size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2
    assert launcher_size({"SLURM_STEP_NUM_TASKS": "8"}) == 8
    assert rank_timeout({}) == 60.0 and rank_timeout({"NETSPEC_RANK_TIMEOUT": "2.5"}) == 2.5
    with pytest.raises(DistributedError, match="NETSPEC_RANK_TIMEOUT"):
        rank_timeout({"NETSPEC_RANK_TIMEOUT": "soon"})


def test_a_launch_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails as if not installed
    with pytest.raises(DistributedError, match="started 2 processes, but mpi4py cannot load") as e:
        launched_world()
    assert "pip install 'netspec[mpi]'" in e.value.hint


# -- real ranks: mpiexec on the loopback --------------------------------------------------------
def _mpiexec() -> str | None:
    local = Path(sys.executable).parent / "mpiexec"
    return str(local) if local.exists() else shutil.which("mpiexec")


def _mpi_loads() -> bool:
    probe = [sys.executable, "-c", "from mpi4py import MPI; MPI.COMM_WORLD.Get_size()"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or not _mpi_loads(), reason="needs mpi4py and mpiexec: pip install -e '.[mpi]'"
)
NETSPEC = [sys.executable, "-c", "from netspec.cli import main; main()"]


def launch(ranks: int, *args: str, env=None, timeout=120) -> subprocess.CompletedProcess:
    command = [MPIEXEC, "-n", str(ranks), *NETSPEC, *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def start(ranks: int, *args: str, env=None) -> subprocess.Popen:
    command = [MPIEXEC, "-n", str(ranks), *NETSPEC, *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def weights(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k != "__meta__"}


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def spec_file(tmp_path):
    def write(**options) -> str:
        path = tmp_path / "split.yaml"
        path.write_text(spec_text(**options))
        return str(path)

    return write


@needs_mpi
def test_two_ranks_give_the_one_process_weights_and_one_set_of_files(spec_file, tmp_path):
    spec = spec_file()  # batches of 7: shards of 4 and 3
    alone = subprocess.run([*NETSPEC, "train", spec, "--out", str(tmp_path / "one")],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    two = launch(
        2, "train", spec, "--out", str(tmp_path / "two"), env={"NETSPEC_RANK_TIMEOUT": "30"}
    )
    assert two.returncode == 0, two.stderr
    assert_same_weights(
        weights(tmp_path / "one" / "last.npz"), weights(tmp_path / "two" / "last.npz")
    )
    for a, b in zip(metrics(tmp_path / "one"), metrics(tmp_path / "two"), strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-12), key
    files = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert two.stdout.count("last checkpoint") == 1  # rank 0 alone speaks
    assert two.stderr.count("training split on cpu") == 1


@needs_mpi
def test_sigterm_on_the_launcher_saves_once_and_resume_ends_as_the_uninterrupted_run(
    spec_file, tmp_path
):
    spec = spec_file(samples=2000, epochs=4)
    run = tmp_path / "run"
    process = start(2, "train", spec, "--out", str(run))
    deadline = time.monotonic() + 60
    while not (run / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # an epoch done: the interrupt lands mid-epoch
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.count("terminated (SIGTERM)") == 1
    meta = json.loads(str(np.load(run / "last.npz")["__meta__"]))
    assert meta["epoch"] < 4
    resumed = launch(2, "train", spec, "--resume", str(run / "last.npz"))
    assert resumed.returncode == 0, resumed.stderr
    alone = subprocess.run([*NETSPEC, "train", spec, "--out", str(tmp_path / "alone")],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    assert_same_weights(weights(tmp_path / "alone" / "last.npz"), weights(run / "last.npz"))


@needs_mpi
def test_a_hung_rank_stops_the_run_with_one_line_within_the_timeout(spec_file, tmp_path):
    spec = spec_file(samples=4000, epochs=50)
    run = tmp_path / "run"
    process = start(2, "train", spec, "--out", str(run), env={"NETSPEC_RANK_TIMEOUT": "3"})
    try:
        ranks = _rank_pids(process.pid)
        os.kill(ranks[-1], signal.SIGSTOP)  # alive, never answering
        started = time.monotonic()
        _, stderr = process.communicate(timeout=60)
        assert time.monotonic() - started < 30
    finally:
        process.kill()
    assert process.returncode != 0
    assert stderr.count("got no answer from the other processes for 3 s") == 1, stderr


@needs_mpi
def test_a_killed_rank_ends_the_run(spec_file, tmp_path):
    spec = spec_file(samples=4000, epochs=50)
    process = start(2, "train", spec, "--out", str(tmp_path / "run"))
    try:
        ranks = _rank_pids(process.pid)
        os.kill(ranks[-1], signal.SIGKILL)
        started = time.monotonic()
        process.communicate(timeout=60)
        assert time.monotonic() - started < 30
    finally:
        process.kill()
    assert process.returncode != 0


def _rank_pids(launcher: int, ranks: int = 2, wait: float = 60) -> list[int]:
    """The processes running netspec under the launcher, once they train."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"from netspec.cli import main" in cmdline and _descends(
                    int(entry.name), launcher
                ):
                    found.append(int(entry.name))
        if len(found) == ranks:
            time.sleep(3)  # past the imports and the first batches
            return sorted(found)
        time.sleep(0.1)
    raise AssertionError("the ranks did not start")


def _descends(pid: int, ancestor: int) -> bool:
    """Whether `pid` is a child, grandchild... of `ancestor` (not the ancestor itself)."""
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent
        if pid == ancestor:
            return True
    return False
