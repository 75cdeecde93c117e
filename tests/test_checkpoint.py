"""Checkpoint files: layout, round trip, atomic writes, and damaged or mismatched files."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

import netspec
from netspec.training import atomic
from netspec.training import checkpoint as ckpt
from netspec.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_fits,
    load_checkpoint,
    network_fingerprint,
    save_checkpoint,
    spec_meta,
)
from netspec.training.trainer import fit
from tests.test_train import tiny_spec


def run_meta(spec: netspec.Spec | None = None, **entries) -> dict:
    """A whole run's meta (what the trainer writes), for a checkpoint at epoch 3."""
    identity = {
        "format": ckpt.FORMAT,
        "format_version": ckpt.FORMAT_VERSION,
        "netspec_version": netspec.__version__,
        "spec_name": "sample",
        "spec_fingerprint": "0" * 16,
        "network_fingerprint": "1" * 16,
    }
    shuffle = {  # 128-bit integers: they must survive JSON
        "bit_generator": "PCG64",
        "state": {"state": 2**127 + 5, "inc": 2**64 + 3},
        "has_uint32": 0,
        "uinteger": 0,
    }
    meta = {
        **(spec_meta(spec) if spec else identity),
        "epoch": 3,
        "step": 42,
        "batch": 0,
        "seed": 1,
        "batch_size": 16,
        "epochs": 5,
        "dtype": "float32",
        "device": "cpu",
        "rng": {"shuffle": shuffle, "forward_calls": 6},
        "running": {"loss_sum": 0.0, "seen": 0, "correct": 0, "counted": 0, "elapsed": 0.0},
        "monitors": {
            "best": {"metric": "loss", "best": 0.5, "best_epoch": 3, "wait": 0},
            "early_stopping": None,
        },
        "history": [{"epoch": e, "step": 14 * e, "loss": 1.5 - e / 3} for e in (1, 2, 3)],
    }
    meta.update(entries)
    return meta


def sample(spec: netspec.Spec | None = None) -> Checkpoint:
    return Checkpoint(
        state={
            "0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
            "1.num_batches_tracked": np.asarray(7, dtype=np.int64),
        },
        optimizer={"lr": np.asarray(0.01), "step": np.asarray(42), "0.weight/exp_avg": np.ones(3)},
        schedule={"last_epoch": np.asarray(3), "last_lr": np.asarray(0.005)},
        meta=run_meta(spec),
    )


def test_round_trip_keeps_every_array_and_the_meta(tmp_path):
    original = sample()
    path = save_checkpoint(tmp_path / "run" / "last.npz", original)  # creates the folder
    loaded = load_checkpoint(path)
    for part in ("state", "optimizer", "schedule"):
        left, right = getattr(original, part), getattr(loaded, part)
        assert left.keys() == right.keys()
        for key in left:
            assert right[key].dtype == left[key].dtype and np.array_equal(right[key], left[key])
    assert loaded.meta == original.meta  # 128-bit RNG integers survive JSON
    assert (loaded.epoch, loaded.step) == (3, 42)


def test_layout_is_plain_npz_without_pickle(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample())
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == {
            "0.weight",
            "1.num_batches_tracked",
            "optimizer/lr",
            "optimizer/step",
            "optimizer/0.weight/exp_avg",
            "schedule/last_epoch",
            "schedule/last_lr",
            "__meta__",
        }
        meta = json.loads(str(archive["__meta__"]))
    assert meta["format"] == "netspec-checkpoint" and meta["epoch"] == 3


def test_a_trained_checkpoint_records_version_fingerprints_and_rng(tmp_path):
    spec = tiny_spec(tmp_path)
    fit(spec, out=tmp_path, epochs=1)
    meta = load_checkpoint(tmp_path / "last.npz").meta
    assert meta["netspec_version"] == netspec.__version__
    assert meta["spec_fingerprint"] == spec.fingerprint()
    assert meta["network_fingerprint"] == network_fingerprint(spec)
    assert meta["rng"]["shuffle"]["bit_generator"] == "PCG64"
    assert meta["rng"]["forward_calls"] > 0  # the dropout stream's position
    assert (meta["epoch"], meta["step"], meta["batch"], meta["seed"]) == (1, 5, 0, 3)


