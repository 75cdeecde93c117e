"""Where a training step's time goes: per-layer forward and backward times (like `caffe time`).

One step is forward, loss, backward and an optimizer update on a synthetic batch of the
spec's input shape (a synthetic output gradient where no loss fits: see `bench`). Layer
times come from the network's timing hook, which synchronises the device around each
layer, so they add up to slightly more than an untimed step.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.errors import InputError
from netspec.frontend.shape_report import infer
from netspec.losses import compile_loss
from netspec.network import compile as compile_network
from netspec.optim import SGD, compile_optimizer
from netspec.types import ShapeError

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec
    from netspec.network import Network


@dataclass(frozen=True)
class LayerTime:
    name: str
    type: str
    forward_ms: float
    backward_ms: float


@dataclass(frozen=True)
class BenchResult:
    spec: str
    device: str
    batch_size: int
    repeats: int
    step_ms: float  # median of untimed steps: what training pays
    samples_per_second: float
    layers: list[LayerTime]
    loss: str | None = None  # the loss in each step; None: a synthetic output gradient
    note: str | None = None  # why there is no loss, in a sentence

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench(
    spec: Spec, device: str = "cpu", batch_size: int = 64, repeats: int = 10, warmup: int = 2
) -> BenchResult:
    """Time `repeats` training steps (after `warmup`) and each layer within them.

    A step is what training does: the spec's loss on the output, backward, the optimizer's
    update (a spec with a loss has one output: check refuses more). Where no loss fits (no
    `loss:`, or one that cannot read the output) backward starts from a seeded random
    gradient of every output's shape instead, and `note` says why. A network without
    parameters has its input gradient computed, so that backward is timed at all.
    """
    net = compile_network(spec, device=device, seed=0).train()
    optimizer = compile_optimizer(spec.train.optimizer if spec.train else SGD(lr=0.01), net)
    rng = np.random.default_rng(0)
    x = net.xp.asarray(rng.standard_normal((batch_size, *spec.input.shape)).astype(net.dtype))
    input_grad = not net.parameters()
    gradient, loss_name, note = _output_gradient(spec, net, x, batch_size, rng)

    def step() -> None:
        optimizer.zero_grad()
        net.backward(gradient(net(x)), input_grad=input_grad)
        optimizer.step()
        net.synchronize()

    step_s = _median_step(step, warmup, repeats)
    layers = _layer_times(net, step, repeats)
    return BenchResult(
        spec.name,
        device,
        batch_size,
        repeats,
        1e3 * step_s,
        batch_size / step_s,
        layers,
        loss_name,
        note,
    )


def _median_step(step: Callable[[], None], warmup: int, repeats: int) -> float:
    """Seconds of the median of `repeats` untimed steps after `warmup` ones."""
    for _ in range(warmup):
        step()
    step_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        step_times.append(time.perf_counter() - start)
    return statistics.median(step_times)


def _layer_times(net: Network, step: Callable[[], None], repeats: int) -> list[LayerTime]:
    """Median forward and backward milliseconds of each layer over `repeats` timed steps."""
    net.timings = {}
    for _ in range(repeats):
        step()
    timings, net.timings = net.timings, None
    return [
        LayerTime(
            node.name,
            node.layer.type_name,
            1e3 * statistics.median(timings[f"{node.name}/forward"]),
            1e3 * statistics.median(timings.get(f"{node.name}/backward", [0.0])),
        )
        for node in net.graph.nodes
    ]


Gradient = Callable[[Any], Any]  # the network's output(s) -> the gradient(s) for backward


def _output_gradient(
    spec: Spec, net: Network, x: Any, batch_size: int, rng: np.random.Generator
) -> tuple[Gradient, str | None, str | None]:
    """How a step turns the outputs into gradients: (gradient, loss name, note)."""
    shapes = infer(spec, batch_size).output_shapes
    if spec.loss is None:
        reason = "the spec has no loss"
    else:
        loss = compile_loss(spec.loss, device=net.device, dtype=net.dtype)
        target = net.xp.asarray(_target(spec, shapes[0], rng, net.dtype))
        output = net.eval()(x)  # a trial call: does the loss take this output and target?
        net.train()
        try:
            spec.loss.check(shapes[0])
            loss(output, target)
        except (ShapeError, InputError) as exc:
            reason = f"{spec.loss.type} does not fit the output: {exc}"
        else:

            def with_loss(out: Any) -> Any:
                loss(out, target)
                return loss.backward()

            return with_loss, spec.loss.type, None
    # Side outputs (MaxPool2d's indices, NAME.indices) take no gradient; a layer's own
    # name may have dots too (a module path of a nested spec), so ask the graph.
    layers = {node.name for node in net.graph.nodes}
    grads = tuple(
        net.xp.asarray(rng.standard_normal(shape).astype(net.dtype)) if ref in layers else None
        for ref, shape in zip(net.graph.outputs, shapes, strict=True)
    )
    synthetic = grads if len(grads) > 1 else grads[0]
    note = f"{reason}: backward starts from a random gradient of each output's shape"
    return (lambda out: synthetic), None, note


def _target(spec: Spec, output_shape: tuple, rng: np.random.Generator, dtype: Any) -> np.ndarray:
    """Class indices for a classification loss, otherwise targets of the output's shape."""
    if spec.loss is not None and spec.loss.targets == "classes":
        classes = output_shape[1] if len(output_shape) > 1 else output_shape[0]
        shape = (output_shape[0], *output_shape[2:])
        # no classes: index 0 is out of range, and the trial call says so in words
        return rng.integers(0, max(classes, 1), shape).astype(np.int64)
    return rng.standard_normal(output_shape).astype(dtype)
