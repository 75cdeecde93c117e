"""Fused elementwise passes: one CUDA kernel per formula on CuPy, its NumPy twin on the CPU.

Why: on a GPU a training step of netspec is bound by kernel launches, not arithmetic. An
optimizer update written as array expressions is 6-12 CuPy kernels per parameter, BatchNorm's
normalise-and-scale four; fused, each is one. The CPU keeps its passes as they are (NumPy
gains nothing from fusing and the numerics must not move), so each formula is written twice:
as the NumPy twin, which *is* the CPU path (the optimizers and layers call it), and as the
body of a `cupy.ElementwiseKernel`, built here from the formula's declaration (`Formula`).

The two agree operation by operation: the same roundings in the same order (the kernels are
compiled with `--fmad=false`, so no multiply-add is contracted; `sqrt` and `/` are IEEE in
NVRTC's defaults). Scalars arrive in the arrays' dtype on both sides, as NumPy 2 casts Python
floats. Whatever differs between steps (the learning rate, Adam's bias corrections) is a
scalar parameter that may also be a 0-d device array (`DeviceScalars`): a kernel replayed
from a CUDA graph keeps the arguments it was captured with, but reads memory afresh.

    fused.kernel(xp, "sgd")(param, grad, buffer, lr=0.1, ...)   # twin on NumPy, kernel on CuPy

Declarations: a twin's positional parameters are its arrays, its keyword-only ones the
scalars; optional arrays (default None) select a variant of the kernel (SGD without momentum).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from netspec.ops import fused_formulas as formulas
from netspec.ops.backend import array_module

# Compute-type name inside kernel bodies (typedef'd per dtype; CuPy's own `T` is not used,
# so that every parameter has a concrete dtype and a Python float is cast, never bound).
_REAL = "real"
_CTYPES = {"float32": "float", "float64": "double"}
_OPTIONS = ("--fmad=false",)
SWITCH = "NETSPEC_FUSED"
# The scalars passed as int64: flags (chosen by the host, fixed for a run) and plane sizes.
INTS = frozenset(
    {"maximize", "decays", "decoupled", "first", "nesterov", "near_start", "scaled", "plane"}
)


@dataclass(frozen=True)
class Formula:
    """One fused pass: its twin, the roles of its arrays, and its CUDA body per variant.

    `updates`: arrays read and written in place (the kernel's outputs); `raw`: per-channel
    vectors the body indexes itself; the other arrays are elementwise inputs. Scalars are of
    the arrays' dtype, but for the flags and sizes in `INTS`.
    `body(present)` is the CUDA source for the optional arrays that are given.
    """

    name: str
    twin: Callable[..., Any]
    updates: frozenset[str]
    body: Callable[[frozenset[str]], str]
    raw: frozenset[str] = frozenset()

    def arrays(self) -> list[inspect.Parameter]:
        return [p for p in _signature(self.twin) if p.kind is not p.KEYWORD_ONLY]

    def scalars(self) -> list[str]:
        return [p.name for p in _signature(self.twin) if p.kind is p.KEYWORD_ONLY]

    def optional(self) -> frozenset[str]:
        return frozenset(p.name for p in self.arrays() if p.default is None)

    def parameters(self, present: frozenset[str], dtype: str) -> tuple[str, str]:
        """CuPy's (in_params, out_params) for a variant: the twin's order, roles as typed."""
        ins, outs = [], []
        for p in self.arrays():
            if p.default is None and p.name not in present:
                continue
            raw = "raw " if p.name in self.raw else ""
            (outs if p.name in self.updates else ins).append(f"{raw}{dtype} {p.name}")
        ins += [f"{'int64' if s in INTS else dtype} {s}" for s in self.scalars()]
        return ", ".join(ins), ", ".join(outs)


def _signature(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    return list(inspect.signature(fn).parameters.values())


FORMULAS: dict[str, Formula] = {
    f.name: f
    for f in (
        Formula("sgd", formulas.sgd, frozenset({"param", "buffer"}), formulas.sgd_body),
        Formula(
            "adam",
            formulas.adam,
            frozenset({"param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}),
            formulas.adam_body,
        ),
        Formula(
            "rmsprop",
            formulas.rmsprop,
            frozenset({"param", "square_avg", "grad_avg", "momentum_buffer"}),
            formulas.rmsprop_body,
        ),
        Formula(
            "channel_affine",
            formulas.channel_affine,
            frozenset({"out"}),
            formulas.channel_affine_body,
            raw=frozenset({"scale", "shift"}),
        ),
        Formula(
            "norm_backward",
            formulas.norm_backward,
            frozenset({"dx"}),
            formulas.norm_backward_body,
            raw=frozenset({"k", "a", "m"}),
        ),
        Formula("dropout_mask", formulas.dropout_mask, frozenset({"mask"}), formulas.dropout_body),
        Formula("relu_grad", formulas.relu_grad, frozenset({"out"}), formulas.relu_grad_body),
    )
}


def kernel(xp: Any, name: str) -> Callable[..., Any]:
    """The pass `name` for an array module: the NumPy twin, or a launcher of the fused CuPy
    kernel that takes the twin's arguments. NETSPEC_FUSED=0 runs the twin on CuPy too (its
    passes as separate CuPy kernels): the unfused baseline that the fused kernels are timed
    against."""
    formula = FORMULAS[name]
    if xp is np or os.environ.get(SWITCH, "1") == "0":
        return formula.twin
    return partial(_launch, formula)


def _launch(formula: Formula, *arrays: Any, **scalars: Any) -> None:
    """Launch the variant for the arrays given (results land in the in-place arrays)."""
    given = dict(zip((p.name for p in formula.arrays()), arrays, strict=False))
    given.update({p.name: scalars.pop(p.name) for p in formula.arrays() if p.name in scalars})
    present = frozenset(n for n in formula.optional() if given.get(n) is not None)
    first = arrays[0]
    compiled = cuda_kernel(formula, first.dtype.name, present)
    ordered = [given[n] for n in _names(formula, present) if n not in formula.updates]
    ordered += [_scalar(scalars[s], s in INTS) for s in formula.scalars()]
    ordered += [given[n] for n in _names(formula, present) if n in formula.updates]
    compiled(*ordered)


def _names(formula: Formula, present: frozenset[str]) -> list[str]:
    return [p.name for p in formula.arrays() if p.default is not None or p.name in present]


def _scalar(value: Any, integer: bool) -> Any:
    if integer or isinstance(value, bool):
        return int(value)
    return value  # a Python float (cast by CuPy to the declared dtype) or a 0-d device array


_compiled: dict[tuple[str, str, frozenset[str]], Any] = {}


def cuda_kernel(formula: Formula, dtype: str, present: frozenset[str] = frozenset()) -> Any:
    """The `cupy.ElementwiseKernel` of a formula's variant for a dtype, built once."""
    key = (formula.name, dtype, present)
    if key not in _compiled:
        import cupy

        ins, outs = formula.parameters(present, dtype)
        _compiled[key] = cupy.ElementwiseKernel(
            ins,
            outs,
            formula.body(present),
            f"netspec_{formula.name}",
            preamble=cuda_preamble(dtype),
            options=_OPTIONS,
        )
    return _compiled[key]


def cuda_preamble(dtype: str) -> str:
    return f"typedef {_CTYPES[dtype]} {_REAL};\n"


class DeviceScalars:
    """A step's changing scalars in one small device buffer, handed out as 0-d views.

    A CUDA graph replays its kernels with the arguments they were captured with; a learning
    rate passed as a number would stay the captured one. Passed as a 0-d array, the kernel
    reads it from memory, which `put` rewrites (one host-to-device copy) before each replay.
    """

    def __init__(self, like: Any):
        self._xp = array_module(like)
        self._dtype = like.dtype
        self._buffer: Any = None
        self._views: dict[str, Any] = {}

    def put(self, values: dict[str, float]) -> dict[str, Any]:
        """Write this step's values; returns the same 0-d views every time."""
        if self._buffer is None:
            self._buffer = self._xp.zeros(len(values), dtype=self._dtype)
            self._views = {
                name: self._buffer[k : k + 1].reshape(()) for k, name in enumerate(values)
            }
        host = np.array([values[name] for name in self._views], dtype=self._dtype)
        if self._xp is np:
            self._buffer[...] = host
        else:
            self._buffer.set(host)
        return dict(self._views)
