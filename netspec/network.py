"""compile(): a checked spec becomes an executable Network over NumPy or CuPy.

The network runs its graph's nodes in topological order. Parameters and buffers live in one
flat store under PyTorch's names ("0.weight", "3.running_var"), so a torch.nn.Sequential's
state dict loads as is. Each call keeps, per layer, only what that layer's backward needs;
intermediate outputs are dropped as soon as their last reader has run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.errors import InputError, NetspecError
from netspec.frontend.graph import INPUT, Graph
from netspec.layers.base import Context, ParamView, Shard
from netspec.ops.backend import (
    array_module,
    get_xp,
    keep_freed_memory,
    parse_device,
    resolve_dtype,
    to_numpy,
)
from netspec.types import format_shape

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec


class StateDictError(NetspecError):
    """A state dict that does not fit the network (names, shapes)."""


class Network:
    """The executable form of a spec. Mirrors the parts of torch.nn.Module a trainer uses."""

    def __init__(self, spec: Spec, graph: Graph, device: str, dtype: np.dtype, seed: int):
        self.spec = spec
        self.graph = graph
        self.device = device
        self.dtype = dtype
        self.xp = get_xp(device)
        self.seed = seed
        self.training = True
        self.forward_calls = 0  # with the seed, fixes the dropout masks of the next call
        self._store = self._initial_store(seed)
        self._trainable = [
            f"{node.name}.{key}" for node in graph.nodes for key in node.layer.parameter_shapes()
        ]
        self.grads = {k: self.xp.zeros_like(self._store[k]) for k in self._trainable}
        self._views = {node.name: ParamView(self._store, f"{node.name}.") for node in graph.nodes}
        self._grad_views = {
            node.name: ParamView(self.grads, f"{node.name}.") for node in graph.nodes
        }
        self._last_use = self._last_uses()
        self._layer_names = {node.name for node in graph.nodes}
        self._carries_grad = {flag: self._grad_paths(flag) for flag in (True, False)}
        self._contexts: dict[str, Context] = {}
        self.shard: Shard | None = None  # set by a data-parallel run: x is these rows
        # When a dict, forward/backward add each layer's seconds to it ("name/forward"): bench.
        self.timings: dict[str, list[float]] | None = None

    # -- construction -------------------------------------------------------------------------
    def _initial_store(self, seed: int) -> dict[str, Any]:
        """Parameters and buffers in PyTorch's order, drawn on the host so every device agrees.

        Draws land in the network's dtype directly (float64 values, cast block by block), so
        a float32 network never holds a float64 copy of a layer: same numbers, half the peak.
        """
        rng = _CastingGenerator(np.random.default_rng(seed), self.dtype)
        store: dict[str, Any] = {}
        for node in sorted(self.graph.nodes, key=lambda n: n.index):
            for key, value in node.layer.init(rng).items():
                store[f"{node.name}.{key}"] = self._to_device(value)
        return store

    def _to_device(self, value: Any) -> Any:
        value = np.asarray(value)
        dtype = self.dtype if np.issubdtype(value.dtype, np.floating) else value.dtype
        return self.xp.asarray(value.astype(dtype, copy=False))

    def _last_uses(self) -> dict[str, int]:
        last: dict[str, int] = {}
        for k, node in enumerate(self.graph.nodes):
            for ref in node.inputs:
                last[ref] = k
        return last

    def _grad_paths(self, input_grad: bool) -> dict[str, bool]:
        """Per value: does its gradient reach a parameter, or the input when asked for?"""
        reaches = {INPUT: input_grad}
        for node in self.graph.nodes:  # topological order: inputs come first
            has_parameters = bool(node.layer.parameter_shapes())
            reaches[node.name] = has_parameters or any(
                reaches.get(ref, False) for ref in node.inputs
            )
        return reaches

    # -- modes and state ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Network:
        self.training = mode
        return self

    def eval(self) -> Network:
        return self.train(False)

    def parameters(self) -> dict[str, Any]:
        """Trainable parameters by name (live arrays: optimizers update them in place)."""
        return {k: self._store[k] for k in self._trainable}

    def state_dict(self) -> dict[str, Any]:
        """Parameters and buffers under PyTorch's names (live arrays)."""
        return dict(self._store)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy values in (arrays keep their identity). Names and shapes must match exactly."""
        missing = [k for k in self._store if k not in state]
        unexpected = [k for k in state if k not in self._store]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing keys: {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected keys: {', '.join(unexpected)}")
            raise StateDictError("state dict does not fit the network: " + "; ".join(parts))
        for key, value in state.items():
            value = _host_array(value)
            target = self._store[key]
            if tuple(value.shape) != tuple(target.shape):
                raise StateDictError(
                    f"state dict entry '{key}' has shape {tuple(value.shape)}, "
                    f"the network expects {tuple(target.shape)}"
                )
            target[...] = self.xp.asarray(value.astype(target.dtype, copy=False))

    def gather_grads(self) -> Any:
        """One flat buffer holding every gradient, each entry of `grads` becoming a view of
        it (values kept): what a data-parallel step sums over the processes in one call."""
        flat = self.xp.zeros(sum(int(g.size) for g in self.grads.values()), dtype=self.dtype)
        offset = 0
        for name, grad in self.grads.items():
            view = flat[offset : offset + grad.size].reshape(grad.shape)
            view[...] = grad
            self.grads[name] = view
            offset += grad.size
        return flat

    def zero_grad(self) -> None:
        for grad in self.grads.values():
            grad.fill(0)

    # -- forward and backward ---------------------------------------------------------------------
    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    def forward(self, x: Any) -> Any:
        """Run the graph on a batch (N, *input.shape); one array, or a tuple for several outputs."""
        values = {INPUT: self._check_input(x)}
        rng = self._call_rng() if self.training else None
        outputs = set(self.graph.outputs)
        self._contexts = {}
        for k, node in enumerate(self.graph.nodes):
            ctx = Context(self.xp, self.training, rng, self.shard)
            args = [values[ref] for ref in node.inputs]
            arg = args[0] if node.layer.arity == 1 else args
            if self.timings is None:
                values[node.name] = node.layer.forward(self._views[node.name], arg, ctx)
            else:
                values[node.name] = self._timed(
                    f"{node.name}/forward", node.layer.forward, self._views[node.name], arg, ctx
                )
            for key, side in ctx.outputs.items():
                values[f"{node.name}.{key}"] = side
            ctx.outputs = {}
            self._contexts[node.name] = ctx
            for ref in set(node.inputs):  # drop what no later layer reads
                if self._last_use[ref] == k and ref not in outputs and ref != INPUT:
                    del values[ref]
        result = tuple(values[ref] for ref in self.graph.outputs)
        return result[0] if len(result) == 1 else result

    def backward(self, grad: Any, input_grad: bool = True) -> Any:
        """Back-propagate the gradient of the output(s); parameter grads accumulate.

        Returns the gradient of the input, or None with input_grad=False: a trainer that
        never reads it saves the layers the work (the first Conv2d skips its largest
        product). For several outputs pass a tuple (None for an output that receives no
        gradient).
        """
        if not self._contexts:
            raise NetspecError("backward() needs a forward() call first")
        pending = self._output_gradients(grad)
        carries_grad = self._carries_grad[input_grad]
        for node in reversed(self.graph.nodes):
            g = pending.pop(node.name, None)
            ctx = self._contexts.pop(node.name)
            if g is None or not carries_grad[node.name]:
                continue
            ctx.needs_input_grad = any(carries_grad.get(ref, False) for ref in node.inputs)
            call = (g, ctx, self._grad_views[node.name])
            if self.timings is None:
                gx = node.layer.backward(self._views[node.name], *call)
            else:
                gx = self._timed(
                    f"{node.name}/backward", node.layer.backward, self._views[node.name], *call
                )
            if not ctx.needs_input_grad:
                continue
            gxs = [gx] if node.layer.arity == 1 else list(gx)
            for ref, gi in zip(node.inputs, gxs, strict=True):
                if carries_grad.get(ref, False):  # not side outputs (indices) nor unwanted
                    _accumulate(pending, ref, gi)
        return pending.get(INPUT) if input_grad else None

    def _output_gradients(self, grad: Any) -> dict[str, Any]:
        """The gradients given for the outputs, per value, in the network's dtype."""
        grads_in = grad if isinstance(grad, tuple) else (grad,)
        if len(grads_in) != len(self.graph.outputs):
            raise InputError(
                f"backward() got {len(grads_in)} gradient(s) for {len(self.graph.outputs)} "
                "output(s); pass a tuple with one entry (or None) per output"
            )
        pending: dict[str, Any] = {}
        for ref, g in zip(self.graph.outputs, grads_in, strict=True):
            if g is not None and ref in self._layer_names:  # not a side output (indices)
                _accumulate(pending, ref, self.xp.asarray(g, dtype=self.dtype))
        return pending

    def _timed(self, key: str, call: Callable[..., Any], *args: Any) -> Any:
        """call(*args), its seconds (the device's queue drained before and after) added to
        self.timings[key]. Only while a bench has set `timings` to a dict: the plain loop
        pays nothing for it."""
        assert self.timings is not None
        self.synchronize()
        start = time.perf_counter()
        result = call(*args)
        self.synchronize()
        self.timings.setdefault(key, []).append(time.perf_counter() - start)
        return result

    def synchronize(self) -> None:
        """Wait for the device to finish queued work (a no-op on the CPU)."""
        if self.xp is not np:
            self.xp.cuda.Device().synchronize()

    def _check_input(self, x: Any) -> Any:
        expected = tuple(self.spec.input.shape)
        wanted = format_shape((None, *expected))  # (N, 1, 28, 28)
        if not hasattr(x, "shape"):  # a nested list, a scalar: what NumPy makes of it
            try:
                x = np.asarray(x)
            except ValueError:
                raise InputError(
                    "input is a ragged nested list (its rows differ in length), "
                    f"expected an array of shape {wanted}"
                ) from None
        shape = tuple(x.shape)
        if len(shape) != len(expected) + 1 or shape[1:] != expected:
            raise InputError(f"input has shape {shape}, expected {wanted}")
        if x.dtype.kind not in "biuf":
            raise InputError(f"input has dtype {x.dtype}, expected numbers ({self.dtype})")
        if array_module(x) is not self.xp:
            x = self.xp.asarray(to_numpy(x) if self.device == "cpu" else x)
        return x.astype(self.dtype, copy=False)

    def _call_rng(self) -> Any:
        """A generator for this call, from (seed, call number): resumable and device-neutral."""
        state = np.random.SeedSequence([self.seed, self.forward_calls]).generate_state(1)[0]
        self.forward_calls += 1
        return self.xp.random.default_rng(int(state))


