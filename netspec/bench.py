"""Where a training step's time goes: per-layer forward and backward times (like `caffe time`).

One step is forward, loss, backward and an optimizer update on a synthetic batch of the
spec's input shape. Layer times come from the network's timing hook, which synchronises the
device around each layer, so they add up to slightly more than an untimed step.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from netspec.spec import Spec


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench(
    spec: Spec, device: str = "cpu", batch_size: int = 64, repeats: int = 10, warmup: int = 2
) -> BenchResult:
    """Time `repeats` training steps (after `warmup`) and each layer within them."""
    from netspec.graph import infer
    from netspec.losses import CrossEntropyLoss, compile_loss
    from netspec.network import compile
    from netspec.optim import SGD, compile_optimizer

    net = compile(spec, device=device, seed=0).train()
    loss = compile_loss(spec.loss or CrossEntropyLoss(), device=device, dtype=net.dtype)
    optimizer = compile_optimizer(spec.train.optimizer if spec.train else SGD(lr=0.01), net)
    rng = np.random.default_rng(0)
    x = net.xp.asarray(rng.standard_normal((batch_size, *spec.input.shape)).astype(net.dtype))
    target = net.xp.asarray(_target(spec, infer(spec, batch_size).output_shapes[0], rng))

    def step() -> None:
        optimizer.zero_grad()
        loss(net(x), target)
        net.backward(loss.backward(), input_grad=False)
        optimizer.step()
        net.synchronize()

    for _ in range(warmup):
        step()
    step_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        step_times.append(time.perf_counter() - start)
    net.timings = {}
    for _ in range(repeats):
        step()
    timings, net.timings = net.timings, None
    layers = [
        LayerTime(
            node.name,
            node.layer.type_name,
            1e3 * statistics.median(timings[f"{node.name}/forward"]),
            1e3 * statistics.median(timings.get(f"{node.name}/backward", [0.0])),
        )
        for node in net.graph.nodes
    ]
    step_s = statistics.median(step_times)
    return BenchResult(
        spec.name, device, batch_size, repeats, 1e3 * step_s, batch_size / step_s, layers
    )


def _target(spec: Spec, output_shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Class indices for CrossEntropyLoss (or no loss), otherwise targets of the output's shape."""
    if spec.loss is None or spec.loss.type == "CrossEntropyLoss":
        classes = output_shape[1] if len(output_shape) > 1 else output_shape[0]
        shape = (output_shape[0], *output_shape[2:])
        return rng.integers(0, classes, shape).astype(np.int64)
    return rng.standard_normal(output_shape).astype(np.float32)
