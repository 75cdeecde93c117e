"""`netspec check --depth N` and `netspec expand` (design.md §1.2, §4) on the zoo's ResNet-18:
rows folded into their blocks as torchinfo's depth, the inferred sizes in `--json`, and a
flat spec that checks to the same rows as the nested one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from netspec.cli import app

ROOT = Path(__file__).resolve().parent.parent
RESNET18 = str(ROOT / "specs" / "zoo" / "resnet18.yaml")
runner = CliRunner()  # click >= 8.2 keeps stdout and stderr apart

TOP_LEVEL = [
    "conv1",
    "bn1",
    "relu",
    "maxpool",
    "layer1",
    "layer2",
    "layer3",
    "layer4",
    "avgpool",
    "flatten",
    "fc",
]


def invoke(*args: str):
    """The command's result; nothing a user types may end in a traceback."""
    result = runner.invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), f"escaped: {result.exception!r}"
    assert "Traceback" not in result.stdout + result.stderr
    return result


def table_rows(text: str) -> list[list[str]]:
    """The first two cells (layer, type) of each row of the rich table: a row whose name cell
    is empty continues the one above (rich wraps long cells onto more lines)."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        name, kind = (cell.strip() for cell in line.strip("│").split("│")[:2])
        if name:
            rows.append([name, kind])
        elif rows:
            rows[-1][1] += kind
    return rows


def report_rows(*args: str) -> list[dict]:
    result = invoke("check", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["report"]["rows"]


def without_inferred(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "inferred"} for row in rows]


# -- check --depth ------------------------------------------------------------------------------
def test_depth_1_folds_resnet18_into_torchvisions_top_level_modules():
    result = invoke("check", RESNET18, "--depth", "1")
    assert result.exit_code == 0 and result.stderr == ""
    rows = table_rows(result.stdout)
    assert [name for name, _ in rows] == TOP_LEVEL
    assert dict(rows)["layer2"] == "Sequential"
    assert "Total params                      11,689,512" in result.stdout


def test_depth_2_shows_each_block_under_its_type():
    result = invoke("check", RESNET18, "--depth", "2")
    assert result.exit_code == 0
    rows = table_rows(result.stdout)
    blocks = {name: kind for name, kind in rows if name.startswith("layer")}
    assert blocks == {
        "layer1.0": "BasicBlock",
        "layer1.1": "BasicBlock",
        "layer2.0": "DownBlock",
        "layer2.1": "BasicBlock",
        "layer3.0": "DownBlock",
        "layer3.1": "BasicBlock",
        "layer4.0": "DownBlock",
        "layer4.1": "BasicBlock",
    }
    assert [name for name, _ in rows if not name.startswith("layer")] == [
        n for n in TOP_LEVEL if not n.startswith("layer")
    ]
    assert "Total params                      11,689,512" in result.stdout


def test_the_totals_do_not_depend_on_the_depth():
    def totals(*depth: str) -> list[str]:
        out = invoke("check", RESNET18, *depth).stdout
        return [line for line in out.splitlines() if not line.startswith(("│", "┃", "┏", "┡", "└"))]

    assert totals("--depth", "1") == totals("--depth", "2") == totals()


@pytest.mark.parametrize("depth", ["0", "-1"])
def test_a_depth_below_1_is_a_usage_error(depth):
    result = invoke("check", RESNET18, "--depth", depth)
    assert result.exit_code == 2
    assert "--depth" in result.stderr


def test_json_rows_carry_what_was_inferred():
    rows = {row["name"]: row for row in report_rows(RESNET18)}
    assert all("inferred" in row for row in rows.values())
    assert rows["conv1"]["inferred"] == {"in_channels": 3}
    assert rows["layer2.0.downsample.0"]["inferred"] == {"in_channels": 64}
    assert rows["layer2.0.downsample.1"]["inferred"] == {"num_features": 128}
    assert rows["fc"]["inferred"] == {"in_features": 512}
    assert rows["relu"]["inferred"] == {} and rows["layer1.0.add"]["inferred"] == {}


# -- expand -------------------------------------------------------------------------------------
def assert_flat(text: str) -> dict:
    """`text` is a flat spec: no blocks, every layer a mapping with its type and full name."""
    document = yaml.safe_load(text)
    assert "blocks" not in document and "$" not in text
    assert all(
        isinstance(layer, dict) and {"type", "name"} <= set(layer) for layer in document["layers"]
    )
    assert {layer["type"] for layer in document["layers"]}.isdisjoint(
        {"Sequential", "BasicBlock", "DownBlock"}
    )
    return document


def test_expand_to_stdout_gives_a_flat_spec_with_torchvisions_names(tmp_path):
    result = invoke("expand", RESNET18)
    assert result.exit_code == 0 and result.stderr == ""
    document = assert_flat(result.stdout)
    layers = {layer["name"]: layer for layer in document["layers"]}
    assert len(layers) == 69
    assert layers["layer2.0.downsample.0"]["in_channels"] == 64  # the inferred sizes written out
    assert layers["layer4.1.bn2"]["num_features"] == 512


def test_the_expanded_spec_checks_to_the_nested_specs_rows(tmp_path):
    target = tmp_path / "out" / "flat.yaml"
    result = invoke("expand", RESNET18, "-o", str(target))
    assert result.exit_code == 0 and result.stdout == ""
    assert str(target) in result.stderr
    assert_flat(target.read_text())
    assert target.read_text() == invoke("expand", RESNET18).stdout

    nested, flat = report_rows(RESNET18), report_rows(str(target))
    # The same rows; what the nested spec left to inference, the flat one writes out.
    assert without_inferred(flat) == without_inferred(nested)
    assert all(row["inferred"] == {} for row in flat)
    written = {layer["name"]: layer for layer in yaml.safe_load(target.read_text())["layers"]}
    for row in nested:
        assert row["inferred"].items() <= written[row["name"]].items(), row["name"]

    def document(path: str) -> dict:
        report = json.loads(invoke("check", path, "--json").stdout)["report"]
        return {k: v for k, v in report.items() if k not in ("rows", "name")}

    assert document(str(target)) == document(RESNET18)


BROKEN_BLOCK = """\
name: broken
input: {shape: [3, 8, 8]}
blocks:
  Unit:
    params: [planes]
    layers:
      - {type: Conv2d, name: conv, out_channels: $planes, kernal_size: 3}
layers:
  - {type: Unit, name: u, planse: 4}
"""


def test_expand_of_a_spec_with_errors_prints_diagnostics_and_exits_1(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_BLOCK)
    target = tmp_path / "flat.yaml"
    for args in ([str(path)], [str(path), "-o", str(target)]):
        result = invoke("expand", *args)
        assert result.exit_code == 1
        assert result.stdout == ""
        assert "broken.yaml:9:5: error[missing-param]" in result.stderr
        assert "broken.yaml:9:27: error[unknown-param]" in result.stderr
    assert not target.exists()


def test_expand_of_a_missing_file_is_a_diagnostic_and_exit_1(tmp_path):
    result = invoke("expand", str(tmp_path / "nowhere.yaml"))
    assert result.exit_code == 1
    assert result.stdout == "" and "error[io]: cannot read spec" in result.stderr
