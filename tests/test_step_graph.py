"""netspec.training.step_graph's control flow, on the CPU with a fake graph runtime: warm-up,
one capture per shape, replays, the eager fallbacks, and steps equal to the eager ones (the
real CUDA graphs are compared in tests/test_cuda.py)."""

from __future__ import annotations

import numpy as np
import pytest

import netspec
from netspec.training import step_graph, trainer
from netspec.training.step_graph import CapturedStep, EagerStep

SPEC = """
input: {shape: [2, 6, 6]}
layers:
  - Conv2d: {in_channels: 2, out_channels: 3, kernel_size: 3, padding: 1}
  - BatchNorm2d: {num_features: 3}
  - ReLU
  - Flatten
  - Linear: {in_features: 108, out_features: 4}
loss: CrossEntropyLoss
train: {optimizer: {Adam: {lr: 0.01, amsgrad: true}}}
"""


class FakeGraph:
    def __init__(self, body, result):
        self.body, self.result = body, result


class FakeGraphs:
    """A capture runs the body once for its Python effects and its outputs, then puts every
    array back (a real capture executes nothing); a launch runs the body again, with no
    Python effects beyond the arrays, and writes its outputs into the captured ones (the
    static outputs a real graph writes)."""

    def __init__(self, net, optimizer, fail_on=None):
        self.net, self.optimizer, self.fail_on = net, optimizer, fail_on
        self.captures = self.launches = 0

    def _arrays(self):
        state = [a for buffers in self.optimizer.state.values() for a in buffers.values()]
        return [*self.net.state_dict().values(), *self.net.grads.values(), *state]

    def capture(self, body):
        if self.captures == self.fail_on:
            raise NotImplementedError("cuBLAS is not supported during capture (fake)")
        arrays = self._arrays()
        saved = [a.copy() for a in arrays]
        result = body()
        for array, value in zip(arrays, saved, strict=True):
            array[...] = value
        self.captures += 1
        return FakeGraph(body, result), result

    def launch(self, graph):
        self.launches += 1
        self.net._call_rng = lambda: None  # a replay runs no Python: no per-call generator
        try:
            out = graph.body()
        finally:
            del self.net._call_rng
        for target, value in zip(_tuple(graph.result), _tuple(out), strict=True):
            if target is not None:
                target[...] = value


def _tuple(value):
    return value if isinstance(value, tuple) else (value,)


def build(spec_text=SPEC, dtype="float64"):
    spec = netspec.loads(spec_text)
    net = netspec.compile(spec, dtype=dtype, seed=0).train()
    loss = netspec.compile_loss(spec.loss, dtype=dtype)
    optimizer = netspec.compile_optimizer(spec.train.optimizer, net)
    return spec, net, loss, optimizer


def train(step, net, loss, batches):
    """The trainer's step (run.py's _train_step) on each batch; the losses."""
    values = []
    for x, y in batches:
        out = step.forward(x)
        value = loss(out, y)
        values.append(float(value))
        step.update(loss.backward())
    return values


def batches(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, 2, 6, 6)), rng.integers(0, 4, n)) for n in sizes]


SIZES = [8, 8, 8, 8, 8, 5, 8, 8, 5, 8, 5, 5, 8]  # full batches and an epoch's partial one


def run_captured(sizes=SIZES, spec_text=SPEC, fail_on=None, warmup=2):
    spec, net, loss, optimizer = build(spec_text)
    runtime = FakeGraphs(net, optimizer, fail_on)
    step = CapturedStep(net, optimizer, runtime, warmup=warmup)
    return step, runtime, train(step, net, loss, batches(sizes)), net, optimizer


def run_eager(sizes=SIZES, spec_text=SPEC):
    spec, net, loss, optimizer = build(spec_text)
    return train(EagerStep(net, optimizer), net, loss, batches(sizes)), net, optimizer


def assert_same_training(captured, eager):
    (values, net, optimizer), (ref_values, ref_net, ref_optimizer) = captured, eager
    assert values == ref_values
    for key, ref in ref_net.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[key], ref, err_msg=key, strict=True)
    state, ref_state = optimizer.state_dict(), ref_optimizer.state_dict()
    assert state.keys() == ref_state.keys()
    for key in ref_state:
        np.testing.assert_array_equal(state[key], ref_state[key], err_msg=key)
    assert net.forward_calls == ref_net.forward_calls


