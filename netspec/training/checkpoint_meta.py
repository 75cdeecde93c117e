"""The `__meta__` document of a checkpoint, as a strict schema.

Everything in it is checked before a checkpoint is used: types without coercion (JSON's
`1e400` is infinity, never an int), ranges (an epoch is not negative, a batch size is
positive), finite numbers, no unknown keys. A file that fails is damaged or crafted; the
loader says which entry in one line. `arrays` records each array's dtype, shape and
sha256 so a flipped bit anywhere in the data is refused; `checksum` covers the rest of
the document itself (the sha256 of its canonical JSON without that entry).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

INT64_MAX = 2**63 - 1

Count = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]
Positive = Annotated[int, Strict(), Field(gt=0, le=INT64_MAX)]
U128 = Annotated[int, Strict(), Field(ge=0, lt=2**128)]
Text = Annotated[str, Strict(), Field(max_length=1000)]
Hex = Annotated[str, Strict(), Field(pattern=r"^[0-9a-f]{64}$")]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Number = Annotated[float, Strict(), AfterValidator(_finite)]  # ints are accepted too


def _finite_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= INT64_MAX
    return isinstance(value, float) and math.isfinite(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArrayRecord(_Strict):
    """What one array member must be: its npy dtype (as written), shape and sha256."""

    dtype: Annotated[str, Strict(), Field(pattern=r"^[<>|][iuf][1248]$")]
    shape: Annotated[list[Count], Field(max_length=32)]
    sha256: Hex


class PCG64State(_Strict):
    class Inner(_Strict):
        state: U128
        inc: U128

    bit_generator: Literal["PCG64"]
    state: Inner
    has_uint32: Annotated[int, Strict(), Field(ge=0, le=1)]
    uinteger: Annotated[int, Strict(), Field(ge=0, lt=2**32)]


class RngState(_Strict):
    shuffle: PCG64State
    forward_calls: Count


class Running(_Strict):
    loss_sum: Number
    seen: Count
    correct: Count
    counted: Count
    elapsed: Annotated[float, Strict(), AfterValidator(_finite), Field(ge=0)]


class MonitorState(_Strict):
    metric: Text
    best: Number | None
    best_epoch: Count
    wait: Count


class Monitors(_Strict):
    best: MonitorState
    early_stopping: MonitorState | None


class EpochMetrics(BaseModel):
    """One line of the history (metrics.jsonl): numbers or null, an epoch and a step."""

    model_config = ConfigDict(extra="allow", frozen=True)
    epoch: Positive
    step: Count

    @model_validator(mode="after")
    def _numbers(self) -> EpochMetrics:
        for key, value in (self.model_extra or {}).items():
            if len(key) > 1000:
                raise ValueError("a metric name is too long")
            if value is not None and not _finite_number(value):
                raise ValueError(f"metric '{key[:40]}' is {value!r:.40}, not a finite number")
        return self


class CheckpointMeta(_Strict):
    """The whole `__meta__` document of a format-2 checkpoint."""

    format: Literal["netspec-checkpoint"]
    format_version: Literal[2]
    netspec_version: Text
    spec_name: Text
    spec_fingerprint: Text
    network_fingerprint: Text
    epoch: Count
    step: Count
    batch: Count
    seed: Annotated[int, Strict(), Field(ge=0)]  # as TrainSpec: NumPy seeds are never negative
    batch_size: Positive
    epochs: Positive
    dtype: Literal["float32", "float64"]
    device: Text
    rng: RngState
    running: Running
    monitors: Monitors
    history: list[EpochMetrics]
    arrays: dict[str, ArrayRecord]

    @model_validator(mode="after")
    def _consistent(self) -> CheckpointMeta:
        if self.monitors.best.best_epoch > self.epoch:
            raise ValueError(
                f"best epoch {self.monitors.best.best_epoch} is after epoch {self.epoch}"
            )
        if len(self.history) != self.epoch:
            raise ValueError(f"{len(self.history)} history entries for epoch {self.epoch}")
        return self


def canonical_json(document: dict) -> str:
    """The one text a document is written as, so that its checksum can be recomputed."""
    return json.dumps(document, sort_keys=True, allow_nan=False)


def meta_checksum(document: dict) -> str:
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def validate_meta(document: dict) -> str | None:
    """None when `document` fits CheckpointMeta, else the first problem in a few words."""
    try:
        CheckpointMeta.model_validate(document, strict=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the document"
        value = error.get("input")
        shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
        return f"meta entry '{where}' {error['msg'].lower()} (found {shown[:80]})"
    return None
