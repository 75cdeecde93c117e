"""The editor knows what netspec knows: the real yaml-language-server, over stdio, on the
example specs (no diagnostics) and on every mistake in tests/spec_mistakes.py (netspec
refuses it and the server flags it), plus hovers and completions a new user sees first.

The server is NETSPEC_YAML_LANGUAGE_SERVER (its executable or its bin script) or
`yaml-language-server` on PATH, e.g. after
`npm install --prefix /opt/yls yaml-language-server@1.25.0` with
NETSPEC_YAML_LANGUAGE_SERVER=/opt/yls/node_modules/.bin/yaml-language-server.
Without one these tests skip. Every answer is awaited at most yaml_server.TIMEOUT_S.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import netspec
from netspec.layers import LAYERS
from tests.nested_specs import NESTED
from tests.spec_mistakes import BEYOND_A_SCHEMA, MISTAKES
from tests.yaml_server import ENV_VAR, YamlServer, server_command

ROOT = Path(__file__).resolve().parent.parent
MODELINE = "# yaml-language-server: $schema=../schemas/netspec.schema.json\n"
EXAMPLES = sorted((ROOT / "specs").glob("*.yaml")) + sorted(
    (ROOT / "specs" / "seed").glob("*.yaml")
)
LAYER_NAMES = [cls.model_fields["type"].default for cls in LAYERS]
ENTRY_NAMES = [*LAYER_NAMES, "Sequential"]  # what a layer entry may name without blocks


@pytest.fixture(scope="module")
def server():
    command = server_command()
    if command is None:
        pytest.skip(f"no yaml-language-server: set {ENV_VAR} or put it on PATH")
    running = YamlServer(command, ROOT)
    try:
        yield running
    finally:
        running.shutdown()


_OPENED = itertools.count()


def _uri(name: str) -> str:
    # Documents live (unsaved) next to the examples, so that the relative modeline resolves;
    # each open gets a new one, so a late report on a closed document cannot be mistaken.
    return (ROOT / "specs" / f"_editor_{name}_{next(_OPENED)}.yaml").as_uri()


def _problems(server: YamlServer, name: str, text: str) -> list[dict]:
    uri = _uri(name)
    try:
        return server.open(uri, MODELINE + text)
    finally:
        server.close(uri)


def _refused(text: str) -> bool:
    try:
        netspec.loads(text)
    except netspec.SpecError:
        return True
    return False


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_spec_is_clean_in_the_editor(server, path):
    assert path.read_text().startswith("# yaml-language-server: $schema=")
    assert server.open(path.as_uri(), path.read_text()) == []
    server.close(path.as_uri())


@pytest.mark.parametrize("name", list(NESTED))
def test_every_nested_spec_is_clean_in_the_editor(server, name):
    assert _problems(server, "nested", NESTED[name]) == []


def _problems_of_all(server: YamlServer, texts: dict[str, str]) -> dict[str, list[dict]]:
    uris = {name: _uri("mistake") for name in texts}
    try:
        found = server.open_all({uris[name]: MODELINE + text for name, text in texts.items()})
    finally:
        for uri in uris.values():
            server.close(uri)
    return {name: found[uri] for name, uri in uris.items()}


def test_the_server_and_netspec_agree_on_every_mistake(server):
    flagged = _problems_of_all(server, MISTAKES)
    disagree = []
    for name, text in MISTAKES.items():
        refused = _refused(text)
        if not (refused and flagged[name]):
            disagree.append(f"{name}: netspec refuses={refused}, editor={flagged[name]}")
    agree = len(MISTAKES) - len(disagree)
    print(f"the server and netspec agree on {agree} of {len(MISTAKES)} mistakes")
    assert disagree == []


def test_mistakes_beyond_a_schema_pass_the_editor_but_not_netspec(server):
    # Kept honest: one the server learns to flag belongs in MISTAKES.
    flagged = _problems_of_all(server, {name: text for name, (text, _) in BEYOND_A_SCHEMA.items()})
    for name, (text, _reason) in BEYOND_A_SCHEMA.items():
        assert _refused(text), name
        assert flagged[name] == [], name


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("  - Conv2D: {in_channels: 3, out_channels: 4, kernel_size: 3}", ENTRY_NAMES),
        ("  - {type: Relu}", ENTRY_NAMES),
        ("  - Relu", ENTRY_NAMES),
        ("  - {type: Sequential, layers: [Relu]}", ENTRY_NAMES),
    ],
)
def test_a_misspelt_layer_is_told_every_layer_type(server, line, names):
    (problem,) = _problems(server, "misspelt", "input: {shape: [3, 8, 8]}\nlayers:\n" + line)
    assert problem["message"].startswith("Unknown layer. Known layers: ")
    assert all(name in problem["message"] for name in names)


def test_a_misspelt_schedule_is_told_every_schedule(server):
    text = "input: {shape: [4]}\nlayers: [ReLU]\ntrain: {lr_schedule: {StepLr: {step_size: 1}}}\n"
    (problem,) = _problems(server, "schedule", text)
    assert problem["message"] == (
        "Unknown schedule. Known schedules: StepLR, MultiStepLR, ExponentialLR, "
        "CosineAnnealingLR, ReduceLROnPlateau."
    )


HOVERED = MODELINE + (
    "input: {shape: [3, 8, 8]}\n"
    "layers:\n"
    "  - ReLU\n"
    "  - Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3, stride: 1}\n"
    "  - {type: Tanh, name: t}\n"
)


@pytest.mark.parametrize(
    ("line", "word", "starts", "contains"),
    [
        (3, "ReLU", "y = max(0, x)", "Mirrors torch.nn.ReLU."),
        (4, "Conv2d", "2-D convolution", "`kernel_size`"),
        (4, "kernel_size", "Size of the convolving kernel: an int or [height, width].", ""),
        (4, "stride", "Stride of the convolution", "\n\nDefault: `1`."),
        (5, "Tanh", "y = tanh(x).", ""),
        (5, "name", "Name in the graph", ""),
    ],
)
def test_hovers_describe_what_is_under_the_cursor(server, line, word, starts, contains):
    uri = _uri(f"hover_{word}")
    server.open(uri, HOVERED)
    try:
        text = server.hover(uri, line, HOVERED.splitlines()[line].index(word) + 1)
    finally:
        server.close(uri)
    assert text.startswith(starts) and contains in text, text
    assert "||" not in text and "####" not in text  # no repeated generated titles
    assert "\\`" not in text  # backticks render as code


def _completions(server, name: str, text: str, line: int, col: int) -> dict[str, str]:
    """What the server would insert at (line, col) of `text`, by completion label."""
    uri = _uri(name)
    server.open(uri, text)
    try:
        items = server.completion(uri, line, col)
    finally:
        server.close(uri)
    return {i["label"]: i.get("insertText") or i["textEdit"]["newText"] for i in items}


def test_completing_a_new_layer_offers_layers_as_valid_text(server):
    text = MODELINE + "input: {shape: [3, 8, 8]}\nlayers:\n  - ReLU\n  - \n"
    inserted = _completions(server, "complete", text, 4, 4)
    assert sorted(inserted) == sorted(ENTRY_NAMES)  # no argument names of other layers
    assert inserted["ReLU"] == "ReLU"
    assert inserted["Linear"] == "Linear: {out_features: ${1}}"
    assert inserted["Sequential"] == "Sequential: {layers: [${1:ReLU}]}"


BLOCKS = "input: {shape: [3, 8, 8]}\nblocks:\n  Down:\n    params: [planes]\n"


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        (BLOCKS + "    layers:\n      - ReLU\n      - \nlayers: [Down]\n", 7, 8),
        (BLOCKS + "    layers:\n      - {type: Sequential, layers: [ReLU]}\n      - \n", 7, 8),
        (
            BLOCKS + "    layers:\n      - Sequential:\n          layers:\n            - \n",
            8,
            14,
        ),
    ],
    ids=["block", "after a Sequential", "in a Sequential in a block"],
)
def test_completing_a_layer_in_a_block_offers_layers_and_sequential(server, text, line, col):
    inserted = _completions(server, "block_layer", MODELINE + text, line, col)
    assert sorted(inserted) == sorted(ENTRY_NAMES)
    assert inserted["Linear"] == "Linear: {out_features: ${1}}"


def test_completing_in_a_block_offers_the_block_keys(server):
    text = MODELINE + "input: {shape: [3, 8, 8]}\nblocks:\n  Down:\n    \nlayers: [Down]\n"
    inserted = _completions(server, "block_keys", text, 4, 4)
    keys = {label for label in inserted if label[0].islower()}  # "Block": the whole skeleton
    assert keys == {"params", "layers", "outputs"}
    assert inserted["layers"].startswith("layers:")


NESTING = MODELINE + (
    "input: {shape: [3, 8, 8]}\n"
    "blocks:\n"
    "  Down:\n"
    "    params: [k]\n"
    "    layers: [MaxPool2d: {kernel_size: $k}]\n"
    "layers:\n"
    "  - Sequential: {layers: [ReLU]}\n"
    "  - {type: Sequential, name: s, layers: [Down: {k: 2}], repeat: 2}\n"
)


@pytest.mark.parametrize(
    ("line", "word", "starts"),
    [
        (7, "Sequential", "A block written in place"),
        (8, "Sequential", "A block written in place"),
        (8, "repeat", "Copies of this entry"),
        (2, "blocks", "Reusable sub-networks"),
        (4, "params", "The block's params"),
        (5, "kernel_size", "Size of the window"),
    ],
)
def test_hovers_describe_nesting(server, line, word, starts):
    uri = _uri(f"hover_nesting_{word}")
    assert server.open(uri, NESTING) == []
    try:
        text = server.hover(uri, line, NESTING.splitlines()[line].index(word) + 1)
    finally:
        server.close(uri)
    assert text.startswith(starts), text


def test_completing_an_argument_inserts_a_value_netspec_accepts(server):
    text = MODELINE + "input: {shape: [3, 8, 8]}\nlayers:\n  - Linear:\n      \n"
    inserted = _completions(server, "argument", text, 4, 6)
    assert inserted["out_features"] == "out_features: 1"
    assert {"bias", "in_features", "out_features"} <= set(inserted)
    assert "kernel_size" not in inserted


def test_completing_a_schedule_inserts_a_mapping_value_not_a_second_key(server):
    text = MODELINE + "input: {shape: [4]}\nlayers: [ReLU]\ntrain:\n  lr_schedule: \n"
    inserted = _completions(server, "schedule", text, 5, 15)
    assert (
        inserted["StepLR"] == "{StepLR: {step_size: ${1}}}"
    )  # `lr_schedule: StepLR: ...` is no YAML
    assert inserted["ReduceLROnPlateau"] == "ReduceLROnPlateau"
