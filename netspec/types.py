"""Argument types, layer names, shapes and shape formulas: what every schema is built from.

Strict types mirror PyTorch's constructor signatures (`Int`, `IntPair` for `_size_2_t`,
...), `Bounds` copies a validator's rule into the JSON Schema, and a Shape includes the
batch dimension, which is `None` while symbolic. Imports nothing of netspec's but errors
and schema (the Schema base).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BeforeValidator, Field, Strict, WithJsonSchema

from netspec.errors import ShapeError
from netspec.schema import Schema as Schema  # where every schema module imports it from

Shape = tuple[int | None, ...]


# -- argument types ---------------------------------------------------------------------
# Strict: YAML `true` is not the int 1, and "3" is not 3. Floats accept ints (lr: 1).
INT64 = Field(ge=-(2**63), le=2**63 - 1)  # PyTorch keeps every int argument in an int64_t
Int = Annotated[int, Strict(), INT64]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
PositiveInt = Annotated[int, Strict(), INT64, Field(gt=0)]
NonNegativeInt = Annotated[int, Strict(), INT64, Field(ge=0)]


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _pair_of(item: Any) -> Any:
    return Annotated[tuple[item, item], BeforeValidator(_list_to_tuple)]


# The editor's copy of a rule that a validator enforces in PyTorch's words: JSON Schema
# keywords that schema.py applies to every number (`minimum`, `not`, ...) or list (`maxItems`)
# inside the field, both entries of a pair included. Validation never reads them.
SCHEMA_BOUNDS = "x-netspec-bounds"


def Bounds(**keywords: Any) -> Any:  # noqa: N802 - used like pydantic's Field
    """`kernel_size: Annotated[IntPair, Bounds(minimum=1)]`: see SCHEMA_BOUNDS."""
    return Field(json_schema_extra={SCHEMA_BOUNDS: keywords})


NOT_ZERO = {"if": {"const": 0}, "then": {"enum": [], "errorMessage": "Must not be 0."}}

# `int or (int, int)`, as PyTorch's `_size_2_t`; a YAML list stands for the tuple.
IntPair = Int | _pair_of(Int)
NonNegativeIntPair = NonNegativeInt | _pair_of(NonNegativeInt)
DeviceName = Annotated[str, Strict()]

# -- names ----------------------------------------------------------------------------------
# A name is segments joined by dots, as PyTorch's module paths (`layer1.0.conv1`).
NAME_SEGMENT = r"[A-Za-z0-9_]+"
NAME = rf"{NAME_SEGMENT}(\.{NAME_SEGMENT})*"
NAME_PATTERN = rf"^{NAME}$"
REF_PATTERN = rf"^{NAME}(\.indices)?$"  # what `inputs` and `outputs` may name
_QUOTES = "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u00ab\u00bb"


def name_problem(name: str) -> tuple[str, str | None] | None:
    """Why `name` cannot name a layer, as (message, hint); None when it can."""
    if re.fullmatch(NAME_PATTERN, name):
        return None
    if all(re.fullmatch(NAME_SEGMENT, part) or not part for part in name.split(".")) and name:
        return (
            f"name: dots join the segments of a module path, received {name!r}",
            "write e.g. layer1.0.conv1: no dot at either end, none doubled",
        )
    message = f"name: expected letters, digits and '_', received {name!r}"
    if not name.strip():
        return message, "write a name such as conv1, or leave `name` out (default: the index)"
    if any(q in name for q in _QUOTES):
        return message, "typographic quotes are part of the name here: write plain ' or \""
    bad = sorted({c for c in name if not re.fullmatch(NAME_SEGMENT, c) and c != "."})
    shown = ", ".join(repr(c) for c in bad)
    return message, f"{shown} cannot appear in a name: use '_' instead"


LayerName = Annotated[
    str,
    Strict(),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": NAME_PATTERN,
            "patternErrorMessage": "Letters, digits, _; dots join segments (layer1.0.conv1).",
        }
    ),
]


def _index_to_name(value: Any) -> Any:
    # Layers are named by their index by default, and YAML reads `[0, 3]` as ints.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


LayerRef = Annotated[
    str,
    Strict(),
    BeforeValidator(_index_to_name),
    WithJsonSchema(
        {
            "type": ["string", "integer"],
            "pattern": REF_PATTERN,
            "patternErrorMessage": "A layer name, input, or NAME.indices.",
            "minimum": 0,
        }
    ),
]
"""A layer name, `input`, or `NAME.indices`; a bare index means that layer's default name."""
# The dtypes netspec computes in (a spec's input.dtype; ops.backend.DTYPES is this list),
# and the wider set a layer's PyTorch `dtype` argument accepts (and ignores).
ComputeDType = Literal["float32", "float64"]
DTypeName = Literal["float16", "bfloat16", "float32", "float64"]


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    """Normalise an `int | (int, int)` argument to a pair (Keras' standardize_tuple)."""
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (first, second)


