"""Property tests of the front end.

(a) Random valid chains (convolutions, pools, activations, BatchNorm2d, dropout, Flatten,
    Linear, with random arguments that fit) infer the output shape, parameter and buffer
    shapes, and MACs that PyTorch's own modules give on a zeros tensor.
(b) Random garbage (YAML-ish text, random data dumped to YAML, random mutations of valid
    specs) never makes `netspec.loads` raise anything but SpecError.
"""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import netspec
from netspec.frontend.source import parse

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="PyTorch is the oracle for shapes"
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- (a) random valid chains -------------------------------------------------------------------
def _pair_or_int(draw, values: st.SearchStrategy[int]):
    """An int, or a two-item list (the YAML spelling of a tuple)."""
    if draw(st.booleans()):
        return draw(values)
    return [draw(values), draw(values)]


def _as_pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _conv2d(draw, c: int, h: int, w: int) -> dict:
    groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0]))
    out_channels = groups * draw(st.integers(1, 3))
    dilation = _pair_or_int(draw, st.integers(1, 2))
    stride = _pair_or_int(draw, st.integers(1, 3))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    choice = draw(st.sampled_from(["int", "same", "valid"]))
    if choice == "same" and _as_pair(stride) != (1, 1):
        choice = "int"
    if choice == "int":
        limit = min(h, w) - 1 if mode != "zeros" else 2  # reflect/circular need pad < size
        padding = _pair_or_int(draw, st.integers(0, max(0, min(limit, 2))))
    else:
        padding = choice
    pads = (0, 0) if isinstance(padding, str) else _as_pair(padding)
    dh, dw = _as_pair(dilation)
    # The dilated kernel must fit the padded input ('same' keeps the size, so fit the input).
    max_kh = (h + 2 * pads[0] - 1) // dh + 1
    max_kw = (w + 2 * pads[1] - 1) // dw + 1
    kernel = [draw(st.integers(1, min(max_kh, 4))), draw(st.integers(1, min(max_kw, 4)))]
    if kernel[0] == kernel[1] and draw(st.booleans()):
        kernel = kernel[0]
    return {
        "in_channels": c,
        "out_channels": out_channels,
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "bias": draw(st.booleans()),
        "padding_mode": mode,
    }


