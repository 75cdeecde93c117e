"""netspec.schedule against torch.optim.lr_scheduler: argument schemas, constructor errors,
the learning-rate sequences epoch by epoch, and resuming from a state dict."""

from __future__ import annotations

import inspect
import io
import itertools

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from netspec.errors import NetspecError
from netspec.optim import SGD, OptimizerStateError, compile_optimizer
from netspec.optim.lr_scheduler import (
    SCHEDULE_TYPES,
    SCHEDULES,
    AnySchedule,
    CosineAnnealingLR,
    ExponentialLR,
    MultiStepLR,
    ReduceLROnPlateau,
    Scheduler,
    StepLR,
    compile_schedule,
)

BASE_LR = 0.1


class FakeNet:
    """What compile_optimizer reads from a network: parameters() and grads."""

    def __init__(self):
        self._params = {"0.weight": np.zeros((2, 2))}
        self.grads = {"0.weight": np.zeros((2, 2))}

    def parameters(self) -> dict:
        return self._params


def metric_sequence(epochs: int, seed: int = 0) -> list[float]:
    # Clear improvements, ones within any threshold, flat stretches and setbacks.
    rng = np.random.default_rng(seed)
    moves = rng.choice([-0.3, -1e-5, 0.0, 0.2], size=epochs, p=[0.4, 0.2, 0.25, 0.15])
    return list(5.0 + np.cumsum(moves))


def netspec_lrs(spec, metrics) -> list[float]:
    optimizer = compile_optimizer(SGD(lr=BASE_LR), FakeNet())
    scheduler = compile_schedule(spec, optimizer)
    lrs = [optimizer.lr]
    for metric in metrics:
        optimizer.step()
        scheduler.step(metric)
        assert scheduler.lr == optimizer.lr
        lrs.append(optimizer.lr)
    return lrs


def torch_run(spec, metrics):
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=BASE_LR)
    if getattr(spec, "last_epoch", -1) != -1:  # torch resumes only from a recorded initial_lr
        optimizer.param_groups[0]["initial_lr"] = BASE_LR
    scheduler = getattr(torch.optim.lr_scheduler, spec.type)(optimizer, **spec.torch_arguments())
    lrs = [optimizer.param_groups[0]["lr"]]
    for metric in metrics:
        optimizer.step()
        if isinstance(spec, ReduceLROnPlateau):
            scheduler.step(metric)
        else:
            scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs, scheduler


EPOCH_CASES = [
    StepLR(step_size=1, gamma=0.5),
    StepLR(step_size=3),
    StepLR(step_size=7, gamma=0.9),
    StepLR(step_size=4, gamma=0.5, last_epoch=5),
    StepLR(step_size=-3, gamma=0.5),
    MultiStepLR(milestones=[5, 10, 10, 20], gamma=0.5),
    MultiStepLR(milestones=[0, 3]),
    MultiStepLR(milestones=[12, 4], gamma=0.3),
    MultiStepLR(milestones=[]),
    MultiStepLR(milestones=[6, 9], last_epoch=4),
    ExponentialLR(gamma=0.9),
    ExponentialLR(gamma=1.1),
    ExponentialLR(gamma=0.8, last_epoch=3),
    CosineAnnealingLR(T_max=10),
    CosineAnnealingLR(T_max=10, eta_min=0.01),
    CosineAnnealingLR(T_max=1),
    CosineAnnealingLR(T_max=7, eta_min=0.001),
    CosineAnnealingLR(T_max=10, last_epoch=4),
    CosineAnnealingLR(T_max=-4, eta_min=0.02),
]


@pytest.mark.parametrize("spec", EPOCH_CASES, ids=repr)
def test_epoch_schedules_match_torch(spec):
    metrics = metric_sequence(35)
    expected, _ = torch_run(spec, metrics)
    np.testing.assert_allclose(netspec_lrs(spec, metrics), expected, rtol=1e-12, atol=0)


def plateau_cases():
    for mode, threshold_mode, (patience, cooldown), min_lr, eps in itertools.product(
        ("min", "max"),
        ("rel", "abs"),
        ((0, 0), (2, 0), (1, 2), (3, 3)),
        (0.0, 0.002, [0.002]),
        (1e-8, 1e-3),
    ):
        yield ReduceLROnPlateau(
            mode=mode,
            factor=0.5,
            patience=patience,
            threshold=0.02,
            threshold_mode=threshold_mode,
            cooldown=cooldown,
            min_lr=min_lr,
            eps=eps,
        )


