"""ONNX export: the file onnxruntime runs computes what netspec's eval forward computes.

Every example spec (specs/, specs/seed/, the zoo at 224x224) and four all-arguments specs
written here (every padding mode, 'same' with even kernels, negative pads that crop,
dilation, groups, ceil_mode and count_include_pad and divisor_override, adaptive sizes that
divide and do not and keep a size, every activation, BatchNorm2d without affine or running
statistics, Flatten spans, Linear on (N, *, F), Add of three, Concat along 0, 1 and -1)
are exported at opsets 17 to 21 (circular padding and GELU take their plain-operator forms
before 19 and 20, their native ones after), run in onnxruntime at batch 3 and 1 (the batch
is symbolic), and compared in float32 at rtol 1e-4 (atol 1e-5 of the output's scale);
MaxPool indices exactly. So are 240 pools and convolutions with randomly drawn arguments.
The weights are random, BatchNorm's running statistics moved off 0 and 1 so that eval
mode is tested.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import netspec
from netspec.export.onnx import OnnxExportError, to_onnx, write_onnx

ort = pytest.importorskip("onnxruntime")
ort.set_default_logger_severity(3)  # its warnings are not ours to print
if importlib.util.find_spec("onnx") is None:
    pytest.skip("the export extra's onnx is not installed", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs").glob("*.yaml")) + sorted(
    (ROOT / "specs" / "seed").glob("*.yaml")
)
# The zoo at 224x224, batch 2. The VGGs and AlexNet take 3-15 s each here (their 60-140M
# weights are drawn, serialised and loaded), so they are marked slow.
ZOO = {
    "resnet18": (),
    "resnet34": (),
    "alexnet": (pytest.mark.slow,),
    "vgg11_bn": (pytest.mark.slow,),
    "vgg16": (pytest.mark.slow,),
}
RTOL, ATOL = 1e-4, 1e-5
OPSETS = tuple(range(17, 22))  # each side of Reduce axes (18), Pad wrap (19), Gelu (20)
OLDEST_NEWEST = (OPSETS[0], OPSETS[-1])

CONVOLUTIONS = """
name: convolutions
input: {shape: [4, 9, 10]}
layers:
  - {type: Conv2d, name: zeros_pair, inputs: [input], out_channels: 4, kernel_size: [3, 2], stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2, bias: false}
  - {type: Conv2d, name: same_even, inputs: [input], out_channels: 3, kernel_size: [2, 4], padding: same, dilation: [3, 1]}
  - {type: Conv2d, name: valid, inputs: [input], out_channels: 2, kernel_size: 3, stride: 2, padding: valid}
  - {type: Conv2d, name: reflect, inputs: [input], out_channels: 4, kernel_size: 3, padding: [2, 1], padding_mode: reflect, groups: 4}
  - {type: Conv2d, name: reflect_same_even, inputs: [input], out_channels: 2, kernel_size: 4, padding: same, padding_mode: reflect}
  - {type: Conv2d, name: reflect_crop, inputs: [input], out_channels: 2, kernel_size: 3, padding: [-1, 2], padding_mode: reflect}
  - {type: Conv2d, name: replicate, inputs: [input], out_channels: 2, kernel_size: [3, 5], padding: [3, 2], dilation: 2, padding_mode: replicate}
  - {type: Conv2d, name: replicate_crop, inputs: [input], out_channels: 2, kernel_size: 2, padding: [1, -2], padding_mode: replicate, bias: false}
  - {type: Conv2d, name: circular, inputs: [input], out_channels: 2, kernel_size: 3, stride: [1, 2], padding: [1, 2], padding_mode: circular}
  - {type: Conv2d, name: circular_same_even, inputs: [input], out_channels: 4, kernel_size: [2, 3], padding: same, padding_mode: circular, groups: 2}
  - {type: Conv2d, name: circular_crop, inputs: [input], out_channels: 2, kernel_size: 3, padding: [2, -1], padding_mode: circular}
  - {type: Conv2d, name: circular_whole, inputs: [input], out_channels: 2, kernel_size: 3, padding: [9, 10], padding_mode: circular}
