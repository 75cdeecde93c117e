"""Reading YAML: syntax errors, tabs, empty and non-mapping documents, safe loading, alias
bombs, duplicate keys and merge keys, all as located diagnostics (never a traceback)."""

from __future__ import annotations

import time

import pytest

import netspec
from netspec.diagnostics import Diagnostic
from netspec.source import MAX_NODES, MAX_TEXT_BYTES, parse

GOOD = "input: {shape: [3, 8, 8]}\nlayers:\n  - ReLU\n"


def diagnostics(text: str) -> list[Diagnostic]:
    with pytest.raises(netspec.SpecError) as info:
        netspec.loads(text, source="m.yaml")
    return info.value.diagnostics


def only(text: str) -> Diagnostic:
    (diagnostic,) = diagnostics(text)
    return diagnostic


def head(d: Diagnostic) -> str:
    """The first line of the rendered diagnostic, up to the message."""
    return f"{d.file}:{d.line}:{d.col}: {d.severity}[{d.code}]"


# -- syntax --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("input: {shape: [3]}\nlayers: [ReLU\n", "m.yaml:3:1", "expected ',' or ']'"),
        ("input: {shape: [3]}\nname: 'open\n", "m.yaml:3:1", "quoted scalar"),
        ("input: {shape: [3]}\n  layers: [ReLU]\n", "m.yaml:2:3", "expected <block end>"),
        ("input: {shape: [3]}\nlayers: [ReLU]\nname: *nowhere\n", "m.yaml:3:7", "undefined alias"),
        (GOOD + "---\nname: second\n", "m.yaml:4:1", "single document"),
    ],
)
def test_yaml_syntax_errors_are_located(text, where, words):
    d = only(text)
    assert head(d) == f"{where}: error[yaml-syntax]"
    assert words in d.message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("input: {shape: [3, 8, 8]}\nlayers:\n\t- ReLU\n", "m.yaml:3:1"),
        ("input:\n\tshape: [3]\nlayers: [ReLU]\n", "m.yaml:2:1"),
        ("input: {shape: [3]}\nlayers:\n  - ReLU\n  -\tTanh\n", "m.yaml:4:4"),
    ],
)
def test_tabs_in_indentation_say_so(text, where):
    d = only(text)
    assert head(d) == f"{where}: error[yaml-syntax]"
    assert d.message == "tab character in indentation"
    assert "spaces" in d.hint


def test_tabs_outside_indentation_are_fine():
    spec = netspec.loads("input: {shape: [3]}  # a\ttab in a comment\nlayers: [ReLU]\n")
    assert spec.input.shape == [3]


@pytest.mark.parametrize(
    "text", ["", "   \n\n", "# only a comment\n# and another\n", "---\n", "---\n...\n"]
)
def test_an_empty_spec_is_one_error(text):
    d = only(text)
    assert head(d) == "m.yaml:1:1: error[empty]"
    assert d.message == "spec is empty"
    assert "layers:" in d.hint


@pytest.mark.parametrize("text", ["- ReLU\n- Tanh\n", "42\n", "just some words\n", "null\n"])
def test_the_root_must_be_a_mapping(text):
    diagnostic = only(text)
    assert head(diagnostic) == "m.yaml:1:1: error[not-a-mapping]"
    assert "`input:` and `layers:`" in diagnostic.message


def test_a_byte_order_mark_is_accepted():
    assert netspec.loads("\ufeff" + GOOD).input.shape == [3, 8, 8]


# -- safe loading -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ('!!python/object/apply:os.mkdir ["{dir}"]', "python/object/apply:os.mkdir"),
        ("!!python/name:os.system", "python/name:os.system"),
        ('!!python/object/new:os.mkdir ["{dir}"]', "python/object/new:os.mkdir"),
        ("!!python/tuple [1, 2]", "python/tuple"),
        ("!custom ReLU", "!custom"),
        ("!!set {a, b}", "set"),
    ],
)
def test_python_and_unknown_tags_are_refused_without_running_anything(tmp_path, value, tag):
    target = tmp_path / "created"
    entry = value.replace("{dir}", str(target))
    text = f"input: {{shape: [3]}}\nlayers:\n  - {entry}\n"
    d = only(text)
    assert head(d) == "m.yaml:3:5: error[yaml-tag]"
    assert tag in d.message
    assert "read safely" in d.hint
    assert not target.exists()


