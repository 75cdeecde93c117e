"""Shared test machinery for layers: run one layer, check gradients numerically, compare
with PyTorch (Chainer's harness idea: forward, backward, float64 finite differences).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netspec.layers.base import Context, Layer, ParamView


@dataclass
class LayerRun:
    """One layer with its own parameter store, callable like a tiny network."""

    layer: Layer
    store: dict[str, Any]
    grads: dict[str, Any] = field(default_factory=dict)
    training: bool = True
    seed: int = 0
    ctx: Context | None = None

    @classmethod
    def build(cls, layer: Layer, dtype: Any = np.float64, seed: int = 0, training: bool = True):
        values = layer.init(np.random.default_rng(seed))
        store = {
            k: (v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v.copy())
            for k, v in values.items()
        }
        return cls(layer, store, training=training, seed=seed)

    def params(self) -> dict[str, Any]:
        """Trainable entries only."""
        return {k: self.store[k] for k in self.layer.parameter_shapes()}

    def forward(self, *xs: Any) -> Any:
        # A fresh generator with the same seed each call: random layers repeat their masks,
        # so finite differences see the same function.
        self.ctx = Context(np, self.training, np.random.default_rng(self.seed))
        arg = list(xs) if self.layer.arity != 1 else xs[0]
        return self.layer.forward(ParamView(self.store, ""), arg, self.ctx)

    def backward(self, g: Any) -> Any:
        if not self.grads:
            self.grads = {k: np.zeros_like(v) for k, v in self.params().items()}
        return self.layer.backward(
            ParamView(self.store, ""), g, self.ctx, ParamView(self.grads, "")
        )


def numerical_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() with respect to x (modified in place)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def gradcheck(
    layer: Layer,
    *xs: np.ndarray,
    training: bool = True,
    seed: int = 0,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    store: dict[str, np.ndarray] | None = None,
) -> None:
    """Assert that backward matches float64 central differences, for inputs and parameters.

    Buffers (BatchNorm running stats) are restored before every forward so that the
    function being differentiated does not drift.
    """
    xs = tuple(np.array(x, dtype=np.float64) for x in xs)
    run = LayerRun.build(layer, np.float64, seed=seed, training=training)
    if store is not None:
        run.store.update({k: np.array(v, dtype=v.dtype) for k, v in store.items()})
    pristine = {k: v.copy() for k, v in run.store.items()}
    g = np.random.default_rng(seed + 1).standard_normal(np.shape(run.forward(*xs)))

    def loss() -> float:
        for k in pristine:
            if k not in run.params():
                run.store[k] = pristine[k].copy()
        return float(np.sum(run.forward(*xs) * g))

    loss()
    gx = run.backward(g)
    gxs = list(gx) if layer.arity != 1 else [gx]
    for i, x in enumerate(xs):
        expected = numerical_grad(loss, x)
        np.testing.assert_allclose(gxs[i], expected, rtol=rtol, atol=atol, err_msg=f"input {i}")
    for name, value in run.params().items():
        expected = numerical_grad(loss, value)
        np.testing.assert_allclose(run.grads[name], expected, rtol=rtol, atol=atol, err_msg=name)


def torch_parity(
    layer: Layer,
    module: Any,
    *xs: np.ndarray,
    dtype: Any = np.float64,
    training: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> LayerRun:
    """Assert forward, input grads, parameter grads and buffers equal a torch module's.

    Our parameters are loaded into `module` with load_state_dict (so PyTorch's names must
    match ours); the upstream gradient is random. Tolerances: 1e-8 in float64, 1e-4
    relative / 1e-5 absolute in float32.
    """
    import torch

    if rtol is None:
        rtol = 1e-8 if dtype == np.float64 else 1e-4
    if atol is None:
        atol = 1e-8 if dtype == np.float64 else 1e-5
    run = LayerRun.build(layer, dtype, seed=seed, training=training)
    module = module.to(torch.float64 if dtype == np.float64 else torch.float32)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in run.store.items()})
    module.train(training)
    xs = tuple(np.asarray(x, dtype=dtype) for x in xs)
    txs = [torch.from_numpy(x.copy()).requires_grad_(True) for x in xs]

    y = run.forward(*xs)
    ty = module(*txs)
    ty = ty[0] if isinstance(ty, tuple) else ty
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")

    g = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(dtype)
    gx = run.backward(g)
    ty.backward(torch.from_numpy(g))
    gxs = list(gx) if layer.arity != 1 else [gx]
    for i, tx in enumerate(txs):
        np.testing.assert_allclose(
            gxs[i], tx.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"grad input {i}"
        )
    named = dict(module.named_parameters())
    for name, grad in run.grads.items():
        np.testing.assert_allclose(
            grad, named[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=f"grad {name}"
        )
    for name, value in module.state_dict().items():
        np.testing.assert_allclose(
            run.store[name], value.numpy(), rtol=rtol, atol=atol, err_msg=name
        )
    return run
