"""Checkpoint integrity: checksums, bounded loading, a strict meta, and bit flips."""

from __future__ import annotations

import contextlib
import json
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from netspec.training import checkpoint as ckpt
from netspec.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from netspec.training.checkpoint_meta import meta_checksum
from tests.test_checkpoint import run_meta, sample


def _rewrite(path, arrays: dict, document: dict, *, resign: bool = True) -> None:
    """Write `arrays` with `document` as __meta__ (its checksum recomputed when `resign`)."""
    if resign:
        document = {k: v for k, v in document.items() if k != "checksum"}
        with contextlib.suppress(ValueError):  # not finite: no checksum can hold it
            document["checksum"] = meta_checksum(document)
    with open(path, "wb") as file:
        np.savez(file, **arrays, __meta__=np.asarray(json.dumps(document, sort_keys=True)))


def _parts(path):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k != "__meta__"}
        document = json.loads(str(archive["__meta__"]))
    return arrays, document


def test_an_array_that_differs_from_its_checksum_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample())
    arrays, document = _parts(path)
    arrays["0.weight"] = arrays["0.weight"] + 1  # same dtype and shape, other values
    _rewrite(path, arrays, document)
    with pytest.raises(CheckpointError, match="'0.weight' does not match its checksum"):
        load_checkpoint(path)


def test_meta_covered_by_its_own_checksum(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample())
    arrays, document = _parts(path)
    document["epoch"] = 2
    _rewrite(path, arrays, document, resign=False)
    with pytest.raises(CheckpointError, match="'__meta__' does not match its checksum"):
        load_checkpoint(path)


def test_format_1_without_checksums_is_refused_clearly(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample())
    arrays, document = _parts(path)
    document = {k: v for k, v in document.items() if k not in ("arrays", "checksum")}
    _rewrite(path, arrays, {**document, "format_version": 1}, resign=False)
    with pytest.raises(CheckpointError, match="format 1, which has no checksums"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("entries", "where"),
    [
        ({"format_version": "2"}, "format_version"),
        ({"epoch": 1e400}, None),  # infinity: no JSON number, and no checksum can hold it
        ({"batch_size": 0}, "batch_size"),
        ({"seed": "x"}, "seed"),
        ({"seed": -1}, "seed"),
        ({"step": -1}, "step"),
        (
            {
                "monitors": {
                    "best": {"metric": "loss", "best": "high", "best_epoch": 3, "wait": 0},
                    "early_stopping": None,
                }
            },
            "monitors.best.best",
        ),
        ({"history": [{"epoch": 1, "step": 1, "loss": "x"}] * 3}, "history"),
        ({"extra": 1}, "extra"),
    ],
    ids=[
        "version-str",
        "epoch-inf",
        "batch0",
        "seed-str",
        "seed-neg",
        "step-neg",
        "best-str",
        "hist",
        "extra",
    ],
)
def test_crafted_meta_is_refused_in_one_line(tmp_path, entries, where):
    path = save_checkpoint(tmp_path / "c.npz", sample())
    arrays, document = _parts(path)
    _rewrite(path, arrays, {**document, **entries})
    pattern = "damaged" if where is None else f"damaged: meta entry '{where}"
    with pytest.raises(CheckpointError, match=pattern) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("dtype", ["complex128", "U3", "S3", "V8", "bool"])
def test_non_numeric_weights_are_refused(tmp_path, dtype):
    path = save_checkpoint(tmp_path / "c.npz", sample())
    arrays, document = _parts(path)
    arrays["0.weight"] = np.zeros((2, 3), dtype=dtype)
    record = {"dtype": arrays["0.weight"].dtype.str, "shape": [2, 3], "sha256": "0" * 64}
    document["arrays"]["0.weight"] = record
    _rewrite(path, arrays, document)
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="cannot write checkpoint entry"):
        save_checkpoint(
            tmp_path / "d.npz", ckpt.Checkpoint({"w": arrays["0.weight"]}, meta=run_meta())
        )


