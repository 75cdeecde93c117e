"""Nesting (design.md §1.2): Sequential, blocks with params, `$param`, repeat, and the
dotted module paths they make; diagnostics inside blocks point at the definition and name
the instance."""

from __future__ import annotations

import pytest

import netspec

HEAD = "input: {shape: [4, 8, 8]}\n"

BLOCK = """\
blocks:
  Unit:
    params: [out, k: 3]
    layers:
      - {type: Conv2d, name: conv, in_channels: 4, out_channels: $out, kernel_size: $k, padding: 1}
      - {type: ReLU, name: act}
"""


def load(text: str, name: str = "n.yaml") -> netspec.Spec:
    return netspec.loads(text, source=name)


def errors(text: str) -> list[netspec.Diagnostic]:
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(text, source="n.yaml")
    return info.value.errors


def names(spec: netspec.Spec) -> list[str]:
    return [row.name for row in netspec.infer(spec).rows]


def head(d: netspec.Diagnostic) -> str:
    return f"{d.file}:{d.line}:{d.col}: {d.severity}[{d.code}]"


# -- Sequential ----------------------------------------------------------------------------------
def test_a_sequential_names_its_layers_by_index_under_its_name():
    spec = load(
        HEAD + "layers:\n  - {type: Sequential, name: f, layers: [ReLU, Tanh]}\n  - Flatten\n"
    )
    assert names(spec) == ["f.0", "f.1", "1"]
    assert netspec.infer(spec).chain


def test_a_sequential_without_a_name_takes_its_index():
    spec = load(
        HEAD + "layers:\n  - ReLU\n  - Sequential: {layers: [ReLU, {type: Tanh, name: t}]}\n"
    )
    assert names(spec) == ["0", "1.0", "1.t"]


def test_sequential_outputs_and_references_inside():
    text = HEAD + (
        "layers:\n"
        "  - {type: Sequential, name: s, outputs: [a], layers: [\n"
        "      {type: ReLU, name: a}, {type: Tanh, name: b, inputs: [input]}]}\n"
        "  - {type: Add, name: sum, inputs: [s, s.b]}\n"
    )
    rows = {r.name: r for r in netspec.infer(load(text)).rows}
    assert rows["s.b"].inputs == ["input"]
    assert rows["sum"].inputs == ["s.a", "s.b"]


# -- blocks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "use",
    [
        "- {type: Unit, name: u, out: 6}",
        "- Unit: {out: 6}\n    name: u",
        "- {Unit: {out: 6}, name: u}",
    ],
)
def test_a_block_use_in_every_layer_form(use):
    spec = load(HEAD + BLOCK + "layers:\n  " + use + "\n")
    assert names(spec) == ["u.conv", "u.act"]
    assert spec.layers[0].out_channels == 6 and spec.layers[0].kernel_size == 3  # the default


def test_a_param_inside_a_list_is_replaced_item_by_item():
    text = HEAD + (
        "blocks:\n  B:\n    params: [k]\n    layers:\n"
        "      - {type: MaxPool2d, kernel_size: [$k, 1]}\n"
        "layers:\n  - {type: B, name: b, k: 2}\n"
    )
    assert load(text).layers[0].kernel_size == (2, 1)


def test_blocks_use_blocks_and_repeat_makes_indexed_copies():
    text = (
        HEAD
        + BLOCK
        + (
            "  Pair:\n    params: [out]\n    layers:\n"
            "      - {type: Unit, name: first, out: $out}\n"
            "      - {type: Conv2d, name: second, in_channels: $out, out_channels: 4, kernel_size: 1}\n"
            "layers:\n  - {type: Pair, name: layer1, out: 5, repeat: 2}\n"
        )
    )
    spec = load(text)
    assert names(spec) == [
        "layer1.0.first.conv",
        "layer1.0.first.act",
        "layer1.0.second",
        "layer1.1.first.conv",
        "layer1.1.first.act",
        "layer1.1.second",
    ]
    state = netspec.compile(spec).state_dict()
    assert "layer1.1.first.conv.weight" in state and "layer1.0.second.bias" in state


def test_repeat_without_a_name_adds_the_copies_to_the_list():
    spec = load(HEAD + "layers:\n  - ReLU\n  - {type: Tanh, repeat: 3}\n  - Flatten\n")
    assert names(spec) == ["0", "1", "2", "3", "4"]
    assert netspec.infer(spec).chain


