"""The compiled network: every example spec runs, matches its inferred shapes and PyTorch."""

from __future__ import annotations

import glob
import math

import numpy as np
import pytest

import netspec
from netspec.errors import InputError
from netspec.network import StateDictError
from netspec.ops.backend import to_numpy

SPECS = sorted(glob.glob("specs/*.yaml"))
BATCH = 3


def _spec(path: str) -> netspec.Spec:
    return netspec.load(path)


def _with_all_outputs(spec: netspec.Spec) -> netspec.Spec:
    names = [row.name for row in netspec.infer(spec).rows]
    return spec.model_copy(update={"outputs": names})


def _batch(spec: netspec.Spec, n: int = BATCH, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *spec.input.shape))


@pytest.mark.parametrize("path", SPECS)
def test_runtime_shapes_equal_inferred_shapes(path):
    spec = _with_all_outputs(_spec(path))
    report = netspec.infer(spec, batch_size=BATCH)
    net = netspec.compile(spec, seed=0)
    outputs = net(_batch(spec))
    assert [tuple(y.shape) for y in outputs] == [row.output_shape for row in report.rows]
    assert all(y.dtype == np.float32 for y in outputs)


@pytest.mark.parametrize("path", SPECS)
def test_forward_and_backward_run_in_training_mode(path):
    spec = _spec(path)
    net = netspec.compile(spec, seed=1)
    net.train()
    y = net(_batch(spec))
    gx = net.backward(np.ones_like(y))
    assert gx.shape == (BATCH, *spec.input.shape)
    assert np.isfinite(gx).all()
    assert all(np.isfinite(g).all() for g in net.grads.values())
    assert any(np.abs(g).sum() > 0 for g in net.grads.values())


def test_parameter_names_and_counts_match_the_report():
    spec = _spec("specs/lenet5.yaml")
    net = netspec.compile(spec)
    expected = [
        "0.weight",
        "0.bias",
        "3.weight",
        "3.bias",
        "7.weight",
        "7.bias",
        "10.weight",
        "10.bias",
        "12.weight",
        "12.bias",
    ]
    assert list(net.parameters()) == expected
    total = sum(v.size for v in net.parameters().values())
    assert total == netspec.infer(spec).totals.params == 61_706


def test_buffers_use_pytorch_names_and_dtypes():
    net = netspec.compile(_spec("specs/digits_cnn.yaml"))
    state = net.state_dict()
    assert list(state)[:5] == ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var"]
    assert state["1.num_batches_tracked"].dtype == np.int64
    assert "1.running_mean" not in net.parameters()


def test_init_is_seeded_and_within_pytorch_bounds():
    spec = _spec("specs/mlp.yaml")
    a, b, c = (netspec.compile(spec, seed=s).state_dict() for s in (0, 0, 1))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], c["0.weight"])
    bound = 1 / math.sqrt(64)
    assert np.abs(a["0.weight"]).max() <= bound
    assert np.abs(a["0.weight"]).max() > 0.9 * bound  # uniform over the whole range


def test_gradients_accumulate_until_zero_grad():
    spec = _spec("specs/mlp.yaml")
    net = netspec.compile(spec, dtype="float64").eval()
    x = _batch(spec)
    net.backward(np.ones_like(net(x)))
    once = {k: v.copy() for k, v in net.grads.items()}
    net.backward(np.ones_like(net(x)))
    assert all(np.allclose(net.grads[k], 2 * once[k]) for k in once)
    net.zero_grad()
    assert all(not v.any() for v in net.grads.values())


def test_load_state_dict_copies_in_place_and_refuses_misfits():
    spec = _spec("specs/mlp.yaml")
    net = netspec.compile(spec, seed=0)
    other = netspec.compile(spec, seed=5)
    weight = net.parameters()["0.weight"]
    net.load_state_dict({k: to_numpy(v) for k, v in other.state_dict().items()})
    assert net.parameters()["0.weight"] is weight
    assert np.array_equal(weight, other.parameters()["0.weight"])
    state = {k: to_numpy(v) for k, v in other.state_dict().items()}
    with pytest.raises(StateDictError, match="missing keys: 0.bias"):
        net.load_state_dict({k: v for k, v in state.items() if k != "0.bias"})
    with pytest.raises(StateDictError, match="unexpected keys: extra"):
        net.load_state_dict({**state, "extra": np.zeros(1)})
    with pytest.raises(StateDictError, match=r"'0.weight' has shape \(2, 2\)"):
        net.load_state_dict({**state, "0.weight": np.zeros((2, 2))})


