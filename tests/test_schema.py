"""The JSON Schema: `netspec schema --check` guards the committed copy, every entry is
described for editors, and the schema accepts what netspec accepts (all three forms).

jsonschema is not a dependency, so a small validator for the keywords pydantic emits
lives here; it is checked against a few documents of its own first.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import netspec
from netspec.cli import app
from netspec.frontend.json_schema import SCHEMA_PATH, schema_text, spec_schema
from netspec.frontend.source import parse
from netspec.layers import LAYERS
from netspec.losses import LOSSES
from netspec.optim import OPTIMIZERS
from netspec.optim.lr_scheduler import SCHEDULES
from tests.nested_specs import NESTED
from tests.spec_mistakes import BEYOND_A_SCHEMA, MISTAKES
from tests.test_hypothesis_specs import (
    SETTINGS,
    VALID,
    _mutate,
    _paths,
    _spec_text,
    chains,
    needs_torch,
)

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / SCHEMA_PATH
runner = CliRunner()


# -- a minimal JSON Schema (2020-12) validator ------------------------------------------------
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # JSON Schema's integer is a number with a zero fraction (5.0 too), as editors read it
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def read_yaml(text: str):
    """The data netspec reads (YAML 1.2), which is what the schema is checked against."""
    return parse(text).data


def same(a, b) -> bool:
    """JSON equality: true is not 1, and 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return (type(a) is type(b) or {type(a), type(b)} <= {int, float}) and a == b


def valid(value, node, root) -> bool:
    """Whether `value` satisfies schema `node` (only the keywords this schema uses)."""
    if "if" in node:
        branch = node.get("then" if valid(value, node["if"], root) else "else", {})
        if not valid(value, branch, root):
            return False
    if "not" in node and valid(value, node["not"], root):
        return False
    names = node.get("propertyNames")
    if (
        names is not None
        and isinstance(value, dict)
        and not all(valid(k, names, root) for k in value)
    ):
        return False
    if "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        if not valid(value, target, root):
            return False
    if "anyOf" in node and not any(valid(value, n, root) for n in node["anyOf"]):
        return False
    if "oneOf" in node and sum(valid(value, n, root) for n in node["oneOf"]) != 1:
        return False
    if "allOf" in node and not all(valid(value, n, root) for n in node["allOf"]):
        return False
    if "enum" in node and not any(same(value, e) for e in node["enum"]):
        return False
    if "const" in node and not same(value, node["const"]):
        return False
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_TYPES[t](value) for t in types):
            return False
    return (
        _valid_number(value, node)
        and _valid_array(value, node, root)
        and (_valid_object(value, node, root) and _valid_string(value, node))
    )


def _valid_number(value, node) -> bool:
    if not _TYPES["number"](value) or (isinstance(value, float) and math.isnan(value)):
        return True
    return (
        value >= node.get("minimum", -math.inf)
        and value <= node.get("maximum", math.inf)
        and value > node.get("exclusiveMinimum", -math.inf)
        and value < node.get("exclusiveMaximum", math.inf)
    )


def _valid_array(value, node, root) -> bool:
    if not isinstance(value, list):
        return True
    if not node.get("minItems", 0) <= len(value) <= node.get("maxItems", math.inf):
        return False
    if node.get("uniqueItems") and any(
        same(a, b) for i, a in enumerate(value) for b in value[i + 1 :]
    ):
        return False
    prefix = node.get("prefixItems", [])
    # Items past the prefix are checked against `items` below.
    if not all(valid(v, n, root) for v, n in zip(value, prefix, strict=False)):
        return False
    rest = value[len(prefix) :]
    return "items" not in node or all(valid(v, node["items"], root) for v in rest)


def _valid_object(value, node, root) -> bool:
    if not isinstance(value, dict):
        return True
    if any(key not in value for key in node.get("required", [])):
        return False
    if not node.get("minProperties", 0) <= len(value) <= node.get("maxProperties", math.inf):
        return False
    props = node.get("properties", {})
    extra = node.get("additionalProperties", True)
    for key, item in value.items():
        schema = props.get(key, extra)
        if schema is False or (isinstance(schema, dict) and not valid(item, schema, root)):
            return False
    return True


def _valid_string(value, node) -> bool:
    if not isinstance(value, str):
        return True
    if len(value) < node.get("minLength", 0):
        return False
    return "pattern" not in node or re.search(node["pattern"], value) is not None


