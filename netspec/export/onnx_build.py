"""The small vocabulary the ONNX converters write nodes in: one `LayerScope` per layer.

A scope names what it makes after its layer, so that Netron shows which layer each node
belongs to: the node that computes the layer's value is named like the layer (`conv1`),
the nodes around it `conv1/Pad`, `conv1/MaxPool`, and the values between them likewise
(layer names cannot hold a `/`, so these never clash with a layer's value). Constants are
Constant nodes, not initializers: the initializers stay exactly the state dict.

`onnx` is imported by the caller (an extra) and handed in; nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from netspec.errors import NetspecError


class OnnxExportError(NetspecError):
    """The network cannot be written as ONNX: a missing package, an argument ONNX cannot
    express faithfully, a state dict that does not fit, a file not written."""


class Builder:
    """The nodes of one ONNX graph, in order, with unique node names."""

    def __init__(self, onnx: Any, opset: int):
        self.onnx = onnx
        self.opset = opset
        self.nodes: list[Any] = []
        self._names: set[str] = set()

    def unique(self, name: str) -> str:
        """`name`, or `name_2`, `name_3`... when a node or value already has it."""
        candidate, k = name, 1
        while candidate in self._names:
            k += 1
            candidate = f"{name}_{k}"
        self._names.add(candidate)
        return candidate

    def scope(self, layer: str) -> LayerScope:
        return LayerScope(self, layer)


class LayerScope:
    """Writes the nodes of one layer, named after it."""

    def __init__(self, builder: Builder, layer: str):
        self.builder = builder
        self.layer = layer
        self.opset = builder.opset

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        out: str | None = None,
        *,
        outs: Sequence[str] | None = None,
        **attributes: Any,
    ) -> str:
        """Add one node; its (first) output is `out`, or a fresh value named after the op.

        The node is named like the layer when it makes the layer's own value, else like
        its output."""
        fresh = out is None and outs is None
        outputs = list(outs) if outs is not None else [out or self.value(op_type)]
        if outputs[0] == self.layer:
            name = self.builder.unique(self.layer)
        else:
            name = outputs[0] if fresh else self.value(op_type)
        node = self.builder.onnx.helper.make_node(
            op_type, list(inputs), outputs, name=name, **attributes
        )
        self.builder.nodes.append(node)
        return outputs[0]

    def value(self, what: str) -> str:
        """A fresh value (or node) name inside this layer: `layer/what`."""
        return self.builder.unique(f"{self.layer}/{what}")

    def const(self, what: str, array: Any, dtype: Any = np.float32) -> str:
        """A Constant node holding `array`; returns its value name."""
        onnx = self.builder.onnx
        tensor = onnx.numpy_helper.from_array(np.asarray(array, dtype=dtype))
        name = self.value(what)
        tensor.name = name
        self.builder.nodes.append(
            onnx.helper.make_node("Constant", [], [name], name=name, value=tensor)
        )
        return name

    def ints(self, what: str, values: Sequence[int]) -> str:
        """An int64 vector constant: pads, axes, shapes, slice bounds."""
        return self.const(what, list(values), np.int64)

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool, out=None) -> str:
        """ReduceMean / ReduceMax over `axes`: an attribute before opset 18, an input since."""
        if self.opset >= 18:
            return self.op(op_type, [x, self.ints("axes", axes)], out, keepdims=int(keepdims))
        return self.op(op_type, [x], out, axes=list(axes), keepdims=int(keepdims))

    def slice(self, x: str, axis: int, start: int, end: int, out: str | None = None) -> str:
        """x[start:end] along `axis` (end exclusive, both within the axis)."""
        inputs = [x, self.ints("starts", [start]), self.ints("ends", [end])]
        return self.op("Slice", [*inputs, self.ints("axes", [axis])], out)

    def pad(
        self, x: str, pads: tuple[int, int, int, int], mode: str, value: float | None = None
    ) -> str:
        """Pad the last two axes of an (N, C, H, W) value by (top, bottom, left, right)."""
        top, bottom, left, right = pads
        inputs = [x, self.ints("pads", [0, 0, top, left, 0, 0, bottom, right])]
        if value is not None:
            inputs.append(self.const("pad_value", value))
        return self.op("Pad", inputs, mode=mode)


@dataclass
class Call:
    """One layer to convert: where its inputs are, their shapes, what it must produce.

    Shapes have None for the batch. A converter writes the layer's value under `name`, and
    its indices under `indices` when the network returns them (else None)."""

    scope: LayerScope
    layer: Any
    name: str
    inputs: list[str]
    shapes: list[tuple]
    out_shape: tuple
    indices: str | None = None

    @property
    def x(self) -> str:
        return self.inputs[0]

    @property
    def spatial(self) -> tuple[int, int]:
        """(H, W) of the first input."""
        return tuple(self.shapes[0][2:4])  # type: ignore[return-value]

    def refuse(self, why: str) -> OnnxExportError:
        return OnnxExportError(
            f"cannot export layer '{self.name}' ({self.layer.type_name}) to ONNX: {why}"
        )