def test_wrong_input_shape_is_an_input_error():
    net = netspec.compile(_spec("specs/lenet5.yaml"))
    with pytest.raises(InputError, match=r"expected \(N, 1, 28, 28\)"):
        net(np.zeros((2, 28, 28)))


def test_backward_before_forward_is_a_clear_error():
    net = netspec.compile(_spec("specs/mlp.yaml"))
    with pytest.raises(netspec.NetspecError, match="forward"):
        net.backward(np.zeros((1, 10)))


@pytest.mark.parametrize("path", SPECS)
def test_backward_without_the_input_gradient(path):
    """input_grad=False returns None and leaves every parameter gradient as it was."""
    spec = _spec(path)
    x = _batch(spec)
    grads = []
    for input_grad in (True, False):
        net = netspec.compile(spec, dtype="float64", seed=1).train()
        y = net(x)
        gx = net.backward(np.ones_like(y), input_grad=input_grad)
        assert (gx is None) == (not input_grad)
        grads.append(net.grads)
    for name, grad in grads[0].items():
        np.testing.assert_allclose(grads[1][name], grad, rtol=1e-12, atol=1e-12, err_msg=name)


PARAMETER_FREE_FIRST = """
input: {shape: [2, 6, 6]}
layers:
  - {type: ReLU, name: act}
  - {type: Conv2d, name: conv, in_channels: 2, out_channels: 3, kernel_size: 3}
  - {type: Conv2d, name: head, in_channels: 3, out_channels: 2, kernel_size: 3}
"""


def test_layers_learn_whether_their_input_gradient_is_read(monkeypatch):
    """Only a gradient that reaches a parameter or the wanted input is computed: with
    input_grad=False neither the first convolution's dx nor the ReLU's backward runs."""
    from netspec.layers.activation import ReLU
    from netspec.layers.conv import Conv2d

    asked: list[tuple[str, bool]] = []
    conv_backward, relu_backward = Conv2d.backward, ReLU.backward

    def conv_spy(self, p, g, ctx, grads):
        asked.append((self.name, ctx.needs_input_grad))
        return conv_backward(self, p, g, ctx, grads)

    def relu_spy(self, p, g, ctx, grads):
        asked.append((self.name, ctx.needs_input_grad))
        return relu_backward(self, p, g, ctx, grads)

    monkeypatch.setattr(Conv2d, "backward", conv_spy)
    monkeypatch.setattr(ReLU, "backward", relu_spy)
    net = netspec.compile(netspec.loads(PARAMETER_FREE_FIRST), dtype="float64")
    x = _batch(netspec.loads(PARAMETER_FREE_FIRST), 2)
    for input_grad, expected in [
        (True, [("head", True), ("conv", True), ("act", True)]),
        (False, [("head", True), ("conv", False)]),
    ]:
        asked.clear()
        net.backward(np.ones_like(net(x)), input_grad=input_grad)
        assert asked == expected


GRAPH = """
input: {shape: [2, 6, 6]}
layers:
  - {type: Conv2d, name: conv, in_channels: 2, out_channels: 4, kernel_size: 3, padding: 1}
  - {type: MaxPool2d, name: pool, kernel_size: 2, return_indices: true}
  - {type: AvgPool2d, name: avg, inputs: [conv], kernel_size: 2}
  - {type: Concat, name: cat, inputs: [pool, avg]}
  - {type: Add, name: sum, inputs: [pool, avg, avg]}
outputs: [cat, sum, pool.indices]
"""


def test_multiple_outputs_side_outputs_and_shared_inputs():
    spec = netspec.loads(GRAPH)
    net = netspec.compile(spec, dtype="float64")
    x = _batch(spec, 2)
    cat, total, indices = net(x)
    assert cat.shape == (2, 8, 3, 3) and total.shape == (2, 4, 3, 3)
    assert indices.shape == (2, 4, 3, 3) and indices.dtype == np.int64
    gx = net.backward((np.ones_like(cat), np.ones_like(total), None))
    assert gx.shape == x.shape
    # each output's gradient alone, summed, equals both together (linearity of backward)
    net.zero_grad()
    net(x)
    g1 = net.backward((np.ones_like(cat), None, None))
    net(x)
    g2 = net.backward((None, np.ones_like(total), None))
    np.testing.assert_allclose(g1 + g2, gx)