def test_the_small_validator_itself():
    root = {
        "$defs": {
            "P": {
                "type": "object",
                "properties": {"a": {"type": "integer", "minimum": 1}},
                "required": ["a"],
                "additionalProperties": False,
            }
        }
    }
    ref = {"$ref": "#/$defs/P"}
    assert valid({"a": 2}, ref, root)
    assert not valid({"a": 0}, ref, root)
    assert not valid({"a": True}, ref, root)  # a bool is not an integer
    assert not valid({"a": 2, "b": 1}, ref, root)
    assert not valid({}, ref, root)
    pair = {"type": "array", "prefixItems": [{"type": "integer"}] * 2, "minItems": 2, "maxItems": 2}
    assert valid([1, 2], pair, root) and not valid([1, 2, 3], pair, root)
    assert valid("ab", {"pattern": "^a"}, root) and not valid("ba", {"pattern": "^a"}, root)
    assert valid(None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}, root)
    not_zero = {"type": "integer", "if": {"const": 0}, "then": {"enum": []}}
    assert valid(-1, not_zero, root) and not valid(0, not_zero, root)
    assert not valid(True, {"enum": [1]}, root) and valid(1.0, {"const": 1}, root)
    names = {"propertyNames": {"if": {"not": {"enum": ["name"]}}, "then": {"enum": ["ReLU"]}}}
    assert valid({"ReLU": None, "name": "r"}, names, root) and not valid({"Relu": 1}, names, root)


# -- the committed file ------------------------------------------------------------------------
def test_the_committed_schema_is_up_to_date():
    result = runner.invoke(app, ["schema", "--check", "-o", str(COMMITTED)])
    assert result.exit_code == 0, result.stderr
    assert "up to date" in result.stderr
    assert COMMITTED.read_text() == schema_text()


def test_check_fails_on_a_stale_or_missing_copy(tmp_path):
    stale = tmp_path / "netspec.schema.json"
    stale.write_text(schema_text().replace("Mirrors torch.nn.Conv2d", "Mirrors nothing", 1))
    result = runner.invoke(app, ["schema", "--check", "-o", str(stale)])
    assert result.exit_code == 1
    assert "stale" in result.stderr and f"netspec schema -o {stale}" in result.stderr
    missing = runner.invoke(app, ["schema", "--check", "-o", str(tmp_path / "none.json")])
    assert missing.exit_code == 1


def test_schema_writes_the_file_or_stdout(tmp_path):
    target = tmp_path / "deep" / "schema.json"
    result = runner.invoke(app, ["schema", "-o", str(target)])
    assert result.exit_code == 0
    assert target.read_text() == schema_text()
    printed = runner.invoke(app, ["schema", "-o", "-"])
    assert json.loads(printed.stdout) == spec_schema()


# -- structure: descriptions for editors ---------------------------------------------------------
SCHEMA = json.loads(schema_text())
DEFS = SCHEMA["$defs"]
ENTRIES = [*LAYERS, *LOSSES, *OPTIMIZERS, *SCHEDULES]


@pytest.mark.parametrize("cls", ENTRIES, ids=lambda c: c.__name__)
def test_every_entry_has_described_definitions(cls):
    model = DEFS[cls.__name__]
    args = DEFS[f"{cls.__name__}Args"]
    assert model["description"].strip()
    assert model["required"][0] == "type"
    assert "type" not in args["properties"]
    for name, prop in args["properties"].items():
        assert prop.get("description", "").strip(), f"{cls.__name__}.{name} has no description"
    assert model["additionalProperties"] is False and args["additionalProperties"] is False


def test_argument_free_layers_may_be_written_bare():
    entry = DEFS["Layer"]
    checks = {c["if"]["const"]: c["then"] for c in entry["then"]["then"]["allOf"]}
    bare = {name for name, then in checks.items() if "enum" not in then}
    expected = {
        cls.model_fields["type"].default
        for cls in LAYERS
        if not any(f.is_required() for f in cls.model_fields.values())
    }
    assert bare == expected
    assert "Conv2d" not in bare and "ReLU" in bare
    assert checks["ReLU"]["description"].startswith("y = max(0, x)")  # the hover on `- ReLU`
    assert checks["Conv2d"]["errorMessage"].startswith("Conv2d needs arguments: write Conv2d: {")


@pytest.mark.parametrize("what", ["Layer", "Loss", "Optimizer", "Schedule"])
def test_an_unknown_name_is_one_message_listing_every_known_one(what):
    entry = DEFS[what]
    unknown = entry["then"]["else"]
    assert unknown["errorMessage"].startswith(f"Unknown {what.lower()}. Known ")
    for name in unknown["enum"]:
        assert name in unknown["errorMessage"]
    object_forms = entry["else"]["then"]
    assert object_forms["then"]["properties"]["type"]["else"] == unknown  # {type: Nope}
    assert object_forms["else"]["propertyNames"]["then"] == unknown  # Nope: {...}


# Where a layer may be written: the top level without and with blocks, and a block's layers.
LAYER_PLACES = {
    "Layer": "input: {shape: [1, 8, 8]}\nlayers:\n  - {}\n",
    "LayerOrBlock": "input: {shape: [1, 8, 8]}\nblocks: {B: {layers: [ReLU]}}\nlayers:\n  - {}\n",
    "BlockLayer": "input: {shape: [1, 8, 8]}\nblocks: {B: {layers: [{}]}}\nlayers: [B]\n",
}


