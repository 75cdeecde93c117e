"""Every layer netspec knows, one module per family as in torch/nn/modules/.

`LAYERS` is the registry: the discriminated union over `type` is built from it, so adding a
layer means writing its class and listing it here.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from netspec.layers.activation import GELU, SELU, LeakyReLU, ReLU, ReLU6, Sigmoid, Softmax, Tanh
from netspec.layers.base import Layer
from netspec.layers.batchnorm import BatchNorm2d
from netspec.layers.conv import Conv2d
from netspec.layers.dropout import Dropout, Dropout2d
from netspec.layers.flatten import Flatten
from netspec.layers.linear import Identity, Linear
from netspec.layers.merge import Add, Concat
from netspec.layers.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d

LAYERS: tuple[type[Layer], ...] = (
    Conv2d,
    MaxPool2d,
    AvgPool2d,
    AdaptiveMaxPool2d,
    AdaptiveAvgPool2d,
    Sigmoid,
    Tanh,
    ReLU,
    LeakyReLU,
    ReLU6,
    GELU,
    SELU,
    Softmax,
    BatchNorm2d,
    Linear,
    Dropout,
    Dropout2d,
    Flatten,
    Identity,
    Add,
    Concat,
)
LAYER_TYPES: dict[str, type[Layer]] = {c.__pydantic_fields__["type"].default: c for c in LAYERS}
AnyLayer = Annotated[Union[LAYERS], Field(discriminator="type")]  # noqa: UP007

__all__ = ["LAYERS", "LAYER_TYPES", "AnyLayer", "Layer", *LAYER_TYPES]
