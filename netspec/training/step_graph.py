"""The training step as CUDA graphs: capture once per batch shape, replay per batch.

On a GPU netspec's step is hundreds of small kernel launches, each costing host time in
Python and CuPy; replaying a captured graph launches them all in one call. Off by default
until measured on a GPU (benchmarks/README.md, "GPU"): NETSPEC_CUDA_GRAPH=1 turns it on for
`--device cuda`. The trainer's step is two halves (see `EagerStep`), and so are the graphs:

    forward graph:  zero_grad, forward                       -> the static outputs
    (eager)         loss, its value read back (a NaN stops the run before any update), its
                    gradient copied into the static gradient buffer
    update graph:   backward, the optimizer's update         (its scalars: DeviceScalars)

The loss stays eager: it checks its targets on the host (a sync, which a capture forbids)
and its value must be read before the update anyway. A shape is captured after it ran
`warmup` times eagerly (optimizer state created, kernels compiled, pools grown); the last,
partial batch of an epoch gets a graph of its own the same way; at most `max_graphs` shapes.

What a captured step must not do, and how it is kept out:
- host-side randomness: Dropout draws from a generator seeded per call on the host, which a
  graph would freeze; specs with Dropout stay eager (`not_capturable` says so);
- host reads: BatchNorm with momentum None divides by its batch count on the host; eager too;
- rebinding state: BatchNorm replaces its running statistics with new arrays each step. In a
  graph those are fixed addresses, so the capture copies them back into the arrays the
  network held before and rebinds the network to those (`_keep_store_arrays`);
- memory: everything a graph allocates comes from its own pool, which nothing else uses.
Any failure while capturing (CuPy 14 refuses cuBLAS calls during a capture, for one) turns
the step eager for good; `failure` says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager, suppress
from typing import Any, Protocol

from netspec.layers.batchnorm import BatchNorm2d
from netspec.layers.dropout import _Dropout

SWITCH = "NETSPEC_CUDA_GRAPH"
WARMUP = 3
MAX_GRAPHS = 2


class EagerStep:
    """The two halves of a training step, as the trainer calls them, run as they are."""

    def __init__(self, net: Any, optimizer: Any):
        self.net, self.optimizer = net, optimizer

    def forward(self, x: Any) -> Any:
        """Zero the gradients and run the network on a batch; returns its output(s)."""
        self.optimizer.zero_grad()
        return self.net(x)

    def update(self, grads: Any) -> None:
        """Back-propagate the outputs' gradients (no input gradient) and step the optimizer."""
        self.net.backward(grads, input_grad=False)
        self.optimizer.step()


def training_step(net: Any, optimizer: Any, device: str) -> EagerStep:
    """The step the trainer runs: captured on CUDA when NETSPEC_CUDA_GRAPH=1, else eager."""
    if not device.startswith("cuda") or os.environ.get(SWITCH, "0") != "1":
        return EagerStep(net, optimizer)
    return CapturedStep(net, optimizer, CupyGraphs())


def not_capturable(net: Any) -> str | None:
    """Why this network's training step cannot be replayed from a graph, or None."""
    for node in net.graph.nodes:
        layer = node.layer
        if isinstance(layer, _Dropout) and layer.p > 0:
            return f"layer {node.name} ({layer.type}) draws its masks on the host per call"
        if isinstance(layer, BatchNorm2d) and layer.momentum is None:
            return f"layer {node.name} (BatchNorm2d, momentum null) reads its count on the host"
    return None


class GraphRuntime(Protocol):
    """What capturing needs from CuPy (a fake in the tests): capture a body, launch a graph."""

    def capture(self, body: Callable[[], Any]) -> tuple[Any, Any]:
        """(graph, what body returned), body's device work recorded, not run."""

    def launch(self, graph: Any) -> None:
        """Run a captured graph on the current stream, after the work queued there."""


class _Graphs:
    """One captured shape: its static input, outputs and output gradient, and two graphs."""

    def __init__(self, x: Any):
        self.x = x
        self.out: Any = None
        self.grad: Any = None
        self.forward: Any = None
        self.update: Any = None


