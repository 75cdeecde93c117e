"""Placeholder: being written."""
from typing import Literal
from netspec.layers.base import Layer


class GELU(Layer):
    type: Literal["GELU"] = "GELU"


class SELU(Layer):
    type: Literal["SELU"] = "SELU"


class LeakyReLU(Layer):
    type: Literal["LeakyReLU"] = "LeakyReLU"


class ReLU(Layer):
    type: Literal["ReLU"] = "ReLU"


class ReLU6(Layer):
    type: Literal["ReLU6"] = "ReLU6"


class Sigmoid(Layer):
    type: Literal["Sigmoid"] = "Sigmoid"


class Softmax(Layer):
    type: Literal["Softmax"] = "Softmax"


class Tanh(Layer):
    type: Literal["Tanh"] = "Tanh"
