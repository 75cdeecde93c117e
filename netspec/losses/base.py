"""The base of every loss: PyTorch's reduction, its legacy flags, and the helpers the losses
share (reducing element losses, the gradient of each element, target checks).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, field_validator

from netspec.errors import ArgError, InputError
from netspec.layers.base import Context
from netspec.lazy import lazy_import
from netspec.types import Bool, Float, Schema, Shape, format_shape

np = lazy_import("numpy")

# What a loss compares the network's output with: class indices (or class probabilities),
# which makes training measure accuracy, or values of the output's own shape.
TargetKind = Literal["classes", "values"]
# "elementwise_mean" is PyTorch's deprecated alias of "mean", still accepted with a warning.
Reduction = Literal["none", "mean", "sum", "elementwise_mean"]
# A YAML list of class weights; kept as a tuple so that the frozen schema stays hashable.
FloatList = Annotated[
    tuple[Float, ...], BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)
]


def quiet_division() -> np.errstate:
    """A mean over zero elements (all targets ignored, an empty batch) is 0/0 = NaN, as in
    PyTorch: NumPy need not warn about it."""
    return np.errstate(divide="ignore", invalid="ignore")


class Loss(Schema, ABC):
    """Base of every loss schema: PyTorch's reduction and its two legacy flags."""

    # Every loss says which: the data checks, the metrics and the lint rules ask this.
    targets: ClassVar[TargetKind]

    size_average: Bool | None = None
    """Deprecated (use reduction): false sums the losses instead of averaging them."""
    reduce: Bool | None = None
    """Deprecated (use reduction): false returns one loss per element."""
    reduction: Reduction = "mean"
    """'none': one loss per element; 'mean': their (weighted) mean; 'sum': their sum
    ('elementwise_mean': deprecated alias of 'mean')."""

    @field_validator("reduction", mode="before")
    @classmethod
    def _known_reduction(cls, value: Any) -> Any:
        # PyTorch raises this at the first forward; we say it while reading the spec.
        if not isinstance(value, str) or value not in get_args(Reduction):
            raise ArgError("reduction", f"{value} is not a valid value for reduction")
        return value

    @property
    def type_name(self) -> str:
        return self.type  # type: ignore[attr-defined]

    @property
    def effective_reduction(self) -> str:
        """The reduction in force, decided PyTorch's way: a legacy flag overrides `reduction`."""
        if self.size_average is None and self.reduce is None:
            return "mean" if self.reduction == "elementwise_mean" else self.reduction
        if self.reduce is False:
            return "none"
        return "sum" if self.size_average is False else "mean"

    def legacy_warning(self) -> str | None:
        """PyTorch's deprecation text when a legacy flag or reduction is given, else None."""
        if self.size_average is None and self.reduce is None:
            if self.reduction == "elementwise_mean":
                return (
                    "reduction='elementwise_mean' is deprecated. "
                    "Please use reduction='mean' instead."
                )
            return None
        return (
            "size_average and reduce args will be deprecated, please use "
            f"reduction='{self.effective_reduction}' instead."
        )

    def torch_arguments(self) -> dict[str, Any]:
        """The constructor arguments, as PyTorch names them."""
        return {k: v for k, v in self.model_dump().items() if k != "type"}

    def check(self, output_shape: Shape) -> None:
        """Raise ShapeError when a network output of this shape cannot feed the loss."""

    def device_arrays(self, xp: Any, dtype: Any) -> dict[str, Any]:
        """Arrays of the schema that `forward` takes as keywords, on the device in `dtype`:
        CompiledLoss moves them once instead of at every step (none by default)."""
        return {}

    @abstractmethod
    def forward(self, x: Any, target: Any, ctx: Context) -> Any:
        """The loss value; saves in `ctx` what backward needs."""

    @abstractmethod
    def backward(self, grad: Any, ctx: Context) -> Any:
        """The gradient of the input, given `grad`, that of the loss value."""

    # -- helpers shared by the losses ------------------------------------------------------
    def _divisor(self, local: Any, ctx: Context) -> Any:
        """The mean's divisor: `local` (an element count, a weight sum), over every process
        of a data-parallel run, so that their loss values add up to the batch's."""
        return ctx.total(local) if self.effective_reduction == "mean" else local

    def _reduce(self, losses: Any, divisor: Any, xp: Any) -> Any:
        """The loss value: `losses` itself, their sum, or their sum / divisor (0-d arrays)."""
        reduction = self.effective_reduction
        if reduction == "none":
            return losses
        total = losses.sum()
        if reduction == "mean":
            with quiet_division():
                total = total / divisor
        return xp.asarray(total)

    def _element_grad(self, grad: Any, ctx: Context, shape: tuple, divisor: Any, dtype: Any) -> Any:
        """The upstream gradient of each element loss: `grad` ('none') or a 0-d scalar."""
        grad = ctx.xp.asarray(grad, dtype=dtype)
        if self.effective_reduction == "none":
            if grad.shape != shape:
                raise InputError(
                    f"{self.type_name}: the gradient of a reduction='none' loss must have the "
                    f"loss's shape {format_shape(shape)}, received {format_shape(grad.shape)}"
                )
            return grad
        if grad.size != 1:
            raise InputError(
                f"{self.type_name}: the gradient of a reduced loss must be a scalar, "
                f"received shape {format_shape(grad.shape)}"
            )
        grad = grad.reshape(())
        if self.effective_reduction == "mean":
            with quiet_division():
                grad = grad / divisor
        return grad

    def _same_shape_target(self, x: Any, target: Any) -> Any:
        """The target of an elementwise loss, checked against the input and cast to its dtype."""
        if target.dtype.kind not in "biuf":
            raise InputError(f"{self.type_name}: target must be numeric, received {target.dtype}")
        if target.shape != x.shape:
            raise InputError(
                f"{self.type_name}: target shape {format_shape(target.shape)} does not match "
                f"input shape {format_shape(x.shape)} (PyTorch would broadcast them, with a "
                "warning; netspec refuses)"
            )
        return target.astype(x.dtype, copy=False)