def test_block_references_to_input_and_siblings_and_dotted_names_outside():
    text = HEAD + (
        "blocks:\n  Res:\n    layers:\n"
        "      - {type: ReLU, name: a}\n"
        "      - {type: Add, name: add, inputs: [a, input]}\n"
        "layers:\n  - {type: Res, name: r}\n"
        "  - {type: Concat, name: cat, inputs: [r, r.a]}\n"
        "outputs: [cat, r.a]\n"
    )
    report = netspec.infer(load(text))
    rows = {r.name: r for r in report.rows}
    assert rows["r.add"].inputs == ["r.a", "input"]
    assert rows["cat"].inputs == ["r.add", "r.a"]
    assert report.outputs == ["cat", "r.a"]


def test_a_flat_spec_with_dotted_names_is_the_nested_one():
    nested = load(HEAD + "layers:\n  - {type: Sequential, name: f, layers: [ReLU, Tanh]}\n")
    flat = load(HEAD + "layers:\n  - {type: ReLU, name: f.0}\n  - {type: Tanh, name: f.1}\n")
    assert nested.fingerprint() == flat.fingerprint()


# -- diagnostics -----------------------------------------------------------------------------------
def test_an_error_inside_an_instance_points_at_the_definition_and_names_the_instance():
    text = HEAD + BLOCK + "layers:\n  - {type: Unit, name: u, out: 6, k: 30}\n"
    (d,) = errors(text)
    assert head(d) == "n.yaml:9:35: error[kernel-size]"  # $k: the argument at the use site
    assert d.message.endswith(", in u (Unit, used at n.yaml:9:5)")


def test_the_same_definition_error_in_every_instance_is_reported_once():
    broken = BLOCK.replace("padding: 1", "padding: -1")
    found = errors(HEAD + broken + "layers:\n  - {type: Unit, name: u, out: 4, repeat: 3}\n")
    assert [head(d) for d in found] == ["n.yaml:6:89: error[padding]"]
    assert "in u.0 (Unit, used at n.yaml:9:5)" in found[0].message


def test_errors_that_differ_between_instances_are_all_reported():
    text = (
        HEAD
        + BLOCK
        + "layers:\n  - {type: Unit, name: a, out: 6}\n  - {type: Unit, name: b, out: 6}\n"
    )
    found = errors(text)  # b's conv reads 6 channels, not 4: one error, about b only
    assert [d.code for d in found] == ["channels"]
    assert found[0].message.endswith("in b (Unit, used at n.yaml:10:5)")


def test_unknown_and_missing_params_are_located_at_the_use_site():
    found = errors(HEAD + BLOCK + "layers:\n  - {type: Unit, name: u, outt: 6}\n")
    assert [(head(d), d.message) for d in found] == [
        ("n.yaml:9:5: error[missing-param]", "block Unit needs param 'out'"),
        ("n.yaml:9:27: error[unknown-param]", "block Unit has no param 'outt'"),
    ]
    assert found[1].hint == "did you mean 'out'?"


def test_an_unknown_dollar_name_is_reported_once_at_the_definition():
    found = errors(
        HEAD + BLOCK.replace("$k", "$kk") + "layers:\n  - {type: Unit, out: 6, repeat: 2}\n"
    )
    assert [(head(d), d.hint) for d in found] == [
        ("n.yaml:6:72: error[unknown-param]", "did you mean 'k'?")
    ]


def test_a_cycle_of_block_uses_is_an_error():
    text = HEAD + (
        "blocks:\n  A:\n    layers: [B]\n  B:\n    layers: [{type: A}]\nlayers:\n  - A\n"
    )
    found = errors(text)
    assert [d.code for d in found] == ["block-cycle"]
    assert "A -> B -> A" in found[0].message


@pytest.mark.parametrize(
    ("blocks", "code"),
    [
        ("  ReLU: {layers: [Tanh]}\n", "bad-block"),
        ("  B: {layer: [Tanh]}\n", "unknown-key"),
        ("  B: {params: planes, layers: [Tanh]}\n", "bad-params"),
        ("  B: {params: [1], layers: [Tanh]}\n", "bad-params"),
        ("  B: {layers: []}\n", "bad-layers"),
    ],
)
def test_broken_block_definitions_are_located_errors(blocks, code):
    found = errors(HEAD + "blocks:\n" + blocks + "layers:\n  - Tanh\n")
    assert code in [d.code for d in found]


