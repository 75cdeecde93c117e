"""The processes of a data-parallel run (design.md §6): who started them, and the few
collectives training needs, each one bounded in time.

    world = launched_world()        # None in one process; an MpiWorld under mpirun/srun
    world.sum_in_place(grads, totals)   # allreduce(SUM) of host (MPI) or device (NCCL) buffers

A launcher is recognised by the variables it sets (`PMI_SIZE`: MPICH, Intel MPI and srun's
PMI; `OMPI_COMM_WORLD_SIZE`: Open MPI; `SLURM_STEP_NUM_TASKS`: srun); only then is mpi4py
imported, so a plain `netspec train` never loads MPI. Host buffers go through MPI; CuPy
buffers through NCCL (`cupy.cuda.nccl`), one GPU per process, the process's rank on its node.

No collective waits for ever: each polls its requests and gives up after `timeout` seconds
(`NETSPEC_RANK_TIMEOUT`, 60 by default) with RankLostError, after which the caller aborts
the world: the launcher then ends every process, the silent one included.
"""

from __future__ import annotations

import os
import time
import zlib
from typing import Any

from netspec.errors import NetspecError
from netspec.lazy import lazy_import

np = lazy_import("numpy")

TIMEOUT_VARIABLE = "NETSPEC_RANK_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
# What launchers set in each process they start: the size of the world.
_LAUNCHER_SIZES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS")


class DistributedError(NetspecError):
    """A data-parallel run that cannot start or go on."""


class RankLostError(DistributedError):
    """A collective got no answer in time: another process died or hangs."""


class PeerFailedError(DistributedError):
    """Another process failed (and said why): this one stops without a word of its own."""


def launcher_size(environ: Any = os.environ) -> int:
    """How many processes the launcher that started this one started (1: none)."""
    for name in _LAUNCHER_SIZES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def rank_timeout(environ: Any = os.environ) -> float:
    value = environ.get(TIMEOUT_VARIABLE)
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise DistributedError(
            f"{TIMEOUT_VARIABLE}={value!r} is not a number of seconds above 0",
            hint=f"unset it for the default of {DEFAULT_TIMEOUT:g} s",
        )
    return seconds


def launched_world() -> MpiWorld | None:
    """The world of processes a launcher started, or None when this process runs alone."""
    size = launcher_size()
    if size <= 1:
        return None
    try:
        from mpi4py import MPI
    except ImportError as exc:  # not installed, or no MPI library behind it
        raise DistributedError(
            f"a launcher started {size} processes, but mpi4py cannot load ({exc})",
            hint="pip install 'netspec[mpi]' (it brings an MPI library where the system has none)",
        ) from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        return None
    return MpiWorld(comm, rank_timeout())


