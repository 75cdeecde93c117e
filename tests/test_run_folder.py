"""Run folders (issue 9): runs never overwrite each other, one trainer per folder, what
crashes leave behind, SIGTERM, and resuming a run that is already finished."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from netspec.data.digits import read_digits
from netspec.training.checkpoint import load_checkpoint
from netspec.training.run_folder import (
    LOCK_NAME,
    RunExistsError,
    RunLock,
    RunLockedError,
    new_version_folder,
)
from netspec.training.trainer import Callback, TrainingError, fit
from tests.test_train import BATCHES, Recorder, tiny_spec

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def warnings_of(recorder: Recorder) -> list[str]:
    return [e[1] for e in recorder.events if e[0] == "on_warning"]


# -- never overwrite ------------------------------------------------------------------------
def test_a_folder_that_holds_a_run_is_refused_without_overwrite(tmp_path):
    spec = tiny_spec(tmp_path)
    out = tmp_path / "run"
    fit(spec, out=out, epochs=1)
    kept = (out / "best.npz").read_bytes(), (out / "metrics.jsonl").read_bytes()
    with pytest.raises(RunExistsError) as info:
        fit(spec, out=out, epochs=2)
    assert info.value.folder == out and info.value.files == [
        "last.npz",
        "best.npz",
        "metrics.jsonl",
    ]
    assert "--" not in str(info.value) and "--" not in info.value.hint  # no CLI flags
    assert kept == ((out / "best.npz").read_bytes(), (out / "metrics.jsonl").read_bytes())
    assert not (out / LOCK_NAME).exists()
    result = fit(spec, out=out, epochs=2, overwrite=True)
    assert result.epochs == 2 and load_checkpoint(out / "best.npz").meta["history"][0]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_overwrite_removes_the_old_run_files_first(tmp_path):
    spec = tiny_spec(tmp_path)
    out = tmp_path / "run"
    fit(spec, out=out, epochs=1)

    class Stop(Callback):
        def on_batch_end(self, epoch, batch, batches, logs):
            raise KeyboardInterrupt

    fit(spec, out=out, overwrite=True, callbacks=[Stop()])
    assert not (out / "best.npz").exists()  # never the old run's best beside the new last
    assert load_checkpoint(out / "last.npz").step == 1


def test_an_empty_folder_or_an_empty_log_is_no_run(tmp_path):
    spec = tiny_spec(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("")  # killed before epoch 1 ended
    assert fit(spec, out=tmp_path / "run", epochs=1).epochs == 1


def test_version_folders_count_up_from_zero(tmp_path):
    root = tmp_path / "runs" / "tiny"
    assert new_version_folder(root).name == "version_0"
    (root / "version_7").mkdir()
    (root / "notes").mkdir()
    assert new_version_folder(root).name == "version_8"
    assert new_version_folder(root).name == "version_9"


# -- the lock -------------------------------------------------------------------------------
def test_a_second_trainer_on_a_locked_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    lock = RunLock.acquire(out)
    try:
        owner = json.loads((out / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(RunLockedError, match=f"in use by another trainer \\(pid {os.getpid()}"):
            fit(tiny_spec(tmp_path), out=out, epochs=1)
        assert (out / LOCK_NAME).exists()  # the refused one leaves the holder's lock alone
    finally:
        lock.release()
    assert not (out / LOCK_NAME).exists()
    assert fit(tiny_spec(tmp_path), out=out, epochs=1).epochs == 1


def test_a_stale_lock_of_a_dead_process_is_taken_over_saying_so(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    pid = dead_pid()
    owner = {"pid": pid, "host": socket.gethostname(), "started": "earlier"}
    (out / LOCK_NAME).write_text(json.dumps(owner))
    recorder = Recorder()
    fit(tiny_spec(tmp_path), out=out, epochs=1, callbacks=[recorder])
    assert any(f"pid {pid}" in w and "no longer running" in w for w in warnings_of(recorder))
    assert not (out / LOCK_NAME).exists()


def test_a_lock_of_another_host_is_respected(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    owner = {"pid": dead_pid(), "host": "elsewhere.invalid"}
    (out / LOCK_NAME).write_text(json.dumps(owner))
    with pytest.raises(RunLockedError, match="on elsewhere.invalid"):
        fit(tiny_spec(tmp_path), out=out, epochs=1)


def test_the_lock_is_released_when_training_fails(tmp_path, monkeypatch):
    monkeypatch.setattr("netspec.training.run.loss_value", lambda value: float("nan"))
    with pytest.raises(TrainingError):
        fit(tiny_spec(tmp_path), out=tmp_path / "run")
    assert not (tmp_path / "run" / LOCK_NAME).exists()


# -- what crashes leave behind, links --------------------------------------------------------
def test_temporaries_of_dead_writers_are_removed_on_resume(tmp_path):
    spec = tiny_spec(tmp_path)
    out = tmp_path / "run"
    fit(spec, out=out, epochs=1)
    stale = out / f".last.npz.{dead_pid()}.0badf00d.tmp"  # a SIGKILL mid-write leaves this
    stale.write_bytes(b"PK half a checkpoint")
    live = out / ".last.npz.1.0badf00d.tmp"  # pid 1 runs: maybe still writing, kept
    live.write_bytes(b"PK")
    recorder = Recorder()
    fit(spec, out=out, epochs=2, callbacks=[recorder], resume=out / "last.npz")
    assert not stale.exists() and live.exists()
    assert any(stale.name in w for w in warnings_of(recorder))


def test_a_symlinked_metrics_log_is_refused_and_its_target_kept(tmp_path):
    spec = tiny_spec(tmp_path)
    out = tmp_path / "run"
    fit(spec, out=out, epochs=1)
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (out / "metrics.jsonl").unlink()
    (out / "metrics.jsonl").symlink_to(target)
    with pytest.raises(TrainingError, match="metrics.jsonl is a symbolic link") as info:
        fit(spec, out=out, epochs=2, resume=out / "last.npz")
    assert "--" not in str(info.value)
    assert target.read_text() == "keep me\n"
    fit(spec, out=out, epochs=1, overwrite=True)  # overwriting removes the link itself
    assert target.read_text() == "keep me\n" and not (out / "metrics.jsonl").is_symlink()


def test_a_metrics_log_linked_after_the_start_is_not_written_through(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")

    class Link(Callback):
        def on_epoch_start(self, epoch, batches):
            log = tmp_path / "run" / "metrics.jsonl"
            log.unlink()
            log.symlink_to(target)

    with pytest.raises(TrainingError, match="is a symbolic link"):
        fit(tiny_spec(tmp_path), out=tmp_path / "run", epochs=1, callbacks=[Link()])
    assert target.read_text() == "keep me\n"


# -- the learning rate on resume --------------------------------------------------------------
def test_a_changed_lr_on_resume_warns_that_the_checkpoints_rate_goes_on(tmp_path):
    no_schedule = {"  lr_schedule: {CosineAnnealingLR: {T_max: 4}}\n": ""}
    fit(tiny_spec(tmp_path, **no_schedule), out=tmp_path / "run", epochs=1)
    last = tmp_path / "run" / "last.npz"
    changed = tiny_spec(tmp_path, **no_schedule, **{"lr: 0.01": "lr: 0.5"})
    recorder = Recorder()
    result = fit(changed, out=tmp_path / "run", epochs=2, resume=last, callbacks=[recorder])
    assert [m["lr"] for m in result.history] == [0.01, 0.01]  # what actually happens
    said = warnings_of(recorder)
    assert not any(w.endswith("going on with the spec's current ones") for w in said)
    assert any(
        "the spec's learning rate is 0.5, but the run started at 0.01: resuming goes on at "
        "the checkpoint's learning rate 0.01" in w
        for w in said
    ), said
    recorder = Recorder()
    result = fit(changed, out=tmp_path / "run", epochs=3, lr=0.3, resume=last, callbacks=[recorder])
    assert result.history[-1]["lr"] == 0.01
    assert any("learning rate 0.3 is not used" in w for w in warnings_of(recorder))


def test_resuming_with_the_same_lr_says_nothing_about_it(tmp_path):
    spec = tiny_spec(tmp_path)  # a schedule moves the rate: not a change of the spec's lr
    fit(spec, out=tmp_path / "run", epochs=2)
    recorder = Recorder()
    fit(spec, out=tmp_path / "run", resume=tmp_path / "run" / "last.npz", callbacks=[recorder])
    assert not [w for w in warnings_of(recorder) if "learning rate" in w]


# -- finished runs --------------------------------------------------------------------------
def test_resuming_an_early_stopped_run_does_nothing_each_time(tmp_path):
    stalled = tiny_spec(
        tmp_path,
        **{
            "epochs: 4": "epochs: 8",
            "  seed: 3": "  seed: 3\n  early_stopping: {patience: 2, min_delta: 1.0e+9}",
        },
    )
    out = tmp_path / "run"
    assert fit(stalled, out=out).epochs == 3
    before = (out / "last.npz").read_bytes()
    for _ in range(2):  # a retry loop: never one more epoch
        recorder = Recorder()
        result = fit(stalled, out=out, resume=out / "last.npz", callbacks=[recorder])
        assert result.stopped == "early_stopping" and result.epochs == 3
        assert len(result.history) == 3
        assert any(
            "nothing to do: the run stopped early after epoch 3" in w for w in warnings_of(recorder)
        )
        assert not [e for e in recorder.events if e[0] == "on_batch_end"]
    assert (out / "last.npz").read_bytes() == before


# -- SIGTERM ---------------------------------------------------------------------------------
@posix_only
def test_sigterm_stops_at_the_next_batch_boundary_like_ctrl_c(tmp_path):
    class Terminate(Callback):
        def on_batch_end(self, epoch, batch, batches, logs):
            if (epoch, batch) == (2, 1):
                os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    spec = tiny_spec(tmp_path)
    result = fit(spec, out=tmp_path / "b", callbacks=[Terminate()])
    assert result.interrupted and result.signal == "SIGTERM" and result.saved_on_interrupt
    saved = load_checkpoint(tmp_path / "b" / "last.npz")
    assert (saved.epoch, saved.meta["batch"], saved.step) == (1, 2, BATCHES + 2)
    assert signal.getsignal(signal.SIGTERM) is before
    fit(spec, out=tmp_path / "b", resume=tmp_path / "b" / "last.npz")
    fit(spec, out=tmp_path / "a")
    straight, resumed = (load_checkpoint(tmp_path / d / "last.npz") for d in "ab")
    assert all((straight.state[k] == resumed.state[k]).all() for k in straight.state)


def test_a_keyboard_interrupt_behind_an_import_error_is_an_interrupt(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def interrupted_import(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("initialization failed") from KeyboardInterrupt()
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    with pytest.raises(KeyboardInterrupt):
        read_digits()