@pytest.mark.parametrize("family", list(LAYER_PLACES))
def test_completion_offers_valid_text_for_every_layer(family):
    snippets = {s["label"]: s for s in DEFS[family]["defaultSnippets"]}
    assert set(snippets) == {cls.model_fields["type"].default for cls in LAYERS} | {"Sequential"}
    assert snippets["ReLU"]["body"] == "ReLU"  # not `ReLU: ReLU`
    text = snippets["Linear"]["bodyText"]
    assert text == "Linear: {out_features: ${1}}"  # in_features is inferred (design.md §1.1)
    assert snippets["Sequential"]["bodyText"] == "Sequential: {layers: [${1:ReLU}]}"
    for snippet in snippets.values():
        text = snippet.get("bodyText", snippet.get("body"))
        filled = re.sub(r"\$\{\d+(?::([^}]*))?\}", lambda m: m.group(1) or "1", text)
        spec = LAYER_PLACES[family].replace("{}", filled)
        assert valid(read_yaml(spec), SCHEMA, SCHEMA), filled


def _nodes(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def test_descriptions_are_whole_paragraphs_in_markdown_with_the_default():
    described = [n for n in _nodes(SCHEMA) if isinstance(n.get("description"), str)]
    assert len(described) > 200
    for node in described:
        assert not isinstance(node.get("title"), str)  # no "Kernel Size" to repeat
        text = node["description"]
        assert all(line.strip() for line in text.split("\n\n")), text  # no stray breaks
        assert "\n" not in text.replace("\n\n", ""), text  # sentences are not split
        assert "\\`" not in node["markdownDescription"]
    stride = DEFS["Conv2dArgs"]["properties"]["stride"]
    assert stride["markdownDescription"].endswith("\n\nDefault: `1`.")
    momentum = DEFS["BatchNorm2dArgs"]["properties"]["momentum"]
    assert momentum["markdownDescription"].endswith("Default: `0.1`.")


def test_bounds_reach_every_number_of_a_field():
    kernel = DEFS["Conv2dArgs"]["properties"]["kernel_size"]
    assert kernel["type"] == ["integer", "array"] and kernel["minimum"] == 1
    assert [item["minimum"] for item in kernel["prefixItems"]] == [1, 1]
    betas = DEFS["AdamArgs"]["properties"]["betas"]
    assert [(b["minimum"], b["exclusiveMaximum"]) for b in betas["prefixItems"]] == [(0, 1)] * 2
    assert DEFS["TrainSpec"]["properties"]["seed"]["minimum"] == 0
    assert "null" not in str(SCHEMA["properties"]["loss"])


# -- the schema accepts what netspec accepts -----------------------------------------------------
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml")) + sorted(
    (ROOT / "specs" / "seed").glob("*.yaml")
)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_spec_validates_against_the_schema(path):
    assert valid(read_yaml(path.read_text()), SCHEMA, SCHEMA)


@pytest.mark.parametrize("text", list(NESTED.values()), ids=list(NESTED))
def test_every_nested_spec_validates_against_the_schema(text):
    netspec.loads(text)
    assert valid(read_yaml(text), SCHEMA, SCHEMA)


def test_a_spec_without_blocks_reads_its_layers_strictly_and_one_with_blocks_not():
    assert SCHEMA["else"]["properties"]["layers"]["items"] == {"$ref": "#/$defs/Layer"}
    assert SCHEMA["then"]["properties"]["layers"]["items"] == {"$ref": "#/$defs/LayerOrBlock"}
    block = DEFS["Block"]["properties"]["layers"]["items"]
    assert block == {"$ref": "#/$defs/BlockLayer"}
    sequential = DEFS["Sequential"]["properties"]["layers"]["items"]
    assert sequential == {"$ref": "#/$defs/Layer"}
    unknown = DEFS["Layer"]["then"]["else"]
    assert unknown["enum"][-1] == "Sequential" and "Sequential." in unknown["errorMessage"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [("$k", True), ("$", False), ("k", False), ([3, "$k"], True), (["$k", "$k"], True), (0, False)],
)
def test_a_param_may_stand_for_a_value_in_a_block_only(value, ok):
    layer = {"MaxPool2d": {"kernel_size": value}}
    in_block = {
        "input": {"shape": [3, 8, 8]},
        "blocks": {"B": {"params": ["k"], "layers": [layer]}},
    }
    assert valid({**in_block, "layers": ["B"]}, SCHEMA, SCHEMA) is ok
    top = {"input": {"shape": [3, 8, 8]}, "layers": [layer]}
    assert valid(top, SCHEMA, SCHEMA) is (ok and "$" not in str(value))
    with_blocks = {**top, "blocks": {"B": {"layers": ["ReLU"]}}}
    assert valid(with_blocks, SCHEMA, SCHEMA) is (ok and "$" not in str(value))


