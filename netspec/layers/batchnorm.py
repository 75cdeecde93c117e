"""Placeholder: being written."""
from typing import Literal
from netspec.layers.base import Layer


class BatchNorm2d(Layer):
    type: Literal["BatchNorm2d"] = "BatchNorm2d"
