"""Elementwise regression losses: L1Loss and MSELoss. Mirrors torch/nn/modules/loss.py."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from netspec.layers.base import Context
from netspec.losses.base import Loss, TargetKind


class L1Loss(Loss):
    """Mean absolute error |x - y|. Mirrors torch.nn.L1Loss, except that a target of another
    shape is an error (PyTorch broadcasts it with a warning)."""

    targets: ClassVar[TargetKind] = "values"
    type: Literal["L1Loss"] = "L1Loss"

    def forward(self, x: Any, target: Any, ctx: Context) -> Any:
        diff = x - self._same_shape_target(x, target)
        divisor = self._divisor(diff.size, ctx)
        ctx.save(ctx.xp.sign(diff), divisor)  # the gradient at 0 is 0, as in PyTorch
        return self._reduce(ctx.xp.abs(diff), divisor, ctx.xp)

    def backward(self, grad: Any, ctx: Context) -> Any:
        sign, divisor = ctx.saved
        return sign * self._element_grad(grad, ctx, sign.shape, divisor, sign.dtype)


class MSELoss(Loss):
    """Mean squared error (x - y)². Mirrors torch.nn.MSELoss, except that a target of another
    shape is an error (PyTorch broadcasts it with a warning)."""

    targets: ClassVar[TargetKind] = "values"
    type: Literal["MSELoss"] = "MSELoss"

    def forward(self, x: Any, target: Any, ctx: Context) -> Any:
        diff = x - self._same_shape_target(x, target)
        divisor = self._divisor(diff.size, ctx)
        ctx.save(diff, divisor)
        return self._reduce(diff * diff, divisor, ctx.xp)

    def backward(self, grad: Any, ctx: Context) -> Any:
        diff, divisor = ctx.saved
        return 2 * diff * self._element_grad(grad, ctx, diff.shape, divisor, diff.dtype)
