"""`netspec export --format onnx`: the network in eval mode as an ONNX model.

The model is built with the `onnx` package's helper API (an extra, imported only here):
one input `input` of shape (N, *input.shape) with a symbolic batch N, float32; the
parameters and BatchNorm buffers as initializers under PyTorch's state-dict names
(`conv.weight`, `layer1.0.bn.running_mean`), so a tool that reads the model finds the
weights where torch.onnx would put them; one graph output per entry of the spec's
`outputs`, named after it (`fc`, `pool.indices`; MaxPool indices are int64, PyTorch's
h·W + w in each (n, c) plane). `num_batches_tracked` is left out: eval mode never reads it.
An output that names the input, or repeats an earlier output, is an Identity of it named
`REF/K` (K its position in `outputs`): ONNX names each graph output once.

The default opset is 17, which most runtimes read; 18 to 21 are written with the newer
operators where they exist (Pad's wrap from 19, Gelu from 20), 17 composes them from
plain ones (onnx_layers says how). Every node is named after its layer, so Netron shows the
spec's names. `onnx.checker` (full check, with strict shape inference against the shapes
netspec inferred, written as value_info) passes before the file is written.

What differs from netspec's forward: the model computes in float32 whatever the spec's
dtype; a NaN in a max pool's window propagates in PyTorch and netspec, but onnxruntime's
MaxPool skips it unless it comes first (values and indices then differ); a BatchNorm2d
without running statistics normalises a batch of one value per channel where netspec
refuses it. An argument ONNX cannot express faithfully is refused, naming the layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.export.onnx_build import Builder, Call, OnnxExportError
from netspec.frontend.graph import INPUT
from netspec.layers import Concat, Flatten
from netspec.version import __version__

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec

OPSETS = range(17, 22)  # written and tested; the runtime must read the one chosen
BATCH = "N"
SKIPPED_BUFFERS = ("num_batches_tracked",)

__all__ = ["OnnxExportError", "write_onnx", "to_onnx"]


def _onnx() -> Any:
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401  (a submodule `import onnx` may not load)
    except ImportError:
        raise OnnxExportError(
            "exporting to ONNX needs the onnx package",
            hint="pip install 'netspec[export]'",
        ) from None
    return onnx


def write_onnx(spec: Spec, state: dict[str, Any], path: str | Path, *, opset: int = 17) -> Path:
    """Write the network of `spec` with the weights `state` (its state dict under PyTorch's
    names, NumPy arrays) to `path` as an ONNX model, checked by `onnx.checker` first.

    The model is serialised once: the checker reads the bytes that are written (a VGG's
    half gigabyte of weights is copied once, not three times)."""
    onnx = _onnx()
    model = _build(onnx, spec, state, opset)
    try:
        data = model.SerializeToString()
    except ValueError:  # protobuf's 2 GiB limit
        raise OnnxExportError(
            f"cannot export '{spec.name}' to ONNX: its weights pass the 2 GiB a single "
            "ONNX file holds"
        ) from None
    del model  # the bytes are all that is needed from here: one copy of the weights less
    _check(onnx, data)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise OnnxExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def to_onnx(spec: Spec, state: dict[str, Any], *, opset: int = 17) -> Any:
    """The checked `onnx.ModelProto` that write_onnx writes."""
    onnx = _onnx()
    model = _build(onnx, spec, state, opset)
    _check(onnx, model)
    return model


def _check(onnx: Any, model: Any) -> None:
    """onnx.checker's full check (strict shape inference included); a failure is netspec's
    bug, said in one line rather than as the checker's traceback."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        said = str(exc).strip()
        first = said.splitlines()[0] if said else type(exc).__name__
        raise OnnxExportError(f"the ONNX model netspec built does not check: {first}") from None


def _build(onnx: Any, spec: Any, state: dict[str, Any], opset: int) -> Any:
    if opset not in OPSETS:
        raise OnnxExportError(
            f"cannot export to ONNX opset {opset}: netspec writes opsets "
            f"{OPSETS.start} to {OPSETS.stop - 1}"
        )
    known = onnx.defs.onnx_opset_version()
    if opset > known:
        raise OnnxExportError(
            f"cannot export to ONNX opset {opset}: the installed onnx {onnx.__version__} "
            f"knows opsets up to {known}",
            hint="pip install -U onnx, or choose an older opset",
        )
    initializers = _initializers(onnx, spec, state)
    builder = Builder(onnx, opset)
    batched = _convert_layers(builder, spec.graph)
    outputs = _graph_outputs(builder, spec.graph, batched)
    helper = onnx.helper
    graph = helper.make_graph(
        builder.nodes,
        spec.name,
        [_value_info(onnx, INPUT, spec.graph.shapes[INPUT], True)],
        outputs,
        initializer=initializers,
        value_info=_layer_values(onnx, spec.graph, batched),
    )
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="netspec",
        producer_version=__version__,
        doc_string=f"{spec.name}, exported by netspec {__version__} (eval mode)",
    )