outputs: [zeros_pair, same_even, valid, reflect, reflect_same_even, reflect_crop, replicate, replicate_crop, circular, circular_same_even, circular_crop, circular_whole]
"""

POOLS = """
name: pools
input: {shape: [3, 9, 10]}
layers:
  - {type: MaxPool2d, name: max_floor, inputs: [input], kernel_size: 3, stride: 2, padding: 1, return_indices: true}
  - {type: MaxPool2d, name: max_ceil, inputs: [input], kernel_size: 3, stride: 2, padding: 1, ceil_mode: true, return_indices: true}
  - {type: MaxPool2d, name: max_ceil_dilated, inputs: [input], kernel_size: 2, stride: 3, padding: 1, dilation: 2, ceil_mode: true, return_indices: true}
  - {type: MaxPool2d, name: max_ceil_kernel_stride, inputs: [input], kernel_size: [2, 3], ceil_mode: true, return_indices: true}
  - {type: MaxPool2d, name: max_plain, inputs: [input], kernel_size: [3, 2], stride: [1, 2], dilation: [2, 1]}
  - {type: AvgPool2d, name: avg_include_pad, inputs: [input], kernel_size: 3, stride: 2, padding: 1}
  - {type: AvgPool2d, name: avg_exclude_pad, inputs: [input], kernel_size: 3, stride: 2, padding: 1, count_include_pad: false}
  - {type: AvgPool2d, name: avg_ceil_include_pad, inputs: [input], kernel_size: 3, stride: 2, padding: 1, ceil_mode: true}
  - {type: AvgPool2d, name: avg_ceil_exclude_pad, inputs: [input], kernel_size: 3, stride: 2, padding: 1, ceil_mode: true, count_include_pad: false}
  - {type: AvgPool2d, name: avg_ceil_no_pad, inputs: [input], kernel_size: [2, 3], ceil_mode: true}
  - {type: AvgPool2d, name: avg_divisor, inputs: [input], kernel_size: 2, stride: 1, padding: 1, divisor_override: 3}
  - {type: AvgPool2d, name: avg_divisor_ceil, inputs: [input], kernel_size: [3, 2], stride: 2, padding: [1, 0], ceil_mode: true, divisor_override: 5, count_include_pad: false}
