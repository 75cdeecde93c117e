"""Placeholder: being written."""
from typing import Literal
from netspec.layers.base import Layer


class AdaptiveAvgPool2d(Layer):
    type: Literal["AdaptiveAvgPool2d"] = "AdaptiveAvgPool2d"


class AdaptiveMaxPool2d(Layer):
    type: Literal["AdaptiveMaxPool2d"] = "AdaptiveMaxPool2d"


class AvgPool2d(Layer):
    type: Literal["AvgPool2d"] = "AvgPool2d"


class MaxPool2d(Layer):
    type: Literal["MaxPool2d"] = "MaxPool2d"