def test_a_param_outside_a_block_and_a_bad_repeat_are_errors():
    found = errors(
        HEAD + "layers:\n  - {type: Conv2d, in_channels: 4, out_channels: $c, kernel_size: 1}\n"
    )
    assert [d.code for d in found] == ["param-outside-block"]
    found = errors(HEAD + "layers:\n  - {type: ReLU, repeat: 0}\n")
    assert [d.code for d in found] == ["bad-repeat"]


# -- netspec expand ---------------------------------------------------------------------------------
EXAMPLES = sorted((__import__("pathlib").Path(__file__).parent.parent / "specs").rglob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_flat_spec_checks_to_the_same_rows(path):
    from netspec.frontend.flat_spec import flat_spec_text

    spec = netspec.load(path)
    flat = netspec.loads(flat_spec_text(spec))
    assert netspec.infer(flat, batch_size=2).rows == netspec.infer(spec, batch_size=2).rows
    assert flat.loss == spec.loss and flat.train == spec.train and flat.data == spec.data


def test_the_flat_spec_of_a_nested_one_has_no_blocks_and_full_names():
    from netspec.frontend.flat_spec import flat_spec_text

    text = flat_spec_text(
        load(HEAD + BLOCK + "layers:\n  - {type: Unit, name: u, out: 4, repeat: 2}\n")
    )
    assert "blocks" not in text and "$" not in text
    assert (
        "  - {type: Conv2d, name: u.1.conv, in_channels: 4, out_channels: 4, kernel_size: 3, padding: 1}"
        in text
    )
    assert names(netspec.loads(text)) == ["u.0.conv", "u.0.act", "u.1.conv", "u.1.act"]


def test_the_report_folds_rows_below_a_depth_into_their_modules():
    from netspec.frontend.shape_report import folded_rows

    text = (
        HEAD
        + BLOCK
        + (
            "layers:\n  - {type: Unit, name: layer1, out: 4, repeat: 2}\n"
            "  - {type: MaxPool2d, name: pool, kernel_size: 2, return_indices: true}\n"
            "  - Flatten\noutputs: [2, pool.indices]\n"
        )
    )
    spec = load(text)
    report = netspec.infer(spec)
    one = folded_rows(report, spec.modules, 1)
    assert [(r.name, r.type, r.inputs) for r in one] == [
        ("layer1", "Sequential", ["input"]),
        ("pool", "MaxPool2d", ["layer1"]),
        ("2", "Flatten", ["pool"]),
    ]
    assert one[0].params == sum(r.params for r in report.rows[:4])
    assert one[0].output_shape == report.rows[3].output_shape
    two = folded_rows(report, spec.modules, 2)
    assert [(r.name, r.type, r.inputs) for r in two][:2] == [
        ("layer1.0", "Unit", ["input"]),
        ("layer1.1", "Unit", ["layer1.0"]),
    ]
    assert folded_rows(report, spec.modules, 3) == report.rows


def test_repeat_without_a_name_inside_a_sequential_chains_its_copies():
    spec = load(
        HEAD + "layers:\n  - {type: Sequential, name: s, layers: [{type: ReLU, repeat: 2}, Tanh]}\n"
    )
    rows = netspec.infer(spec).rows
    assert [(r.name, r.inputs) for r in rows] == [
        ("s.0", ["input"]),
        ("s.1", ["s.0"]),
        ("s.2", ["s.1"]),
    ]


@pytest.mark.parametrize("outputs", ["[0, 1]", "[]", "'0'"])
def test_a_sequential_outputs_names_one_layer(outputs):
    found = errors(
        HEAD + f"layers:\n  - {{type: Sequential, layers: [ReLU, Tanh], outputs: {outputs}}}\n"
    )
    assert [d.code for d in found] == ["bad-outputs"]


def test_an_outputs_naming_nothing_is_reported_at_outputs():
    found = errors(HEAD + "layers:\n  - {type: Sequential, layers: [ReLU], outputs: [nowhere]}\n")
    assert [(head(d), d.message) for d in found] == [
        ("n.yaml:3:50: error[unknown-output]", "unknown output 'nowhere'")
    ]


# An error before a layer with an inferred size leaves the size unknown: the training-memory
# lint once computed that layer's parameter shapes (`None // groups`) and crashed.
@pytest.mark.parametrize(
    "first",
    ["0", "{type: Sequential, name: s, layers: [Conv2d: {out_channels: 4, kernal_size: 3}]}"],
)
def test_an_error_upstream_of_an_inferred_size_is_a_diagnostic(first):
    found = errors(
        HEAD + f"layers:\n  - {first}\n  - Conv2d: {{out_channels: 4, kernel_size: 3}}\n"
    )
    assert found
