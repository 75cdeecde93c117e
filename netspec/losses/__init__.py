"""L1Loss, MSELoss and CrossEntropyLoss. Mirrors torch/nn/modules/loss.py.

A loss follows the layer pattern: a frozen schema that copies the torch constructor, a shape
check run before any array exists (`check`), and forward/backward over NumPy or CuPy.
`compile_loss` binds one to a device and dtype for training.

    base.py           Loss: reduction, legacy flags, shared helpers
    regression.py     L1Loss, MSELoss
    cross_entropy.py  CrossEntropyLoss
    compiled.py       CompiledLoss, compile_loss
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from netspec.losses.base import Loss
from netspec.losses.compiled import CompiledLoss, compile_loss
from netspec.losses.cross_entropy import CrossEntropyLoss
from netspec.losses.regression import L1Loss, MSELoss

LOSSES: tuple[type[Loss], ...] = (L1Loss, MSELoss, CrossEntropyLoss)
LOSS_TYPES: dict[str, type[Loss]] = {c.__pydantic_fields__["type"].default: c for c in LOSSES}
AnyLoss = Annotated[Union[LOSSES], Field(discriminator="type")]  # noqa: UP007

__all__ = [
    "LOSSES",
    "LOSS_TYPES",
    "AnyLoss",
    "CompiledLoss",
    "CrossEntropyLoss",
    "L1Loss",
    "Loss",
    "MSELoss",
    "compile_loss",
]