outputs: [max_floor, max_floor.indices, max_ceil, max_ceil.indices, max_ceil_dilated, max_ceil_dilated.indices, max_ceil_kernel_stride, max_ceil_kernel_stride.indices, max_plain, avg_include_pad, avg_exclude_pad, avg_ceil_include_pad, avg_ceil_exclude_pad, avg_ceil_no_pad, avg_divisor, avg_divisor_ceil]
"""

ADAPTIVE_SIZES = {
    "divides": "[5, 3]",
    "uneven": "[4, 7]",
    "keep_h": "[null, 4]",
    "keep_w": "[3, null]",
    "one": "1",
    "int": "4",
    "grows": "[13, 11]",
}


def _adaptive_spec() -> str:
    """Each size for both adaptive pools, with indices, on a 10x9 input."""
    lines = ["name: adaptive", "input: {shape: [3, 10, 9]}", "layers:"]
    outputs = ["max_global"]
    for key, size in ADAPTIVE_SIZES.items():
        common = f"inputs: [input], output_size: {size}"
        lines.append(f"  - {{type: AdaptiveAvgPool2d, name: avg_{key}, {common}}}")
        lines.append(
            f"  - {{type: AdaptiveMaxPool2d, name: max_{key}, {common}, return_indices: true}}"
        )
        outputs += [f"avg_{key}", f"max_{key}", f"max_{key}.indices"]
    lines.append("  - {type: AdaptiveMaxPool2d, name: max_global, inputs: [input], output_size: 1}")
    lines.append(f"outputs: [{', '.join(outputs)}]")
    return "\n".join(lines) + "\n"


ADAPTIVE = _adaptive_spec()

LAYERS = """
name: layers
input: {shape: [4, 6, 5]}
layers:
  - {type: BatchNorm2d, name: bn, inputs: [input]}
  - {type: BatchNorm2d, name: bn_no_affine, inputs: [input], affine: false, eps: 0.001}
  - {type: BatchNorm2d, name: bn_no_bias, inputs: [input], bias: false}
  - {type: BatchNorm2d, name: bn_batch_stats, inputs: [input], track_running_stats: false}
  - {type: BatchNorm2d, name: bn_batch_stats_no_affine, inputs: [input], track_running_stats: false, affine: false, eps: 0.01}
  - {type: Sigmoid, name: sigmoid, inputs: [input]}
  - {type: Tanh, name: tanh, inputs: [input]}
  - {type: ReLU, name: relu, inputs: [input]}
  - {type: LeakyReLU, name: leaky, inputs: [input], negative_slope: -0.2}
  - {type: ReLU6, name: relu6, inputs: [input]}
  - {type: GELU, name: gelu, inputs: [input]}
  - {type: GELU, name: gelu_tanh, inputs: [input], approximate: tanh}
  - {type: SELU, name: selu, inputs: [input]}
  - {type: Softmax, name: softmax_last, inputs: [input], dim: -1}
  - {type: Softmax, name: softmax_channels, inputs: [input], dim: 1}
  - {type: Softmax, name: softmax_implicit, inputs: [input]}
  - {type: Dropout, name: dropout, inputs: [input], p: 0.5}
  - {type: Dropout2d, name: dropout2d, inputs: [input], p: 0.3}
  - {type: Identity, name: identity, inputs: [input]}
  - {type: Add, name: add3, inputs: [relu, tanh, sigmoid]}
  - {type: Add, name: add2, inputs: [selu, gelu]}
  - {type: Concat, name: cat_channels, inputs: [relu, bn, gelu_tanh], dim: 1}
  - {type: Concat, name: cat_last, inputs: [leaky, relu6], dim: -1}
  - {type: Concat, name: cat_batch, inputs: [dropout, identity], dim: 0}
  - {type: Flatten, name: flat, inputs: [add3]}
  - {type: Linear, name: gemm, out_features: 7}
  - {type: Linear, name: gemm_no_bias, inputs: [flat], out_features: 3, bias: false}
  - {type: Flatten, name: flat_hw, inputs: [add2], start_dim: 2, end_dim: 3}
  - {type: Flatten, name: flat_batch, inputs: [dropout2d], start_dim: 0, end_dim: 1}
  - {type: Flatten, name: flat_middle, inputs: [cat_channels], start_dim: 1, end_dim: -2}
  - {type: Flatten, name: flat_one, inputs: [identity], start_dim: -2, end_dim: 2}
  - {type: Linear, name: matmul, inputs: [flat_middle], out_features: 6}
  - {type: Linear, name: matmul_no_bias, inputs: [flat_hw], out_features: 2, bias: false}
