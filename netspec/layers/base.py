"""What every layer is: a frozen pydantic schema that mirrors a PyTorch constructor, plus a
shape rule, parameter init, forward and backward.

The schema half runs without any array (`netspec check`); the runtime half receives its
parameters, input and a `Context` from the network. Shapes include the batch dimension,
which is `None` while symbolic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, WithJsonSchema

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
PositiveIntPair = PositiveInt | _pair_of(PositiveInt)
NonNegativeIntPair = NonNegativeInt | _pair_of(NonNegativeInt)
DeviceName = Annotated[str, Strict()]

# -- names ----------------------------------------------------------------------------------
# A layer name is one segment; nesting will join segments with dots (`layer1.0.conv1`), and
# then NAME alone changes: rf"{NAME_SEGMENT}(\.{NAME_SEGMENT})*".
NAME_SEGMENT = r"[A-Za-z0-9_]+"
NAME = NAME_SEGMENT
NAME_PATTERN = rf"^{NAME}$"
REF_PATTERN = rf"^{NAME}(\.indices)?$"  # what `inputs` and `outputs` may name
_QUOTES = "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u00ab\u00bb"


def name_problem(name: str) -> tuple[str, str | None] | None:
    """Why `name` cannot name a layer, as (message, hint); None when it can."""
    if re.fullmatch(NAME_PATTERN, name):
        return None
    if all(re.fullmatch(NAME_SEGMENT, part) for part in name.split(".")):
        return f"'{name}' cannot name a layer: names cannot contain '.'", None  # graph's words
    message = f"name: expected letters, digits and '_', received {name!r}"
    if not name.strip():
        return message, "write a name such as conv1, or leave `name` out (default: the index)"
    if any(q in name for q in _QUOTES):
        return message, "typographic quotes are part of the name here: write plain ' or \""
    bad = sorted({c for c in name if not re.fullmatch(NAME_SEGMENT, c)})
    shown = ", ".join(repr(c) for c in bad)
    return message, f"{shown} cannot appear in a name: use '_' instead"


LayerName = Annotated[
    str,
    Strict(),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": NAME_PATTERN,
            "patternErrorMessage": "A layer name is letters, digits and _ (no dots or spaces).",
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
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


# -- errors a layer's rules raise ---------------------------------------------------------
class ArgError(ValueError):
    """A constructor-time error (PyTorch's message) about one argument of a layer.

    Raised from a schema's model validator; the diagnostics point at `field`.
    """

    def __init__(self, field: str | None, message: str, hint: str | None = None):
        super().__init__(message)
        self.field = field
        self.message = message
        self.hint = hint


class ArgErrors(ArgError):
    """Every constructor-time rule a layer breaks, so that all of them are reported at once.

    It reads as the first of them (PyTorch's error); `errors` holds them all.
    """

    def __init__(self, errors: Sequence[ArgError]):
        first = errors[0]
        super().__init__(first.field, first.message, first.hint)
        self.errors = list(errors)


def raise_arg_errors(errors: Sequence[ArgError]) -> None:
    """Raise the one error, or all of them together; nothing when there is none."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ArgErrors(errors)


class ShapeError(Exception):
    """An input shape this layer cannot take.

    `field` names the argument to point at (else the layer itself); `recovered` is the
    output shape to carry on with (from the declared arguments) so that later layers are
    still checked, or None when nothing sensible follows. `guessed` says the recovered
    sizes are a guess (after a refused stride, say): later errors that depend on sizes are
    then not reported, those about channels or ranks still are. `more` holds further
    problems found in the same call, reported with this one.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        recovered: Shape | None = None,
        code: str = "shape",
        guessed: bool = False,
        more: Sequence[ShapeError] = (),
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint
        self.recovered = recovered
        self.code = code
        self.guessed = guessed
        self.more = tuple(more)

    @property
    def all(self) -> tuple[ShapeError, ...]:
        """This problem and the others found with it, in order."""
        return (self, *self.more)


def raise_shape_errors(
    errors: Sequence[ShapeError], recovered: Shape | None, *, guessed: bool = True
) -> None:
    """Raise every problem in `errors` as one ShapeError carrying on with `recovered`."""
    if errors:
        first = errors[0]
        first.more, first.recovered, first.guessed = tuple(errors[1:]), recovered, guessed
        raise first


def expect_rank(layer: str, x: Shape, ranks: Sequence[int], layout: str) -> None:
    """Raise a ShapeError unless `x` has one of `ranks` dimensions."""
    if len(x) not in ranks:
        raise ShapeError(
            f"{layer} expects a {layout} input, received {format_shape(x)}",
            code="rank",
        )


# -- the runtime side ---------------------------------------------------------------------
class Context:
    """What one call of a layer may keep and use: saved arrays for backward, the mode, the
    array module, a random generator, and side outputs (MaxPool2d's indices)."""

    __slots__ = ("xp", "training", "rng", "saved", "outputs")

    def __init__(self, xp: Any, training: bool, rng: Any = None):
        self.xp = xp
        self.training = training
        self.rng = rng
        self.saved: tuple = ()
        self.outputs: dict[str, Any] = {}

    def save(self, *arrays: Any) -> None:
        self.saved = arrays

    def emit(self, name: str, array: Any) -> None:
        self.outputs[name] = array


class Layer(BaseModel):
    """Base of every layer schema. Subclasses add `type: Literal[...]` and PyTorch's arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: LayerName | None = None
    """Name in the graph; defaults to the layer's index, as in torch.nn.Sequential."""
    inputs: list[LayerRef] | None = None
    """Names of the layers (or `input`) this one reads; defaults to the previous layer."""

    # How many inputs the layer takes: 1, or None for "two or more" (Add, Concat).
    arity: ClassVar[int | None] = 1
    # The output has the input's shape whatever the arguments: after an argument error,
    # shape inference goes on through the layer with its input's shape.
    keeps_shape: ClassVar[bool] = False
    # Names of side outputs (reachable as NAME.<side>) when enabled; see side_output_shapes.
    graph_keys: ClassVar[frozenset[str]] = frozenset({"type", "name", "inputs"})

    @property
    def type_name(self) -> str:
        return self.type  # type: ignore[attr-defined]

    def torch_arguments(self) -> dict[str, Any]:
        """The constructor arguments, as PyTorch names them."""
        return {k: v for k, v in self.model_dump().items() if k not in self.graph_keys}

    # -- schema side ------------------------------------------------------------------------
    def output_shape(self, *inputs: Shape) -> Shape:
        raise NotImplementedError(f"{type(self).__name__}.output_shape")

    def side_output_shapes(self, *inputs: Shape) -> dict[str, Shape]:
        """Shapes of extra outputs reachable as NAME.<key> (MaxPool2d's `indices`)."""
        return {}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Trainable parameters, in PyTorch's registration order."""
        return {}

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Non-trainable state saved in the state dict (running statistics)."""
        return {}

    def macs(self, inputs: Sequence[tuple[int, ...]], output: tuple[int, ...]) -> int:
        """Weight multiply-accumulates for concrete shapes (see design.md)."""
        return 0

    # -- runtime side -------------------------------------------------------------------------
    def init(self, rng: Any) -> dict[str, Any]:
        """Parameters and buffers as float64/int64 NumPy arrays, by PyTorch's scheme.

        `rng` is a numpy.random.Generator; the network casts and moves the arrays (its
        generator's `uniform` returns the network's dtype already, to spare a float64 copy).
        """
        return {}

    def forward(self, p: Any, x: Any, ctx: Context) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, p: Any, g: Any, ctx: Context, grads: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.backward")


def kaiming_uniform_bound(fan_in: int) -> float:
    """Bound of PyTorch's default init, kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), +)."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


class ParamView:
    """Attribute access to one layer's entries in a flat `name -> array` store.

    `p.weight` reads `store["3.weight"]`; `grads.weight += g` accumulates in place;
    `p.running_mean = new` writes back into the store (how BatchNorm updates its buffers).
    """

    __slots__ = ("_store", "_prefix")

    def __init__(self, store: dict[str, Any], prefix: str):
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._store[self._prefix + key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self._store[self._prefix + key] = value
