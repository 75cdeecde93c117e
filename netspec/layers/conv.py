"""Placeholder: being written."""
from typing import Literal
from netspec.layers.base import Layer


class Conv2d(Layer):
    type: Literal["Conv2d"] = "Conv2d"