outputs: [bn, bn_no_affine, bn_no_bias, bn_batch_stats, bn_batch_stats_no_affine, leaky, relu6, softmax_last, softmax_channels, softmax_implicit, cat_channels, cat_last, cat_batch, gemm, gemm_no_bias, flat_batch, flat_one, matmul, matmul_no_bias]
"""
FIXTURES = {"convolutions": CONVOLUTIONS, "pools": POOLS, "adaptive": ADAPTIVE, "layers": LAYERS}


@pytest.fixture(scope="module")
def onnx():
    """Imported when a test runs, not when pytest collects this file: onnx loads ml_dtypes,
    which teaches NumPy bfloat16 and so changes what other test files see."""
    return pytest.importorskip("onnx")


# -- helpers ------------------------------------------------------------------------------------
def _network(spec: netspec.Spec, seed: int = 0):
    """The float32 network in eval mode, BatchNorm's statistics and affine moved off 0/1,
    and its state dict (live arrays: a VGG's weights are not copied)."""
    net = netspec.compile(spec, dtype="float32", seed=seed).eval()
    rng = np.random.default_rng(seed)
    state = net.state_dict()
    for node in spec.graph.nodes:
        if node.layer.type_name != "BatchNorm2d":
            continue
        for key, draw, low, high in (
            ("weight", rng.uniform, 0.5, 1.5),
            ("running_var", rng.uniform, 0.5, 2.0),
            ("bias", rng.normal, 0.0, 0.3),
            ("running_mean", rng.normal, 0.0, 0.3),
        ):
            if f"{node.name}.{key}" in state:
                state[f"{node.name}.{key}"] = draw(low, high, node.layer.num_features)
    net.load_state_dict(state)
    return net, net.state_dict()


def _export(spec: netspec.Spec, tmp_path: Path, opset: int = 17):
    net, state = _network(spec)
    path = write_onnx(spec, state, tmp_path / f"{spec.name}-{opset}.onnx", opset=opset)
    return net, state, path


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_runs_as_netspec(spec, net, path, batches=(3, 1), scale: float = 1.0) -> None:
    session = _session(path)
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(1)
    for batch in batches:
        x = (scale * rng.standard_normal((batch, *spec.input.shape))).astype(np.float32)
        ours = net(x)
        ours = ours if isinstance(ours, tuple) else (ours,)
        theirs = session.run(None, {"input": x})
        assert len(theirs) == len(ours) == len(spec.graph.outputs)
        for name, expected, actual in zip(names, ours, theirs, strict=True):
            assert actual.shape == expected.shape, (name, batch)
            if expected.dtype == np.int64:
                assert actual.dtype == np.int64, name
                np.testing.assert_array_equal(actual, expected, err_msg=f"{name} at batch {batch}")
            else:
                atol = ATOL * max(1.0, float(np.abs(expected).max()))
                np.testing.assert_allclose(
                    actual, expected, RTOL, atol, err_msg=f"{name} at batch {batch}"
                )


# -- every example spec ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(ROOT / "specs").as_posix())
def test_example_specs_run_in_onnxruntime_as_in_netspec(path, tmp_path):
    spec = netspec.load(path)
    net, _, exported = _export(spec, tmp_path)
    _assert_runs_as_netspec(spec, net, exported)


@pytest.mark.parametrize("name", [pytest.param(n, marks=m) for n, m in ZOO.items()])
def test_zoo_specs_at_224_run_in_onnxruntime_as_in_netspec(name, tmp_path):
    spec = netspec.load(ROOT / "specs" / "zoo" / f"{name}.yaml")
    net, _, exported = _export(spec, tmp_path)
    _assert_runs_as_netspec(spec, net, exported, batches=(2,))


# -- every argument ------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_every_argument_runs_in_onnxruntime_as_in_netspec(fixture, opset, tmp_path):
    spec = netspec.loads(FIXTURES[fixture])
    net, _, path = _export(spec, tmp_path, opset)
    _assert_runs_as_netspec(spec, net, path, scale=4.0)  # past ReLU6's 6, into Softmax's tails


def test_max_pool_indices_keep_pytorchs_first_maximum_on_ties(tmp_path):
    """Inputs of three values tie in every window: the index is the first maximum in
    row-major window order, for MaxPool2d and for both AdaptiveMaxPool2d paths."""
    rng = np.random.default_rng(2)
    for text in (POOLS, ADAPTIVE):
        spec = netspec.loads(text)
        net, _, path = _export(spec, tmp_path)
        x = rng.integers(0, 3, (3, *spec.input.shape)).astype(np.float32)
        ours = net(x)
        theirs = _session(path).run(None, {"input": x})
        indices = [
            (ref, a, b)
            for ref, a, b in zip(spec.graph.outputs, ours, theirs, strict=True)
            if ref.endswith(".indices")
        ]
        assert len(indices) in (4, len(ADAPTIVE_SIZES))
        for ref, expected, actual in indices:
            np.testing.assert_array_equal(actual, expected, err_msg=ref)


def _random_layer(rng: np.random.Generator, name: str) -> str:
    """One pool or convolution with arguments drawn across their ranges (negative pads and
    'same' for the padding modes that take them, dilation, groups, ceil_mode...)."""
    k = rng.integers(1, 5, 2).tolist()
    s, d = rng.integers(1, 4, 2).tolist(), rng.integers(1, 3, 2).tolist()
    p = [int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1))]
    ceil, flag = (str(v).lower() for v in rng.random(2) < 0.5)
    kind = rng.choice(
        ["MaxPool2d", "AvgPool2d", "AdaptiveMaxPool2d", "AdaptiveAvgPool2d", "Conv2d"]
    )
    head = f"type: {kind}, name: {name}, inputs: [input]"
    if kind == "MaxPool2d":
        return f"{{{head}, kernel_size: {k}, stride: {s}, padding: {p}, dilation: {d}, ceil_mode: {ceil}, return_indices: true}}"
    if kind == "AvgPool2d":
        divisor = rng.choice(["null", "3", "-2"])
        return f"{{{head}, kernel_size: {k}, stride: {s}, padding: {p}, ceil_mode: {ceil}, count_include_pad: {flag}, divisor_override: {divisor}}}"
    if kind.startswith("Adaptive"):
        size = [rng.choice(["null", str(rng.integers(1, 12))]) for _ in range(2)]
        indices = ", return_indices: true" if kind == "AdaptiveMaxPool2d" else ""
        return f"{{{head}, output_size: [{', '.join(size)}]{indices}}}"
    mode = rng.choice(["zeros", "reflect", "replicate", "circular"])
    low = 0 if mode == "zeros" else -2
    padding = "same" if flag == "true" else rng.integers(low, 4, 2).tolist()
    stride = [1, 1] if flag == "true" else s
    groups = int(rng.choice([1, 2, 4]))
    return f"{{{head}, out_channels: {2 * groups}, kernel_size: {k}, stride: {stride}, padding: {padding}, dilation: {d}, groups: {groups}, padding_mode: {mode}}}"


