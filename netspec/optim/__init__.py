"""Optimizers, one module each as in torch/optim: the schema that mirrors torch.optim's
constructor (what `train.optimizer` accepts) and the step that follows torch.optim's
single-tensor algorithm, updating a network's live parameter arrays in place on NumPy or
CuPy, in the parameters' dtype.

    base.py          OptimizerSpec, Optimizer, OptimizerStateError, compile_optimizer
    registry.py      Registry: schemas by `type`, and the union over them
    sgd.py, ...      one module per optimizer, named as in torch/optim (adam.py: Adam, AdamW)
    lr_scheduler.py  the learning-rate schedules (scheduler.py: what they share)

An optimizer's module defines its classes; importing it below registers them, and the
union `train.optimizer` validates against is built from the registry.
"""

from __future__ import annotations

from netspec.optim.base import REGISTRY
from netspec.optim.base import FloatPair as FloatPair
from netspec.optim.base import Optimizer as Optimizer
from netspec.optim.base import OptimizerSpec as OptimizerSpec
from netspec.optim.base import OptimizerStateError as OptimizerStateError
from netspec.optim.base import compile_optimizer as compile_optimizer

# The order of these imports is the union's: of JSON schema lists and error messages.
# isort: off
from netspec.optim.sgd import SGD as SGD, SGDOptimizer as SGDOptimizer
from netspec.optim.adam import Adam as Adam, AdamW as AdamW, AdamOptimizer as AdamOptimizer
from netspec.optim.rmsprop import RMSprop as RMSprop, RMSpropOptimizer as RMSpropOptimizer
# isort: on

OPTIMIZERS = REGISTRY.classes()
OPTIMIZER_TYPES = dict(REGISTRY.types)
AnyOptimizer = REGISTRY.union()
