"""Nothing lost, nothing hangs (issue 9): `netspec train` killed at seeded random points
with SIGINT, SIGTERM and SIGKILL, then resumed to the end, ends bit for bit as a run that
was never stopped. Bounded: one chain of a handful of short processes (~15-30 s)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest

from netspec.training.checkpoint import load_checkpoint
from netspec.training.run_folder import LOCK_NAME
from netspec.training.trainer import fit
from tests.test_train import TINY, assert_same_checkpoint, tiny_spec, without_time

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")

# The tiny spec, longer: 10 epochs of 25 batches, so kills land inside epochs too.
FAULT_SPEC = TINY.replace("epochs: 4", "epochs: 10").replace("samples: 90", "samples: 500")
KILLS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL] * 2
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}
SEED = 9


def start(spec_path, out, resume: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "netspec.cli", "train", str(spec_path), "--out", str(out)]
    if resume:
        args += ["--resume", str(out / "last.npz")]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_after_an_epoch(process: subprocess.Popen, sig: int, delay: float) -> str:
    """Send `sig` `delay` seconds after the first epoch line (or never, if the run ends
    first); returns the process's stderr."""
    seen = []
    for line in process.stderr:  # type: ignore[union-attr]
        seen.append(line)
        if line.startswith(("epoch ", "warning: nothing to do")):
            time.sleep(delay)
            process.send_signal(sig)
            break
    rest = process.communicate(timeout=60)[1]
    return "".join(seen) + rest


def test_kills_at_random_points_then_resume_end_bit_for_bit(tmp_path):
    started = time.perf_counter()
    spec = tiny_spec(tmp_path, FAULT_SPEC)
    spec_path = tmp_path / "tiny.yaml"
    straight = fit(spec, out=tmp_path / "straight")
    rng = random.Random(SEED)
    out = tmp_path / "killed"
    survived, after_kill = 0, None
    for sig in KILLS:
        resume = (out / "last.npz").exists()
        process = start(spec_path, out, resume)
        stderr = kill_after_an_epoch(process, sig, rng.uniform(0.0, 0.08))
        assert "Traceback" not in stderr, stderr
        if after_kill is not None:  # the run after a SIGKILL found its stale lock
            assert "took over the lock" in stderr, stderr
            after_kill = None
        if process.returncode == 0:
            continue  # it finished before the signal came
        assert process.returncode == EXIT[sig], (sig, process.returncode, stderr)
        survived += 1
        if sig == signal.SIGKILL:
            after_kill = sig
        else:
            assert (
                stderr.rstrip()
                .splitlines()[-1]
                .startswith(
                    "terminated (SIGTERM) at " if sig == signal.SIGTERM else "interrupted at "
                )
            ), stderr
    final = start(spec_path, out, (out / "last.npz").exists())
    stdout, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    seconds = time.perf_counter() - started
    print(f"{survived} interruptions survived in {seconds:.1f} s")
    assert survived >= 4, stderr  # most kills land inside the run

    last = load_checkpoint(out / "last.npz")
    assert_same_checkpoint(load_checkpoint(tmp_path / "straight" / "last.npz"), last)
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert without_time(log) == without_time(straight.history)
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp") or p.name == LOCK_NAME]
    assert leftovers == []
    best = load_checkpoint(out / "best.npz")
    assert best.epoch == last.meta["monitors"]["best"]["best_epoch"]  # the pair agrees
    assert_same_checkpoint(load_checkpoint(tmp_path / "straight" / "best.npz"), best)
