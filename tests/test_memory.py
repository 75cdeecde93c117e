"""Training memory: the estimate, `netspec check`'s warning[memory], the trainer's refusal
before it allocates, and parameters initialised without a float64 copy (issue 8)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import netspec
from netspec.frontend.training_memory import training_memory
from netspec.memory import available_memory, format_bytes
from netspec.training.trainer import Trainer, TrainingError
from tests.test_cli_train import run, spec_file

SMALL = """
name: small
input: {shape: [10]}
layers:
  - Linear: {in_features: 10, out_features: 3}
loss: CrossEntropyLoss
train: {batch_size: 4, optimizer: {Adam: {lr: 0.01}}}
data: {source: synthetic, samples: 20}
"""
# 20 GB of float32 parameters in one layer: more than a test machine has, fewer than 2**63.
BIG = SMALL.replace("[10]", "[100000]").replace(
    "in_features: 10, out_features: 3", "in_features: 100000, out_features: 50000"
)


def estimate(text: str, batch_size: int = 4, optimizer=None):
    spec = netspec.loads(text)
    return training_memory(spec, spec.graph, batch_size, optimizer)


def test_the_estimate_counts_parameters_gradients_adam_state_and_activations():
    result = estimate(SMALL)
    assert (result.parameters, result.gradients, result.optimizer) == (33 * 4, 33 * 4, 66 * 4)
    assert result.activations == 2 * (10 + 3) * 4 * 4  # input and output, kept and their grads
    assert result.on_device == 33 * 4 * 4 + 2 * 13 * 4 * 4
    assert result.total == result.on_device + result.data
    assert result.largest == (0, "0", 33 * 4)
    assert "Adam state 264 B" in result.describe() and "at batch 4" in result.describe()


def test_optimizer_state_follows_the_optimizer():
    from netspec.optim import SGD, Adam

    assert estimate(SMALL, optimizer=SGD(lr=0.1)).optimizer == 0
    assert estimate(SMALL, optimizer=SGD(lr=0.1, momentum=0.9)).optimizer == 33 * 4
    assert estimate(SMALL, optimizer=Adam(amsgrad=True)).optimizer == 3 * 33 * 4
    float64 = estimate(SMALL.replace("{shape: [10]}", "{shape: [10], dtype: float64}"))
    assert float64.parameters == 33 * 8


def test_format_bytes():
    assert [format_bytes(n) for n in (512, 3500, 5 * 2**20, 12 * 2**30, 3 * 2**40)] == [
        "512 B",
        "3.4 KiB",
        "5.0 MiB",
        "12.0 GiB",
        "3.0 TiB",
    ]


def test_this_machine_says_how_much_memory_it_has():
    available = available_memory()
    assert available is None or available > 0


def test_check_warns_at_the_largest_layer_when_training_would_not_fit(tmp_path):
    result = run("check", spec_file(tmp_path, BIG))
    assert result.exit_code == 0  # a warning: legal, only suspect
    assert "tiny.yaml:5:5: warning[memory]: training needs about" in result.stderr
    assert "layer '0' holds 18.6 GiB of parameters" in result.stderr
    assert run("check", spec_file(tmp_path, BIG), "--strict").exit_code == 1
    assert "warning[memory]" not in run("check", spec_file(tmp_path, SMALL)).stderr


def test_check_points_at_the_input_when_activations_do_not_fit(tmp_path, monkeypatch):
    monkeypatch.setattr("netspec.memory.available_memory", lambda device="cpu": 1000)
    result = run("check", spec_file(tmp_path, SMALL.replace("batch_size: 4", "batch_size: 100")))
    assert "tiny.yaml:3:1: warning[memory]:" in result.stderr
    assert "more than the 1000 B this machine has available" in result.stderr


def test_train_refuses_before_allocating_anything(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("allocated")

    monkeypatch.setattr("netspec.training.setup.prepare", never)
    monkeypatch.setattr("netspec.training.trainer.prepare", never)
    spec = netspec.load(spec_file(tmp_path, BIG))
    with pytest.raises(TrainingError, match=r"^training small needs about .* available on cpu$"):
        Trainer(spec).fit()
    result = run("train", spec_file(tmp_path, BIG), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "more than the" in errors[0]
    assert "hint: use fewer or smaller layers, or a smaller batch size" in result.stderr
    assert not (tmp_path / "run").exists()


# -- initialisation -------------------------------------------------------------------------
LINEAR = """
name: wide
input: {shape: [1000]}
layers:
  - Linear: {in_features: 1000, out_features: 1000}
  - Conv2d: {in_channels: 1, out_channels: 4, kernel_size: 3}
"""


def test_float32_parameters_are_drawn_without_a_float64_copy():
    spec = netspec.loads(
        LINEAR.replace("  - Conv2d: {in_channels: 1, out_channels: 4, kernel_size: 3}\n", "")
    )
    tracemalloc.start()
    net = netspec.compile(spec, dtype="float32", seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    weight = net.parameters()["0.weight"]
    assert weight.dtype == np.float32
    # The weight itself and its gradient (4 MB each); a float64 copy would add 8 MB.
    assert peak < 2 * weight.nbytes + 2**20, peak


def test_seeded_init_is_what_float64_draws_cast_to_float32():
    spec = netspec.loads(
        "name: mix\ninput: {shape: [3, 8, 8]}\nlayers:\n"
        "  - Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 3}\n"
        "  - BatchNorm2d: {num_features: 4}\n  - Flatten\n"
        "  - Linear: {in_features: 144, out_features: 5}\n"
    )
    wide = netspec.compile(spec, dtype="float64", seed=7).state_dict()
    narrow = netspec.compile(spec, dtype="float32", seed=7).state_dict()
    assert wide.keys() == narrow.keys()
    for key, value in wide.items():
        assert narrow[key].dtype == (np.float32 if value.dtype == np.float64 else value.dtype)
        assert np.array_equal(narrow[key], value.astype(narrow[key].dtype)), key
    rng = np.random.default_rng(7)  # PyTorch's order: conv weight, conv bias, ..., linear
    bound = 1 / np.sqrt(27)
    assert np.array_equal(wide["0.weight"], rng.uniform(-bound, bound, (4, 3, 3, 3)))


def test_a_data_set_whose_size_is_known_counts_float64_generation_and_the_cast_copy():
    text = SMALL.replace("samples: 20", "samples: 1000")
    assert estimate(text).data == 1000 * 10 * (8 + 4)


def test_a_huge_synthetic_data_set_warns_at_samples_and_train_refuses(tmp_path):
    text = SMALL.replace("samples: 20", "samples: 1000000000000")
    spec = netspec.loads(text, source="m.yaml")
    (warning,) = [w for w in spec.warnings if w.code == "memory"]
    line = text.splitlines().index("data: {source: synthetic, samples: 1000000000000}") + 1
    assert (warning.line, warning.col) == (line, 27)
    assert "the data set alone is" in warning.message and warning.hint == "generate fewer samples"
    with pytest.raises(netspec.NetspecError, match="data 109.1 TiB"):
        netspec.fit(spec, out=tmp_path / "run")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
