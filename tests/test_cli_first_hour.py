"""What a new user meets in the first hour of the CLI: --version, help text, option values
that cannot work, messages that say what happened (issue 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import netspec
from netspec.cli import app
from netspec.cli.progress import run_line
from tests.test_cli_train import no_cupy as no_cupy  # a fixture
from tests.test_cli_train import run, spec_file

runner = CliRunner()


def test_version_prints_the_package_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"netspec {netspec.__version__}\n"


def test_train_help_shows_the_default_folder_in_brackets():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "[runs/<spec name>]" in result.stdout


def test_a_negative_seed_is_bad_usage(tmp_path):
    result = run("train", spec_file(tmp_path), "--seed", "-1", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "--seed" in result.stderr
    assert not (tmp_path / "run").exists()


def test_out_naming_a_file_is_one_clear_line(tmp_path):
    existing = tmp_path / "notes.txt"
    existing.write_text("mine\n")
    result = run("train", spec_file(tmp_path), "--out", str(existing), "--epochs", "1")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: --out {existing} is a file, not a folder"
    assert existing.read_text() == "mine\n"


def test_schema_check_on_a_missing_file_says_missing(tmp_path):
    missing = tmp_path / "none.json"
    result = run("schema", "--check", "-o", str(missing))
    assert result.exit_code == 1
    assert "stale" not in result.stderr
    assert result.stderr.startswith(f"error: {missing} does not exist")
    assert f"netspec schema -o {missing}" in result.stderr


def run_info(**fields):
    from netspec.training.events import RunInfo

    values = dict(
        spec_name="tiny",
        device="cpu",
        epochs=1,
        start_epoch=0,
        batches=1,
        batch_size=72,
        train_samples=72,
        val_samples=18,
        classification=True,
        data_name="synthetic",
        out=None,
        resumed_from=None,
    )
    return RunInfo(**{**values, **fields})


def test_run_line_says_one_batch_and_one_epoch():
    assert run_line(run_info()) == (
        "training tiny on cpu: 72 synthetic samples, 18 for validation, 1 batch of 72, 1 epoch"
    )
    assert "5 batches of 16, 4 epochs" in run_line(run_info(batches=5, batch_size=16, epochs=4))
    assert "1 synthetic sample," in run_line(run_info(train_samples=1, batch_size=1))


def test_a_batch_larger_than_the_data_prints_the_effective_size(tmp_path):
    result = run(
        "train", spec_file(tmp_path), "--epochs", "1", "-b", "500", "-o", str(tmp_path / "r")
    )
    assert result.exit_code == 0, result.output
    assert "1 batch of 72 (batch size 500 clipped to the 72 training samples)" in result.stderr
    assert "batches of 500" not in result.stderr


def test_bench_title_says_one_step(tmp_path):
    result = run("bench", spec_file(tmp_path), "--repeats", "1", "-b", "4")
    assert result.exit_code == 0, result.output
    assert "median of 1 step" in result.stdout and "1 steps" not in result.stdout


def test_nothing_to_do_warning_counts_epochs(tmp_path):
    out = tmp_path / "run"
    spec = spec_file(tmp_path)
    assert run("train", spec, "--out", str(out), "--epochs", "1").exit_code == 0
    result = run(
        "train", spec, "--epochs", "1", "--out", str(out), "--resume", str(out / "last.npz")
    )
    assert result.exit_code == 0, result.output
    assert "1 of 1 epoch is done" in result.stderr


def test_without_matplotlib_the_skipped_plot_is_said_once(tmp_path, monkeypatch):
    monkeypatch.setattr("netspec.training.plot.save_plot", lambda *args, **kwargs: None)
    out = tmp_path / "run"
    result = run("train", spec_file(tmp_path), "--out", str(out), "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert result.output.count("metrics.png") == 1
    assert 'matplotlib is not installed: pip install -e ".[plot]"' in result.output
    assert not (out / "metrics.png").exists()
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
    ]


# -- devices ------------------------------------------------------------------------------------
class FakeCupy:
    """Two GPUs' worth of CuPy, enough for get_xp: which device was made current."""

    def __init__(self, count: int = 2):
        self.used: list[int] = []
        fake = self

        class Device:
            def __init__(self, index: int):
                self.index = index

            def use(self) -> None:
                fake.used.append(self.index)

        class Runtime:
            @staticmethod
            def getDeviceCount() -> int:
                return count

        self.cuda = type("cuda", (), {"Device": Device, "runtime": Runtime})


def test_cuda_index_makes_that_gpu_current(monkeypatch):
    from netspec.ops import backend

    fake = FakeCupy(count=2)
    monkeypatch.setattr(backend, "_cupy", fake)
    assert backend.get_xp("cuda:1") is fake and fake.used == [1]
    assert backend.get_xp("cuda") is fake and fake.used == [1]  # the current one
    with pytest.raises(backend.DeviceError, match=r"'cuda:2' does not exist: .* 2 GPUs"):
        backend.get_xp("cuda:2")


@pytest.mark.parametrize("device", ["cuda:", "cuda:x", "cuda:-1", "cuda:1.0", "cuda:١"])
def test_a_malformed_cuda_index_is_one_line(tmp_path, device):
    result = run("train", spec_file(tmp_path), "--device", device, "-o", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: unknown device '{device}': after 'cuda:' comes a GPU index, 0 or more (cuda:1)"
    ]


def test_cuda_without_cupy_says_the_readme_install_line(tmp_path, no_cupy):
    from netspec.ops.backend import CUPY_MISSING

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[cuda]"' in readme and 'pip install -e ".[cuda]"' in CUPY_MISSING
    assert "--" not in CUPY_MISSING  # the library names no CLI flags
    result = run("bench", spec_file(tmp_path), "--device", "cuda:1")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {CUPY_MISSING}"]


def test_the_trainer_refuses_a_file_as_its_folder(tmp_path):
    from netspec.training.trainer import Trainer, TrainingError
    from tests.test_train import tiny_spec

    existing = tmp_path / "run"
    existing.write_text("")
    with pytest.raises(TrainingError, match="is a file, not a folder"):
        Trainer(tiny_spec(tmp_path), out=existing).fit()


def test_a_divergent_run_ends_in_the_clean_message_without_numpy_warnings(tmp_path):
    import warnings

    from netspec.training.trainer import NonFiniteLossError, Trainer
    from tests.test_train import tiny_spec

    spec = tiny_spec(tmp_path, **{"{Adam: {lr: 0.01}}": "{SGD: {lr: 1.0e+30}}"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(NonFiniteLossError, match="the loss became"):
            Trainer(spec, out=tmp_path / "run").fit()
    assert [str(w.message) for w in caught] == []
    result = run("train", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "cli"))
    assert result.exit_code == 1
    assert "RuntimeWarning" not in result.output
    assert result.stderr.splitlines()[1].startswith("error: the loss became nan at epoch 1")


@pytest.mark.parametrize("command", ["train", "bench"])
def test_running_out_of_memory_anyway_is_one_line(tmp_path, monkeypatch, command):
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("netspec.training.trainer.Trainer.fit", exhausted)
    monkeypatch.setattr("netspec.training.bench.bench", exhausted)
    option = ["-o", str(tmp_path / "run")] if command == "train" else ["-r", "1"]
    result = run(command, spec_file(tmp_path), *option)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: out of memory: ")