def _patch_sizes(path, member: str, size: int) -> None:
    """Make `member`'s local and central zip entries declare `size` bytes."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    struct.pack_into("<II", data, info.header_offset + 18, size, size)
    central = -1
    for start in range(len(data) - 46, -1, -1):  # the central entry naming `member`
        if data[start : start + 4] == b"PK\x01\x02" and data[start + 46 :].startswith(
            member.encode()
        ):
            central = start
            break
    struct.pack_into("<II", data, central + 20, size, size)
    path.write_bytes(bytes(data))


def test_a_small_file_declaring_4_gb_is_refused_fast_without_allocating(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample())
    _patch_sizes(path, "0.weight.npy", 4_000_000_000)
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="damaged.*0.weight"):
        load_checkpoint(path)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 0.5 and peak < 2_000_000, (seconds, peak)


def test_an_npy_header_declaring_terabytes_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample())
    data = path.read_bytes()
    old = b"'shape': (2, 3), }"
    new = b"'shape': (2199023255552,), }"  # 8 TiB of float32 in 24 bytes
    padded = new + b" " * (len(old) - len(new)) if len(new) < len(old) else new
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, padded[: len(old)] if len(padded) > len(old) else padded))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)


def test_the_spec_check_comes_before_any_array_is_read(tmp_path, monkeypatch):
    from tests.test_train import tiny_spec

    spec = tiny_spec(tmp_path)
    (tmp_path / "o").mkdir()
    other = tiny_spec(tmp_path / "o", **{"out_features: 3": "out_features: 5"})
    path = save_checkpoint(tmp_path / "c.npz", sample(spec))
    read = []
    real = ckpt.NpzReader.read
    monkeypatch.setattr(
        ckpt.NpzReader, "read", lambda self, h, d=None: read.append(h.name) or real(self, h, d)
    )
    with pytest.raises(CheckpointError, match="does not fit spec"):
        load_checkpoint(path, other)
    assert read == ["__meta__"]


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not caught as Ctrl-C is)."""


def test_a_kill_between_checkpoint_writes_never_leaves_best_older_than_last_records(
    tmp_path, monkeypatch
):
    from netspec.training import trainer as train_module
    from tests.test_train import tiny_spec

    spec = tiny_spec(tmp_path)
    writes = 0
    real = train_module.save_checkpoint

    def killed_after(limit):
        def save(path, checkpoint):
            nonlocal writes
            if writes == limit:
                raise _Killed
            writes += 1
            return real(path, checkpoint)

        return save

    for limit in range(1, 9):  # every kill point of the first epochs' writes
        writes, out = 0, tmp_path / f"kill{limit}"
        monkeypatch.setattr(train_module, "save_checkpoint", killed_after(limit))
        with contextlib.suppress(_Killed):
            train_module.fit(spec, out=out, epochs=4)
        last = load_checkpoint(out / "last.npz") if (out / "last.npz").exists() else None
        if last is None:
            continue
        best_epoch = last.meta["monitors"]["best"]["best_epoch"]
        if best_epoch:
            assert load_checkpoint(out / "best.npz").epoch >= best_epoch, limit


def _header_bytes(data: bytes, path) -> list[int]:
    """Offsets of every zip local header, central directory entry, the end record and every
    npy header of the archive."""
    offsets: set[int] = set()
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        directory = archive.start_dir
    for info in infos:
        local = 30 + len(info.filename)
        npy = 10 + int.from_bytes(
            data[info.header_offset + local + 8 : info.header_offset + local + 10], "little"
        )
        offsets.update(range(info.header_offset, info.header_offset + local + npy))
    offsets.update(range(directory, len(data)))  # central directory and end record
    return sorted(offsets)


def _same(a: ckpt.Checkpoint, b: ckpt.Checkpoint) -> bool:
    for part in ("state", "optimizer", "schedule"):
        left, right = getattr(a, part), getattr(b, part)
        if left.keys() != right.keys():
            return False
        for key in left:
            x, y = left[key], right[key]
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                return False
    return a.meta == b.meta


def test_every_header_bit_flip_is_refused_or_harmless(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", sample())
    data = path.read_bytes()
    original = load_checkpoint(path)
    headers = _header_bytes(data, path)
    rng = np.random.default_rng(0)
    others = sorted(set(range(len(data))) - set(headers))
    sampled = [int(i) for i in rng.choice(others, size=min(300, len(others)), replace=False)]
    flips = [(i, i % 8) for i in headers] + [(i, int(rng.integers(8))) for i in sampled]
    flipped = tmp_path / "f.npz"
    refused = harmless = 0
    for offset, bit in flips:
        damaged = bytearray(data)
        damaged[offset] ^= 1 << bit
        flipped.write_bytes(bytes(damaged))
        try:
            loaded = load_checkpoint(flipped)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            refused += 1
            continue
        assert _same(loaded, original), (offset, bit)  # never silently other weights
        harmless += 1
    print(f"bit flips: {len(flips)} tried, {refused} refused, {harmless} harmless")
    assert refused + harmless == len(flips) and refused > len(flips) // 2
