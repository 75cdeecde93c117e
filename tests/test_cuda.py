"""The CuPy backend computes what the NumPy backend computes (which the other tests pin to
PyTorch): every layer and argument grid, every loss option, the optimizers, whole example
specs and checkpoints. Skipped cleanly without CuPy or a GPU.
"""

from __future__ import annotations

import glob

import numpy as np
import pytest

import netspec
from netspec.ops.backend import cuda_available, to_numpy

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU"),
]

TOL = {"float64": dict(rtol=1e-9, atol=1e-10), "float32": dict(rtol=1e-4, atol=1e-5)}

# One layer each, in the spec's own words, covering every argument family.
LAYER_CASES = [
    (
        [3, 9, 11],
        "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: [3, 5], stride: [2, 1], padding: [2, 1], dilation: [2, 1]}",
    ),
    (
        [4, 8, 8],
        "Conv2d: {in_channels: 4, out_channels: 6, kernel_size: 3, padding: same, groups: 2, padding_mode: reflect}",
    ),
    (
        [2, 7, 7],
        "Conv2d: {in_channels: 2, out_channels: 3, kernel_size: 4, padding: same, padding_mode: circular, bias: false}",
    ),
    (
        [2, 7, 7],
        "Conv2d: {in_channels: 2, out_channels: 2, kernel_size: 3, padding: 2, padding_mode: replicate}",
    ),
    ([2, 9, 9], "MaxPool2d: {kernel_size: 3, stride: 2, padding: 1, dilation: 2, ceil_mode: true}"),
    ([2, 8, 8], "MaxPool2d: {kernel_size: 2}"),
    (
        [2, 9, 7],
        "AvgPool2d: {kernel_size: 3, stride: 2, padding: 1, ceil_mode: true, count_include_pad: false}",
    ),
    ([2, 9, 7], "AvgPool2d: {kernel_size: [3, 2], divisor_override: 5}"),
    ([3, 10, 9], "AdaptiveMaxPool2d: {output_size: [4, null]}"),
    ([3, 10, 9], "AdaptiveAvgPool2d: {output_size: [3, 4]}"),
    ([5], "Sigmoid"),
    ([5], "Tanh"),
    ([5], "ReLU"),
    ([5], "LeakyReLU: {negative_slope: 0.2}"),
    ([5], "ReLU6"),
    ([5], "GELU"),
    ([5], "GELU: {approximate: tanh}"),
    ([5], "SELU"),
    ([3, 4, 5], "Softmax: {dim: 2}"),
    ([3, 4, 5], "Softmax"),
    ([4, 5, 6], "BatchNorm2d: {num_features: 4}"),
    ([4, 5, 6], "BatchNorm2d: {num_features: 4, momentum: null, affine: false}"),
    ([4, 5, 6], "BatchNorm2d: {num_features: 4, track_running_stats: false}"),
    ([3, 7], "Linear: {in_features: 7, out_features: 5}"),
    ([2, 3, 4], "Flatten: {start_dim: 2}"),
]


def _spec(input_shape, layer: str) -> netspec.Spec:
    return netspec.loads(f"input: {{shape: {input_shape}}}\nlayers:\n  - {layer}\n")


def _run(spec, device, dtype, training, x, g):
    net = netspec.compile(spec, device=device, dtype=dtype, seed=0).train(training)
    y = net(x)
    gx = net.backward(net.xp.asarray(g))
    state = {k: to_numpy(v) for k, v in net.state_dict().items()}
    grads = {k: to_numpy(v) for k, v in net.grads.items()}
    return to_numpy(y), to_numpy(gx), state, grads


