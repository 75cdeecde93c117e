"""Warnings for legal but suspect specs, and the checks that join the network to its loss.

Each rule is a small function over the analysed graph; `lint` runs them all.
"""

from __future__ import annotations

from netspec import memory
from netspec.frontend.diagnostics import Collector
from netspec.frontend.graph import Graph
from netspec.frontend.spec import Spec, TrainSpec
from netspec.frontend.training_memory import training_memory
from netspec.layers import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout2d,
    Linear,
    MaxPool2d,
    Softmax,
)
from netspec.memory import format_bytes
from netspec.types import ShapeError


def lint(spec: Spec, graph: Graph, collector: Collector) -> None:
    for rule in (
        _softmax_without_dim,
        _bias_before_batchnorm,
        _unused_outputs,
        _dropout2d_rank,
        _one_output_for_the_loss,
        _input_fits_data,
        _loss_fits_output,
        _softmax_into_cross_entropy,
        _legacy_loss_flags,
        _training_memory,
    ):
        rule(spec, graph, collector)


def _input_shape(graph: Graph, node) -> tuple | None:
    return graph.shapes.get(node.inputs[0]) if node.inputs else None


def _softmax_without_dim(spec: Spec, graph: Graph, collector: Collector) -> None:
    for node in graph.nodes:
        if isinstance(node.layer, Softmax) and node.layer.dim is None:
            shape = _input_shape(graph, node)
            picked = "" if shape is None else f" (here dim={0 if len(shape) in (0, 1, 3) else 1})"
            collector.warning(
                spec.layer_path(node.index),
                "softmax-dim",
                f"Softmax without `dim`: PyTorch's implicit choice is deprecated{picked}",
                "set dim: 1 for (N, C) or (N, C, H, W) outputs",
            )


def _bias_before_batchnorm(spec: Spec, graph: Graph, collector: Collector) -> None:
    by_name = {n.name: n for n in graph.nodes}
    for node in graph.nodes:
        if not isinstance(node.layer, BatchNorm2d) or not node.layer.affine:
            continue
        producer = by_name.get(node.inputs[0]) if node.inputs else None
        if (
            producer is not None
            and isinstance(producer.layer, (Conv2d, Linear))
            and producer.layer.bias
        ):
            collector.warning(
                spec.layer_path(producer.index),
                "bias-before-batchnorm",
                f"{producer.layer.type_name} '{producer.shown}' has a bias that BatchNorm2d "
                f"'{node.shown}' cancels out",
                "set bias: false on the layer before BatchNorm2d",
            )


def _unused_outputs(spec: Spec, graph: Graph, collector: Collector) -> None:
    used = graph.consumers()
    outputs = {graph.producer(ref) for ref in graph.outputs}
    for node in graph.nodes:
        if node.name not in used and node.name not in outputs:
            collector.warning(
                spec.layer_path(node.index),
                "unused",
                f"the output of layer '{node.shown}' is never used",
                "list it in `inputs` of a later layer or in `outputs`, or remove it",
            )


def _dropout2d_rank(spec: Spec, graph: Graph, collector: Collector) -> None:
    """PyTorch's warning for a Dropout2d input that is not (N, C, H, W)."""
    for node in graph.nodes:
        shape = _input_shape(graph, node)
        if not isinstance(node.layer, Dropout2d) or shape is None or len(shape) < 2:
            continue  # rank 1 is an error of its own (or, with p = 0, nothing happens)
        message = node.layer.input_warning(shape)
        if message is None:
            continue
        if len(shape) == 3:
            code, hint = "dropout2d-3d", "use Dropout1d semantics deliberately (pytorch issue "
            hint += "#77081), or give Dropout2d an (N, C, H, W) input"
        else:
            code, hint = "dropout2d-rank", "use Dropout, or give Dropout2d an (N, C, H, W) input"
        collector.warning(spec.layer_path(node.index), code, message, hint)


def _final_output(graph: Graph):
    if len(graph.outputs) != 1 or "." in graph.outputs[0]:
        return None
    return next((n for n in graph.nodes if n.name == graph.outputs[0]), None)