def test_captured_steps_equal_eager_steps_weights_buffers_and_optimizer_state():
    step, runtime, *captured = run_captured()
    assert step.failure is None
    assert_same_training(captured, run_eager())
    # BatchNorm's running statistics and count moved on every replay, in the arrays it holds
    assert int(captured[1].state_dict()["1.num_batches_tracked"]) == len(SIZES)


def test_warmup_then_one_capture_per_shape_then_replays():
    step, runtime, *_ = run_captured(warmup=2)
    # 8: eager twice, captured at its third batch; 5: eager twice, captured at its third
    assert step.eager_runs == {(8, 2, 6, 6): 2, (5, 2, 6, 6): 2}
    assert set(step.graphs) == {(8, 2, 6, 6), (5, 2, 6, 6)}
    assert runtime.captures == 4  # a forward and an update graph per shape
    replayed = len(SIZES) - 4
    assert step.replays == replayed and runtime.launches == 2 * replayed


def test_shapes_beyond_the_graph_limit_stay_eager():
    sizes = [8, 8, 5, 5, 3, 3, 3, 8, 5, 3]
    step, runtime, *captured = run_captured(sizes, warmup=1)
    assert len(step.graphs) == step_graph.MAX_GRAPHS == 2
    assert step.eager_runs[(3, 2, 6, 6)] == 4
    assert_same_training(captured, run_eager(sizes))


@pytest.mark.parametrize("fail_on", [0, 1])  # the forward graph's capture, the update's
def test_a_refused_capture_leaves_the_step_eager_and_says_why(fail_on):
    step, runtime, *captured = run_captured(fail_on=fail_on)
    assert "cuBLAS" in step.failure and not step.graphs and step.replays == 0
    assert step.optimizer._device is None  # eager steps take their scalars as numbers again
    assert_same_training(captured, run_eager())


@pytest.mark.parametrize(
    ("layer", "words"),
    [("Dropout: {p: 0.2}", "draws its masks"), ("BatchNorm1d", None)],
)
def test_specs_with_host_side_work_are_not_captured(layer, words):
    if words is None:
        text = SPEC.replace("BatchNorm2d: {num_features: 3}", "BatchNorm2d: {momentum: null}")
        words = "momentum null"
    else:
        text = SPEC.replace("  - Flatten\n", f"  - Flatten\n  - {layer}\n")
    step, runtime, *captured = run_captured(spec_text=text)
    assert words in step.failure and runtime.captures == 0
    assert_same_training(captured, run_eager(spec_text=text))


def test_the_trainer_is_eager_unless_switched_on_for_cuda(monkeypatch):
    _, net, _, optimizer = build()
    monkeypatch.setenv(step_graph.SWITCH, "1")
    assert type(step_graph.training_step(net, optimizer, "cpu")) is EagerStep
    monkeypatch.setenv(step_graph.SWITCH, "0")
    assert type(step_graph.training_step(net, optimizer, "cuda")) is EagerStep


def test_the_trainer_runs_its_steps_through_the_seam(monkeypatch):
    """fit() with a captured step (fake graphs) trains exactly as with the eager one."""
    text = SPEC + "data: {source: synthetic, samples: 50, validation_split: 0.2}\n"
    schedule = "lr_schedule: {CosineAnnealingLR: {T_max: 3}}, "  # lr changes between replays
    text = text.replace("train: {", f"train: {{epochs: 3, batch_size: 16, {schedule}")
    spec = netspec.loads(text)
    steps = []

    def captured(net, optimizer, device):
        step = CapturedStep(net, optimizer, FakeGraphs(net, optimizer), warmup=1)
        steps.append(step)
        return step

    eager = trainer.Trainer(spec).fit()
    monkeypatch.setattr(trainer, "training_step", captured)
    result = trainer.Trainer(spec).fit()
    assert steps[0].replays > 0 and steps[0].failure is None
    assert [m["loss"] for m in result.history] == [m["loss"] for m in eager.history]