class MpiWorld:
    """K processes under MPI: `rank` 0..K-1, `local_rank` on this node, bounded collectives."""

    def __init__(self, comm: Any, timeout: float = DEFAULT_TIMEOUT):
        from mpi4py import MPI

        self._mpi = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.timeout = timeout
        self.local_rank = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
        self._nccl: Any = None  # NcclLink, made at the first device buffer
        self.waited = 0.0  # seconds spent in collectives (for benchmarks)

    # -- collectives -------------------------------------------------------------------------
    def sum_in_place(self, *buffers: Any) -> None:
        """Each buffer (contiguous, 1-D or not) becomes its sum over the processes: host
        buffers in one MPI request each, all waited for together; device buffers by NCCL."""
        started = time.perf_counter()
        host = [b for b in buffers if isinstance(b, np.ndarray)]
        device = [b for b in buffers if not isinstance(b, np.ndarray)]
        if device:
            self._link().sum_in_place(device, self.timeout)
        if host:
            requests = [self.comm.Iallreduce(self._mpi.IN_PLACE, b, op=self._mpi.SUM) for b in host]
            self._wait(requests, "a sum of gradients")
        self.waited += time.perf_counter() - started

    def sum(self, value: Any) -> Any:
        """`value` (an array, host or device, or a number) summed over the processes; the
        caller's array is left as it was."""
        if isinstance(value, np.generic):  # a NumPy scalar (a float32 weight sum)
            total = np.array(value)
            self.sum_in_place(total)
            return total[()]
        if isinstance(value, int | float):
            total = np.array([value], dtype=np.float64)
            self.sum_in_place(total)
            return type(value)(total[0])
        total = value.copy()
        self.sum_in_place(total)
        return total

    def any(self, flag: bool) -> bool:
        """Whether any process said True (every process must ask)."""
        return self.sum(int(bool(flag))) > 0

    def agree(self, values: Any) -> Any:
        """The largest of each entry of a small host array over the processes."""
        values = np.array(values, dtype=np.float64)
        request = self.comm.Iallreduce(self._mpi.IN_PLACE, values, op=self._mpi.MAX)
        self._wait([request], "a flag")
        return values

    def same_everywhere(self, arrays: Any) -> bool:
        """Whether every process holds the same bytes in `arrays` (a checksum compared)."""
        crc = 0
        for a in arrays:
            crc = zlib.crc32(np.ascontiguousarray(_host(a)).data, crc)
        low, high = self.agree([crc, -crc])
        return low == crc and -high == crc

    def abort(self, code: int = 1) -> None:
        """End every process of the world (the launcher kills what does not answer)."""
        self.comm.Abort(code)

    # -- waiting -------------------------------------------------------------------------------
    def _wait(self, requests: list, what: str) -> None:
        Request = self._mpi.Request
        if Request.Testall(requests):
            return
        deadline = time.monotonic() + self.timeout
        pause = 1e-6
        while not Request.Testall(requests):
            if time.monotonic() > deadline:
                raise self.lost(what)
            time.sleep(pause)  # a peer still computing: yield the core, check again soon
            pause = min(pause * 2, 1e-3)

    def lost(self, what: str) -> RankLostError:
        return RankLostError(
            f"rank {self.rank} of {self.size}: {what} got no answer from the other processes "
            f"for {self.timeout:g} s (one died or hangs); stopping them all",
            hint=f"{TIMEOUT_VARIABLE} sets how long to wait (seconds)",
        )

    def _link(self) -> NcclLink:
        if self._nccl is None:
            self._nccl = NcclLink(self)
        return self._nccl


class NcclLink:
    """NCCL between the processes' GPUs, set up over MPI (rank 0's unique id broadcast)."""

    def __init__(self, world: MpiWorld):
        import cupy
        from cupy.cuda import nccl

        self._cupy, self._nccl, self.world = cupy, nccl, world
        uid = nccl.get_unique_id() if world.rank == 0 else None
        uid = world.comm.bcast(uid, root=0)
        self.comm = nccl.NcclCommunicator(world.size, uid, world.rank)
        self._types = {
            np.dtype(np.float32): nccl.NCCL_FLOAT32,
            np.dtype(np.float64): nccl.NCCL_FLOAT64,
            np.dtype(np.int64): nccl.NCCL_INT64,
        }

    def sum_in_place(self, buffers: list, timeout: float) -> None:
        stream = self._cupy.cuda.get_current_stream()
        self._nccl.groupStart()
        for b in buffers:
            self.comm.allReduce(
                b.data.ptr,
                b.data.ptr,
                b.size,
                self._types[b.dtype],
                self._nccl.NCCL_SUM,
                stream.ptr,
            )
        self._nccl.groupEnd()
        done = stream.record()
        deadline = time.monotonic() + timeout
        while not done.done:
            if time.monotonic() > deadline:
                self.comm.abort()
                raise self.world.lost("a sum on the GPUs")
            time.sleep(1e-4)


def device_for(world: MpiWorld) -> None:
    """Make this process's GPU (its rank on the node) the current CUDA device."""
    import cupy

    count = cupy.cuda.runtime.getDeviceCount()
    if world.local_rank >= count:
        raise DistributedError(
            f"rank {world.rank} is process {world.local_rank + 1} on its node, which has "
            f"{count} GPU(s): one process per GPU",
            hint=f"launch at most {count} processes per node with --device cuda",
        )
    cupy.cuda.Device(world.local_rank).use()


def _host(a: Any) -> Any:
    return a if isinstance(a, np.ndarray) else a.get()