class CapturedStep(EagerStep):
    """`EagerStep` replayed from CUDA graphs once a batch shape has warmed up (see module)."""

    def __init__(self, net: Any, optimizer: Any, runtime: GraphRuntime, warmup: int = WARMUP):
        super().__init__(net, optimizer)
        self.runtime = runtime
        self.warmup = max(1, warmup)  # Adam's bias corrections need one step done
        self.failure: str | None = not_capturable(net)
        self.eager_runs: dict[tuple, int] = {}
        self.graphs: dict[tuple, _Graphs] = {}
        self.replays = 0
        self._current: _Graphs | None = None

    def forward(self, x: Any) -> Any:
        shape = tuple(x.shape)
        graphs = self.graphs.get(shape)
        if graphs is None and self._due(shape):
            graphs = self._capture(x)
        self._current = graphs
        if graphs is None:
            self.eager_runs[shape] = self.eager_runs.get(shape, 0) + 1
            return super().forward(x)
        graphs.x[...] = x
        self.runtime.launch(graphs.forward)
        self.net.forward_calls += 1
        return graphs.out

    def update(self, grads: Any) -> None:
        graphs, self._current = self._current, None
        if graphs is None:
            super().update(grads)
            return
        graphs.grad[...] = _first(grads)
        self.optimizer.prepare_step()
        self.runtime.launch(graphs.update)
        self.replays += 1

    def _due(self, shape: tuple) -> bool:
        return (
            self.failure is None
            and len(self.graphs) < MAX_GRAPHS
            and self.eager_runs.get(shape, 0) >= self.warmup
        )

    def _capture(self, x: Any) -> _Graphs | None:
        """Both graphs of a shape, or None (and `failure` set) when CuPy refuses one."""
        net, optimizer = self.net, self.optimizer
        graphs = _Graphs(x.astype(net.dtype, copy=True))
        calls = net.forward_calls
        optimizer.use_device_scalars()
        try:
            with _no_call_generator(net):
                graphs.forward, graphs.out = self.runtime.capture(
                    lambda: self._forward_body(graphs.x)
                )
            graphs.grad = net.xp.empty_like(_first(graphs.out))
            grads = _like_outputs(graphs.out, graphs.grad)
            graphs.update, _ = self.runtime.capture(lambda: self._update_body(grads))
        except Exception as exc:  # CuPy's refusals come as several types
            self.failure = f"capture failed: {type(exc).__name__}: {exc}"
            net._contexts = {}  # half a captured forward: nothing that ran, nothing to keep
            optimizer.use_device_scalars(False)
            return None
        finally:
            net.forward_calls = calls
        self.graphs[tuple(x.shape)] = graphs
        return graphs

    def _forward_body(self, x: Any) -> Any:
        with _keep_store_arrays(self.net):
            self.optimizer.zero_grad()
            return self.net(x)

    def _update_body(self, grads: Any) -> None:
        self.net.backward(grads, input_grad=False)
        self.optimizer.apply_step()


def _first(outputs: Any) -> Any:
    return outputs[0] if isinstance(outputs, tuple) else outputs


def _like_outputs(out: Any, grad: Any) -> Any:
    """The gradient structure the trainer passes: the first output's, None for the rest."""
    return (grad, *[None] * (len(out) - 1)) if isinstance(out, tuple) else grad


@contextmanager
def _keep_store_arrays(net: Any):
    """Entries the body rebinds (BatchNorm's running statistics) are copied back into the
    arrays held before, and the network rebound to those: the graph's fixed addresses."""
    store = net._store  # the network has no public way to rebind an entry
    before, captured = dict(store), False
    try:
        yield
        captured = True
    finally:
        for key, old in before.items():
            if store[key] is not old:
                if captured:  # a failed capture executed nothing: the old values stand
                    old[...] = store[key]
                store[key] = old


@contextmanager
def _no_call_generator(net: Any):
    """No per-call generator while capturing: only Dropout reads it (not_capturable), and
    seeding one is host work that a graph would freeze."""
    net._call_rng = lambda: None
    try:
        yield
    finally:
        del net._call_rng


class CupyGraphs:
    """CuPy's stream capture: a non-blocking stream, and a memory pool of the graphs' own."""

    def __init__(self) -> None:
        import cupy

        self._cupy = cupy
        self._stream = cupy.cuda.Stream(non_blocking=True)
        self._pool = cupy.cuda.MemoryPool()  # held as long as the graphs: their memory

    def capture(self, body: Callable[[], Any]) -> tuple[Any, Any]:
        cupy, stream = self._cupy, self._stream
        cupy.cuda.get_current_stream().synchronize()  # the static buffers are written
        with cupy.cuda.using_allocator(self._pool.malloc), stream, _library_capture(cupy):
            stream.begin_capture()
            try:
                result = body()
            except BaseException:
                with suppress(Exception):  # an invalidated capture raises here too
                    stream.end_capture()
                raise
            graph = stream.end_capture()
        return graph, result

    def launch(self, graph: Any) -> None:
        graph.launch(stream=self._cupy.cuda.get_current_stream())


@contextmanager
def _library_capture(cupy: Any):
    """CuPy releases that allow cuBLAS in a capture behind a flag get it set meanwhile."""
    try:
        cublas = cupy.cuda.cublas
    except (ImportError, AttributeError):
        cublas = None
    flag = "_allow_stream_graph_capture"
    previous = getattr(cublas, flag, None)
    if previous is not None:
        setattr(cublas, flag, True)
    try:
        yield
    finally:
        if previous is not None:
            setattr(cublas, flag, previous)
