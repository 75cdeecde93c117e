"""netspec.optim against torch.optim: argument schemas, constructor errors, and the update
rules over several steps of random gradients for every option that changes the math."""

from __future__ import annotations

import inspect
import io
import itertools

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from netspec.errors import InputError, NetspecError
from netspec.ops.backend import cuda_available, get_xp, to_numpy
from netspec.optim import (
    OPTIMIZER_TYPES,
    OPTIMIZERS,
    SGD,
    Adam,
    AdamW,
    AnyOptimizer,
    OptimizerStateError,
    RMSprop,
    compile_optimizer,
)

SHAPES = {"0.weight": (4, 3), "0.bias": (4,), "conv.weight": (2, 1, 3, 3)}
STEPS = 6


class FakeNet:
    """What compile_optimizer reads from a network: parameters() and grads."""

    def __init__(self, values: dict, dtype=np.float64, xp=np):
        self._params = {name: xp.array(value, dtype=dtype) for name, value in values.items()}
        self.grads = {name: xp.zeros_like(value) for name, value in self._params.items()}

    def parameters(self) -> dict:
        return self._params


def initial_values(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape) for name, shape in SHAPES.items()}


def gradient_sequence(steps: int, seed: int = 1) -> list[dict[str, np.ndarray]]:
    # Magnitudes vary from step to step so that AMSGrad's running maximum matters.
    rng = np.random.default_rng(seed)
    return [
        {name: rng.standard_normal(shape) * rng.uniform(0.1, 3.0) for name, shape in SHAPES.items()}
        for _ in range(steps)
    ]


def run_netspec(spec, values, grads, net=None, lr_change_at=None, dtype=np.float64):
    net = net or FakeNet(values, dtype)
    optimizer = compile_optimizer(spec, net)
    for step, step_grads in enumerate(grads):
        if step == lr_change_at:
            optimizer.lr = optimizer.lr * 0.3
        for name, grad in step_grads.items():
            net.grads[name][...] = grad
        optimizer.step()
    return net, optimizer


def run_torch(spec, values, grads, lr_change_at=None):
    torch = pytest.importorskip("torch")
    params = {name: torch.tensor(value, requires_grad=True) for name, value in values.items()}
    optimizer = getattr(torch.optim, spec.type)(list(params.values()), **spec.torch_arguments())
    for step, step_grads in enumerate(grads):
        if step == lr_change_at:
            optimizer.param_groups[0]["lr"] *= 0.3
        for name, grad in step_grads.items():
            params[name].grad = torch.tensor(grad)
        optimizer.step()
    return params, optimizer


def assert_matches_torch(spec, rtol=1e-10, dtype=np.float64):
    values, grads = initial_values(), gradient_sequence(STEPS)
    net, optimizer = run_netspec(spec, values, grads, lr_change_at=3, dtype=dtype)
    torch_params, torch_optimizer = run_torch(spec, values, grads, lr_change_at=3)
    state = optimizer.state_dict()
    for name, torch_param in torch_params.items():
        ours = net.parameters()[name]
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, torch_param.detach().numpy(), rtol=rtol, atol=rtol)
        for key, torch_value in torch_optimizer.state[torch_param].items():
            ours = state["step" if key == "step" else f"{name}/{key}"]
            np.testing.assert_allclose(ours, torch_value.numpy(), rtol=rtol, atol=rtol)
    assert state["lr"] == pytest.approx(torch_optimizer.param_groups[0]["lr"], rel=1e-15)


# -- the update rules -----------------------------------------------------------------------
def sgd_cases():
    for momentum, dampening, nesterov, weight_decay, maximize in itertools.product(
        (0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.05), (False, True)
    ):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        yield SGD(
            lr=0.1,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
            maximize=maximize,
        )


def adam_cases(cls):
    decoupled = (False, True) if cls is Adam else (None,)
    for betas, eps, weight_decay, amsgrad, maximize, decouple in itertools.product(
        ((0.9, 0.999), (0.3, 0.8)), (1e-8, 0.1), (0.0, 0.1), (False, True), (False, True), decoupled
    ):
        extra = {} if decouple is None else {"decoupled_weight_decay": decouple}
        yield cls(
            lr=0.05,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            **extra,
        )


def rmsprop_cases():
    # alpha 0.3 takes centered's lerp down ATen's other formula (weight 1 - alpha >= 0.5).
    for alpha, momentum, centered, weight_decay, maximize in itertools.product(
        (0.99, 0.3), (0.0, 0.9), (False, True), (0.0, 0.05), (False, True)
    ):
        yield RMSprop(
            lr=0.01,
            alpha=alpha,
            momentum=momentum,
            centered=centered,
            weight_decay=weight_decay,
            maximize=maximize,
        )


