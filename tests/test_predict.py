"""`netspec predict` and netspec.training.predict: eval-mode outputs equal to the network's
own forward with the checkpoint's weights, the files it writes, and its one-line errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

import netspec
from netspec.cli import app
from netspec.cli.predict_output import csv_text
from netspec.data.base import DataError
from netspec.training.checkpoint import load_checkpoint
from netspec.training.predict import Prediction, predict, read_inputs, softmax
from tests.test_train import TINY

runner = CliRunner()

REGRESSION = """
name: line
input: {shape: [4]}
layers:
  - Linear: {in_features: 4, out_features: 2}
loss: MSELoss
train: {epochs: 1, batch_size: 8}
data: {source: synthetic, samples: 32, validation_split: 0.25}
"""


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def trained(folder, text: str) -> tuple[str, str]:
    """A spec file and the last checkpoint of one epoch of training it."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.yaml"
    spec.write_text(text.replace("epochs: 4", "epochs: 1"), encoding="utf-8")
    result = run("train", str(spec), "--out", str(folder / "run"))
    assert result.exit_code == 0, result.output
    return str(spec), str(folder / "run" / "last.npz")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("tiny"), TINY)


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("line"), REGRESSION)


def inputs(tmp_path, name: str = "x.npz", samples: int = 37, **arrays) -> str:
    """An .npz of random inputs for the tiny spec (37: not a multiple of the batch)."""
    x = np.random.default_rng(1).normal(size=(samples, 1, 6, 6)).astype("float32")
    path = tmp_path / name
    np.savez(path, **({"x": x} | arrays))
    return str(path)


def reference(spec_path: str, weights: str, x: np.ndarray) -> np.ndarray:
    """What netspec.compile with the checkpoint's state computes in eval mode."""
    spec = netspec.load(spec_path)
    net = netspec.compile(spec)
    net.load_state_dict(load_checkpoint(weights).state)
    net.eval()
    return np.asarray(net(x.astype(spec.input.dtype)))


def assert_close(batched: np.ndarray, whole: np.ndarray) -> None:
    """float32 matrix products may round differently in batches of another size."""
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6)


def test_predict_equals_the_networks_eval_forward(tiny, tmp_path):
    spec_path, weights = tiny
    x = read_inputs(inputs(tmp_path))
    prediction = predict(netspec.load(spec_path), weights, x, batch_size=8)
    assert_close(prediction.output, reference(spec_path, weights, x))
    np.testing.assert_array_equal(prediction.label, prediction.output.argmax(axis=1))
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert prediction.label.dtype == np.int64


def test_softmax_is_stable_for_large_logits():
    probabilities = softmax(np.array([[1000.0, 0.0], [-1000.0, -1000.0]]), axis=1)
    np.testing.assert_allclose(probabilities, [[1.0, 0.0], [0.5, 0.5]])


def test_cli_writes_npz_with_output_probabilities_and_label(tiny, tmp_path):
    spec_path, weights = tiny
    data, out = inputs(tmp_path), tmp_path / "p.npz"
    result = run("predict", spec_path, "-w", weights, "--data", data, "-o", str(out), "-b", "5")
    assert result.exit_code == 0, result.output
    assert f"wrote 37 predictions to {out}" in result.stderr
    with np.load(out) as saved:
        assert sorted(saved.files) == ["label", "output", "probabilities"]
        x = np.load(data)["x"]
        assert_close(saved["output"], reference(spec_path, weights, x))
        np.testing.assert_array_equal(saved["label"], saved["output"].argmax(axis=1))
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left beside it


