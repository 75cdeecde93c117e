"""`netspec bench`: the per-layer table, the JSON document, and device errors as one line."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from netspec.cli import app
from netspec.ops import backend

runner = CliRunner()

SMALL = """
name: small
input: {shape: [1, 6, 6]}
layers:
  - Conv2d: {in_channels: 1, out_channels: 2, kernel_size: 3}
  - ReLU
  - Flatten
  - Linear: {in_features: 32, out_features: 3}
loss: CrossEntropyLoss
"""
TYPES = ["Conv2d", "ReLU", "Flatten", "Linear"]


def spec_file(tmp_path, text: str = SMALL) -> str:
    path = tmp_path / "small.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(*args: str):
    result = runner.invoke(app, ["bench", *args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_table_lists_every_layer_with_step_time_and_throughput(tmp_path):
    result = run(spec_file(tmp_path), "--repeats", "2", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    for layer_type in TYPES:
        assert layer_type in result.stdout
    assert "small on cpu, batch 4, median of 2 steps" in result.stdout
    assert "step (forward, loss, backward, update)" in result.stdout
    assert "samples/s" in result.stdout
    assert "%" in result.stdout  # each layer's share


def test_json_is_one_document_with_per_layer_times(tmp_path):
    result = run(spec_file(tmp_path), "--repeats", "2", "-b", "8", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["spec"], document["device"]) == ("small", "cpu")
    assert (document["batch_size"], document["repeats"]) == (8, 2)
    assert [layer["type"] for layer in document["layers"]] == TYPES
    assert [layer["name"] for layer in document["layers"]] == ["0", "1", "2", "3"]
    for layer in document["layers"]:
        assert layer["forward_ms"] > 0 and layer["backward_ms"] >= 0
    assert document["step_ms"] > 0
    assert document["samples_per_second"] == pytest.approx(8 / (document["step_ms"] / 1e3))


def test_cuda_without_cupy_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_failure", None)
    result = run(spec_file(tmp_path), "--device", "cuda", "--repeats", "2")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    # The brackets survive: the message is printed as text, not as rich markup.
    assert (
        "device 'cuda' needs CuPy, which is not installed: pip install -e \".[cuda]\"" in lines[0]
    )


def test_unknown_device_is_one_line(tmp_path):
    result = run(spec_file(tmp_path), "--device", "tpu")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: unknown device 'tpu', expected one of: cpu, cuda"
    ]


def test_bad_options_and_specs_are_refused(tmp_path):
    assert run(spec_file(tmp_path), "--repeats", "0").exit_code == 2  # typer's usage error
    broken = spec_file(tmp_path, SMALL.replace("in_features: 32", "in_features: 31"))
    result = run(broken, "--repeats", "2")
    assert result.exit_code == 1
    assert "in_features" in result.stderr


# -- specs a training step does not fit (issue 8) ---------------------------------------------
TWO_OUTPUTS = """
name: two
input: {shape: [1, 6, 6]}
layers:
  - Conv2d: {in_channels: 1, out_channels: 2, kernel_size: 3}
  - {type: ReLU, name: relu}
  - {type: Flatten, name: flat}
  - {type: Linear, name: head, in_features: 32, out_features: 3}
  - {type: MaxPool2d, name: pool, inputs: [relu], kernel_size: 2, return_indices: true}
outputs: [head, pool, pool.indices]
"""


def test_several_outputs_each_take_a_synthetic_gradient(tmp_path):
    result = run(spec_file(tmp_path, TWO_OUTPUTS), "-r", "2", "-b", "4", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["loss"] is None and "no loss" in document["note"]
    times = {layer["name"]: layer for layer in document["layers"]}
    assert times["head"]["backward_ms"] > 0 and times["0"]["backward_ms"] > 0
    assert times["pool"]["backward_ms"] > 0  # its output has a gradient too


def test_the_seed_activations_spec_times_backward_without_a_loss():
    result = run("specs/seed/activations.yaml", "-r", "2", "-b", "4", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["loss"] is None and "the spec has no loss" in document["note"]
    assert len(document["layers"]) == 7
    assert all(layer["backward_ms"] > 0 for layer in document["layers"])  # input gradient
    table = run("specs/seed/activations.yaml", "-r", "1", "-b", "4")
    assert "note: the spec has no loss: backward starts from a random gradient" in table.stdout
