"""netspec.ops.fused: the NumPy twins compute, bit for bit, what the CPU code computed before
the passes were fused (the reference functions below are that code), and each CUDA kernel's
declaration fits its twin. The kernels themselves run in tests/test_cuda.py (on a GPU)."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest

from netspec.ops import fused
from netspec.optim import SGD, Adam, AdamW, RMSprop, compile_optimizer

SHAPES = {"w": (5, 3), "b": (7,)}


class FakeNet:
    def __init__(self, dtype):
        rng = np.random.default_rng(0)
        self._params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
        self.grads = {k: np.zeros_like(v) for k, v in self._params.items()}

    def parameters(self):
        return self._params


# -- the CPU code before fusing, kept as the reference ----------------------------------------
def lerp_(start, end, weight):
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def sgd_before(spec, lr, steps, param, grad, state):
    if spec.maximize:
        grad = -grad
    if spec.weight_decay != 0:
        grad = grad + spec.weight_decay * param
    if spec.momentum != 0:
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = state["momentum_buffer"] = grad.copy()
        else:
            buffer *= spec.momentum
            buffer += (1 - spec.dampening) * grad
        grad = grad + spec.momentum * buffer if spec.nesterov else buffer
    param -= lr * grad


def adam_before(spec, lr, steps, param, grad, state):
    beta1, beta2 = spec.betas
    if spec.maximize:
        grad = -grad
    if spec.weight_decay != 0:
        if spec.decouples_weight_decay:
            param *= 1 - lr * spec.weight_decay
        else:
            grad = grad + spec.weight_decay * param
    if not state:
        state.update({name: np.zeros_like(param) for name in spec.state_buffers()})
    exp_avg, second_moment = state["exp_avg"], state["exp_avg_sq"]
    lerp_(exp_avg, grad, 1 - beta1)
    second_moment *= beta2
    second_moment += (1 - beta2) * grad * grad
    if spec.amsgrad:
        np.maximum(state["max_exp_avg_sq"], second_moment, out=state["max_exp_avg_sq"])
        second_moment = state["max_exp_avg_sq"]
    step_size = lr / (1 - beta1**steps)
    bias_correction2_sqrt = (1 - beta2**steps) ** 0.5
    denom = np.sqrt(second_moment)
    denom /= bias_correction2_sqrt
    denom += spec.eps
    param += (-step_size * exp_avg) / denom


def rmsprop_before(spec, lr, steps, param, grad, state):
    if spec.maximize:
        grad = -grad
    if spec.weight_decay != 0:
        grad = grad + spec.weight_decay * param
    if not state:
        state.update({name: np.zeros_like(param) for name in spec.state_buffers()})
    square_avg = state["square_avg"]
    square_avg *= spec.alpha
    square_avg += (1 - spec.alpha) * grad * grad
    if spec.centered:
        lerp_(state["grad_avg"], grad, 1 - spec.alpha)
        avg = np.sqrt(square_avg - state["grad_avg"] * state["grad_avg"])
    else:
        avg = np.sqrt(square_avg)
    avg += spec.eps
    if spec.momentum > 0:
        buffer = state["momentum_buffer"]
        buffer *= spec.momentum
        buffer += grad / avg
        param -= lr * buffer
    else:
        param += (-lr * grad) / avg


BEFORE = {"SGD": sgd_before, "Adam": adam_before, "AdamW": adam_before, "RMSprop": rmsprop_before}


def optimizer_cases():
    for m, d, n, wd, mx in itertools.product(
        (0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.05), (False, True)
    ):
        if not n or (m and not d):
            yield SGD(lr=0.1, momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
    for cls, betas, wd, ams, mx in itertools.product(
        (Adam, AdamW), ((0.9, 0.999), (0.3, 0.8)), (0.0, 0.1), (False, True), (False, True)
    ):
        yield cls(lr=0.01, betas=betas, weight_decay=wd, amsgrad=ams, maximize=mx)
    yield Adam(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    for alpha, c, m, wd in itertools.product((0.99, 0.3), (False, True), (0.0, 0.9), (0.0, 0.1)):
        yield RMSprop(lr=0.01, alpha=alpha, centered=c, momentum=m, weight_decay=wd)


def run_both(spec, dtype, device_scalars=False, steps=5):
    rng = np.random.default_rng(1)
    grads = [{k: rng.standard_normal(s).astype(dtype) * 2.0**j for k, s in SHAPES.items()}
             for j in range(steps)]  # fmt: skip
    net, ref = FakeNet(dtype), FakeNet(dtype).parameters()
    optimizer = compile_optimizer(spec, net)
    if device_scalars:
        optimizer.use_device_scalars()
    states = {k: {} for k in ref}
    for step, step_grads in enumerate(grads, start=1):
        if step == 3:
            optimizer.lr = optimizer.lr * 0.3  # a schedule: the scalars change between steps
        for k, g in step_grads.items():
            net.grads[k][...] = g
            BEFORE[spec.type](spec, optimizer.lr, step, ref[k], g, states[k])
        optimizer.step()
    return net.parameters(), optimizer.state, ref, states


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("spec", list(optimizer_cases()), ids=repr)
def test_fused_optimizers_equal_the_code_before_bit_for_bit(spec, dtype):
    params, state, ref, ref_state = run_both(spec, dtype)
    for k in ref:
        assert params[k].dtype == dtype
        np.testing.assert_array_equal(params[k], ref[k], strict=True)
        assert state[k].keys() == ref_state[k].keys()
        for buffer in ref_state[k]:
            np.testing.assert_array_equal(state[k][buffer], ref_state[k][buffer], strict=True)


@pytest.mark.parametrize(
    "spec",
    [SGD(lr=0.1, momentum=0.9), Adam(lr=0.01, amsgrad=True), AdamW(lr=0.01), RMSprop(lr=0.01)],
    ids=repr,
)
def test_step_scalars_read_from_device_memory_give_the_same_steps(spec):
    """What a captured graph does: lr and bias corrections as 0-d arrays rewritten per step."""
    params, state, ref, _ = run_both(spec, np.float32, device_scalars=True)
    for k in ref:
        np.testing.assert_array_equal(params[k], ref[k], strict=True)


def test_device_scalars_keep_their_arrays_and_take_new_values():
    scalars = fused.DeviceScalars(np.zeros(3, np.float32))
    first = scalars.put({"lr": 0.1, "neg_lr": -0.1})
    second = scalars.put({"lr": 0.5, "neg_lr": -0.5})
    assert all(first[k] is second[k] for k in first)  # what a graph captured stays valid
    assert first["lr"].shape == () and first["lr"] == np.float32(0.5)


# -- the layers' passes -----------------------------------------------------------------------
def per_element(v, plane):
    return np.repeat(v, plane)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_twins_equal_the_code_before(dtype):
    rng = np.random.default_rng(2)
    n, c, plane = 3, 4, 5
    x = rng.standard_normal((n, c * plane)).astype(dtype)
    g = rng.standard_normal((n, c * plane)).astype(dtype)
    s, b, k, m = (rng.standard_normal(c).astype(dtype) for _ in range(4))
    twin = lambda name: fused.kernel(np, name)  # noqa: E731

    y = x.copy()
    y *= per_element(s, plane)
    y += per_element(b, plane)
    out = twin("channel_affine")(x, s, np.empty_like(x), b, plane=plane)
    np.testing.assert_array_equal(out, y, strict=True)
    inplace = x.copy()
    twin("channel_affine")(inplace, s, inplace, plane=plane)
    np.testing.assert_array_equal(inplace, x * per_element(s, plane), strict=True)

    dx = x.copy()
    dx *= per_element(k, plane)
    dx += g
    dx *= per_element(s, plane)
    dx -= per_element(m, plane)
    got = twin("norm_backward")(x.copy(), g, k, s, m, plane=plane)
    np.testing.assert_array_equal(got, dx, strict=True)

    g[0, 0] = np.inf  # inf * 0 = NaN where x <= 0, as g * (x > 0)
    x[0, 0] = -1.0
    with np.errstate(invalid="ignore"):
        expected = g * (x > 0)
        np.testing.assert_array_equal(twin("relu_grad")(g, x, np.empty_like(g)), expected)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_dropout_mask_equals_the_code_before(p):
    u = np.random.default_rng(3).random((4, 6), dtype=np.float32)
    before = u.copy()
    np.less(before, 1.0 - p, out=before)
    if p < 1.0:
        before *= 1.0 / (1.0 - p)
    mask = u.copy()
    fused.kernel(np, "dropout_mask")(mask, keep=1.0 - p, scale=1 / (1 - p) if p < 1 else 1.0,
                                     scaled=p < 1)  # fmt: skip
    np.testing.assert_array_equal(mask, before, strict=True)


# -- the CUDA declarations --------------------------------------------------------------------
def variants(formula):
    optional = sorted(formula.optional())
    for r in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, r):
            yield frozenset(chosen)


@pytest.mark.parametrize("name", sorted(fused.FORMULAS))
def test_each_declaration_fits_its_twin(name):
    """Arrays positional, scalars keyword-only; every parameter is used by the CUDA body of
    each variant that has it, and the body names nothing undeclared as an array."""
    formula = fused.FORMULAS[name]
    params = inspect.signature(formula.twin).parameters.values()
    kinds = [p.kind for p in params]
    assert kinds == sorted(kinds, key=lambda k: k is inspect.Parameter.KEYWORD_ONLY)
    assert formula.updates <= {p.name for p in formula.arrays()}
    assert formula.raw <= {p.name for p in formula.arrays()}
    for present in variants(formula):
        body = formula.body(present)
        ins, outs = formula.parameters(present, "float32")
        declared = [item.split()[-1] for item in f"{ins}, {outs}".split(", ") if item]
        for absent in formula.optional() - present:
            assert absent not in declared and f"{absent} " not in body
        arrays = [p.name for p in formula.arrays() if p.name in declared]
        assert all(a in body for a in arrays), (name, present)
        assert len(declared) == len(set(declared))


@pytest.mark.parametrize("name", sorted(fused.FORMULAS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cupy_builds_each_kernel_with_the_twins_parameters(name, dtype):
    """CuPy parses a kernel's parameters without a GPU; their names and order are the twin's
    (inputs, then scalars, then the arrays updated in place)."""
    pytest.importorskip("cupy")
    formula = fused.FORMULAS[name]
    for present in variants(formula):
        fused._compiled.clear()
        compiled = fused.cuda_kernel(formula, dtype, present)
        names = [p.name for p in compiled.params if p.name != "_ind"]
        arrays = fused._names(formula, present)
        expected = [a for a in arrays if a not in formula.updates]
        expected += formula.scalars() + [a for a in arrays if a in formula.updates]
        assert names == expected
        assert fused.cuda_kernel(formula, dtype, present) is compiled  # built once
        assert fused.cuda_preamble(dtype).startswith(f"typedef {fused._CTYPES[dtype]} real;")


def test_the_switch_runs_the_twin_on_cupy_arrays_too(monkeypatch):
    """NETSPEC_FUSED=0: the unfused baseline on a GPU is the twin itself (its CuPy passes)."""
    sentinel = object()
    assert fused.kernel(sentinel, "sgd") is not fused.FORMULAS["sgd"].twin
    monkeypatch.setenv(fused.SWITCH, "0")
    assert fused.kernel(sentinel, "sgd") is fused.FORMULAS["sgd"].twin
