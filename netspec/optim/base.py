"""What every optimizer shares: the schema base that `train.optimizer` entries subclass (and
that registers them), and the runtime base that steps a network's parameters in place and
saves and restores its state. An optimizer's own module holds its schema and its step.

The runtime follows torch.optim's single-tensor algorithms step for step, on NumPy or CuPy,
in the parameters' dtype: one loop over parameter tensors per step, whole-array math inside.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator

from netspec.errors import ArgError, InputError, NetspecError
from netspec.lazy import lazy_import
from netspec.optim.registry import RegisteredSchema, Registry
from netspec.types import Bounds, Float

np = lazy_import("numpy")
backend = lazy_import("netspec.ops.backend")
fused = lazy_import("netspec.ops.fused")


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# `(beta1, beta2)`; a YAML list stands for the tuple.
FloatPair = Annotated[tuple[Float, Float], BeforeValidator(_list_to_tuple)]
NonNegative = Bounds(minimum=0)
# The editor's copy of `OptimizerSpec._check_fused`, for the optimizers that take `fused`.
FUSED_RULE = {
    "if": {"properties": {"fused": {"const": True}}, "required": ["fused"]},
    "then": {
        "properties": {"differentiable": {"const": False}, "foreach": {"enum": [False, None]}}
    },
}


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
        self._device: Any = None  # DeviceScalars once use_device_scalars() was called
        self._scalars: dict[str, Any] = {}

    @property
    def lr(self) -> float:
        """The learning rate the next step uses; schedules set it."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        # A Python float: a NumPy float64 scalar would upcast float32 parameters.
        self._lr = float(value)

    def step(self) -> None:
        """One update of every parameter from its current gradient."""
        self.prepare_step()
        self.apply_step()

    def prepare_step(self) -> None:
        """The host's half of a step: count it and fix the scalars that change per step.

        Split from `apply_step` for CUDA graphs (netspec.training.step_graph), which replay
        the device half alone: with `use_device_scalars()`, the scalars are written to device
        memory here and the captured kernels read them from there.
        """
        self.steps += 1
        scalars = self.step_scalars()
        self._scalars = scalars if self._device is None else self._device.put(scalars)

    def apply_step(self) -> None:
        """The device's half: one fused update per parameter (netspec.ops.fused)."""
        for name, param in self.params.items():
            self._update(param, self.grads[name], self.state[name], self._scalars)

    def step_scalars(self) -> dict[str, float]:
        """This step's scalars that change from step to step, by the update's names."""
        return {"lr": self.lr}

    def use_device_scalars(self, on: bool = True) -> None:
        """Pass the per-step scalars as 0-d device arrays from now on (for graph capture),
        those of the step in progress too; off: as numbers again."""
        like = next(iter(self.params.values()), None)
        if like is None or on == (self._device is not None):
            return
        self._device = fused.DeviceScalars(like) if on else None
        if self.steps:  # the step in progress (a captured update reads them from now on)
            scalars = self.step_scalars()
            self._scalars = scalars if self._device is None else self._device.put(scalars)

    @abstractmethod
    def _update(self, param: Any, grad: Any, state: dict[str, Any], scalars: dict) -> None:
        """Update one parameter in place from its gradient, state buffers and step scalars."""

    def zero_grad(self) -> None:
        """Fill every gradient with zeros, in place (torch's `set_to_none=False`)."""
        for grad in self.grads.values():
            grad.fill(0)

    def state_dict(self) -> dict[str, Any]:
        """A NumPy snapshot: "lr", "step" (0-d arrays) and "<param>/<buffer>" arrays."""
        snapshot = {
            "lr": np.asarray(self.lr, dtype=np.float64),
            "step": np.asarray(self.steps, dtype=np.int64),
        }
        for name, buffers in self.state.items():
            for buffer, array in buffers.items():
                host = backend.to_numpy(array)
                snapshot[f"{name}/{buffer}"] = host.copy() if host is array else host
        return snapshot

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`, moving each buffer to its parameter's device and dtype."""
        state = dict(state)
        steps = int(_scalar(state, "step"))
        lr = float(_scalar(state, "lr"))
        if steps < 0:
            raise OptimizerStateError(f"optimizer state has a negative step count ({steps})")
        names = self.spec.state_buffers() if steps > 0 else ()
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
            param, host = self.params[name], backend.to_numpy(value)
            if host.shape != param.shape:
                raise OptimizerStateError(
                    f"optimizer state '{key}' has shape {host.shape}, "
                    f"but parameter '{name}' has shape {tuple(param.shape)}"
                )
            restored[name][buffer] = backend.array_module(param).array(host, dtype=param.dtype)
        self.state, self.steps, self.lr = restored, steps, lr


REGISTRY: Registry[OptimizerSpec] = Registry("optimizer")


class OptimizerSpec(RegisteredSchema):
    """Base of every optimizer schema: `type` plus torch.optim's arguments (without params).

    A subclass that names its `type` is registered when it is defined (see `Registry`) and
    says which `Optimizer` steps it (`runtime`) and what state it keeps (`state_buffers`).
    """

    registry: ClassVar[Registry] = REGISTRY
    runtime: ClassVar[type[Optimizer]]
    """The runtime class that steps parameters by this schema."""

    def state_buffers(self) -> tuple[str, ...]:
        """The parameter-sized arrays of state kept per parameter, by their state-dict names
        ("<param>/<buffer>"); memory estimates count them before any array exists."""
        return ()

    def _check_fused(self, foreach: bool | None, fused: bool | None, differentiable: bool) -> None:
        if fused and differentiable:
            raise ArgError("fused", "`fused` does not support `differentiable`")
        if fused and foreach:
            raise ArgError("fused", "`fused` and `foreach` cannot be `True` together.")


def compile_optimizer(spec: OptimizerSpec, net: Any) -> Optimizer:
    """The runtime optimizer of `spec` over `net.parameters()` and `net.grads`."""
    return spec.runtime(spec, net.parameters(), net.grads)


def lerp_scalars(weight: float) -> dict[str, Any]:
    """The scalars of start.lerp_(end, weight) with ATen's two formulas (the exact one for
    each half): which one (near_start), the weight and 1 - weight (fused.py's _lerp)."""
    return {"weight": weight, "rest": 1 - weight, "near_start": abs(weight) < 0.5}


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
    value = backend.to_numpy(state.pop(key))
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