@pytest.mark.parametrize("spec", [*plateau_cases(), ReduceLROnPlateau()], ids=repr)
def test_reduce_on_plateau_matches_torch(spec):
    for seed in (0, 1):
        metrics = metric_sequence(40, seed)
        if spec.mode == "max":  # rising, so that "max" sees improvements too
            metrics = [10.0 - metric for metric in metrics]
        expected, torch_scheduler = torch_run(spec, metrics)
        np.testing.assert_allclose(netspec_lrs(spec, metrics), expected, rtol=1e-12, atol=0)
        scheduler = compile_schedule(spec, compile_optimizer(SGD(lr=BASE_LR), FakeNet()))
        for metric in metrics:
            scheduler.step(metric)
        assert scheduler.best == torch_scheduler.best
        assert scheduler.num_bad_epochs == torch_scheduler.num_bad_epochs
        assert scheduler.cooldown == torch_scheduler.cooldown_counter
        assert scheduler.last_epoch == torch_scheduler.last_epoch


def test_plateau_step_needs_the_metric():
    scheduler = compile_schedule(ReduceLROnPlateau(), compile_optimizer(SGD(), FakeNet()))
    with pytest.raises(NetspecError, match="needs the monitored metric"):
        scheduler.step()
    scheduler.step(np.float32(1.5))  # any float-convertible scalar will do
    assert scheduler.best == 1.5


# -- state dicts ------------------------------------------------------------------------------
ROUND_TRIP = [
    StepLR(step_size=3, gamma=0.5),
    MultiStepLR(milestones=[0, 4, 9]),
    ExponentialLR(gamma=0.9),
    CosineAnnealingLR(T_max=6, eta_min=0.01),
    ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, threshold=0.05, min_lr=0.01),
]


def save_and_load(state: dict) -> dict:
    buffer = io.BytesIO()
    np.savez(buffer, **state)  # what a checkpoint does
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        return dict(stored)


@pytest.mark.parametrize("optimizer_first", [True, False])
@pytest.mark.parametrize("spec", ROUND_TRIP, ids=repr)
def test_state_dict_round_trip_continues_exactly(spec, optimizer_first):
    metrics = metric_sequence(20)
    whole = netspec_lrs(spec, metrics)
    optimizer = compile_optimizer(SGD(lr=BASE_LR), FakeNet())
    scheduler = Scheduler(spec, optimizer)
    for metric in metrics[:8]:
        scheduler.step(metric)
    states = save_and_load(optimizer.state_dict()), save_and_load(scheduler.state_dict())
    fresh_optimizer = compile_optimizer(SGD(lr=BASE_LR), FakeNet())
    fresh = Scheduler(spec, fresh_optimizer)  # its construction moves the lr: loading undoes it
    if optimizer_first:
        fresh_optimizer.load_state_dict(states[0])
        fresh.load_state_dict(states[1])
    else:
        fresh.load_state_dict(states[1])
        fresh_optimizer.load_state_dict(states[0])
    resumed = []
    for metric in metrics[8:]:
        fresh.step(metric)
        resumed.append(fresh_optimizer.lr)
    assert resumed == whole[9:]


def test_state_dict_format():
    scheduler = compile_schedule(ReduceLROnPlateau(), compile_optimizer(SGD(), FakeNet()))
    state = scheduler.state_dict()
    assert set(state) == {"last_epoch", "last_lr", "best", "num_bad_epochs", "cooldown"}
    assert all(isinstance(v, np.ndarray) and v.shape == () for v in state.values())
    assert state["best"] == np.inf and state["num_bad_epochs"].dtype.kind == "i"
    cosine = compile_schedule(CosineAnnealingLR(T_max=3), compile_optimizer(SGD(), FakeNet()))
    assert set(cosine.state_dict()) == {"last_epoch", "last_lr", "base_lr"}


