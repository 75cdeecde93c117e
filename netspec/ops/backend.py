"""The array module: NumPy on the CPU, CuPy on CUDA. The only module that imports CuPy.

Kernels receive arrays and ask `array_module(x)` which library they belong to (Chainer's
`get_array_module`), so one code path serves both devices.
"""

from __future__ import annotations

import ctypes
import os
import sys
from types import ModuleType
from typing import Any, get_args

import numpy as np

from netspec.errors import NetspecError
from netspec.types import ComputeDType

# The dtypes netspec computes in, the one list: a spec's `input.dtype` is the same Literal.
DTYPES: tuple[str, ...] = get_args(ComputeDType)


class DeviceError(NetspecError):
    """The requested device cannot be used; the message says what to install or change."""


# The README's install line, word for word: the message and the docs must agree.
CUPY_MISSING = (
    "device 'cuda' needs CuPy, which is not installed: pip install -e \".[cuda]\" in the "
    "netspec checkout, or the cupy-cuda12x / cupy-cuda13x wheel matching your CUDA driver"
)

_cupy: ModuleType | None = None
_cupy_failure: str | None = None


def _load_cupy() -> ModuleType:
    """Import CuPy once, keeping the reason it failed so the error can say what to do."""
    global _cupy, _cupy_failure
    if _cupy is not None:
        return _cupy
    if _cupy_failure is None:
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no CUDA device is visible")
            _cupy = cupy
            return cupy
        except ImportError:
            _cupy_failure = CUPY_MISSING
        except Exception as exc:  # CUDA driver or runtime problems surface as many types
            _cupy_failure = f"device 'cuda': CuPy is installed but no GPU is usable ({exc})"
    raise DeviceError(_cupy_failure)


def cuda_available() -> bool:
    try:
        _load_cupy()
    except DeviceError:
        return False
    return True


def parse_device(device: str) -> tuple[str, int | None]:
    """('cpu', None), ('cuda', None) or ('cuda', N) for 'cuda:N'; DeviceError otherwise."""
    if device in ("cpu", "cuda"):
        return device, None
    kind, _, index = device.partition(":")
    if kind != "cuda":
        raise DeviceError(f"unknown device '{device}', expected one of: cpu, cuda")
    if not (index.isascii() and index.isdigit()):
        raise DeviceError(
            f"unknown device '{device}': after 'cuda:' comes a GPU index, 0 or more (cuda:1)"
        )
    return "cuda", int(index)


def get_xp(device: str) -> ModuleType:
    """The array module for a device name: 'cpu', 'cuda' (the current GPU) or 'cuda:N'.

    'cuda:N' makes GPU N the current CuPy device of this thread (cupy.cuda.Device(N).use()),
    so the arrays created after it live there; an index the machine lacks is a DeviceError.
    """
    kind, index = parse_device(device)
    if kind == "cpu":
        return np
    cupy = _load_cupy()
    if index is not None:
        count = cupy.cuda.runtime.getDeviceCount()
        if index >= count:
            raise DeviceError(
                f"device '{device}' does not exist: this machine has {count} GPU"
                f"{'' if count == 1 else 's'} (cuda:0 to cuda:{count - 1})"
            )
        cupy.cuda.Device(index).use()
    return cupy


def free_memory(device: str) -> int | None:
    """Bytes free on a CUDA device; None when none is usable (the device says why later)."""
    try:
        if not cuda_available():
            return None
        return int(get_xp(device).cuda.Device().mem_info[0])
    except Exception:  # a driver problem here is said later, by the device itself
        return None


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_allocator_tuned = False


def keep_freed_memory() -> bool:
    """Let glibc reuse freed memory instead of returning it to the kernel; once per process.

    A training step allocates and frees the same large temporaries every time (blocks of
    im2col columns, activations, gradients: MBs each). By default glibc serves every block
    above its mmap threshold (at most 32 MiB) with a fresh mmap() and unmaps it on free,
    and trims the heap's free top, so each step pays page faults to zero-fill the same
    memory again: LeNet-5's step took 1.7x as long and VGG's 1.3x (PyTorch's: 2x, 1.7x). With
    mmap off (M_MMAP_MAX = 0) and trimming only above 2 GiB of free heap top (mallopt takes
    an int), the next step finds the blocks in the heap. The process keeps its peak
    footprint until it exits, as a caching allocator would.

    A process-wide setting, so nothing changes it as a side effect of asking for a device:
    the runtime opts in, once, where it builds a network for the CPU (netspec.compile), and
    a program that wants malloc left alone sets NETSPEC_KEEP_FREED_MEMORY=0. glibc on Linux
    only. Returns whether the settings are in effect.
    """
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return _allocator_tuned
    if os.environ.get("NETSPEC_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (raises AttributeError off glibc, e.g. musl)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        _allocator_tuned = bool(
            libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        )
    except (OSError, AttributeError):
        pass
    return _allocator_tuned


def array_module(x: Any) -> ModuleType:
    """NumPy or CuPy, whichever `x` belongs to."""
    if type(x).__module__.startswith("cupy"):  # without importing CuPy for NumPy arrays
        return _load_cupy()
    return np


def as_strided(xp: ModuleType) -> Any:
    """`as_strided` of the given array module (CuPy keeps it in cupy.lib.stride_tricks)."""
    return xp.lib.stride_tricks.as_strided


def to_numpy(x: Any) -> np.ndarray:
    """A host copy (or the array itself when it is already NumPy)."""
    if isinstance(x, np.ndarray):
        return x
    get = getattr(x, "get", None)
    return get() if get is not None else np.asarray(x)


def resolve_dtype(dtype: str | Any) -> np.dtype:
    """The NumPy dtype for a name or dtype, if netspec computes in it; DeviceError if not."""
    name = np.dtype(dtype).name
    if name not in DTYPES:
        raise DeviceError(f"unsupported dtype '{name}', expected one of: {', '.join(DTYPES)}")
    return np.dtype(name)
