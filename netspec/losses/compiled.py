"""A loss bound to a device and dtype, ready for training: `compile_loss`."""

from __future__ import annotations

from typing import Any

from netspec.errors import NetspecError
from netspec.layers.base import Context, Shard
from netspec.lazy import lazy_import
from netspec.losses.base import Loss

np = lazy_import("numpy")
backend = lazy_import("netspec.ops.backend")


class CompiledLoss:
    """A loss bound to a device and dtype: `value = loss(y, target); gy = loss.backward()`.

    Targets may be NumPy arrays (or lists) whatever the device: they are moved to it here.
    The loss runs in the compile dtype; the schema's own arrays (CrossEntropyLoss's class
    weights) are moved to the device once, by `Loss.device_arrays`.
    """

    def __init__(self, loss: Loss, xp: Any, dtype: np.dtype):
        self.loss = loss
        self.xp = xp
        self.dtype = dtype
        self._extra = loss.device_arrays(xp, dtype)
        self._ctx: Context | None = None
        self._value_shape: tuple = ()
        self.shard: Shard | None = None  # set by a data-parallel run: y and target are rows

    @property
    def reduction(self) -> str:
        return self.loss.effective_reduction

    def _array(self, a: Any) -> Any:
        return backend.to_numpy(a) if self.xp is np else self.xp.asarray(a)

    def __call__(self, y: Any, target: Any) -> Any:
        y = self._array(y).astype(self.dtype, copy=False)
        self._ctx = Context(self.xp, training=True, shard=self.shard)
        value = self.loss.forward(y, self._array(target), self._ctx, **self._extra)
        self._value_shape = value.shape
        return value

    def backward(self, grad: Any = None) -> Any:
        """The gradient of the input y; `grad` is that of the loss value (ones if None)."""
        if self._ctx is None:
            raise NetspecError("CompiledLoss.backward() needs a forward call first")
        if grad is None:
            grad = self.xp.ones(self._value_shape, dtype=self.dtype)
        else:
            grad = self._array(grad).astype(self.dtype, copy=False)
        return self.loss.backward(grad, self._ctx)


def compile_loss(loss: Loss, device: str = "cpu", dtype: str | Any = "float32") -> CompiledLoss:
    """Bind a loss schema (spec.loss) to a device ('cpu' or 'cuda') and dtype."""
    return CompiledLoss(loss, backend.get_xp(device), backend.resolve_dtype(dtype))