def test_load_state_dict_errors():
    step = compile_schedule(StepLR(step_size=2), compile_optimizer(SGD(), FakeNet()))
    plateau = compile_schedule(ReduceLROnPlateau(), compile_optimizer(SGD(), FakeNet()))
    with pytest.raises(OptimizerStateError, match="StepLR state does not fit: missing"):
        step.load_state_dict(plateau.state_dict())
    bad = {**step.state_dict(), "last_epoch": np.arange(2)}
    with pytest.raises(NetspecError, match="'last_epoch' should be a scalar"):
        step.load_state_dict(bad)


# -- schemas ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", SCHEDULES, ids=lambda cls: cls.__name__)
def test_defaults_match_torch_signature(cls):
    torch = pytest.importorskip("torch")
    signature = inspect.signature(getattr(torch.optim.lr_scheduler, cls.__name__))
    parameters = {n: p for n, p in signature.parameters.items() if n != "optimizer"}
    fields = {n: f for n, f in cls.model_fields.items() if n != "type"}
    assert fields.keys() == parameters.keys()
    for name, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty:
            assert fields[name].is_required(), name
        else:
            assert fields[name].default == parameter.default, name
        assert fields[name].description, name


def test_the_union_reads_every_form():
    adapter = TypeAdapter(AnySchedule)
    cosine = adapter.validate_python({"type": "CosineAnnealingLR", "T_max": 10})
    assert isinstance(cosine, CosineAnnealingLR) and cosine.eta_min == 0.0
    plateau = adapter.validate_python({"type": "ReduceLROnPlateau", "min_lr": [0.01]})
    assert plateau.lower_bound == 0.01
    assert set(SCHEDULE_TYPES) == {cls.__name__ for cls in SCHEDULES}
    for bad in (
        {"type": "StepLR"},  # step_size is required
        {"type": "StepLR", "step_size": 2.0},  # strict: not an int
        {"type": "MultiStepLR", "milestones": [1, True]},
        {"type": "ExponentialLR", "gamma": 0.9, "verbose": True},  # gone in torch 2.13
        {"type": "ReduceLROnPlateau", "mode": 1},
        {"type": "OneCycleLR"},
    ):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


CONSTRUCTOR_CASES = [
    ("ReduceLROnPlateau", {"factor": 1.0}, "factor"),
    ("ReduceLROnPlateau", {"factor": 2.5}, "factor"),
    ("ReduceLROnPlateau", {"factor": 0.0}, None),
    ("ReduceLROnPlateau", {"mode": "mean"}, "mode"),
    ("ReduceLROnPlateau", {"threshold_mode": "relative"}, "threshold_mode"),
    ("ReduceLROnPlateau", {"min_lr": [0.1, 0.2]}, "min_lr"),
    ("ReduceLROnPlateau", {"min_lr": [0.1], "patience": -1, "cooldown": -2}, None),
    ("StepLR", {"step_size": 5, "gamma": 2.0}, None),
    ("CosineAnnealingLR", {"T_max": 3, "eta_min": -1.0}, None),
]


@pytest.mark.parametrize("name, arguments, field", CONSTRUCTOR_CASES)
def test_constructor_errors_match_torch(name, arguments, field):
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=BASE_LR)
    try:
        getattr(torch.optim.lr_scheduler, name)(optimizer, **arguments)
        torch_message = None
    except ValueError as error:
        torch_message = str(error)
    if torch_message is None:
        assert field is None
        SCHEDULE_TYPES[name](**arguments)
        return
    with pytest.raises(ValidationError) as caught:
        SCHEDULE_TYPES[name](**arguments)
    (error,) = caught.value.errors()
    assert error["ctx"]["error"].message == torch_message
    assert error["ctx"]["error"].field == field


@pytest.mark.parametrize(
    "name, arguments, field",
    [("StepLR", {"step_size": 0}, "step_size"), ("CosineAnnealingLR", {"T_max": 0}, "T_max")],
)
def test_arguments_torch_only_fails_on_at_the_first_step(name, arguments, field):
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=BASE_LR)
    scheduler = getattr(torch.optim.lr_scheduler, name)(optimizer, **arguments)
    optimizer.step()
    with pytest.raises(ZeroDivisionError):
        scheduler.step()
    with pytest.raises(ValidationError) as caught:
        SCHEDULE_TYPES[name](**arguments)
    assert caught.value.errors()[0]["ctx"]["error"].field == field