@pytest.mark.parametrize("text", list(MISTAKES.values()), ids=list(MISTAKES))
def test_the_schema_refuses_every_mistake_netspec_refuses(text):
    with pytest.raises(netspec.SpecError):
        netspec.loads(text)
    assert not valid(read_yaml(text), SCHEMA, SCHEMA)


@pytest.mark.parametrize("case", list(BEYOND_A_SCHEMA.values()), ids=list(BEYOND_A_SCHEMA))
def test_mistakes_beyond_a_schema_are_still_refused_by_netspec(case):
    text, _reason = case
    with pytest.raises(netspec.SpecError):
        netspec.loads(text)
    assert valid(read_yaml(text), SCHEMA, SCHEMA)  # else it belongs in MISTAKES


FORMS = [
    "layers: [ReLU, Flatten]",
    "layers:\n  - ReLU:\n  - Flatten: {start_dim: 1}",
    "layers:\n  - {type: ReLU, inplace: true}\n  - {type: Flatten, name: flat}",
    "layers:\n  - {ReLU: {inplace: false}, name: r, inputs: [input]}\n  - Flatten",
    "layers: [ReLU]\nloss: MSELoss\ntrain: {optimizer: SGD, lr_schedule: {StepLR: {step_size: 1}}}",
    "layers: [ReLU]\nloss: {type: L1Loss}\ntrain: {optimizer: {type: AdamW, betas: [0.8, 0.9]}}",
]


@pytest.mark.parametrize("tail", FORMS)
def test_the_schema_accepts_all_three_forms(tail):
    document = read_yaml("input: {shape: [3, 4, 4]}\n" + tail)
    netspec.loads(yaml.safe_dump(document))  # netspec accepts it ...
    assert valid(document, SCHEMA, SCHEMA)  # ... and so does the schema


BAD = [
    "layers: [Nope]",
    "layers: [Conv2d]",  # needs arguments
    "layers: [{Conv2d: {in_channels: 3, out_channels: 4}}]",  # kernel_size missing
    "layers: [{Conv2d: {in_channels: true, out_channels: 4, kernel_size: 3}}]",
    "layers: [{ReLU: {inplace: true}, extra: 1}]",
    "layers: [{type: ReLU, inplce: true}]",
    "layers: [{Conv2d: {in_channels: 3, out_channels: 4, kernel_size: [1, 2, 3]}}]",
    "layers: [ReLU]\nloss: Nope",
    "layers: []",
]


@pytest.mark.parametrize("tail", BAD)
def test_the_schema_refuses_what_netspec_refuses(tail):
    text = "input: {shape: [3, 4, 4]}\n" + tail
    with pytest.raises(netspec.SpecError):
        netspec.loads(text)
    assert not valid(read_yaml(text), SCHEMA, SCHEMA)


def test_the_schema_accepts_int_layer_references():
    text = (
        "input: {shape: [3]}\nlayers:\n  - ReLU\n  - {type: Add, inputs: [input, 0]}\n"
        "outputs: [1]\n"
    )
    netspec.loads(text)
    assert valid(read_yaml(text), SCHEMA, SCHEMA)


# -- ... and never refuses what netspec accepts (random specs) ----------------------------------
NUMBERS = st.sampled_from([-2, -1, 0, 1, 2, 3, 0.0, 0.5, 1.0, 1.5, -0.5, 1e-3, [0, 1], [1, 0]])


@needs_torch
@SETTINGS
@given(chain=chains(), data=st.data())
def test_random_valid_chains_validate_against_the_schema(chain, data):
    shape, layers = chain
    forms = [data.draw(st.integers(0, 2)) for _ in layers]
    text = _spec_text(shape, layers, forms)
    netspec.loads(text)
    assert valid(read_yaml(text), SCHEMA, SCHEMA), text


@settings(SETTINGS, max_examples=300)
@given(which=st.integers(0, len(VALID) - 1), data=st.data())
def test_a_number_changed_in_a_valid_spec_is_refused_by_the_schema_only_if_netspec_does(
    which, data
):
    tree = copy.deepcopy(VALID[which])
    numbers = [p for p in _paths(tree) if isinstance(_at(tree, p), (int, float, list))]
    path = data.draw(st.sampled_from(numbers))
    tree = _mutate(tree, path, "replace", data.draw(NUMBERS))
    try:
        netspec.loads(yaml.safe_dump(tree))
    except netspec.SpecError:
        return
    assert valid(tree, SCHEMA, SCHEMA), (path, _at(tree, path))


def _at(tree, path):
    for part in path:
        tree = tree[part]
    return tree