class _CastingGenerator:
    """A numpy Generator whose `uniform` fills an array of `dtype`, drawing float64 values
    a block at a time: the numbers, and the generator's state after, are those of one
    float64 draw cast at the end, without the float64 array. Other methods pass through."""

    _BLOCK = 1 << 16  # values per draw: 512 KiB of float64 at a time

    def __init__(self, rng: np.random.Generator, dtype: np.dtype):
        self._rng = rng
        self._dtype = dtype

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rng, name)

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None) -> Any:
        if size is None:
            return self._rng.uniform(low, high)
        out = np.empty(size, dtype=self._dtype)
        flat = out.reshape(-1)  # a view: out is contiguous
        for start in range(0, flat.size, self._BLOCK):
            stop = min(start + self._BLOCK, flat.size)
            flat[start:stop] = self._rng.uniform(low, high, stop - start)
        return out


def _accumulate(pending: dict[str, Any], ref: str, g: Any) -> None:
    # A new array, never in place: one gradient may be shared by several inputs (Add).
    pending[ref] = g if ref not in pending else pending[ref] + g


def _host_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, duck-typed: netspec never imports torch
        value = value.detach().cpu().numpy()
    return to_numpy(value) if not isinstance(value, np.ndarray) else value


def compile(spec: Spec, device: str = "cpu", dtype: str | Any = None, seed: int = 0) -> Network:
    """The executable network of a checked spec. `dtype` defaults to the spec's input dtype.

    For the CPU this is where netspec tunes glibc's allocator for training steps, once per
    process (backend.keep_freed_memory says why; NETSPEC_KEEP_FREED_MEMORY=0 opts out).
    """
    if parse_device(device)[0] == "cpu":
        keep_freed_memory()
    return Network(spec, spec.graph, device, resolve_dtype(dtype or spec.input.dtype), seed)