def _compare(spec, dtype, training, batch=4):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *spec.input.shape)).astype(dtype)
    out_shape = netspec.infer(spec, batch_size=batch).output_shapes[0]
    g = rng.standard_normal(out_shape).astype(dtype)
    cpu = _run(spec, "cpu", dtype, training, x, g)
    gpu = _run(spec, "cuda", dtype, training, x, g)
    for a, b, what in zip(cpu[:2], gpu[:2], ("forward", "input grad"), strict=True):
        np.testing.assert_allclose(b, a, err_msg=what, **TOL[dtype])
    for a, b in zip(cpu[2:], gpu[2:], strict=True):
        for key in a:
            np.testing.assert_allclose(b[key], a[key], err_msg=key, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(("shape", "layer"), LAYER_CASES)
def test_each_layer_on_cuda_equals_numpy(shape, layer, training, dtype):
    _compare(_spec(shape, layer), dtype, training)


@pytest.mark.parametrize("path", sorted(glob.glob("specs/*.yaml")))
def test_example_specs_on_cuda_equal_numpy(path):
    _compare(netspec.load(path), "float32", training=False)


def test_initialisation_is_identical_on_both_devices():
    spec = netspec.load("specs/resnet_tiny.yaml")
    cpu = netspec.compile(spec, device="cpu").state_dict()
    gpu = netspec.compile(spec, device="cuda").state_dict()
    assert all(np.array_equal(to_numpy(gpu[k]), cpu[k]) for k in cpu)


LOSSES = [
    ("L1Loss", "float"),
    ("MSELoss: {reduction: sum}", "float"),
    ("CrossEntropyLoss", "index"),
    (
        "CrossEntropyLoss: {weight: [1.0, 2.0, 0.5, 1.0], ignore_index: 1, label_smoothing: 0.1}",
        "index",
    ),
    ("CrossEntropyLoss: {reduction: none}", "index"),
    ("CrossEntropyLoss: {label_smoothing: 0.2}", "prob"),
]


@pytest.mark.parametrize(("loss", "target"), LOSSES)
def test_losses_on_cuda_equal_numpy(loss, target):
    written = f"{{{loss}}}" if ":" in loss else loss  # `loss: {MSELoss: {...}}`
    spec = netspec.loads(f"input: {{shape: [4]}}\nlayers: [Identity]\nloss: {written}\n")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    t = {
        "float": rng.standard_normal((6, 4)),
        "index": rng.integers(0, 4, 6),
        "prob": rng.dirichlet(np.ones(4), 6),
    }[target]
    results = []
    for device in ("cpu", "cuda"):
        fn = netspec.compile_loss(spec.loss, device=device, dtype="float64")
        value = fn(x, t)
        results.append((to_numpy(value), to_numpy(fn.backward())))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "optimizer",
    [
        "SGD: {lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01}",
        "Adam: {lr: 0.01, amsgrad: true}",
        "AdamW: {lr: 0.01, weight_decay: 0.1}",
    ],
)
def test_optimizers_on_cuda_equal_numpy(optimizer):
    spec = netspec.loads(
        "input: {shape: [4]}\nlayers:\n  - Linear: {in_features: 4, out_features: 3}\n"
        f"loss: MSELoss\ntrain: {{optimizer: {{{optimizer}}}}}\n"
    )
    x = np.random.default_rng(0).standard_normal((5, 4))
    states = []
    for device in ("cpu", "cuda"):
        net = netspec.compile(spec, device=device, dtype="float64")
        opt = netspec.compile_optimizer(spec.train.optimizer, net)
        for _ in range(3):
            opt.zero_grad()
            net.backward(net.xp.asarray(np.ones((5, 3))) * net(x))
            opt.step()
        states.append({k: to_numpy(v) for k, v in net.state_dict().items()})
    for key in states[0]:
        np.testing.assert_allclose(states[1][key], states[0][key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path", ["specs/vgg_small.yaml", "specs/resnet_tiny.yaml"])
def test_training_step_without_input_grad_on_cuda_equals_numpy(path):
    """The trainer's path: large columns rebuilt in backward, no input gradient."""
    spec = netspec.load(path)
    x = np.random.default_rng(0).standard_normal((64, *spec.input.shape)).astype("float32")
    grads = []
    for device in ("cpu", "cuda"):
        net = netspec.compile(spec, device=device, seed=0).eval()
        y = net(x)
        assert net.backward(net.xp.ones_like(y), input_grad=False) is None
        grads.append({k: to_numpy(v) for k, v in net.grads.items()})
    for key in grads[0]:
        np.testing.assert_allclose(grads[1][key], grads[0][key], rtol=1e-3, atol=1e-3, err_msg=key)


# -- fused kernels (netspec.ops.fused) and the captured step (netspec.training.step_graph) ------
FUSED_SCALARS = {
    "sgd": dict(lr=0.1, momentum=0.9, keep=0.7, weight_decay=0.05),
    "adam": dict(
        weight_decay=0.1,
        decay=0.999,
        weight=0.1,
        rest=0.9,
        beta2=0.999,
        rest2=0.001,
        neg_step_size=-0.01,
        bias_correction2_sqrt=0.3,
        eps=1e-8,
    ),  # fmt: skip
    "rmsprop": dict(
        lr=0.01,
        neg_lr=-0.01,
        alpha=0.9,
        weight=0.1,
        rest=0.9,
        eps=1e-8,
        momentum=0.9,
        weight_decay=0.1,
    ),  # fmt: skip
    "channel_affine": dict(plane=5),
    "norm_backward": dict(plane=5),
    "dropout_mask": dict(keep=0.7, scale=1 / 0.7),
    "relu_grad": {},
}
POSITIVE = {"exp_avg_sq", "max_exp_avg_sq", "square_avg"}


def _fused_arrays(formula, present, dtype, rng):
    arrays = {}
    for p in formula.arrays():
        if p.default is None and p.name not in present:
            arrays[p.name] = None
            continue
        shape = (4,) if p.name in formula.raw else (3, 20)
        value = rng.standard_normal(shape)
        if p.name in POSITIVE:
            value = np.abs(value) + 2.0
        if formula.name == "dropout_mask":
            value = rng.random(shape)
        arrays[p.name] = value.astype(dtype)
    return arrays


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("flags", [False, True])
@pytest.mark.parametrize("name", sorted(FUSED_SCALARS))
def test_each_fused_kernel_equals_its_numpy_twin(name, flags, dtype):
    """Every variant, both values of every flag: the arrays it updates, after one call."""
    import cupy

    from netspec.ops import fused

    formula = fused.FORMULAS[name]
    optional = sorted(formula.optional())
    for present in (frozenset(), frozenset(optional)):
        arrays = _fused_arrays(formula, present, dtype, np.random.default_rng(0))
        scalars = dict(FUSED_SCALARS[name])
        scalars.update({s: flags for s in formula.scalars() if s in fused.INTS and s != "plane"})
        host = {k: None if v is None else v.copy() for k, v in arrays.items()}
        device = {k: None if v is None else cupy.asarray(v) for k, v in arrays.items()}
        fused.kernel(np, name)(*host.values(), **scalars)
        fused.kernel(cupy, name)(*device.values(), **scalars)
        for key in formula.updates & {k for k, v in host.items() if v is not None}:
            np.testing.assert_allclose(
                to_numpy(device[key]), host[key], err_msg=f"{key} {present}", **TOL[dtype]
            )


@pytest.mark.parametrize("path", ["specs/vgg_small.yaml", "specs/resnet_tiny.yaml"])
def test_captured_training_steps_equal_eager_ones_on_cuda(path):
    """CUDA graphs (CuPy's stream capture) against eager CuPy: weights after a few steps,
    with full batches and a partial one (5 replays). A capture CuPy refuses is reported as
    an expected failure with CuPy's reason, not hidden. (lenet5 has Dropout: eager.)"""
    from netspec.training.step_graph import CapturedStep, CupyGraphs, EagerStep

    spec = netspec.load(path)
    rng = np.random.default_rng(0)
    classes = netspec.infer(spec).output_shapes[0][1]
    batches = [
        (rng.standard_normal((n, *spec.input.shape)).astype("float32"), rng.integers(0, classes, n))
        for n in (16, 16, 16, 16, 16, 7, 16, 7, 16)
    ]
    results = []
    for captured in (False, True):
        net = netspec.compile(spec, device="cuda", seed=0).train()
        loss = netspec.compile_loss(spec.loss, device="cuda")
        optimizer = netspec.compile_optimizer(spec.train.optimizer, net)
        step = (
            CapturedStep(net, optimizer, CupyGraphs(), warmup=2)
            if captured
            else EagerStep(net, optimizer)
        )
        for x, y in batches:
            value = loss(step.forward(net.xp.asarray(x)), y)
            step.update(loss.backward())
        results.append({k: to_numpy(v) for k, v in net.state_dict().items()})
        if captured and step.failure is not None:
            pytest.xfail(step.failure)
        if captured:
            assert step.replays == 5 and np.isfinite(float(value))
    for key in results[0]:
        np.testing.assert_allclose(
            results[1][key], results[0][key], rtol=1e-4, atol=1e-5, err_msg=key
        )