@pytest.mark.parametrize("spec", list(sgd_cases()), ids=repr)
def test_sgd_matches_torch(spec):
    assert_matches_torch(spec)


@pytest.mark.parametrize("spec", [*adam_cases(Adam), *adam_cases(AdamW)], ids=repr)
def test_adam_matches_torch(spec):
    assert_matches_torch(spec)


@pytest.mark.parametrize("spec", [*rmsprop_cases(), RMSprop(eps=0.1)], ids=repr)
def test_rmsprop_matches_torch(spec):
    assert_matches_torch(spec)


@pytest.mark.parametrize(
    "spec",
    [
        SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        Adam(lr=0.01, amsgrad=True, weight_decay=0.1),
        AdamW(lr=0.01, maximize=True),
        RMSprop(lr=0.01, momentum=0.5, weight_decay=0.1, maximize=True),
    ],
    ids=repr,
)
def test_float32_keeps_dtype_and_matches_torch(spec):
    assert_matches_torch(spec, rtol=2e-5, dtype=np.float32)


def test_step_updates_in_place_and_leaves_grads_alone():
    values, grads = initial_values(), gradient_sequence(2)
    net = FakeNet(values)
    arrays = dict(net.parameters())
    run_netspec(Adam(maximize=True, weight_decay=0.1), values, grads, net=net)
    for name, array in net.parameters().items():
        assert array is arrays[name]
        assert not np.array_equal(array, values[name])
        np.testing.assert_array_equal(net.grads[name], grads[-1][name])


def test_zero_grad_fills_zeros_in_place():
    net = FakeNet(initial_values())
    optimizer = compile_optimizer(SGD(), net)
    grads = dict(net.grads)
    for grad in net.grads.values():
        grad[...] = 1.0
    optimizer.zero_grad()
    for name, grad in net.grads.items():
        assert grad is grads[name] and not grad.any()


def test_mismatched_grads_are_an_input_error():
    net = FakeNet(initial_values())
    net.grads["0.bias"] = np.zeros(5)
    with pytest.raises(InputError, match="gradient '0.bias' has shape"):
        compile_optimizer(SGD(), net)
    del net.grads["0.bias"]
    with pytest.raises(InputError, match="missing 0.bias"):
        compile_optimizer(SGD(), net)


# -- state dicts ------------------------------------------------------------------------------
ROUND_TRIP = [
    SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    SGD(lr=0.1),
    Adam(lr=0.01, amsgrad=True, weight_decay=0.1),
    AdamW(lr=0.01, maximize=True, betas=(0.5, 0.9)),
    RMSprop(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01),
]


@pytest.mark.parametrize("spec", ROUND_TRIP, ids=repr)
def test_state_dict_round_trip_continues_exactly(spec):
    values, grads = initial_values(), gradient_sequence(STEPS)
    whole, _ = run_netspec(spec, values, grads, lr_change_at=2)
    first, optimizer = run_netspec(spec, values, grads[:3], lr_change_at=2)
    buffer = io.BytesIO()
    np.savez(buffer, **optimizer.state_dict())  # what a checkpoint does
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        state = dict(stored)
    resumed = FakeNet({name: array.copy() for name, array in first.parameters().items()})
    fresh = compile_optimizer(spec, resumed)
    fresh.load_state_dict(state)
    assert fresh.lr == optimizer.lr and fresh.steps == 3
    run_netspec_steps(fresh, resumed, grads[3:])
    for name, array in whole.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[name], array)


def run_netspec_steps(optimizer, net, grads):
    for step_grads in grads:
        for name, grad in step_grads.items():
            net.grads[name][...] = grad
        optimizer.step()


def test_state_dict_format_and_snapshot():
    _, optimizer = run_netspec(Adam(amsgrad=True), initial_values(), gradient_sequence(2))
    state = optimizer.state_dict()
    assert set(state) == {"lr", "step"} | {
        f"{name}/{key}" for name in SHAPES for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    }
    assert state["step"].shape == () and state["step"] == 2 and state["lr"].shape == ()
    assert all(isinstance(value, np.ndarray) for value in state.values())
    before = state["0.weight/exp_avg"].copy()
    optimizer.step()
    np.testing.assert_array_equal(state["0.weight/exp_avg"], before)  # a copy, not a view