def _loss_fits_output(spec: Spec, graph: Graph, collector: Collector) -> None:
    node = _final_output(graph)
    if spec.loss is None or node is None or graph.shapes.get(node.name) is None:
        return
    try:
        spec.loss.check(graph.shapes[node.name])
    except ShapeError as exc:
        collector.error(_loss_path(spec, exc.field), exc.code, exc.message, exc.hint)


def _one_output_for_the_loss(spec: Spec, graph: Graph, collector: Collector) -> None:
    """Training applies the one loss to one output: refuse to ignore the others silently."""
    if spec.loss is None or len(graph.outputs) < 2:
        return
    collector.error(
        ("outputs",),
        "outputs",
        f"the loss trains one output, but the network has {len(graph.outputs)}: "
        + ", ".join(graph.outputs),
        "list the one layer the loss applies to in `outputs`, "
        "or leave out `loss` to only run the network",
    )


_IMAGE_LAYERS = (Conv2d, MaxPool2d, AvgPool2d, AdaptiveMaxPool2d, AdaptiveAvgPool2d, BatchNorm2d)


def _input_fits_data(spec: Spec, graph: Graph, collector: Collector) -> None:
    """A built-in source fills only some input shapes: say so now, not after loading it."""
    shapes = getattr(spec.data, "sample_shapes", None)
    declared = tuple(spec.input.shape)
    if shapes is None or declared in shapes:
        return
    images = any(isinstance(node.layer, _IMAGE_LAYERS) for node in graph.nodes)
    fits = next((s for s in shapes if (len(s) > 1) == images), shapes[0])
    known = " or ".join(str(list(s)) for s in shapes)
    collector.error(
        ("input", "shape"),
        "data-shape",
        f"the {spec.data.source} source gives samples of shape {known}, "  # type: ignore[union-attr]
        f"but the input shape is {list(declared)}",
        f"set input: {{shape: {list(fits)}}} and size the layers for it, "
        "or bring your own data with source: npz",
    )


def _loss_path(spec: Spec, field: str | None):
    return spec.path_of(("loss",), field)


def _softmax_into_cross_entropy(spec: Spec, graph: Graph, collector: Collector) -> None:
    node = _final_output(graph)
    if node is None or spec.loss is None or spec.loss.targets != "classes":
        return
    if isinstance(node.layer, Softmax):
        collector.warning(
            spec.layer_path(node.index),
            "softmax-cross-entropy",
            f"Softmax feeds {spec.loss.type}, which applies log-softmax itself: "
            "the network learns from a doubly squashed output",
            "remove the final Softmax (apply it at inference only)",
        )


def _legacy_loss_flags(spec: Spec, graph: Graph, collector: Collector) -> None:
    if spec.loss is not None and (message := spec.loss.legacy_warning()):
        collector.warning(_loss_path(spec, None), "deprecated", message)


def _training_memory(spec: Spec, graph: Graph, collector: Collector) -> None:
    """Training would need more memory than the machine has (netspec/memory.py)."""

    batch_size = (spec.train or TrainSpec()).batch_size
    estimate = training_memory(spec, graph, batch_size)
    available = memory.available_memory()
    if available is None or estimate.total <= available:
        return
    largest = estimate.largest
    parameters_dominate = estimate.activations + estimate.data < estimate.total / 2
    if estimate.data > estimate.total / 2:
        path, where = ("data", "samples"), f"; the data set alone is {format_bytes(estimate.data)}"
    elif largest is not None and parameters_dominate and 2 * largest[2] > estimate.gradients:
        path = spec.layer_path(largest[0])
        where = f"; layer '{largest[1]}' holds {format_bytes(largest[2])} of parameters"
    else:
        path, where = ("input",), ""
    collector.warning(
        path,
        "memory",
        f"training needs {estimate.describe()}, more than the {format_bytes(available)} "
        f"this machine has available{where}",
        "generate fewer samples"
        if path[0] == "data"
        else "use fewer or smaller layers, or a smaller train.batch_size",
    )
