"""Names, seeds and `loss: null`: values the editor's schema refuses are refused by netspec
too, each as one located diagnostic in plain words (no pydantic regex, no NumPy traceback)."""

from __future__ import annotations

import re

import pytest

import netspec
from netspec.frontend.json_schema import spec_schema
from netspec.types import NAME_PATTERN, name_problem
from tests.test_spec import HEAD, head, only


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("", "write a name such as conv1, or leave `name` out (default: the index)"),
        (" ", "write a name such as conv1, or leave `name` out (default: the index)"),
        ("\u201cconv\u201d", "typographic quotes are part of the name here: write plain ' or \""),
        ("conv 1", "' ' cannot appear in a name: use '_' instead"),
        ("conv-1", "'-' cannot appear in a name: use '_' instead"),
    ],
)
def test_a_layer_name_outside_the_rule_is_a_located_error(name, hint):
    d = only(HEAD + f"  - {{type: ReLU, name: {name!r}}}\n  - {{type: Tanh, inputs: [{name!r}]}}\n")
    assert head(d) == "m.yaml:3:18: error[name]"
    assert d.message == f"name: expected letters, digits and '_', received {name!r}"
    assert d.hint == hint


def test_a_dotted_name_is_a_module_path_and_an_empty_segment_is_refused_once():
    spec = netspec.loads(HEAD + "  - {type: ReLU, name: a.b}\n  - {type: Tanh, name: t}\n")
    assert [layer.name for layer in spec.layers] == ["a.b", "t"]
    d = only(HEAD + "  - {type: ReLU, name: a..b}\n  - {type: Tanh, name: t}\n")
    assert d.message == "name: dots join the segments of a module path, received 'a..b'"


def test_the_schema_and_netspec_share_one_name_rule():
    layer_name = spec_schema()["$defs"]["ReLU"]["properties"]["name"]
    assert layer_name["pattern"] == NAME_PATTERN
    for name in ["conv1", "_", "A9", "", " ", "a.b", "a-b", "\u201ca\u201d", "é"]:
        assert (name_problem(name) is None) == bool(re.search(NAME_PATTERN, name))


def test_a_spec_name_error_reads_in_plain_words():
    d = only("name: my model\n" + HEAD + "  - ReLU\n")
    assert head(d) == "m.yaml:1:1: error[invalid-arg]"
    assert d.message == "name: expected letters, digits, '_' and '-', received 'my model'"
    assert "pattern" not in d.message and "^" not in d.message
    assert d.hint == "the name labels reports and runs/<name>: write e.g. my_model or lenet-5"
    netspec.loads("name: lenet-5_v2\n" + HEAD + "  - ReLU\n")


def test_a_negative_seed_is_refused_where_it_is_written():
    d = only(HEAD + "  - ReLU\ntrain: {seed: -1}\n")
    assert head(d) == "m.yaml:4:9: error[invalid-arg]"
    assert d.message == "seed must be greater than or equal to 0, received -1"
    assert netspec.loads(HEAD + "  - ReLU\ntrain: {seed: 4294967296}\n").train.seed == 2**32


def test_loss_null_is_an_error_with_a_hint():
    d = only(HEAD + "  - ReLU\nloss: null\n")
    assert head(d) == "m.yaml:4:1: error[bad-loss]"
    assert d.message == "expected a loss, received null"
    assert d.hint.startswith("leave `loss:` out for a spec without a loss")
    assert netspec.loads(HEAD + "  - ReLU\n").loss is None
