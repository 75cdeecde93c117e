"""Bounded, pickle-free reading of `.npz` archives, for checkpoints and data files alike.

    with NpzReader(path) as archive:          # the zip directory, checked against the file
        header = archive.header("x")           # dtype and shape, read without the data
        x = archive.read(header)               # exactly header.nbytes, into one array

What a member declares is checked before its data is touched: the zip entry's sizes against
the file's length (a stored member's bytes must be in the file; a deflated one cannot expand
more than deflate allows), the npy header against the entry's size. The npy header is parsed
by a strict pattern of what NumPy writes, never evaluated. `read` fills an array of the
declared size and reads on to the member's end, so zipfile checks its CRC-32. Every failure
is an NpzDamage with a short reason; callers say which file and what to do.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netspec.errors import NetspecError
from netspec.lazy import lazy_import

np = lazy_import("numpy")

MAX_MEMBERS = 100_000
_NPY_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 10_000  # NumPy's own limit (numpy.lib.format, max_header_size)
_DEFLATE_RATIO = 1033  # deflate expands at most ~1032:1; a larger claim is impossible
_CHUNK = 1 << 22
# What NumPy's `np.save` writes for a plain (non-structured) array, and nothing else.
_HEADER = re.compile(
    r"\{'descr': '(?P<descr>[<>|=]?[a-zA-Z][0-9]{0,4})', "
    r"'fortran_order': (?P<fortran>True|False), "
    r"'shape': \((?P<shape>|(?:0|[1-9][0-9]{0,18}),|(?:0|[1-9][0-9]{0,18})"
    r"(?:, (?:0|[1-9][0-9]{0,18}))+)\), \} *\n"
)
# Exceptions zipfile and zlib raise on a damaged archive (a flipped flag can even make it
# think the member is encrypted: RuntimeError, or of an unknown method: NotImplementedError).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    OverflowError,
    RuntimeError,
    NotImplementedError,
)


class NpzDamage(NetspecError):
    """An archive or member that cannot be read as it declares; the message says why."""


@dataclass(frozen=True)
class MemberHeader:
    """A member's npy header: what its data is, and where it starts."""

    name: str  # the array's name (the member's without ".npy")
    info: zipfile.ZipInfo
    descr: str  # as written, e.g. "<f4"
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    offset: int  # bytes before the data: magic, version, length and header text

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class NpzReader:
    """An open `.npz` archive whose zip directory agrees with the file (see module doc)."""

    def __init__(self, path: Path, *, stored_only: bool = False):
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except _ZIP_ERRORS as exc:
            raise NpzDamage(f"not a readable zip archive ({reason(exc)})") from None
        try:
            self.members = self._check_directory(stored_only)
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def _check_directory(self, stored_only: bool) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        size = os.path.getsize(self.path)
        if len(infos) > MAX_MEMBERS:
            raise NpzDamage(f"{len(infos)} members, more than {MAX_MEMBERS}")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename.removesuffix(".npy")
            if name == info.filename or name in members:
                what = "a second" if name in members else "a member that is not an array,"
                raise NpzDamage(f"{what} '{info.filename}'")
            _check_entry(info, size, stored_only)
            members[name] = info
        declared = sum(info.compress_size for info in infos)
        if declared > size:
            raise NpzDamage(f"members declare {declared} bytes in a file of {size}")
        return members

    def header(self, name: str) -> MemberHeader:
        """The npy header of member `name` (a KeyError when there is none), read without
        its data and checked against the zip entry's size."""
        info = self.members[name]
        with self._open(info) as stream:
            prefix = _read_exactly(stream, len(_NPY_MAGIC) + 2, "npy magic")
            if prefix[: len(_NPY_MAGIC)] != _NPY_MAGIC:
                raise NpzDamage(f"member '{name}' is not an npy array (bad magic)")
            major = prefix[len(_NPY_MAGIC)]
            if prefix[-1] != 0 or major not in (1, 2, 3):
                raise NpzDamage(f"member '{name}' has unknown npy version {tuple(prefix[-2:])}")
            width = 2 if major == 1 else 4
            length = int.from_bytes(_read_exactly(stream, width, "npy header"), "little")
            if length > _MAX_HEADER:
                raise NpzDamage(f"member '{name}' declares an npy header of {length} bytes")
            text = _read_exactly(stream, length, "npy header")
        header = _parse_header(name, info, text, len(prefix) + width + length)
        if header.offset + header.nbytes != info.file_size:
            raise NpzDamage(
                f"member '{name}' declares a {header.descr} array of shape {header.shape} "
                f"({header.nbytes} bytes), but its zip entry holds {info.file_size} bytes"
            )
        return header

    def read(self, header: MemberHeader, digest: Any = None) -> np.ndarray:
        """The member's array, read into one buffer of the declared size; `digest` (a
        hashlib object) is updated with the raw data bytes."""
        raw = np.empty(header.nbytes, dtype=np.uint8)
        view = memoryview(raw)
        with self._open(header.info) as stream:
            _read_exactly(stream, header.offset, "npy header")
            done = 0
            while done < len(view):
                count = stream.readinto(view[done : done + _CHUNK])
                if not count:
                    raise NpzDamage(f"member '{header.name}' ends early")
                done += count
            if stream.read(1):  # also reads to the end: zipfile checks the CRC-32 there
                raise NpzDamage(f"member '{header.name}' runs past its declared size")
        if digest is not None:
            digest.update(view)
        flat = raw.view(header.dtype)  # (count,)
        return flat.reshape(header.shape, order="F" if header.fortran_order else "C")

    def _open(self, info: zipfile.ZipInfo) -> Any:
        try:
            return _Guarded(self._zip.open(info))
        except _ZIP_ERRORS as exc:
            raise NpzDamage(f"member '{info.filename}' cannot be opened ({reason(exc)})") from None


