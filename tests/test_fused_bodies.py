"""The CUDA bodies of netspec.ops.fused, run on the CPU: each variant's body is compiled as
C++ (g++, no contracted multiply-adds, as the kernels' --fmad=false) inside a loop that binds
its parameters the way cupy.ElementwiseKernel does (inputs by value, in-place arrays by
reference, raw vectors indexable with .size()), and must give the NumPy twin's result to the
last bit. What is left for the GPU (tests/test_cuda.py) is CuPy's own code around the body.
Skipped without a C++ compiler."""

from __future__ import annotations

import ctypes
import itertools
import shutil
import subprocess

import numpy as np
import pytest

from netspec.ops import fused

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

CTYPE = {"float32": ("float", ctypes.c_float), "float64": ("double", ctypes.c_double)}
SCALARS = {
    "sgd": dict(lr=0.1, momentum=0.9, keep=0.7, weight_decay=0.05),
    "adam": dict(
        weight_decay=0.1,
        decay=0.999,
        beta2=0.999,
        rest2=1 - 0.999,
        neg_step_size=-0.01,
        bias_correction2_sqrt=0.3,
        eps=1e-8,
    ),  # fmt: skip
    "rmsprop": dict(lr=0.01, neg_lr=-0.01, alpha=0.9, eps=1e-8, momentum=0.9, weight_decay=0.1),
    "channel_affine": dict(plane=5),
    "norm_backward": dict(plane=5),
    "dropout_mask": dict(keep=0.7, scale=1 / 0.7),
    "relu_grad": {},
}
POSITIVE = {"exp_avg_sq", "max_exp_avg_sq", "square_avg"}


def cpp_source(formula, present, ctype):
    """One C function: the body in an elementwise loop over n elements."""
    arrays = [p.name for p in formula.arrays() if p.default is not None or p.name in present]
    params = ["long n"] + [f"real* {a}_p" for a in arrays]
    params += [f"long {a}_n" for a in arrays if a in formula.raw]
    params += [f"{'long' if s in fused.INTS else 'real'} {s}" for s in formula.scalars()]
    binds = []
    for a in arrays:
        if a in formula.raw:
            binds.append(f"const Raw {a}{{{a}_p, {a}_n}};")
        elif a in formula.updates:
            binds.append(f"real& {a} = {a}_p[i];")
        else:
            binds.append(f"const real {a} = {a}_p[i];")
    return (
        "#include <cmath>\n#include <cstddef>\nusing std::sqrt;\n"
        f"typedef {ctype} real;\n"
        "struct Raw { const real* p; long n;\n"
        "  real operator[](ptrdiff_t k) const { return p[k]; } long size() const { return n; } };\n"
        f'extern "C" void run({", ".join(params)}) {{\n'
        "  for (ptrdiff_t i = 0; i < n; ++i) {\n"
        + "".join(f"    {b}\n" for b in binds)
        + "".join(f"    {line}\n" for line in formula.body(present).splitlines())
        + "  }\n}\n"
    )


def compiled(tmp_path, formula, present, dtype):
    variant = "_".join([formula.name, dtype, *sorted(present)])  # dlopen caches by path
    source = tmp_path / f"{variant}.cpp"
    library = source.with_suffix(".so")
    source.write_text(cpp_source(formula, present, CTYPE[dtype][0]))
    command = ["g++", "-O1", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC"]
    subprocess.run([*command, str(source), "-o", str(library)], check=True)
    return ctypes.CDLL(str(library)).run


def arrays_for(formula, present, dtype, rng):
    arrays = {}
    for p in formula.arrays():
        if p.default is None and p.name not in present:
            arrays[p.name] = None
            continue
        shape = (10,) if p.name in formula.raw else (40, 50)  # 10 channels of 5: plane=5
        value = rng.random(shape) if formula.name == "dropout_mask" else rng.standard_normal(shape)
        arrays[p.name] = (np.abs(value) + 2.0 if p.name in POSITIVE else value).astype(dtype)
    return arrays


def call_body(run, formula, arrays, scalars, dtype):
    given = {k: v for k, v in arrays.items() if v is not None}
    real = CTYPE[dtype][1]
    n = next(v for k, v in given.items() if k not in formula.raw).size
    args = [ctypes.c_long(n)] + [v.ctypes.data_as(ctypes.c_void_p) for v in given.values()]
    args += [ctypes.c_long(v.size) for k, v in given.items() if k in formula.raw]
    for s in formula.scalars():
        args.append(ctypes.c_long(int(scalars[s])) if s in fused.INTS else real(scalars[s]))
    run(*args)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(SCALARS))
def test_each_cuda_body_computes_its_twin_bit_for_bit(name, dtype, tmp_path):
    formula = fused.FORMULAS[name]
    optional = sorted(formula.optional())
    flags = [s for s in formula.scalars() if s in fused.INTS and s != "plane"]
    for r in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, r):
            present = frozenset(chosen)
            run = compiled(tmp_path, formula, present, dtype)
            for values in itertools.product((False, True), repeat=len(flags)):
                scalars = {**SCALARS[name], **dict(zip(flags, values, strict=True))}
                if "near_start" in flags or name in ("adam", "rmsprop"):
                    weight = 0.1 if scalars.get("near_start", True) else 0.7
                    scalars.update(weight=weight, rest=1 - weight)
                arrays = arrays_for(formula, present, dtype, np.random.default_rng(0))
                host = {k: None if v is None else v.copy() for k, v in arrays.items()}
                with np.errstate(invalid="ignore"):
                    fused.kernel(np, name)(*host.values(), **scalars)
                call_body(run, formula, arrays, scalars, dtype)
                for key in formula.updates & {k for k, v in host.items() if v is not None}:
                    np.testing.assert_array_equal(
                        arrays[key], host[key], err_msg=f"{key} {present} {scalars}", strict=True
                    )