def test_cli_writes_csv_with_labels_and_probabilities(tiny, tmp_path):
    spec_path, weights = tiny
    out = tmp_path / "p.csv"
    result = run("predict", spec_path, "-w", weights, "--data", inputs(tmp_path), "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0] == ["label", "probability_0", "probability_1", "probability_2"]
    assert len(rows) == 1 + 37
    saved = np.array([[float(v) for v in row] for row in rows[1:]])
    np.testing.assert_array_equal(saved[:, 0], saved[:, 1:].argmax(axis=1))


def test_regression_csv_has_output_columns_and_npz_only_output(line, tmp_path):
    spec_path, weights = line
    data = tmp_path / "x.npz"
    np.savez(data, inputs=np.ones((5, 4), dtype="float64"))
    out = tmp_path / "p.npz"
    args = ("predict", spec_path, "-w", weights, "--data", str(data), "--x-key", "inputs")
    assert run(*args, "-o", str(out)).exit_code == 0
    with np.load(out) as saved:
        assert saved.files == ["output"] and saved["output"].shape == (5, 2)
    text = csv_text(Prediction(np.arange(4.0).reshape(2, 2)))
    assert text.splitlines() == ["output_0,output_1", "0.0,1.0", "2.0,3.0"]


def test_without_output_a_table_of_the_first_ten(tiny, tmp_path):
    spec_path, weights = tiny
    result = run("predict", spec_path, "-w", weights, "--data", inputs(tmp_path))
    assert result.exit_code == 0, result.output
    assert "label" in result.stdout and "probability" in result.stdout
    assert "37 predictions, the first 10 shown" in result.stdout
    assert " 9 │" in result.stdout and " 10 │" not in result.stdout


def error_of(*args: str) -> str:
    """The stderr of a predict that must fail with exit 1 and one error line (+ a hint)."""
    result = run("predict", *args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) <= 2, result.stderr
    assert all(line.startswith("  hint: ") for line in lines[1:]), result.stderr
    return result.stderr


def test_a_missing_key_names_the_files_arrays_and_the_close_one(tiny, tmp_path):
    spec_path, weights = tiny
    text = error_of(spec_path, "-w", weights, "--data", inputs(tmp_path), "--x-key", "X")
    assert "has no array 'X'; it has: 'x'" in text and "did you mean 'x'?" in text


def test_a_wrong_shape_is_refused_as_training_data_is(tiny, tmp_path):
    spec_path, weights = tiny
    data = tmp_path / "wrong.npz"
    np.savez(data, x=np.zeros((4, 5, 5), dtype="float32"))
    text = error_of(spec_path, "-w", weights, "--data", str(data))
    assert "x samples have shape (5, 5) (25 values) but the spec's input shape is [1, 6, 6]" in text


def test_nan_inputs_are_refused(tiny, tmp_path):
    spec_path, weights = tiny
    x = np.zeros((6, 1, 6, 6), dtype="float32")
    x[4, 0, 1, 1] = np.nan
    data = tmp_path / "nan.npz"
    np.savez(data, x=x)
    text = error_of(spec_path, "-w", weights, "--data", str(data))
    assert "NaN or infinite values in 1 sample(s), the first at index 4" in text


def test_text_inputs_are_refused():
    with pytest.raises(DataError, match="dtype <U1; expected numbers"):
        predict(netspec.loads(TINY), "unused.npz", np.array([["a"] * 36]))


@pytest.mark.parametrize("name", ["nope.npz", "w.safetensors"])
def test_missing_weights_are_refused(tiny, tmp_path, name):
    spec_path, _ = tiny
    text = error_of(spec_path, "-w", str(tmp_path / name), "--data", inputs(tmp_path))
    expected = "checkpoint not found" if name == "nope.npz" else "weights file not found"
    assert expected in text


def test_the_checkpoints_weights_exported_as_safetensors_predict_the_same(tiny, tmp_path):
    pytest.importorskip("safetensors")
    spec_path, weights = tiny
    exported = tmp_path / "w.safetensors"
    result = run("export", spec_path, "-w", weights, "-f", "safetensors", "-o", str(exported))
    assert result.exit_code == 0, result.output
    x = read_inputs(inputs(tmp_path))
    spec = netspec.load(spec_path)
    from_checkpoint = predict(spec, weights, x, batch_size=8)
    from_safetensors = predict(spec, exported, x, batch_size=8)
    np.testing.assert_array_equal(from_safetensors.output, from_checkpoint.output)
    np.testing.assert_array_equal(from_safetensors.label, from_checkpoint.label)


def test_a_bad_data_file_and_a_bad_output_kind_are_one_line(tiny, tmp_path):
    spec_path, weights = tiny
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    assert "cannot read npz file" in error_of(spec_path, "-w", weights, "--data", str(broken))
    missing = error_of(spec_path, "-w", weights, "--data", str(tmp_path / "none.npz"))
    assert "npz file not found" in missing
    data = inputs(tmp_path)
    text = error_of(spec_path, "-w", weights, "--data", data, "-o", str(tmp_path / "p.txt"))
    assert "takes a .npz or a .csv file" in text


def test_each_batch_is_reported_and_a_terminal_gets_a_bar(tiny, tmp_path):
    import io

    from rich.console import Console

    from netspec.cli.predict_output import prediction_progress

    spec_path, weights = tiny
    x, seen = read_inputs(inputs(tmp_path)), []
    predict(netspec.load(spec_path), weights, x, batch_size=10, on_batch=lambda *a: seen.append(a))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with prediction_progress(Console(file=io.StringIO())) as on_batch:
        assert on_batch is None  # not a terminal: no bar
    screen = io.StringIO()
    with prediction_progress(Console(file=screen, force_terminal=True, width=80)) as on_batch:
        for done in range(1, 9):
            on_batch(done, 8)
    assert "predicting" in screen.getvalue()