@pytest.mark.parametrize(
    "spec",
    [
        SGD(),
        SGD(momentum=0.9),
        Adam(),
        AdamW(amsgrad=True),
        RMSprop(),
        RMSprop(momentum=0.9, centered=True),
    ],
    ids=repr,
)
def test_state_buffers_name_the_state_a_step_keeps(spec):
    # The memory estimate counts state_buffers() before any array exists.
    state = trained_state(spec)
    assert set(state) - {"lr", "step"} == {
        f"{name}/{buffer}" for name in SHAPES for buffer in spec.state_buffers()
    }


def test_fresh_state_has_no_buffers_and_loads_back():
    optimizer = compile_optimizer(SGD(lr=0.2, momentum=0.9), FakeNet(initial_values()))
    state = optimizer.state_dict()
    assert set(state) == {"lr", "step"}
    optimizer.load_state_dict(state)
    assert optimizer.steps == 0 and optimizer.lr == 0.2


def trained_state(spec):
    return run_netspec(spec, initial_values(), gradient_sequence(2))[1].state_dict()


def fresh_optimizer(spec):
    return compile_optimizer(spec, FakeNet(initial_values()))


def test_load_state_dict_errors():
    state = trained_state(Adam())
    wrong_shape = {**state, "0.bias/exp_avg": np.zeros(5)}
    with pytest.raises(OptimizerStateError, match=r"'0.bias/exp_avg' has shape \(5,\)"):
        fresh_optimizer(Adam()).load_state_dict(wrong_shape)
    missing = {k: v for k, v in state.items() if k != "0.bias/exp_avg_sq"}
    with pytest.raises(OptimizerStateError, match="missing 0.bias/exp_avg_sq"):
        fresh_optimizer(Adam()).load_state_dict(missing)
    renamed = {k.replace("conv.", "9."): v for k, v in state.items()}
    with pytest.raises(OptimizerStateError, match="unexpected 9.weight/exp_avg"):
        fresh_optimizer(Adam()).load_state_dict(renamed)
    with pytest.raises(OptimizerStateError, match="missing .*momentum_buffer; unexpected"):
        fresh_optimizer(SGD(momentum=0.9)).load_state_dict(state)
    with pytest.raises(OptimizerStateError, match="max_exp_avg_sq"):
        fresh_optimizer(Adam(amsgrad=True)).load_state_dict(state)
    no_step = {k: v for k, v in state.items() if k != "step"}
    with pytest.raises(NetspecError, match="no 'step' entry"):
        fresh_optimizer(Adam()).load_state_dict(no_step)
    with pytest.raises(NetspecError, match="'lr' should be a scalar"):
        fresh_optimizer(Adam()).load_state_dict({**state, "lr": np.zeros(2)})


def test_load_state_dict_casts_to_the_parameter_dtype():
    state = trained_state(Adam())
    net = FakeNet(initial_values(), dtype=np.float32)
    optimizer = compile_optimizer(Adam(), net)
    optimizer.load_state_dict(state)
    assert optimizer.state_dict()["0.weight/exp_avg"].dtype == np.float32


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a GPU")
@pytest.mark.parametrize("spec", ROUND_TRIP, ids=repr)
def test_cupy_matches_numpy(spec):
    xp = get_xp("cuda")
    values, grads = initial_values(), gradient_sequence(STEPS)
    expected, _ = run_netspec(spec, values, grads, lr_change_at=2)
    net = FakeNet(values, xp=xp)
    optimizer = compile_optimizer(spec, net)
    for step_grads in grads:
        for name, grad in step_grads.items():
            net.grads[name][...] = xp.asarray(grad)
        optimizer.step()
    state = optimizer.state_dict()
    assert all(isinstance(value, np.ndarray) for value in state.values())
    optimizer.load_state_dict(state)
    buffers = [array for arrays in optimizer.state.values() for array in arrays.values()]
    assert all(isinstance(array, xp.ndarray) for array in buffers)
    for name, array in expected.parameters().items():
        np.testing.assert_allclose(to_numpy(net.parameters()[name]), array, rtol=1e-12)


# -- schemas ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda cls: cls.__name__)
def test_defaults_match_torch_signature(cls):
    torch = pytest.importorskip("torch")
    signature = inspect.signature(getattr(torch.optim, cls.__name__))
    torch_defaults = {n: p.default for n, p in signature.parameters.items() if n != "params"}
    ours = {n: f.default for n, f in cls.model_fields.items() if n != "type"}
    assert ours == torch_defaults
    assert cls.model_fields["type"].default == cls.__name__
    assert all(field.description for name, field in cls.model_fields.items() if name != "type")