def prod(dims: Sequence[int | None]) -> int | None:
    """Product of dimensions; None (symbolic batch) if any is None."""
    if any(d is None for d in dims):
        return None
    return math.prod(dims)  # type: ignore[arg-type]


def format_shape(shape: Shape) -> str:
    """A shape as netspec writes it: (N, 1, 28, 28)."""
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def torch_sizes(shape: Shape) -> str:
    """A shape as PyTorch prints sizes in its messages: [1, 3, 5, 5] (torch.Size's list)."""
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def expect_rank(layer: str, x: Shape, ranks: Sequence[int], layout: str) -> None:
    """Raise a ShapeError unless `x` has one of `ranks` dimensions."""
    if len(x) not in ranks:
        raise ShapeError(
            f"{layer} expects a {layout} input, received {format_shape(x)}",
            code="rank",
        )


def normalize_dim(dim: int, rank: int, field: str) -> int:
    """A dimension counted from the front, as PyTorch's maybe_wrap_dim: `dim` may be in
    [-rank, rank) (a 0-D tensor takes 0 or -1); anything else is PyTorch's error."""
    span = max(rank, 1)
    if not -span <= dim < span:
        raise ShapeError(
            f"Dimension out of range (expected to be in range of [{-span}, {span - 1}], "
            f"but got {dim})",
            field=field,
            code="dim",
        )
    return dim % span


# -- sliding windows ----------------------------------------------------------------------------
# The shape formulas of convolution and pooling: pure integer arithmetic, which the shape
# check runs before any array exists and the kernels run again on the arrays' shapes.
Pads = tuple[int, int, int, int]  # (top, bottom, left, right)


def window_count(length: int, kernel: int, stride: int, dilation: int, ceil: bool = False) -> int:
    """Windows of `kernel` taps, `dilation` apart, every `stride` along a (padded) length:
    floor((L − d·(k−1) − 1) / s) + 1, or rounded up with `ceil`."""
    extra = stride - 1 if ceil else 0
    return (length - dilation * (kernel - 1) - 1 + extra) // stride + 1


def pooled_size(size: int, kernel: int, pad: int, stride: int, dilation: int, ceil: bool) -> int:
    """PyTorch's pooling_output_shape, including ceil_mode's last-window rule."""
    out = window_count(size + 2 * pad, kernel, stride, dilation, ceil)
    if ceil and (out - 1) * stride >= size + pad:  # the last window must start inside
        out -= 1
    return out


def sliding_stride(stride: tuple[int, int], out: tuple[int, int]) -> tuple[int, int]:
    """The stride a kernel uses: along an axis with a single window any stride gives the same
    result, and 1 keeps a huge one (2**62) out of the strided view's byte offsets."""
    return (stride[0] if out[0] > 1 else 1, stride[1] if out[1] > 1 else 1)


@dataclass(frozen=True)
class WindowAxis:
    """The windows along one spatial axis: `out` windows of `kernel` taps over `size` inputs.

    Pooling's shape rule computes it; the window kernels (ops.windows) run over it.
    """

    size: int
    kernel: int
    stride: int
    dilation: int
    pad: int
    out: int

    @property
    def extent(self) -> int:
        """Padded length the windows reach: (out−1)·s + d·(k−1) + 1."""
        return (self.out - 1) * self.stride + self.dilation * (self.kernel - 1) + 1

    @property
    def pads(self) -> tuple[int, int]:
        """Padding before and after; the ceil_mode windows may reach past the declared pad."""
        return self.pad, max(0, self.extent - self.pad - self.size)

    @property
    def tiles(self) -> bool:
        """Windows tile the axis exactly (k == s, no dilation): backward is a reshape."""
        return self.kernel == self.stride and self.dilation == 1


class ConvGeometry(NamedTuple):
    """One Conv2d call's windows, from its arguments and the input's shape: what the shape
    rule checks and the kernels (ops.conv) run over."""

    kernel: tuple[int, int]  # (kh, kw)
    stride: tuple[int, int]  # as given, but 1 along an axis with one output (sliding_stride)
    dilation: tuple[int, int]
    groups: int
    padding_mode: str  # PyTorch's: 'zeros', 'reflect', 'replicate' or 'circular'
    pads: Pads  # (top, bottom, left, right); negative entries crop (non-zero modes only)
    padded: tuple[int, int]  # (Hp, Wp): the plane the kernel slides over
    out: tuple[int, int]  # (Ho, Wo)
    unit_stride: bool  # the declared stride is 1: dx may come by correlation
