"""`netspec check`: exit codes, the report on stdout, diagnostics on stderr, --json,
--strict, --batch-size, and never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from netspec.cli import app
from netspec.cli.render import render_diagnostics
from netspec.errors import Diagnostic

ROOT = Path(__file__).resolve().parent.parent
LENET = str(ROOT / "specs" / "lenet5.yaml")
runner = CliRunner()  # click >= 8.2 keeps stdout and stderr apart

BROKEN = (
    "input: {shape: [3, 32, 32]}\n"
    "layers:\n"
    "  - Conv2d: {in_channels: 3, out_channels: 6, kernal_size: 5}\n"
    "  - Dropout: {p: 2}\n"
)
SUSPECT = (
    "input: {shape: [10]}\nlayers:\n"
    "  - Linear: {in_features: 10, out_features: 3}\n  - Softmax: {dim: 1}\n"
    "loss: CrossEntropyLoss\n"
)


def check(*args: str):
    result = runner.invoke(app, ["check", *args])
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), f"escaped: {result.exception!r}"
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.fixture
def spec_file(tmp_path):
    def write(text: str, name: str = "model.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def test_a_clean_spec_prints_the_report_and_exits_0():
    result = check(LENET)
    assert result.exit_code == 0
    assert result.stderr == ""
    out = result.stdout
    assert "lenet5: input (N, 1, 28, 28)" in out
    for text in (
        "Conv2d",
        "(N, 16, 5, 5)",
        "48,120",
        "Total params",
        "61,706",
        "MACs (per sample)",
        "416.52K",
        "Params size",
        "241.04 KiB",
    ):
        assert text in out


def test_batch_size_makes_the_shapes_concrete():
    result = check(LENET, "--batch-size", "32")
    assert result.exit_code == 0
    assert "input (32, 1, 28, 28)" in result.stdout
    assert "(32, 10)" in result.stdout and "MACs (batch 32)" in result.stdout
    assert check(LENET, "-b", "2").stdout.count("(2, 6, 28, 28)") == 2  # conv and relu


def test_errors_go_to_stderr_located_with_hints_and_exit_1(spec_file):
    path = spec_file(BROKEN)
    result = check(path)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert f"{path}:3:5: error[missing-arg]: Conv2d needs 'kernel_size'" in lines
    assert f"{path}:3:47: error[unknown-arg]: unknown argument 'kernal_size' for Conv2d" in lines
    assert "  hint: did you mean 'kernel_size'?" in lines
    assert lines[-1] == "3 errors"
    assert not any(line.strip().startswith("^") for line in lines)  # no excerpts off a terminal


def test_warnings_pass_unless_strict(spec_file):
    path = spec_file(SUSPECT)
    result = check(path)
    assert result.exit_code == 0
    assert f"{path}:4:5: warning[softmax-cross-entropy]" in result.stderr
    assert result.stderr.splitlines()[-1] == "1 warning"
    assert "Total params" in result.stdout
    strict = check(path, "--strict")
    assert strict.exit_code == 1
    assert "warning[softmax-cross-entropy]" in strict.stderr
    assert check(LENET, "--strict").exit_code == 0


def test_json_is_one_document_with_the_report():
    result = check(LENET, "--json", "--batch-size", "4")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert set(document) == {"spec", "ok", "diagnostics", "report"}
    assert document["ok"] is True and document["diagnostics"] == []
    report = document["report"]
    assert report["batch_size"] == 4
    assert report["output_shapes"] == [[4, 10]]
    assert report["totals"]["params"] == 61706
    assert report["totals"]["macs"] == 4 * 416520
    row = report["rows"][0]
    assert set(row) == {
        "name",
        "type",
        "inputs",
        "input_shapes",
        "output_shape",
        "params",
        "trainable_params",
        "macs",
        "inferred",  # sizes taken from the shapes (design.md §1.1); lenet5 writes them all
    }
    assert row["output_shape"] == [4, 6, 28, 28] and row["inferred"] == {}
    symbolic = json.loads(check(LENET, "--json").stdout)["report"]
    assert symbolic["batch_size"] is None and symbolic["output_shapes"] == [[None, 10]]


def test_json_carries_the_diagnostics_of_a_broken_spec(spec_file):
    path = spec_file(BROKEN)
    result = check(path, "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["report"] is None
    first = document["diagnostics"][0]
    assert first == {
        "file": path,
        "line": 3,
        "col": 5,
        "severity": "error",
        "code": "missing-arg",
        "message": "Conv2d needs 'kernel_size'",
        "hint": None,
    }
    assert [d["code"] for d in document["diagnostics"]] == [
        "missing-arg",
        "unknown-arg",
        "invalid-arg",
    ]


def test_json_strict_fails_on_warnings_but_keeps_the_report(spec_file):
    result = check(spec_file(SUSPECT), "--json", "--strict")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["report"]["output_shapes"] == [[None, 3]]
    assert [d["severity"] for d in document["diagnostics"]] == ["warning"]


@pytest.mark.parametrize(
    "args",
    [
        [],
        [LENET, "--batch-size", "0"],
        [LENET, "--batch-size", "many"],
        [LENET, "--bogus"],
        [LENET, LENET],
    ],
)
def test_bad_usage_exits_2(args):
    result = check(*args)
    assert result.exit_code == 2
    assert "Usage:" in result.stderr


def test_a_missing_file_is_a_located_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = check(str(missing))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{missing}:1:1: error[io]: cannot read spec: No such file or directory"
    )
    assert check(str(tmp_path)).exit_code == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- just\n- a list\n",
        "input: {shape: [3]}\nlayers:\n\t- ReLU\n",
        "input: {shape: [3]}\nlayers: [!!python/object/apply:os.getcwd []]\n",
        "input: {shape: [3, 100000000, 100000000]}\nlayers:\n  - Flatten\n"
        "  - Linear: {in_features: 1, out_features: 1}\n",
        "input: {shape: [3, 8, 8]}\nlayers:\n  - {type: ReLU, name: a, inputs: [b]}\n"
        "  - {type: ReLU, name: b, inputs: [a]}\n",
    ],
)
def test_bad_specs_exit_1_with_diagnostics_only(spec_file, text):
    result = check(spec_file(text))
    assert result.exit_code == 1
    assert ": error[" in result.stderr
    assert result.stdout == ""


def test_excerpts_with_a_caret_on_a_terminal():
    text = "input: {shape: [3]}\nlayers: [Relu]\n"
    console = Console(force_terminal=True, width=100, record=True, color_system=None)
    d = Diagnostic("m.yaml", 2, 10, "unknown-layer", "unknown layer 'Relu'", "did you mean 'ReLU'?")
    render_diagnostics([d], console, text)
    lines = console.export_text().splitlines()
    assert lines == [
        "m.yaml:2:10: error[unknown-layer]: unknown layer 'Relu'",
        "   2 | layers: [Relu]",
        "                ^",
        "  hint: did you mean 'ReLU'?",
        "1 error",
    ]


def test_the_shim_never_prints_a_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BROKEN)
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "check", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{path}:3:5: error[missing-arg]" in done.stderr


def test_a_report_of_thousands_of_rows_is_drawn_as_rich_draws_a_small_one(monkeypatch):
    """Past PLAIN_TABLE_ROWS the table is drawn without rich's per-cell measuring (40,000
    rows took 80 s); it must look the same."""
    import io

    from rich.console import Console

    import netspec
    from netspec.cli import render as report_module

    spec = netspec.loads(
        "input: {shape: [4]}\nlayers:\n  - ReLU\n  - {type: Linear, in_features: 4, out_features: 2}\n"
    )

    def drawn() -> str:
        console = Console(file=io.StringIO(), width=200, color_system=None)
        report_module.render_report(netspec.infer(spec), console)
        return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines())

    rich_drawn = drawn()
    monkeypatch.setattr(report_module, "PLAIN_TABLE_ROWS", 0)
    assert drawn() == rich_drawn