def test_the_union_reads_every_form():
    adapter = TypeAdapter(AnyOptimizer)
    sgd = adapter.validate_python({"type": "SGD", "lr": 0.05, "momentum": 0.9})
    assert isinstance(sgd, SGD) and sgd.lr == 0.05 and sgd.momentum == 0.9
    adam = adapter.validate_python({"type": "Adam", "betas": [0.5, 0.6], "lr": 1})
    assert adam.betas == (0.5, 0.6) and isinstance(adam.lr, float)
    assert set(OPTIMIZER_TYPES) == {"SGD", "Adam", "AdamW", "RMSprop"}
    for bad in (
        {"type": "SGD", "momentum": True},  # strict: YAML `true` is not a number
        {"type": "SGD", "nesterov": 1},
        {"type": "SGD", "momentun": 0.9},  # extra keys are refused
        {"type": "AdamW", "decoupled_weight_decay": True},  # an Adam-only argument
        {"type": "Adam", "betas": [0.9]},
        {"type": "Adagrad"},  # torch.optim has it, netspec not yet
    ):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


CONSTRUCTOR_CASES = [
    ("SGD", {"lr": -1.0}, "lr"),
    ("SGD", {"lr": float("nan")}, None),
    ("SGD", {"momentum": -0.5}, "momentum"),
    ("SGD", {"weight_decay": -0.1}, "weight_decay"),
    ("SGD", {"nesterov": True}, "nesterov"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "nesterov"),
    ("SGD", {"nesterov": True, "momentum": 0.9}, None),
    ("SGD", {"dampening": -2.0, "momentum": 0.5}, None),
    ("SGD", {"fused": True, "foreach": True}, "fused"),
    ("SGD", {"fused": True, "differentiable": True}, "fused"),
    ("Adam", {"lr": -0.5}, "lr"),
    ("Adam", {"lr": float("nan")}, "lr"),
    ("Adam", {"eps": -1e-8}, "eps"),
    ("Adam", {"betas": (1.0, 0.999)}, "betas"),
    ("Adam", {"betas": (0.9, 1.0)}, "betas"),
    ("Adam", {"betas": (-0.1, 0.5)}, "betas"),
    ("Adam", {"weight_decay": -1.0}, "weight_decay"),
    ("Adam", {"fused": True, "foreach": True}, "fused"),
    ("Adam", {"fused": True, "differentiable": True}, "fused"),
    ("Adam", {"betas": (0.0, 0.0), "eps": 0.0, "decoupled_weight_decay": True}, None),
    ("AdamW", {"weight_decay": -0.01}, "weight_decay"),
    ("AdamW", {"betas": (0.9, 1.5)}, "betas"),
    ("AdamW", {"amsgrad": True, "maximize": True, "capturable": True}, None),
    ("RMSprop", {"lr": -0.01}, "lr"),
    ("RMSprop", {"lr": float("nan")}, "lr"),
    ("RMSprop", {"eps": -1e-8}, "eps"),
    ("RMSprop", {"momentum": -0.9}, "momentum"),
    ("RMSprop", {"weight_decay": -0.1}, "weight_decay"),
    ("RMSprop", {"alpha": -0.5}, "alpha"),
    ("RMSprop", {"alpha": float("nan")}, "alpha"),
    ("RMSprop", {"momentum": -0.5, "alpha": -0.5}, "momentum"),
    ("RMSprop", {"alpha": 1.5, "eps": 0.0, "centered": True, "capturable": True}, None),
    ("RMSprop", {"foreach": True, "differentiable": True, "maximize": True}, None),
]


@pytest.mark.parametrize("name, arguments, field", CONSTRUCTOR_CASES)
def test_constructor_errors_match_torch(name, arguments, field):
    torch = pytest.importorskip("torch")
    parameter = torch.zeros(2, requires_grad=True)
    try:
        getattr(torch.optim, name)([parameter], **arguments)
        torch_message = None
    except (ValueError, RuntimeError) as error:
        torch_message = str(error)
    if torch_message is None:
        assert field is None
        OPTIMIZER_TYPES[name](**arguments)
        return
    with pytest.raises(ValidationError) as caught:
        OPTIMIZER_TYPES[name](**arguments)
    (error,) = caught.value.errors()
    assert error["ctx"]["error"].message == torch_message
    assert error["ctx"]["error"].field == field