@pytest.mark.parametrize("seed", range(4))
def test_random_pool_and_convolution_arguments_run_as_in_netspec(seed, tmp_path):
    """Sixty layers drawn at random, side by side on one input; those netspec refuses (or
    that the export refuses: a window of padding only) are left out."""
    rng = np.random.default_rng(seed)
    shape = [4, *rng.integers(1, 10, 2).tolist()]
    head = f"input: {{shape: {shape}}}\nlayers:\n"
    layers, outputs = [], []
    for k in range(60):
        layer, name = _random_layer(rng, f"l{k}"), f"l{k}"
        named = [name, f"{name}.indices"] if "return_indices" in layer else [name]
        try:
            spec = netspec.loads(f"{head}  - {layer}\noutputs: [{', '.join(named)}]\n")
        except netspec.SpecError:
            continue
        try:
            to_onnx(spec, _network(spec)[1])
        except OnnxExportError as refused:
            assert "entirely in the padding" in refused.message  # the one refusal expected
            continue
        layers.append(layer)
        outputs += named
    assert len(layers) >= 20
    text = (
        head + "".join(f"  - {layer}\n" for layer in layers) + f"outputs: [{', '.join(outputs)}]\n"
    )
    spec = netspec.loads(text)
    net, _, path = _export(spec, tmp_path, opset=int(rng.choice(OPSETS)))
    _assert_runs_as_netspec(spec, net, path)


def _pad_modes(model) -> set[str]:
    return {
        attribute.s.decode()
        for node in model.graph.node
        if node.op_type == "Pad"
        for attribute in node.attribute
        if attribute.name == "mode"
    }