def test_write_is_atomic_when_it_fails_halfway(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.npz", sample())
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(ckpt.np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, sample())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]  # no temporary left


def test_write_renames_a_temporary_from_the_same_folder(tmp_path, monkeypatch):
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    path = save_checkpoint(tmp_path / "best.npz", sample())
    ((source, target),) = renames
    assert source.parent == path.parent and source != path and target == path
    assert not source.exists()


def test_unwritable_folder_is_a_checkpoint_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        save_checkpoint(blocker / "last.npz", sample())


def _npz(path, **arrays) -> None:
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def _npy(path, array) -> None:
    with open(path, "wb") as file:
        np.save(file, array)


def _meta(**entries) -> np.ndarray:
    return np.asarray(json.dumps({"format": ckpt.FORMAT, "format_version": 2, **entries}))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "checkpoint not found"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text("garbage, not a zip"), r"not a \.npz archive"),
        (lambda p: _npy(p, np.ones(3)), r"a single \.npy array"),
        (lambda p: _npz(p, w=np.ones(2)), "has no '__meta__' entry"),
        (lambda p: _npz(p, __meta__=np.asarray("{not json")), "is damaged"),
        (lambda p: _npz(p, __meta__=np.ones(2)), "is damaged"),
        (lambda p: _npz(p, __meta__=np.asarray("[1, 2]")), "not a JSON object"),
        (lambda p: _npz(p, __meta__=np.asarray("{}")), "no format tag"),
        (lambda p: _npz(p, __meta__=_meta(format_version=99)), "newer than"),
        (lambda p: _npz(p, w=np.array([object()], dtype=object), __meta__=_meta()), "damaged"),
    ],
    ids=[
        "missing",
        "empty",
        "text",
        "npy",
        "no-meta",
        "bad-json",
        "meta-array",
        "meta-list",
        "no-format",
        "newer",
        "pickled",
    ],
)
def test_unreadable_files_are_clear_checkpoint_errors(tmp_path, make, message):
    path = tmp_path / "c.npz"
    make(path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_truncated_and_corrupted_checkpoints_are_damaged(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample())
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(truncated)
    # Flip bytes inside the first member's data: the zip CRC check catches it.
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    start = info.header_offset + 30 + len(info.filename) + 80
    corrupted = tmp_path / "corrupted.npz"
    corrupted.write_bytes(
        data[:start] + bytes(b ^ 0xFF for b in data[start : start + 8]) + data[start + 8 :]
    )
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(corrupted)


def test_check_fits_names_the_mismatch(tmp_path):
    spec = tiny_spec(tmp_path)
    fit(spec, out=tmp_path, epochs=1)
    saved = load_checkpoint(tmp_path / "last.npz")
    assert check_fits(saved, netspec.compile(spec), "last.npz") is None
    wider = tiny_spec(tmp_path, **{"out_features: 3": "out_features: 5"})
    with pytest.raises(
        CheckpointError, match=r"'6\.weight' has shape \(3, 36\), the network expects \(5, 36\)"
    ):
        check_fits(saved, netspec.compile(wider), "last.npz")
    no_bias = tiny_spec(tmp_path, **{"out_features: 3}": "out_features: 3, bias: false}"})
    with pytest.raises(CheckpointError, match=r"unexpected 6\.bias") as info:
        check_fits(saved, netspec.compile(no_bias), "last.npz")
    assert "saved from spec 'tiny'" in str(info.value) and info.value.hint
    other_dropout = tiny_spec(tmp_path, **{"p: 0.25": "p: 0.1"})
    warning = check_fits(saved, netspec.compile(other_dropout), "last.npz")
    assert warning and "different network description" in warning


def test_checkpoints_hold_numpy_whatever_the_device(tmp_path):
    class FakeDeviceArray:  # what CuPy arrays offer: .get() copies to the host
        def __init__(self, value):
            self.value = value

        def get(self):
            return self.value

    state = {"0.weight": FakeDeviceArray(np.ones((2, 2), dtype=np.float32))}
    path = save_checkpoint(tmp_path / "c.npz", Checkpoint(state=state, meta=sample().meta))
    loaded = load_checkpoint(path)
    assert isinstance(loaded.state["0.weight"], np.ndarray)
    assert loaded.state["0.weight"].dtype == np.float32
