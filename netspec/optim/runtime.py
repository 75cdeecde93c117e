"""The runtime optimizers: torch.optim's single-tensor algorithms, step for step, updating a
network's live parameter arrays in place from its gradient arrays, on NumPy or CuPy, in the
parameters' dtype. One loop over parameter tensors per step; inside it, whole-array math.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from netspec.errors import InputError, NetspecError
from netspec.ops.backend import array_module, to_numpy
from netspec.optim.schemas import SGD, Adam, AdamW, OptimizerSpec


class OptimizerStateError(NetspecError, ValueError):
    """An optimizer (or schedule) state dict that does not fit: wrong names, shapes or keys."""


class Optimizer(ABC):
    """Updates live parameter arrays in place from their gradients, as torch.optim does.

    `params` and `grads` map the same names to arrays of the same shapes (a network's
    `parameters()` and `grads`); the arrays are read at every step, on NumPy or CuPy, and
    the update keeps their dtype. Per-parameter state is created at the first step.
    """

    def __init__(self, spec: OptimizerSpec, params: dict[str, Any], grads: dict[str, Any]):
        _check_same_shapes(params, grads)
        self.spec = spec
        self.params = params
        self.grads = grads
        self.lr = spec.lr  # type: ignore[attr-defined]
        self.steps = 0
        self.state: dict[str, dict[str, Any]] = {name: {} for name in params}

    @property
    def lr(self) -> float:
        """The learning rate the next step uses; schedules set it."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        # A Python float: a NumPy float64 scalar would upcast float32 parameters.
        self._lr = float(value)

    def buffer_names(self) -> tuple[str, ...]:
        """Per-parameter state arrays, stored as "<param>/<buffer>" in the state dict."""
        return ()

    def step(self) -> None:
        """One update of every parameter from its current gradient."""
        self.steps += 1
        for name, param in self.params.items():
            self._update(param, self.grads[name], self.state[name])

    @abstractmethod
    def _update(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        """Update one parameter in place from its gradient and its state buffers."""

    def zero_grad(self) -> None:
        """Fill every gradient with zeros, in place (torch's `set_to_none=False`)."""
        for grad in self.grads.values():
            grad.fill(0)

    def state_dict(self) -> dict[str, np.ndarray]:
        """A NumPy snapshot: "lr", "step" (0-d arrays) and "<param>/<buffer>" arrays."""
        snapshot = {
            "lr": np.asarray(self.lr, dtype=np.float64),
            "step": np.asarray(self.steps, dtype=np.int64),
        }
        for name, buffers in self.state.items():
            for buffer, array in buffers.items():
                host = to_numpy(array)
                snapshot[f"{name}/{buffer}"] = host.copy() if host is array else host
        return snapshot

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`, moving each buffer to its parameter's device and dtype."""
        state = dict(state)
        steps = int(_scalar(state, "step"))
        lr = float(_scalar(state, "lr"))
        if steps < 0:
            raise OptimizerStateError(f"optimizer state has a negative step count ({steps})")
        names = self.buffer_names() if steps > 0 else ()
        expected = {f"{param}/{buffer}" for param in self.params for buffer in names}
        missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
        if missing or unexpected:
            raise OptimizerStateError(
                "optimizer state does not fit the parameters: "
                + _mismatch_message(missing, unexpected)
            )
        restored: dict[str, dict[str, Any]] = {name: {} for name in self.params}
        for key, value in state.items():
            name, buffer = key.rsplit("/", 1)
            param, host = self.params[name], to_numpy(value)
            if host.shape != param.shape:
                raise OptimizerStateError(
                    f"optimizer state '{key}' has shape {host.shape}, "
                    f"but parameter '{name}' has shape {tuple(param.shape)}"
                )
            restored[name][buffer] = array_module(param).array(host, dtype=param.dtype)
        self.state, self.steps, self.lr = restored, steps, lr


class SGDOptimizer(Optimizer):
    """torch.optim.SGD's single-tensor step."""

    spec: SGD

    def buffer_names(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.spec.momentum != 0 else ()

    def _update(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        spec = self.spec
        if spec.maximize:
            grad = -grad
        if spec.weight_decay != 0:
            grad = grad + spec.weight_decay * param
        if spec.momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:  # the first step starts the buffer at the gradient itself
                buffer = state["momentum_buffer"] = grad.copy()
            else:
                buffer *= spec.momentum
                buffer += (1 - spec.dampening) * grad
            grad = grad + spec.momentum * buffer if spec.nesterov else buffer
        param -= self.lr * grad


class AdamOptimizer(Optimizer):
    """torch.optim.Adam's single-tensor step (AdamW: Adam with decoupled weight decay)."""

    spec: Adam | AdamW

    def buffer_names(self) -> tuple[str, ...]:
        names = ("exp_avg", "exp_avg_sq")
        return (*names, "max_exp_avg_sq") if self.spec.amsgrad else names

    def _update(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        spec, lr, xp = self.spec, self.lr, array_module(param)
        beta1, beta2 = spec.betas
        if spec.maximize:
            grad = -grad
        if spec.weight_decay != 0:
            if spec.decouples_weight_decay:
                param *= 1 - lr * spec.weight_decay
            else:
                grad = grad + spec.weight_decay * param
        if not state:
            state.update({name: xp.zeros_like(param) for name in self.buffer_names()})
        exp_avg, second_moment = state["exp_avg"], state["exp_avg_sq"]
        _lerp_(exp_avg, grad, 1 - beta1)
        second_moment *= beta2
        second_moment += (1 - beta2) * grad * grad
        if spec.amsgrad:
            xp.maximum(state["max_exp_avg_sq"], second_moment, out=state["max_exp_avg_sq"])
            second_moment = state["max_exp_avg_sq"]
        # Python floats, as torch computes them: bias corrections of the running averages.
        step_size = lr / (1 - beta1**self.steps)
        bias_correction2_sqrt = (1 - beta2**self.steps) ** 0.5
        denom = xp.sqrt(second_moment)
        denom /= bias_correction2_sqrt
        denom += spec.eps
        param += (-step_size * exp_avg) / denom


def _lerp_(start: Any, end: Any, weight: float) -> None:
    """start.lerp_(end, weight) with ATen's two formulas (the exact one for each half)."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


RUNTIMES: dict[str, type[Optimizer]] = {
    "SGD": SGDOptimizer,
    "Adam": AdamOptimizer,
    "AdamW": AdamOptimizer,
}


def compile_optimizer(spec: OptimizerSpec, net: Any) -> Optimizer:
    """The runtime optimizer of `spec` over `net.parameters()` and `net.grads`."""
    return RUNTIMES[spec.type](spec, net.parameters(), net.grads)  # type: ignore[attr-defined]


def _check_same_shapes(params: dict[str, Any], grads: dict[str, Any]) -> None:
    if params.keys() != grads.keys():
        missing, unexpected = sorted(params.keys() - grads.keys()), sorted(grads.keys() - params)
        raise InputError(
            "gradients do not fit the parameters: " + _mismatch_message(missing, unexpected)
        )
    for name, param in params.items():
        if grads[name].shape != param.shape:
            raise InputError(
                f"gradient '{name}' has shape {tuple(grads[name].shape)}, "
                f"but the parameter has shape {tuple(param.shape)}"
            )


def _scalar(state: dict[str, Any], key: str) -> Any:
    """Pop a 0-d entry (a NumPy scalar or 0-d array) from a state dict."""
    if key not in state:
        raise OptimizerStateError(f"optimizer state has no '{key}' entry")
    value = to_numpy(state.pop(key))
    if value.ndim != 0:
        raise OptimizerStateError(f"optimizer state '{key}' should be a scalar, got {value.shape}")
    return value[()]


def _mismatch_message(missing: list[str], unexpected: list[str]) -> str:
    """'missing a, b; unexpected c', with at most five names of each."""

    def listed(names: list[str]) -> str:
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        return ", ".join(names[:5]) + more

    parts = [f"missing {listed(missing)}"] if missing else []
    parts += [f"unexpected {listed(unexpected)}"] if unexpected else []
    return "; ".join(parts)
