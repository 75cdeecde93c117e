"""Optimizers: schemas that mirror torch.optim's constructors, and the update rules that
follow torch.optim's single-tensor algorithms step for step.

The schema half validates `train.optimizer`; the runtime half updates a network's live
parameter arrays in place from its gradient arrays, on NumPy or CuPy, in the parameters'
dtype. One loop over parameter tensors per step; everything inside is whole-array math.

    schemas.py   OptimizerSpec, SGD, Adam, AdamW: what `train.optimizer` accepts
    runtime.py   Optimizer and its SGD/Adam steps, state dicts, compile_optimizer
"""

from __future__ import annotations

from netspec.optim.runtime import (
    RUNTIMES,
    AdamOptimizer,
    Optimizer,
    OptimizerStateError,
    SGDOptimizer,
    compile_optimizer,
)
from netspec.optim.schemas import (
    OPTIMIZER_TYPES,
    OPTIMIZERS,
    SGD,
    Adam,
    AdamW,
    AnyOptimizer,
    FloatPair,
    OptimizerSpec,
)

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_TYPES",
    "RUNTIMES",
    "SGD",
    "Adam",
    "AdamOptimizer",
    "AdamW",
    "AnyOptimizer",
    "FloatPair",
    "Optimizer",
    "OptimizerSpec",
    "OptimizerStateError",
    "SGDOptimizer",
    "compile_optimizer",
]