class _Guarded:
    """A zip member stream whose zipfile/zlib errors become NpzDamage."""

    def __init__(self, stream: Any):
        self._stream = stream

    def __enter__(self) -> _Guarded:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except _ZIP_ERRORS as exc:
            raise NpzDamage(f"member '{self._stream.name}' is damaged ({reason(exc)})") from None

    def readinto(self, buffer: memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _check_entry(info: zipfile.ZipInfo, size: int, stored_only: bool) -> None:
    name = info.filename
    if info.flag_bits & 0x1:
        raise NpzDamage(f"member '{name}' is marked encrypted")
    methods = (zipfile.ZIP_STORED,) if stored_only else (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
    if info.compress_type not in methods:
        raise NpzDamage(f"member '{name}' uses compression method {info.compress_type}")
    if info.header_offset + info.compress_size > size:
        raise NpzDamage(f"member '{name}' declares {info.compress_size} bytes past the file's end")
    stored = info.compress_type == zipfile.ZIP_STORED
    if stored and info.file_size != info.compress_size:
        raise NpzDamage(
            f"stored member '{name}' declares {info.file_size} bytes but holds {info.compress_size}"
        )
    if info.file_size > _DEFLATE_RATIO * info.compress_size + 1024:
        raise NpzDamage(
            f"member '{name}' declares {info.file_size} bytes, more than its "
            f"{info.compress_size} compressed bytes can hold"
        )


def _parse_header(name: str, info: zipfile.ZipInfo, text: bytes, offset: int) -> MemberHeader:
    match = _HEADER.fullmatch(text.decode("latin-1"))
    if match is None:
        raise NpzDamage(f"member '{name}' has an npy header that is not a plain array's")
    descr = match["descr"]
    try:
        dtype = np.dtype(descr)
    except TypeError:
        raise NpzDamage(f"member '{name}' has an unknown dtype '{descr}'") from None
    if dtype.hasobject:
        raise NpzDamage(f"member '{name}' holds Python objects, which would need pickle")
    shape = tuple(int(n) for n in match["shape"].replace(",", " ").split())
    return MemberHeader(name, info, descr, dtype, shape, match["fortran"] == "True", offset)


def _read_exactly(stream: _Guarded, count: int, what: str) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise NpzDamage(f"{what} of '{stream._stream.name}' ends early")
    return data


def sha256_of(array: np.ndarray) -> str:
    """The hex sha256 of a C-contiguous array's raw bytes (what `np.save` writes of it)."""
    return hashlib.sha256(array.reshape(-1).view(np.uint8)).hexdigest()


def reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