def _window(draw, h: int, w: int, dilation: bool) -> dict:
    dil = _pair_or_int(draw, st.integers(1, 2)) if dilation else 1
    dh, dw = _as_pair(dil)
    kh = draw(st.integers(1, max(1, min(4, (h - 1) // dh + 1))))
    kw = draw(st.integers(1, max(1, min(4, (w - 1) // dw + 1))))
    args = {"kernel_size": [kh, kw] if kh != kw or draw(st.booleans()) else kh}
    if draw(st.booleans()):
        args["stride"] = _pair_or_int(draw, st.integers(1, 3))
    args["padding"] = [draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))]
    args["ceil_mode"] = draw(st.booleans())
    if dilation:
        args["dilation"] = dil
    return args


def _adaptive(draw) -> dict:
    sizes = st.integers(1, 5)
    if draw(st.booleans()):
        return {"output_size": draw(sizes)}
    return {"output_size": [draw(st.none() | sizes), draw(st.none() | sizes)]}


def _image_layer(draw, shape: tuple[int, int, int]) -> tuple[str, dict]:
    c, h, w = shape
    kind = draw(
        st.sampled_from(
            [
                "Conv2d",
                "Conv2d",
                "MaxPool2d",
                "AvgPool2d",
                "AdaptiveMaxPool2d",
                "AdaptiveAvgPool2d",
                "BatchNorm2d",
                "Dropout2d",
                "Softmax",
                "Elementwise",
            ]
        )
    )
    if kind == "Conv2d":
        return kind, _conv2d(draw, c, h, w)
    if kind == "MaxPool2d":
        return kind, _window(draw, h, w, dilation=True)
    if kind == "AvgPool2d":
        args = _window(draw, h, w, dilation=False)
        args["count_include_pad"] = draw(st.booleans())
        args["divisor_override"] = draw(st.none() | st.integers(1, 4))
        return kind, args
    if kind.startswith("Adaptive"):
        return kind, _adaptive(draw)
    if kind == "BatchNorm2d":
        return kind, {
            "num_features": c,
            "eps": draw(st.sampled_from([1e-5, 1e-3])),
            "momentum": draw(st.sampled_from([0.1, None])),
            "affine": draw(st.booleans()),
            "track_running_stats": draw(st.booleans()),
        }
    if kind == "Dropout2d":
        return kind, {"p": draw(st.floats(0, 1))}
    if kind == "Softmax":
        return kind, {"dim": draw(st.integers(-4, 3))}
    return _elementwise(draw)


def _elementwise(draw) -> tuple[str, dict]:
    kind = draw(
        st.sampled_from(
            ["ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ReLU6", "GELU", "SELU", "Dropout", "Identity"]
        )
    )
    if kind == "LeakyReLU":
        return kind, {"negative_slope": draw(st.floats(-2, 2))}
    if kind == "GELU":
        return kind, {"approximate": draw(st.sampled_from(["none", "tanh"]))}
    if kind == "Dropout":
        return kind, {"p": draw(st.floats(0, 1))}
    if kind in ("ReLU", "ReLU6", "SELU") and draw(st.booleans()):
        return kind, {"inplace": draw(st.booleans())}
    return kind, {}


@st.composite
def chains(draw):
    """(input shape, [(type, args)]) for a chain that fits, with the torch shapes to expect."""
    import torch

    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    layers: list[tuple[str, dict]] = []
    x = torch.zeros(2, *shape)  # BatchNorm2d without running stats needs 2 values
    for _ in range(draw(st.integers(1, 4))):
        kind, args = _image_layer(draw, tuple(x.shape[1:]))
        x = _torch_apply(torch, kind, args, x)
        layers.append((kind, args))
    if draw(st.booleans()):
        layers.append(("Flatten", {}))
        x = x.flatten(1)
    for _ in range(draw(st.integers(0, 2))):
        args = {
            "in_features": x.shape[-1],
            "out_features": draw(st.integers(1, 6)),
            "bias": draw(st.booleans()),
        }
        layers.append(("Linear", args))
        x = _torch_apply(torch, "Linear", args, x)
        if draw(st.booleans()):
            layers.append(_elementwise(draw))
    return shape, layers


def _torch_module(torch, kind: str, args: dict):
    tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    return getattr(torch.nn, kind)(**tuples)


def _torch_apply(torch, kind, args, x):
    module = _torch_module(torch, kind, args).eval()
    with torch.no_grad():
        return module(x)


def _entry(kind: str, args: dict, form: int):
    """The same layer in one of the three equal forms."""
    if form == 0 and not args:
        return kind
    if form == 1:
        return {kind: dict(args)}
    return {"type": kind, **args}


def _spec_text(shape, layers, forms) -> str:
    entries = [_entry(kind, args, form) for (kind, args), form in zip(layers, forms, strict=True)]
    return yaml.safe_dump({"input": {"shape": list(shape)}, "layers": entries})


@needs_torch
@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")  # torch's perf note
@settings(SETTINGS, max_examples=120)
@given(chain=chains(), batch=st.sampled_from([None, 2, 3]), data=st.data())
def test_random_chains_infer_what_pytorch_computes(chain, batch, data):
    import torch

    shape, layers = chain
    forms = data.draw(st.lists(st.integers(0, 2), min_size=len(layers), max_size=len(layers)))
    spec = netspec.loads(_spec_text(shape, layers, forms))
    report = netspec.infer(spec, batch_size=batch)

    model = torch.nn.Sequential(*(_torch_module(torch, k, a) for k, a in layers)).eval()
    x = torch.zeros(batch or 2, *shape)
    with torch.no_grad():
        for i, (module, row) in enumerate(zip(model, report.rows, strict=True)):
            y = module(x)
            expected = tuple(y.shape) if batch else (None, *y.shape[1:])
            assert row.output_shape == expected, (i, layers[i])
            assert row.params == sum(p.numel() for p in module.parameters())
            assert row.macs == _torch_macs(module, x, y, batch), (i, layers[i])
            x = y
    assert report.output_shapes == [report.rows[-1].output_shape]
    _assert_state_shapes(spec, model)


def _torch_macs(module, x, y, batch) -> int:
    """design.md's MACs, from torch's own shapes (per sample when the batch is symbolic)."""
    per_sample = y.numel() // y.shape[0]
    n = batch or 1
    if module.__class__.__name__ == "Conv2d":
        _, per_group, kh, kw = module.weight.shape
        return n * per_sample * per_group * kh * kw
    if module.__class__.__name__ == "Linear":
        return n * per_sample * module.in_features
    return 0


def _assert_state_shapes(spec, model) -> None:
    ours = {}
    for i, layer in enumerate(spec.layers):
        for key, shape in {**layer.parameter_shapes(), **layer.buffer_shapes()}.items():
            ours[f"{i}.{key}"] = tuple(shape)
    theirs = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == theirs


# -- (b) garbage never escapes as anything but SpecError ----------------------------------------
def _loads_cleanly(text: str) -> None:
    try:
        netspec.loads(text)
    except netspec.SpecError as exc:
        assert exc.diagnostics and all(d.line >= 1 and d.col >= 1 for d in exc.diagnostics)
        for d in exc.diagnostics:
            assert f"{d.severity}[{d.code}]" in str(d)


YAML_TOKENS = [
    *"abcdeinptuxyz0123456789 :-,[]{}#&*!|>'\"?%@`\t\n.",
    "input",
    "layers",
    "shape",
    "Conv2d",
    "ReLU",
    "type",
    "inputs",
    "  ",
    "\n  - ",
    ": ",
    "!!python/object:os.system",
    "<<: ",
    "&a ",
    "*a",
    "---\n",
]
YAMLISH = st.lists(st.sampled_from(YAML_TOKENS), max_size=60).map("".join)


@SETTINGS
@given(text=YAMLISH)
def test_random_yamlish_text_gives_only_spec_errors(text):
    _loads_cleanly(text)


LAYER_NAMES = [
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveMaxPool2d",
    "Linear",
    "ReLU",
    "Softmax",
    "BatchNorm2d",
    "Flatten",
    "Add",
    "Concat",
    "Dropout",
    "Nope",
]
KEYS = [
    "input",
    "layers",
    "shape",
    "type",
    "name",
    "inputs",
    "outputs",
    "loss",
    "train",
    "data",
    "kernel_size",
    "in_channels",
    "out_channels",
    "in_features",
    "out_features",
    "padding",
    "stride",
    "dim",
    "p",
    "output_size",
    "optimizer",
    "source",
    *LAYER_NAMES,
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 40)
    | st.integers()
    | st.floats(allow_nan=True)
    | st.sampled_from(KEYS + ["same", "valid", "input", "0"])
    | st.text(max_size=5)
)
DATA = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=25,
)


@SETTINGS
@given(data=DATA)
def test_random_data_dumped_to_yaml_gives_only_spec_errors(data):
    _loads_cleanly(yaml.safe_dump(data))


@SETTINGS
@given(layers=st.lists(DATA, min_size=1, max_size=5), shape=DATA)
def test_random_layers_under_a_valid_frame_give_only_spec_errors(layers, shape):
    _loads_cleanly(yaml.safe_dump({"input": {"shape": shape}, "layers": layers}))


SPECS = Path(__file__).resolve().parent.parent / "specs"
VALID = [parse(p.read_text()).data for p in sorted(SPECS.glob("*.yaml"))]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _mutate(tree, path, how, value):
    if not path:
        return value
    parent = tree
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"{last}_extra"] = value
    elif how == "add":
        parent.insert(last, value)
    else:
        parent[last] = value
    return tree


@SETTINGS
@given(which=st.integers(0, len(VALID) - 1), data=st.data())
def test_random_mutations_of_valid_specs_give_only_spec_errors(which, data):
    tree = copy.deepcopy(VALID[which])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(tree))
        path = data.draw(st.sampled_from(paths))
        how = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if how == "delete" and not path:
            continue
        tree = _mutate(tree, path, how, data.draw(DATA))
    try:
        text = yaml.safe_dump(tree)
    except (yaml.YAMLError, RecursionError):
        assume(False)
    _loads_cleanly(text)


def test_mutation_helper_really_changes_specs():
    tree = copy.deepcopy(VALID[0])
    changed = _mutate(copy.deepcopy(tree), ("input", "shape"), "replace", [0])
    assert changed != tree and math.prod(changed["input"]["shape"]) == 0