def test_the_opsets_write_circular_padding_and_gelu_their_own_way():
    """Opset 17 composes them from Slice + Concat and Erf / Tanh; 21 has Pad wrap, Gelu."""
    convolutions = netspec.loads(CONVOLUTIONS)
    _, state = _network(convolutions)
    old, new = (to_onnx(convolutions, state, opset=opset) for opset in OLDEST_NEWEST)
    assert _pad_modes(old) == {"reflect", "edge"}
    assert _pad_modes(new) == {"reflect", "edge", "wrap"}
    layers = netspec.loads(LAYERS)
    _, state = _network(layers)
    old, new = (
        {n.op_type for n in to_onnx(layers, state, opset=o).graph.node} for o in OLDEST_NEWEST
    )
    assert "Gelu" not in old and {"Erf", "Tanh"} <= old
    assert "Gelu" in new


# Every argument of every layer, and what the export does with it: a layer that gains an
# argument fails this test until the export (and the fixtures above) say how it maps.
EXPORTED_ARGUMENTS = {
    "Conv2d": "in_channels out_channels kernel_size stride padding dilation groups bias padding_mode",
    "MaxPool2d": "kernel_size stride padding dilation return_indices ceil_mode",
    "AvgPool2d": "kernel_size stride padding ceil_mode count_include_pad divisor_override",
    "AdaptiveMaxPool2d": "output_size return_indices",
    "AdaptiveAvgPool2d": "output_size",
    "LeakyReLU": "negative_slope",
    "GELU": "approximate",
    "Softmax": "dim",
    "BatchNorm2d": "num_features eps affine track_running_stats bias",
    "Linear": "in_features out_features bias",
    "Flatten": "start_dim end_dim",
    "Concat": "dim",
}
# What eval mode never reads: placement, in-place hints, training-only settings.
IGNORED_ARGUMENTS = {"device", "dtype", "inplace", "momentum", "p"}


def test_every_layer_and_argument_has_an_onnx_mapping():
    from netspec.export.onnx_layers import CONVERTERS
    from netspec.layers import LAYERS

    assert set(CONVERTERS) == set(LAYERS)
    for layer in LAYERS:
        arguments = set(layer.model_fields) - {"type", "name", "inputs"} - IGNORED_ARGUMENTS
        assert arguments == set(EXPORTED_ARGUMENTS.get(layer.__name__, "").split()), layer


# -- the file itself -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    spec = netspec.load(ROOT / "specs" / "resnet_tiny.yaml")
    net, state, path = _export(spec, tmp_path_factory.mktemp("onnx"))
    return spec, net, state, path


def test_the_file_passes_the_full_check_with_a_symbolic_float32_batch(resnet, onnx):
    spec, _, _, path = resnet
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17 and model.producer_name == "netspec"
    (graph_input,) = model.graph.input
    assert graph_input.name == "input"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and not dims[0].HasField("dim_value")
    assert [d.dim_value for d in dims[1:]] == list(spec.input.shape)
    assert [o.name for o in model.graph.output] == spec.graph.outputs


def test_initializers_are_the_state_dict_under_pytorchs_names(resnet, onnx):
    spec, net, state, path = resnet
    model = onnx.load(str(path))
    names = [t.name for t in model.graph.initializer]
    assert names == [k for k in net.state_dict() if not k.endswith("num_batches_tracked")]
    assert any(k.endswith("num_batches_tracked") for k in net.state_dict())  # left out
    for tensor in model.graph.initializer:
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(tensor), state[tensor.name])
    constants = [n for n in model.graph.node if n.op_type == "Constant"]
    assert not {n.output[0] for n in constants} & set(names)