# -- weights ----------------------------------------------------------------------------------
def _initializers(onnx: Any, spec: Any, state: dict[str, Any]) -> list[Any]:
    """The state dict as float32 initializers, checked against the network's names and
    shapes; num_batches_tracked may be given or not and is left out."""
    expected: dict[str, tuple[int, ...]] = {}
    for node in spec.graph.nodes:
        shapes = {**node.layer.parameter_shapes(), **node.layer.buffer_shapes()}
        for key, shape in shapes.items():
            expected[f"{node.name}.{key}"] = tuple(shape)
    kept = {k: v for k, v in expected.items() if not k.endswith(SKIPPED_BUFFERS)}
    missing = [k for k in kept if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unexpected {', '.join(unexpected)}"] if unexpected else []
        raise OnnxExportError("the weights do not fit the network: " + "; ".join(parts))
    tensors = []
    for key, shape in kept.items():
        value = np.asarray(state[key])
        if tuple(value.shape) != shape:
            raise OnnxExportError(
                f"the weights do not fit the network: '{key}' has shape "
                f"{tuple(value.shape)}, the network expects {shape}"
            )
        tensors.append(onnx.numpy_helper.from_array(value.astype(np.float32, copy=False), name=key))
    return tensors


# -- the graph ----------------------------------------------------------------------------------
def _convert_layers(builder: Builder, graph: Any) -> set[str]:
    """Write every layer's nodes, in the graph's order. Returns the values whose first
    dimension is still the input's batch (not after a Concat or Flatten over it)."""
    from netspec.export.onnx_layers import CONVERTERS

    layer_names = {node.name for node in graph.nodes}
    wanted = set(graph.outputs)
    batched = {INPUT}
    for node in graph.nodes:
        call = Call(
            scope=builder.scope(node.name),
            layer=node.layer,
            name=node.name,
            inputs=list(node.inputs),
            shapes=[graph.shapes[ref] for ref in node.inputs],
            out_shape=graph.shapes[node.name],
            indices=f"{node.name}.indices" if f"{node.name}.indices" in wanted else None,
        )
        for ref in node.inputs:
            if ref != INPUT and ref not in layer_names:
                raise call.refuse(f"it reads the indices '{ref}', which ONNX keeps as int64")
        convert = CONVERTERS.get(type(node.layer))
        if convert is None:
            raise call.refuse("netspec has no ONNX conversion for this layer type")
        convert(call)
        if all(ref in batched for ref in node.inputs) and not _merges_batch(call):
            batched.add(node.name)
            if call.indices:
                batched.add(call.indices)
    return batched


def _merges_batch(call: Call) -> bool:
    """Whether the layer's first dimension is no longer the batch alone."""
    rank = len(call.shapes[0])
    if isinstance(call.layer, Concat):
        return call.layer.dim % rank == 0
    if isinstance(call.layer, Flatten):
        return call.layer.start_dim % rank == 0 and call.layer.end_dim % rank != 0
    return False


def _graph_outputs(builder: Builder, graph: Any, batched: set[str]) -> list[Any]:
    onnx, outputs, seen = builder.onnx, [], set()
    for k, ref in enumerate(graph.outputs):
        name = ref
        if ref == INPUT or ref in seen:
            name = f"{ref}/{k}"
            builder.scope(ref).op("Identity", [ref], name)
        seen.add(ref)
        outputs.append(_value_info(onnx, name, graph.shapes[ref], ref in batched, _is_index(ref)))
    return outputs


def _layer_values(onnx: Any, graph: Any, batched: set[str]) -> list[Any]:
    """The shape netspec inferred for every layer's value: Netron shows them, and the
    checker's strict shape inference holds the nodes to them."""
    outputs = set(graph.outputs)
    return [
        _value_info(onnx, node.name, graph.shapes[node.name], node.name in batched)
        for node in graph.nodes
        if node.name not in outputs
    ]


def _is_index(ref: str) -> bool:
    return ref.endswith(".indices")


def _value_info(onnx: Any, name: str, shape: tuple, batched: bool, index: bool = False) -> Any:
    """A float32 (int64 for indices) value; the first dimension is N while it is the batch,
    unnamed where a Concat or Flatten merged the batch into it."""
    dims: list[Any] = [BATCH if batched else None] + list(shape[1:])
    dtype = onnx.TensorProto.INT64 if index else onnx.TensorProto.FLOAT
    return onnx.helper.make_tensor_value_info(name, dtype, dims)