def test_an_alias_bomb_is_refused_quickly():
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    start = time.perf_counter()
    d = only("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 2.0
    assert d.code == "too-large"
    assert f"{MAX_NODES:,}" in d.message and "aliases" in d.message


def test_modest_alias_use_is_fine():
    text = (
        "conv: &conv {in_channels: 3, out_channels: 3, kernel_size: 3, padding: 1}\n"
        "input: {shape: [3, 8, 8]}\n"
        "layers:\n  - Conv2d: *conv\n  - Conv2d: *conv\n"
    )
    # The anchor's holder is not a spec key: that, and only that, is reported.
    (d,) = diagnostics(text)
    assert head(d) == "m.yaml:1:1: error[unknown-arg]"
    assert "'conv'" in d.message


def test_a_huge_text_is_refused_before_parsing():
    d = only("#" + "x" * MAX_TEXT_BYTES + "\n")
    assert head(d) == "m.yaml:1:1: error[too-large]"


def test_absurd_nesting_is_an_error_not_a_crash():
    d = only("input: " + "[" * 3000 + "]" * 3000 + "\nlayers: [ReLU]\n")
    assert d.code == "too-deep"


def test_a_mapping_key_must_be_plain():
    d = only("input: {shape: [3]}\nlayers: [{? [a, b] : 1}]\n")
    assert head(d) == "m.yaml:2:13: error[yaml-key]"  # at the key `[a, b]`


# -- duplicates and merge keys ----------------------------------------------------------------
def test_duplicate_keys_are_errors_at_the_second_key():
    text = "input: {shape: [3, 8, 8]}\nlayers:\n  - ReLU\ninput: {shape: [1]}\n"
    d = only(text)
    assert head(d) == "m.yaml:4:1: error[duplicate-key]"
    assert d.message == "duplicate key 'input'"
    assert "keeps only the last" in d.hint


def test_duplicate_arguments_of_a_layer_are_reported_with_the_rest():
    text = (
        "input: {shape: [3, 8, 8]}\n"
        "layers:\n"
        "  - Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, kernel_size: 5}\n"
        "  - Nope\n"
    )
    found = [head(d) for d in diagnostics(text)]
    assert found == ["m.yaml:3:63: error[duplicate-key]", "m.yaml:4:5: error[unknown-layer]"]


def test_merge_keys_are_resolved():
    merged = netspec.loads(
        "input: {shape: [3, 8, 8]}\n"
        "layers:\n"
        "  - {type: Conv2d, name: a, <<: {in_channels: 3, out_channels: 3, kernel_size: 3}}\n"
    )
    written = netspec.loads(
        "input: {shape: [3, 8, 8]}\n"
        "layers:\n  - {type: Conv2d, name: a, in_channels: 3, out_channels: 3, kernel_size: 3}\n"
    )
    assert merged.model_dump() == written.model_dump()


def test_overriding_a_merged_key_is_not_a_duplicate():
    spec = netspec.loads(
        "input: {shape: [3, 8, 8]}\n"
        "layers:\n"
        "  - {type: Conv2d, <<: {in_channels: 3, out_channels: 3, kernel_size: 3}, "
        "kernel_size: 5}\n"
    )
    assert spec.layers[0].kernel_size == 5


# -- positions ---------------------------------------------------------------------------------
def test_parse_records_where_every_key_and_item_is():
    source = parse(
        "name: m\ninput:\n  shape: [3, 8, 8]\nlayers:\n  - ReLU\n  - Conv2d: {kernel_size: 3}\n"
    )
    assert source.data["layers"][1] == {"Conv2d": {"kernel_size": 3}}
    assert source.position(("name",)) == (1, 1)
    assert source.position(("input", "shape")) == (3, 3)
    assert source.position(("input", "shape", 2)) == (3, 17)
    assert source.position(("layers", 0)) == (5, 5)
    assert source.position(("layers", 1, "Conv2d", "kernel_size")) == (6, 14)
    # A path that is not in the text falls back to its nearest written ancestor.
    assert source.position(("layers", 1, "Conv2d", "stride")) == (6, 5)
    assert source.position(("nowhere", 3)) == (1, 1)


def test_the_file_name_is_in_every_diagnostic(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("input: {shape: [3]}\nlayers: [Relu]\n")
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(path)
    (d,) = info.value.diagnostics
    assert str(d).startswith(f"{path}:2:10: error[unknown-layer]: unknown layer 'Relu'")
    assert "did you mean 'ReLU'?" in str(d)


def test_unreadable_files_are_diagnostics(tmp_path):
    missing = tmp_path / "missing.yaml"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    for path, words in ((missing, "No such file"), (binary, "utf-8"), (tmp_path, "directory")):
        with pytest.raises(netspec.SpecError) as info:
            netspec.load(path)
        (d,) = info.value.diagnostics
        assert head(d) == f"{path}:1:1: error[io]"
        assert "cannot read spec" in d.message and words in d.message


def test_the_caret_excerpt_points_at_the_column():
    text = "input: {shape: [3]}\nlayers: [Relu]\n"
    (d,) = diagnostics(text)
    lines = d.format(text).splitlines()
    assert lines[1] == "   2 | layers: [Relu]"
    assert lines[2].index("^") == lines[1].index("Relu")
    assert lines[3] == "  hint: did you mean 'ReLU'?"
