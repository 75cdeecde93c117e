"""The trainer: exact resume, faults, early stopping, the metrics log, evaluation, digits."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time

import numpy as np
import pytest

import netspec
from netspec.cli.plot import sparkline, sparklines
from netspec.cli.progress import interrupt_line
from netspec.errors import NetspecError
from netspec.training.checkpoint import load_checkpoint
from netspec.training.metrics import Monitor as _Monitor
from netspec.training.trainer import (
    Callback,
    NonFiniteLossError,
    Trainer,
    TrainingError,
    evaluate,
    fit,
)

# 90 synthetic samples: 72 to train (5 batches of 16, the last one of 8), 18 to validate.
# Dropout and BatchNorm make the dropout RNG and the running statistics part of the state.
TINY = """
name: tiny
input: {shape: [1, 6, 6]}
layers:
  - Conv2d: {in_channels: 1, out_channels: 4, kernel_size: 3, padding: 1, bias: false}
  - BatchNorm2d: {num_features: 4}
  - ReLU
  - MaxPool2d: {kernel_size: 2}
  - Flatten
  - Dropout: {p: 0.25}
  - Linear: {in_features: 36, out_features: 3}
loss: CrossEntropyLoss
train:
  epochs: 4
  batch_size: 16
  optimizer: {Adam: {lr: 0.01}}
  lr_schedule: {CosineAnnealingLR: {T_max: 4}}
  seed: 3
