"""Placeholder: being written."""
from typing import Literal
from netspec.layers.base import Layer


class Dropout(Layer):
    type: Literal["Dropout"] = "Dropout"


class Dropout2d(Layer):
    type: Literal["Dropout2d"] = "Dropout2d"
