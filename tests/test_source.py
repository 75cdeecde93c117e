"""Reading YAML: the 1.2 core schema, syntax errors, tabs, empty and non-mapping documents, safe loading, alias
bombs, duplicate keys and merge keys, all as located diagnostics (never a traceback)."""

from __future__ import annotations

import time

import pytest

import netspec
from netspec.errors import Diagnostic
from netspec.frontend.source import MAX_NODES, MAX_TEXT_BYTES, parse

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


# -- YAML 1.2, core schema: what the editor's language server reads ------------------------
@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("1e-3", 1e-3),
        ("1e-8", 1e-8),
        ("-1E+2", -100.0),
        ("3.0e+2", 300.0),
        (".5", 0.5),
        ("1.", 1.0),
        ("010", 10),  # decimal, leading zero and all (YAML 1.1 read 8)
        ("0o10", 8),
        ("0x1F", 31),
        ("-7", -7),
        ("+3", 3),
        (".inf", float("inf")),
        ("-.Inf", float("-inf")),
        ("true", True),
        ("FALSE", False),
        ("null", None),
        ("~", None),
        ("", None),
        ("yes", "yes"),  # YAML 1.1 booleans are strings
        ("on", "on"),
        ("No", "No"),
        ("1_000", "1_000"),
        ("2024-01-01", "2024-01-01"),  # no timestamps in the core schema
        ("0b11", "0b11"),
        ("1:30", "1:30"),  # no sexagesimal numbers
        ("!!int '012'", 12),
        ("!!float '1'", 1.0),
        ("!!str 10", "10"),
    ],
)
def test_plain_scalars_follow_the_yaml_1_2_core_schema(written, value):
    assert parse(f"v: {written}\n").data == {"v": value}


def test_nan_is_read_as_a_float():
    (v,) = parse("v: .NaN\n").data.values()
    assert v != v


def test_values_the_editor_reads_as_numbers_are_numbers_in_a_spec():
    spec = netspec.loads(
        "input: {shape: [3, 8, 8]}\n"
        "layers:\n"
        "  - BatchNorm2d: {num_features: 3, eps: 1e-5}\n"
        "  - Conv2d: {in_channels: 3, out_channels: 010, kernel_size: 3}\n"
        "train:\n"
        "  optimizer: {Adam: {lr: 1e-3, eps: 1e-8}}\n"
    )
    assert spec.layers[0].eps == 1e-5 and spec.layers[1].out_channels == 10
    assert spec.train.optimizer.lr == 1e-3 and spec.train.optimizer.eps == 1e-8


def test_a_yaml_1_1_boolean_is_a_type_error_not_true():
    d = only(
        "input: {shape: [3, 8, 8]}\nlayers:\n  - MaxPool2d: {kernel_size: 2, ceil_mode: yes}\n"
    )
    assert head(d) == "m.yaml:3:33: error[type]"
    assert "'yes'" in d.message


def test_a_value_its_explicit_tag_cannot_read_is_located():
    d = only("input: {shape: [3]}\nlayers:\n  - !!int yes\n")
    assert head(d) == "m.yaml:3:5: error[yaml-value]"
    assert d.message == "'yes' is not a valid int" and "tag" in d.hint


# -- syntax --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("input: {shape: [3]}\nlayers: [ReLU\n", "m.yaml:3:1", "expected ',' or ']'"),
        ("input: {shape: [3]}\nname: 'open\n", "m.yaml:3:1", "quoted scalar"),
        ("input: {shape: [3]}\n  layers: [ReLU]\n", "m.yaml:2:3", "bad indentation"),
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


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (
            "input:\n  shape: [3]\n dtype: float32\nlayers: [ReLU]\n",
            "m.yaml:3:2",
            "a key at column 2 does not fit the mapping that starts at line 1, column 1",
        ),
        (
            "input: {shape: [3]}\nlayers:\n  - ReLU\n - Tanh\n",
            "m.yaml:4:2",
            "a list item at column 2 does not fit the mapping that starts at line 1, column 1",
        ),
        (
            "input: {shape: [3]}\nlayers:\n  - Conv2d: {kernel_size: 3}\n  stride: 2\n",
            "m.yaml:4:3",
            "a key at column 3 does not fit the list that starts at line 3, column 3",
        ),
    ],
)
def test_indentation_mistakes_are_explained_in_columns(text, where, words):
    d = only(text)
    assert head(d) == f"{where}: error[yaml-syntax]"
    assert d.message == f"bad indentation: {words}"
    assert "same column" in d.hint and "<block" not in d.message


def test_a_colon_inside_a_plain_value_is_explained():
    d = only("input: {shape: [3]}\nname: a: b\nlayers: [ReLU]\n")
    assert head(d) == "m.yaml:2:8: error[yaml-syntax]"
    assert d.message == "unexpected ':' inside a plain value" and "quote" in d.hint


@pytest.mark.parametrize(("char", "col"), [("\x00", 8), ("\x1b", 8), ("\x07", 8)])
def test_control_characters_are_located_errors(char, col):
    d = only(f"input: {{shape: [3]}}\nlayers: [ReLU]\nname: a{char}b\n")
    assert head(d) == f"m.yaml:3:{col}: error[yaml-char]"
    assert d.message == f"control character U+{ord(char):04X} is not allowed in YAML"


def test_an_integer_of_thousands_of_digits_is_one_short_error():
    d = only("input: {shape: [3]}\nlayers: [ReLU]\nname: " + "9" * 5000 + "\n")
    assert head(d) == "m.yaml:3:7: error[yaml-value]"
    assert "(5,000 characters)" in d.message and "more than 100 digits" in d.message
    assert len(d.message) < 100


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


def test_a_duplicate_brought_in_by_an_alias_is_located_at_the_alias():
    d = only(
        "input: {shape: [3, 8, 8]}\nname: &k kernel_size\nlayers:\n"
        "  - MaxPool2d: {kernel_size: 2, *k : 3}\n"
    )
    assert head(d) == "m.yaml:4:33: error[duplicate-key]"


def test_a_duplicate_inside_an_aliased_mapping_is_reported_once():
    text = "name: n\ninput: &i {shape: [3], shape: [4]}\nlayers:\n  - {type: ReLU, inputs: *i}\n"
    duplicates = [d for d in diagnostics(text) if d.code == "duplicate-key"]
    assert [head(d) for d in duplicates] == ["m.yaml:2:24: error[duplicate-key]"]


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


def test_an_endless_file_is_refused_after_the_size_limit_not_read_to_the_end():
    import resource

    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(netspec.SpecError) as info:
        netspec.load("/dev/zero")
    (d,) = info.value.diagnostics
    assert head(d) == "/dev/zero:1:1: error[too-large]"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start
    assert grown_kib < 50_000  # read at most the 2 MB limit, not gigabytes