data: {source: synthetic, samples: 90, validation_split: 0.2}
"""
BATCHES = 5


def tiny_spec(tmp_path, text: str = TINY, **replace: str) -> netspec.Spec:
    """The tiny spec, with `old=new` line replacements, written beside its run folders."""
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "tiny.yaml"
    path.write_text(text, encoding="utf-8")
    return netspec.load(path)


def without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "seconds"} for m in history]


def assert_same_checkpoint(a, b) -> None:
    """Bit-for-bit equal weights, buffers, optimizer and schedule state, RNG and history."""
    for part in ("state", "optimizer", "schedule"):
        left, right = getattr(a, part), getattr(b, part)
        assert left.keys() == right.keys()
        for key in left:
            assert left[key].dtype == right[key].dtype, key
            assert np.array_equal(left[key], right[key]), f"{part} {key}"
    for key in ("epoch", "step", "batch", "rng", "monitors"):
        assert a.meta[key] == b.meta[key], key
    assert without_time(a.meta["history"]) == without_time(b.meta["history"])


class StopAt(Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) after batch `batch` of epoch `epoch`."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, epoch, batch, batches, logs):
        if (epoch, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt


class Recorder(Callback):
    def __init__(self):
        self.events: list[tuple] = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda *args: self.events.append((name, *args))
        return super().__getattribute__(name)


# -- resume ---------------------------------------------------------------------------------
def test_two_plus_two_epochs_equal_four_bit_for_bit(tmp_path):
    spec = tiny_spec(tmp_path)
    straight = Trainer(spec, out=tmp_path / "a").fit()
    Trainer(spec, out=tmp_path / "b", epochs=2).fit()
    resumed = Trainer(spec, out=tmp_path / "b").fit(resume=tmp_path / "b" / "last.npz")
    assert straight.epochs == resumed.epochs == 4
    assert straight.step == resumed.step == 4 * BATCHES
    assert without_time(straight.history) == without_time(resumed.history)
    assert_same_checkpoint(
        load_checkpoint(tmp_path / "a" / "last.npz"), load_checkpoint(tmp_path / "b" / "last.npz")
    )
    logs = [(tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in "ab"]
    assert [without_time([json.loads(x) for x in log]) for log in logs] == [
        without_time(straight.history)
    ] * 2


def test_ctrl_c_mid_epoch_saves_a_checkpoint_that_resumes_exactly(tmp_path):
    spec = tiny_spec(tmp_path)
    Trainer(spec, out=tmp_path / "a").fit()
    stopped = Trainer(spec, out=tmp_path / "b", callbacks=[StopAt(2, 3)]).fit()
    assert stopped.interrupted and stopped.stopped == "interrupted"
    assert (stopped.epochs, stopped.batch, stopped.step) == (1, 3, BATCHES + 3)
    saved = load_checkpoint(tmp_path / "b" / "last.npz")
    assert (saved.epoch, saved.meta["batch"], saved.step) == (1, 3, BATCHES + 3)
    Trainer(spec, out=tmp_path / "b").fit(resume=tmp_path / "b" / "last.npz")
    assert_same_checkpoint(
        load_checkpoint(tmp_path / "a" / "last.npz"), load_checkpoint(tmp_path / "b" / "last.npz")
    )


def test_a_real_sigint_stops_at_the_next_batch_boundary(tmp_path):
    if sys.platform == "win32":
        pytest.skip("needs POSIX signals")

    class Interrupt(Callback):
        def on_batch_end(self, epoch, batch, batches, logs):
            if (epoch, batch) == (1, 2):
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    result = Trainer(tiny_spec(tmp_path), out=tmp_path, callbacks=[Interrupt()]).fit()
    assert result.interrupted
    # Deferred: the batch after the signal completes, then the run stops in one piece.
    assert load_checkpoint(tmp_path / "last.npz").meta["batch"] == 3
    assert signal.getsignal(signal.SIGINT) is before


def test_an_interrupt_inside_a_step_keeps_the_last_good_checkpoint(tmp_path):
    class BreakStep(Callback):
        trainer: Trainer

        def on_epoch_end(self, epoch, metrics):
            def interrupted_step():  # as a second Ctrl-C inside the update would
                raise KeyboardInterrupt

            self.trainer.optimizer.step = interrupted_step

    breaker = BreakStep()
    trainer = Trainer(tiny_spec(tmp_path), out=tmp_path, callbacks=[breaker])
    breaker.trainer = trainer
    result = trainer.fit()
    assert result.interrupted and not result.saved_on_interrupt
    assert result.last_checkpoint == tmp_path / "last.npz"
    kept = load_checkpoint(tmp_path / "last.npz")
    assert (kept.epoch, kept.meta["batch"]) == (1, 0)  # half a step is never saved
    assert "the last checkpoint is" in interrupt_line(result)


def test_resume_refuses_another_seed_and_another_network(tmp_path):
    spec = tiny_spec(tmp_path)
    Trainer(spec, out=tmp_path / "a", epochs=1).fit()
    last = tmp_path / "a" / "last.npz"
    with pytest.raises(TrainingError, match="seed"):
        Trainer(spec, seed=4).fit(resume=last)
    wider = tiny_spec(tmp_path, **{"out_features: 3": "out_features: 4"})
    with pytest.raises(netspec.NetspecError, match=r"does not fit.*'6\.weight' has shape"):
        Trainer(wider).fit(resume=last)
    other_dropout = tiny_spec(tmp_path, **{"p: 0.25": "p: 0.5"})
    with pytest.raises(netspec.NetspecError, match="different network"):
        Trainer(other_dropout).fit(resume=last)


def test_resume_with_no_epochs_left_does_nothing(tmp_path):
    spec = tiny_spec(tmp_path)
    Trainer(spec, out=tmp_path, epochs=2).fit()
    recorder = Recorder()
    result = Trainer(spec, out=tmp_path, epochs=2, callbacks=[recorder]).fit(
        resume=tmp_path / "last.npz"
    )
    assert result.epochs == 2 and len(result.history) == 2
    warnings = [e[1] for e in recorder.events if e[0] == "on_warning"]
    assert any("nothing to do" in w for w in warnings)


# -- faults ---------------------------------------------------------------------------------
def test_nan_loss_stops_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    class Poison(Callback):
        trainer: Trainer

        def on_epoch_end(self, epoch, metrics):
            if epoch == 1:  # the next step's loss is NaN
                self.trainer.setup.net.parameters()["6.weight"][0, 0] = np.nan

    poison = Poison()
    trainer = Trainer(tiny_spec(tmp_path), out=tmp_path, callbacks=[poison])
    poison.trainer = trainer
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    message = str(info.value)
    assert f"epoch 2, step {BATCHES + 1}" in message and "nan" in message
    assert str(tmp_path / "last.npz") in message
    assert info.value.hint and "learning rate" in info.value.hint
    kept = load_checkpoint(tmp_path / "last.npz")
    assert kept.epoch == 1 and all(np.isfinite(v).all() for v in kept.state.values())
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_spec_without_loss_or_data_is_a_clear_error(tmp_path):
    no_loss = tiny_spec(tmp_path, **{"loss: CrossEntropyLoss\n": ""})
    with pytest.raises(TrainingError, match="no `loss:` section") as info:
        fit(no_loss)
    assert "CrossEntropyLoss" in info.value.hint
    no_data = tiny_spec(
        tmp_path, **{"data: {source: synthetic, samples: 90, validation_split: 0.2}": ""}
    )
    with pytest.raises(TrainingError, match="no `data:` section"):
        fit(no_data)


def test_a_spec_without_train_uses_the_defaults(tmp_path):
    text = TINY[: TINY.index("train:")] + "data: {source: synthetic, samples: 40}\n"
    result = fit(tiny_spec(tmp_path, text), epochs=1)  # Adam, batches of 64, seed 0
    assert result.step == 1 and result.history[0]["lr"] == 1e-3


def test_monitoring_what_is_not_measured_is_a_clear_error(tmp_path):
    no_validation = tiny_spec(
        tmp_path,
        **{
            "validation_split: 0.2": "validation_split: 0.0",
            "  seed: 3": "  seed: 3\n  early_stopping: {}",
        },
    )
    with pytest.raises(TrainingError, match="no validation split"):
        fit(no_validation)
    regression = tiny_spec(
        tmp_path,
        **{
            "loss: CrossEntropyLoss": "loss: MSELoss",
            "  seed: 3": "  seed: 3\n  early_stopping: {monitor: val_accuracy}",
        },
    )
    with pytest.raises(TrainingError, match="only measured for CrossEntropyLoss"):
        fit(regression)


# -- early stopping and monitors -------------------------------------------------------------
def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path):
    stalled = tiny_spec(
        tmp_path,
        **{
            "epochs: 4": "epochs: 6",
            "  seed: 3": "  seed: 3\n  early_stopping: {patience: 2, min_delta: 1.0e+9}",
        },
    )
    result = fit(stalled, out=tmp_path)
    assert result.stopped == "early_stopping"
    assert len(result.history) == 3  # epoch 1 sets the best; 2 and 3 fail to beat it by 1e9
    assert result.best == {
        "monitor": "val_loss",
        "value": result.history[0]["val_loss"],
        "epoch": 1,
    }
    assert load_checkpoint(tmp_path / "best.npz").epoch == 1
    assert load_checkpoint(tmp_path / "last.npz").epoch == 3


def test_monitor_follows_keras_rules():
    loss = _Monitor("val_loss", "auto", min_delta=0.1, patience=2)
    assert loss.mode == "min" and _Monitor("val_accuracy", "auto").mode == "max"
    steps = [(1.0, True), (0.95, False), (0.85, True), (0.9, False), (0.8, False)]
    for epoch, (value, improved) in enumerate(steps, 1):
        assert loss.update({"epoch": epoch, "val_loss": value}) is improved
    assert loss.exhausted and loss.best == 0.85 and loss.best_epoch == 3
    accuracy = _Monitor("accuracy", "max", patience=0)
    assert accuracy.update({"epoch": 1, "accuracy": 0.5})
    assert not accuracy.exhausted
    assert not accuracy.update({"epoch": 2, "accuracy": 0.5})
    assert accuracy.exhausted  # patience 0: the first epoch without improvement stops


def test_reduce_lr_on_plateau_is_stepped_with_val_loss(tmp_path):
    plateau = "{ReduceLROnPlateau: {patience: 0, factor: 0.5, threshold: 10.0}}"
    spec = tiny_spec(tmp_path, **{"{CosineAnnealingLR: {T_max: 4}}": plateau})
    result = fit(spec, epochs=3)
    # threshold 10 (rel): no val_loss ever counts as better after the first, so every
    # later epoch halves the lr.
    assert [m["lr"] for m in result.history] == [0.01, 0.005, 0.0025]


# -- the metrics log, plot and events ---------------------------------------------------------
def test_metrics_log_has_one_object_per_epoch(tmp_path):
    recorder = Recorder()
    result = fit(tiny_spec(tmp_path), out=tmp_path, epochs=3, callbacks=[recorder])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == result.history
    for epoch, metrics in enumerate(result.history, 1):
        assert metrics["epoch"] == epoch and metrics["step"] == epoch * BATCHES
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
            assert isinstance(metrics[key], float), key
        assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["val_accuracy"] <= 1
    names = [e[0] for e in recorder.events]
    assert names[0] == "on_train_start" and names[-1] == "on_train_end"
    assert names.count("on_batch_end") == 3 * BATCHES and names.count("on_epoch_end") == 3
    run = recorder.events[0][1]
    assert (run.train_samples, run.val_samples, run.batches) == (72, 18, BATCHES)
    logs = next(e[4] for e in recorder.events if e[0] == "on_batch_end")
    assert {"loss", "accuracy", "samples_per_second"} <= logs.keys()


def test_metrics_png_is_drawn_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    recorder = Recorder()
    result = fit(tiny_spec(tmp_path), out=tmp_path, epochs=2, callbacks=[recorder])
    assert result.plot_path == tmp_path / "metrics.png"
    assert result.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [e for e in recorder.events if e[0] == "on_warning"]


def test_regression_logs_no_accuracy_and_without_out_writes_nothing(tmp_path):
    spec = tiny_spec(tmp_path, **{"loss: CrossEntropyLoss": "loss: MSELoss"})
    result = fit(spec, epochs=2)
    assert "accuracy" not in result.history[0] and "val_accuracy" not in result.history[0]
    assert result.history[1]["loss"] < result.history[0]["loss"]
    assert result.last_checkpoint is None and result.metrics_path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_without_matplotlib_there_is_no_png_but_sparklines(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = fit(tiny_spec(tmp_path), out=tmp_path, epochs=2)
    assert result.plot_path is None and not (tmp_path / "metrics.png").exists()
    lines = sparklines(result.history)
    assert [name for name, *_ in lines] == ["loss", "val_loss", "accuracy", "val_accuracy"]
    assert all(len(line) == 2 for _, line, _, _ in lines)


def test_sparkline_scales_between_lowest_and_highest():
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert sparkline([2.0, 2.0]) == "▅▅"
    assert sparkline([1.0, None, math.nan, 0.0]) == "█  ▁"
    assert sparkline([]) == ""


# -- evaluation ------------------------------------------------------------------------------
def test_evaluate_reproduces_the_logged_validation_metrics(tmp_path):
    spec = tiny_spec(tmp_path)
    result = fit(spec, out=tmp_path, seed=7)  # the split comes from the checkpoint's seed
    best = result.best
    evaluation = evaluate(spec, tmp_path / "best.npz")
    logged = result.history[best["epoch"] - 1]
    assert evaluation.split == "validation" and evaluation.samples == 18
    assert evaluation.checkpoint_epoch == best["epoch"]
    assert evaluation.loss == logged["val_loss"]
    assert evaluation.accuracy == logged["val_accuracy"]
    assert evaluation.recorded == logged
    matrix = evaluation.confusion
    assert matrix.shape == (3, 3) and matrix.sum() == 18
    assert np.trace(matrix) / 18 == evaluation.accuracy
    assert evaluation.warnings == []


def test_evaluate_warns_when_weights_fit_another_network_description(tmp_path):
    fit(tiny_spec(tmp_path), out=tmp_path, epochs=1)
    other = tiny_spec(tmp_path, **{"p: 0.25": "p: 0.5"})
    evaluation = evaluate(other, tmp_path / "last.npz")
    assert evaluation.warnings and "different network description" in evaluation.warnings[0]


def test_evaluate_errors_are_netspec_errors(tmp_path):
    spec = tiny_spec(tmp_path)
    with pytest.raises(NetspecError, match="not found"):
        evaluate(spec, tmp_path / "missing.npz")
    with pytest.raises(NetspecError, match="unknown device"):
        evaluate(spec, tmp_path / "missing.npz", device="tpu")


# -- the README's main job -------------------------------------------------------------------
@pytest.mark.slow
def test_digits_cnn_reaches_97_percent(tmp_path):
    spec = netspec.load("specs/digits_cnn.yaml")
    started = time.perf_counter()
    result = fit(spec, out=tmp_path)
    seconds = time.perf_counter() - started  # ~6 s on 2 idle cores; not asserted (shared CI)
    final = result.history[-1]
    assert result.stopped == "completed" and final["epoch"] == spec.train.epochs
    assert final["val_accuracy"] >= 0.97, (seconds, result.history)
    evaluation = evaluate(spec, tmp_path / "last.npz")
    assert evaluation.accuracy == final["val_accuracy"]