def test_node_names_carry_the_layer_names(resnet, onnx):
    spec, _, _, path = resnet
    nodes = [n.name for n in onnx.load(str(path)).graph.node]
    assert len(set(nodes)) == len(nodes)
    assert {node.name for node in spec.graph.nodes} <= set(nodes)
    assert all(n.split("/")[0] in {node.name for node in spec.graph.nodes} for n in nodes)


def test_indices_are_an_int64_output_named_after_the_pool(tmp_path, onnx):
    spec = netspec.loads(POOLS)
    _, _, path = _export(spec, tmp_path)
    outputs = {o.name: o.type.tensor_type.elem_type for o in onnx.load(str(path)).graph.output}
    assert outputs["max_ceil.indices"] == onnx.TensorProto.INT64
    assert outputs["max_ceil"] == onnx.TensorProto.FLOAT


def test_an_output_naming_the_input_or_repeating_one_gets_its_own_name(tmp_path):
    spec = netspec.loads(
        "input: {shape: [2]}\nlayers:\n  - {type: ReLU, name: r}\noutputs: [input, r, r]\n"
    )
    net, _, path = _export(spec, tmp_path)
    session = _session(path)
    assert [o.name for o in session.get_outputs()] == ["input/0", "r", "r/2"]
    x = np.array([[-1.0, 2.0]], np.float32)
    for expected, actual in zip(net(x), session.run(None, {"input": x}), strict=True):
        np.testing.assert_array_equal(actual, expected)


# -- what is refused -------------------------------------------------------------------------------
def _refusal(text: str, state=None, opset: int = 17) -> str:
    spec = netspec.loads(text)
    if state is None:
        _, state = _network(spec)
    with pytest.raises(OnnxExportError) as caught:
        to_onnx(spec, state, opset=opset)
    return caught.value.message


def test_a_window_of_padding_only_is_refused_naming_the_layer():
    message = _refusal(
        "input: {shape: [1, 1, 6]}\nlayers:\n  - {type: MaxPool2d, name: p, kernel_size: 2, stride: 1, padding: 1, dilation: 2}\n"
    )
    assert "layer 'p' (MaxPool2d)" in message and "padding" in message


def test_a_layer_reading_indices_is_refused():
    message = _refusal(
        "input: {shape: [1, 4, 4]}\nlayers:\n  - {type: MaxPool2d, name: p, kernel_size: 2, return_indices: true}\n  - {type: Flatten, name: f, inputs: [p.indices]}\n"
    )
    assert "layer 'f' (Flatten)" in message and "p.indices" in message


def test_an_empty_adaptive_output_is_refused():
    message = _refusal(
        "input: {shape: [1, 4, 4]}\nlayers:\n  - {type: AdaptiveAvgPool2d, name: a, output_size: [0, 2]}\n"
    )
    assert "layer 'a'" in message and "0" in message


def test_weights_that_do_not_fit_are_refused_by_name():
    text = "input: {shape: [3]}\nlayers:\n  - {type: Linear, name: fc, out_features: 2}\n"
    spec = netspec.loads(text)
    _, state = _network(spec)
    assert "missing fc.bias" in _refusal(text, {"fc.weight": state["fc.weight"]})
    assert "unexpected fc.extra" in _refusal(text, {**state, "fc.extra": np.zeros(1)})
    wrong = {**state, "fc.weight": np.zeros((3, 2))}
    assert "'fc.weight' has shape (3, 2)" in _refusal(text, wrong)


def test_an_opset_before_17_is_refused():
    assert "opset 16" in _refusal("input: {shape: [3]}\nlayers:\n  - {type: ReLU}\n", opset=16)


def test_without_onnx_the_error_says_what_to_install(monkeypatch, tmp_path):
    spec = netspec.loads("input: {shape: [3]}\nlayers:\n  - {type: ReLU}\n")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    with pytest.raises(OnnxExportError) as caught:
        write_onnx(spec, {}, tmp_path / "m.onnx")
    assert caught.value.hint == "pip install 'netspec[export]'"
    assert not (tmp_path / "m.onnx").exists()
