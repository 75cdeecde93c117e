"""`netspec train` and `netspec eval` through typer's test runner, error paths included."""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from netspec.cli import app
from netspec.cli.progress import PlainProgress, RichProgress, epoch_line, render_evaluation
from netspec.ops import backend
from netspec.training.checkpoint import load_checkpoint
from netspec.training.run_folder import LOCK_NAME, RunLock
from netspec.training.trainer import Trainer, evaluate
from tests.test_train import TINY, tiny_spec

runner = CliRunner()


def spec_file(tmp_path, text: str = TINY, **replace: str) -> str:
    """The tiny spec's file (not loaded: it may be broken on purpose)."""
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "tiny.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def no_cupy(monkeypatch):
    """As if CuPy were not installed, whatever this machine has."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_failure", None)


def test_train_writes_progress_table_checkpoints_and_log(tmp_path):
    out = tmp_path / "run"
    result = run("train", spec_file(tmp_path), "--out", str(out), "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert "training tiny on cpu: 72 synthetic samples, 18 for validation" in result.stderr
    assert "epoch 1/2  loss " in result.stderr and "epoch 2/2  loss " in result.stderr
    assert "val_acc" in result.stdout and "best val_loss" in result.stdout
    for name in ("last.npz", "best.npz", "metrics.jsonl"):
        assert (out / name).is_file(), name
        assert str(out / name) in result.stdout
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_train_draws_metrics_png_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    result = run("train", spec_file(tmp_path), "--out", str(out), "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert (out / "metrics.png").is_file()
    assert str(out / "metrics.png") in result.stdout
    assert "skipped" not in result.output


def test_train_overrides_reach_the_trainer(tmp_path):
    out = tmp_path / "run"
    args = ["--epochs", "1", "--batch-size", "24", "--lr", "0.05", "--seed", "9"]
    result = run("train", spec_file(tmp_path), "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    saved = load_checkpoint(out / "last.npz")
    assert (saved.meta["batch_size"], saved.meta["seed"], saved.step) == (24, 9, 3)
    assert saved.meta["history"][0]["lr"] == 0.05


def test_train_defaults_to_a_new_version_folder_under_runs_slash_spec_name(tmp_path, monkeypatch):
    # Adapted from test_train_defaults_to_runs_slash_spec_name: runs/<name> was one folder
    # that every plain run overwrote; now each run gets runs/<name>/version_K (issue 9).
    spec = spec_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    first = run("train", spec, "--epochs", "1")
    assert first.exit_code == 0, first.output
    version_0 = tmp_path / "runs" / "tiny" / "version_0"
    assert (version_0 / "last.npz").is_file()
    assert f"; run folder {Path('runs', 'tiny', 'version_0')}\n" in first.stderr
    kept = {name: (version_0 / name).read_bytes() for name in ("best.npz", "metrics.jsonl")}
    second = run("train", spec, "--epochs", "2")
    assert second.exit_code == 0, second.output
    assert f"; run folder {Path('runs', 'tiny', 'version_1')}\n" in second.stderr
    assert load_checkpoint(tmp_path / "runs" / "tiny" / "version_1" / "last.npz").epoch == 2
    assert kept == {name: (version_0 / name).read_bytes() for name in kept}


def test_an_out_that_holds_a_run_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    spec = spec_file(tmp_path)
    assert run("train", spec, "--out", str(out), "--epochs", "1").exit_code == 0
    kept = (out / "best.npz").read_bytes(), (out / "metrics.jsonl").read_bytes()
    refused = run("train", spec, "--out", str(out), "--epochs", "2")
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        f"error: --out {out} already holds a run (last.npz, best.npz, metrics.jsonl): "
        f"continue it with --resume {out / 'last.npz'}, or replace it with --overwrite"
    ]
    assert kept == ((out / "best.npz").read_bytes(), (out / "metrics.jsonl").read_bytes())
    replaced = run("train", spec, "--out", str(out), "--epochs", "2", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert "overwrote the run in" in replaced.stderr
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert not (out / LOCK_NAME).exists()


def test_resume_without_out_continues_in_the_checkpoint_folder(tmp_path, monkeypatch):
    spec = spec_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert run("train", spec, "--epochs", "1").exit_code == 0
    last = Path("runs", "tiny", "version_0", "last.npz")
    result = run("train", spec, "--epochs", "2", "--resume", str(last))
    assert result.exit_code == 0, result.output
    assert load_checkpoint(last).epoch == 2
    assert not Path("runs", "tiny", "version_1").exists()


def test_a_locked_run_folder_is_refused_naming_the_pid(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    lock = RunLock.acquire(out)  # as a trainer running in another terminal
    try:
        result = run("train", spec_file(tmp_path), "--out", str(out))
    finally:
        lock.release()
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: {out} is in use by another trainer (pid {os.getpid()} on "
    )
    assert not (out / "metrics.jsonl").exists()


def test_sigterm_saves_and_exits_143_with_one_line(tmp_path, monkeypatch):
    def terminate(self, epoch, batch, batches, logs):
        if batch == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(PlainProgress, "on_batch_end", terminate)
    out = tmp_path / "run"
    result = run("train", spec_file(tmp_path), "--out", str(out))
    assert result.exit_code == 143, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"terminated (SIGTERM) at epoch 1, batch 3: saved {out / 'last.npz'}; "
        f"resume with --resume {out / 'last.npz'}"
    )
    assert load_checkpoint(out / "last.npz").meta["batch"] == 3  # the batch after it, whole
    assert not (out / LOCK_NAME).exists()


def test_ctrl_c_while_scikit_learn_imports_is_an_interrupt(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def interrupted_import(name, *args, **kwargs):
        if name.startswith("sklearn"):  # as pybind11 reports a Ctrl-C during its init
            raise ImportError("initialization failed") from KeyboardInterrupt()
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    digits = "data: {source: digits, validation_split: 0.2}"
    spec = spec_file(
        tmp_path,
        **{
            "data: {source: synthetic, samples: 90, validation_split: 0.2}": digits,
            "input: {shape: [1, 6, 6]}": "input: {shape: [1, 8, 8]}",
            "in_features: 36": "in_features: 64",
            "out_features: 3": "out_features: 10",
        },
    )
    result = run("train", spec, "--out", str(tmp_path / "run"))
    assert result.exit_code == 130, result.output
    assert "scikit-learn" not in result.output
    assert result.stderr.strip().splitlines()[-1] == (
        "interrupted before training started: nothing was saved"
    )
    assert not (tmp_path / "run").exists()


def test_resume_continues_to_the_requested_epoch(tmp_path):
    out = tmp_path / "run"
    spec = spec_file(tmp_path)
    assert run("train", spec, "--out", str(out), "--epochs", "1").exit_code == 0
    result = run("train", spec, "--out", str(out), "--resume", str(out / "last.npz"))
    assert result.exit_code == 0, result.output
    assert "resuming" in result.stderr and "epoch 4/4" in result.stderr
    assert "epoch 1/4" not in result.stderr
    assert load_checkpoint(out / "last.npz").epoch == 4


def test_eval_prints_loss_accuracy_and_confusion_matrix(tmp_path):
    out = tmp_path / "run"
    spec = spec_file(tmp_path)
    assert run("train", spec, "--out", str(out), "--epochs", "2").exit_code == 0
    result = run("eval", spec, "--weights", str(out / "best.npz"))
    assert result.exit_code == 0, result.output
    assert "on 18 validation samples" in result.stdout
    assert "loss " in result.stdout and "accuracy " in result.stdout
    assert "confusion matrix" in result.stdout and "recall" in result.stdout
    assert "logged in training: val_loss" in result.stdout


def test_ctrl_c_saves_and_exits_130_with_one_line(tmp_path, monkeypatch):
    def interrupt(self, epoch, batch, batches, logs):
        if batch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(PlainProgress, "on_batch_end", interrupt)
    out = tmp_path / "run"
    result = run("train", spec_file(tmp_path), "--out", str(out))
    assert result.exit_code == 130
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"interrupted at epoch 1, batch 2: saved {out / 'last.npz'}; "
        f"resume with --resume {out / 'last.npz'}"
    )
    assert load_checkpoint(out / "last.npz").meta["batch"] == 2
    assert result.stdout == ""


def test_nan_loss_is_one_error_line_with_hint(tmp_path, monkeypatch):
    monkeypatch.setattr("netspec.training.run.loss_value", lambda value: float("nan"))
    result = run("train", spec_file(tmp_path), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert "error: the loss became nan at epoch 1, step 1 (batch 1 of 5)" in result.stderr
    assert "hint: lower the learning rate" in result.stderr


@pytest.mark.parametrize("command", ["train", "eval"])
def test_cuda_without_cupy_is_one_clear_line(tmp_path, no_cupy, command):
    args = [command, spec_file(tmp_path), "--device", "cuda"]
    if command == "eval":
        args += ["--weights", str(tmp_path / "missing.npz")]
    result = run(*args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert (
        "device 'cuda' needs CuPy, which is not installed: pip install -e \".[cuda]\"" in lines[0]
    )


def test_bad_checkpoints_are_one_line_with_hint(tmp_path):
    spec = spec_file(tmp_path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00" * 100)
    for args in (
        ["eval", spec, "--weights", str(garbage)],
        ["train", spec, "--resume", str(garbage)],
    ):
        result = run(*args)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: {garbage} is not a netspec checkpoint")
        assert "hint:" in result.stderr


def test_eval_with_a_checkpoint_of_another_network_fails(tmp_path):
    out = tmp_path / "run"
    assert run("train", spec_file(tmp_path), "--out", str(out), "--epochs", "1").exit_code == 0
    other = spec_file(tmp_path, **{"out_features: 3": "out_features: 4"})
    result = run("eval", other, "--weights", str(out / "last.npz"))
    assert result.exit_code == 1
    assert "does not fit spec 'tiny'" in result.stderr and "6.weight" in result.stderr


def test_data_and_spec_errors_are_clear(tmp_path):
    npz = spec_file(
        tmp_path, **{"{source: synthetic, samples: 90,": "{source: npz, path: nope.npz,"}
    )
    result = run("train", npz)
    assert result.exit_code == 1
    assert "error: npz file not found" in result.stderr and "hint:" in result.stderr
    no_data = spec_file(
        tmp_path, **{"data: {source: synthetic, samples: 90, validation_split: 0.2}": ""}
    )
    result = run("train", no_data)
    assert result.exit_code == 1 and "no `data:` section" in result.stderr
    broken = spec_file(tmp_path, **{"kernel_size: 3": "kernel_sise: 3"})
    result = run("train", broken)
    assert result.exit_code == 1 and "kernel_sise" in result.stderr


def test_bad_options_are_usage_errors(tmp_path):
    spec = spec_file(tmp_path)
    assert run("train", spec, "--epochs", "0").exit_code == 2
    assert run("train", spec, "--lr", "-1").exit_code == 2
    assert run("eval", spec).exit_code == 2  # --weights is required


def test_rich_progress_draws_on_a_terminal(tmp_path):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    progress = RichProgress(console)
    with progress:
        Trainer(tiny_spec(tmp_path), epochs=2, callbacks=[progress]).fit()
    text = buffer.getvalue()
    assert "epoch 2/2" in text and "samples/s" in text and "val_acc" in text


def test_epoch_line_and_evaluation_rendering(tmp_path):
    metrics = {
        "epoch": 3,
        "loss": 0.5,
        "accuracy": 0.75,
        "val_loss": None,
        "lr": 0.001,
        "seconds": 1.25,
    }
    assert (
        epoch_line(metrics, 15)
        == "epoch  3/15  loss 0.5000  acc 75.00%  val_loss -  lr 0.001  1.2s"
    )
    Trainer(tiny_spec(tmp_path), out=tmp_path, epochs=1).fit()
    evaluation = evaluate(tiny_spec(tmp_path), tmp_path / "last.npz")
    buffer = io.StringIO()
    render_evaluation(evaluation, "tiny", tmp_path / "last.npz", Console(file=buffer, width=100))
    text = buffer.getvalue()
    assert f"{evaluation.accuracy:.2%}" in text
    total = int(np.sum(evaluation.confusion))
    assert total == 18


def test_main_prints_error_text_with_brackets_as_is(monkeypatch, capsys):
    from netspec.cli import commands as cli
    from netspec.errors import NetspecError

    def broken_app() -> None:
        raise NetspecError("pip install 'netspec[cuda]' for [bold]GPUs[/bold]")

    monkeypatch.setattr(cli, "app", broken_app)
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 1
    assert "error: pip install 'netspec[cuda]' for [bold]GPUs[/bold]" in capsys.readouterr().err