class TestPyTorchParity:
    torch = pytest.importorskip("torch")

    @pytest.mark.parametrize("path", SPECS)
    @pytest.mark.parametrize("dtype", ["float64", "float32"])
    def test_eval_mode(self, path, dtype):
        self._compare(_spec(path), dtype, training=False)

    @pytest.mark.parametrize("path", ["specs/vgg_small.yaml", "specs/resnet_tiny.yaml"])
    def test_training_mode_with_batchnorm_updates(self, path):
        self._compare(_spec(path), "float64", training=True)

    def _compare(self, spec, dtype, training):
        from tests.torch_oracle import TorchGraph

        torch = self.torch
        tol = dict(rtol=1e-8, atol=1e-8) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
        net = netspec.compile(spec, dtype=dtype, seed=0).train(training)
        model = TorchGraph(spec).to(getattr(torch, dtype)).train(training)
        model.load_netspec_state({k: to_numpy(v) for k, v in net.state_dict().items()})
        x = _batch(spec, 4).astype(dtype)
        tx = torch.from_numpy(x).requires_grad_(True)
        y, ty = net(x), model(tx)
        np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
        g = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
        gx = net.backward(g)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(gx, tx.grad.numpy(), **tol)
        theirs = model.netspec_grads()
        for name, grad in net.grads.items():
            np.testing.assert_allclose(grad, theirs[name], err_msg=name, **tol)
        for name, value in model.state_dict().items():
            np.testing.assert_allclose(
                net.state_dict()[name.removeprefix("layers.")], value.numpy(), err_msg=name, **tol
            )

    def test_a_torch_sequential_state_dict_loads_as_is(self):
        torch = self.torch
        spec = _spec("specs/digits_cnn.yaml")
        from tests.torch_oracle import torch_layer

        model = torch.nn.Sequential(*(torch_layer(layer) for layer in spec.layers))
        net = netspec.compile(spec, dtype="float64")
        net.load_state_dict(model.double().state_dict())
        model.eval()
        net.eval()
        x = _batch(spec, 5)
        np.testing.assert_allclose(
            net(x), model(torch.from_numpy(x)).detach().numpy(), rtol=1e-8, atol=1e-8
        )


# -- devices and timing ---------------------------------------------------------------------------
class _FakeCupyOnNumpy:
    """CuPy with two GPUs, computing in NumPy: each array it creates records the GPU that was
    current then, so a test sees where a network put its arrays."""

    def __init__(self):
        self.current = 0
        self.created_on: list[int] = []
        fake = self

        class Device:
            def __init__(self, index: int = None):
                self.index = fake.current if index is None else index

            def use(self) -> None:
                fake.current = self.index

            def synchronize(self) -> None:
                pass

        class Runtime:
            @staticmethod
            def getDeviceCount() -> int:  # noqa: N802 - CuPy's name
                return 2

        self.cuda = type("cuda", (), {"Device": Device, "runtime": Runtime})

    def __getattr__(self, name):
        value = getattr(np, name)
        if name in ("asarray", "zeros", "zeros_like", "empty", "ones"):

            def creating(*args, **kwargs):
                self.created_on.append(self.current)
                return value(*args, **kwargs)

            return creating
        return value


def test_cuda_index_puts_the_network_on_that_gpu(monkeypatch):
    from netspec.ops import backend

    fake = _FakeCupyOnNumpy()
    monkeypatch.setattr(backend, "_cupy", fake)
    spec = _spec("specs/lenet5.yaml")
    net = netspec.compile(spec, device="cuda:1")
    assert net.xp is fake and fake.current == 1
    net(_batch(spec))
    assert fake.created_on and set(fake.created_on) == {1}


def test_compiling_for_the_cpu_opts_into_the_allocator_tuning(monkeypatch):
    from netspec import network
    from netspec.ops import backend

    calls = []
    monkeypatch.setattr(network, "keep_freed_memory", lambda: calls.append(1) or True)
    backend.get_xp("cpu")  # asking for a device changes no process setting
    assert calls == []
    netspec.compile(_spec("specs/lenet5.yaml"))
    assert calls == [1]


def test_timings_are_kept_only_when_asked_for():
    spec = _spec("specs/lenet5.yaml")
    net = netspec.compile(spec)
    x = _batch(spec)
    net.backward(np.ones(net(x).shape))
    assert net.timings is None
    net.timings = {}
    net.backward(np.ones(net(x).shape))
    names = [node.name for node in net.graph.nodes]
    assert sorted(net.timings) == sorted(
        [f"{n}/forward" for n in names] + [f"{n}/backward" for n in names]
    )
    assert all(len(seconds) == 1 and seconds[0] >= 0 for seconds in net.timings.values())
