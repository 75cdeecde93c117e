"""The base of every schema, and what keeps schemas cheap until they are used.

A spec names a handful of the fifty-odd schemas (layers, losses, optimizers, schedules, data
sources, the spec's sections), and `netspec check` should pay for those alone:
- `Schema` defers building its validator to first use (pydantic's `defer_build`);
- `Dispatch` validates a tagged union with the one class the tag names, so the union's
  validator, which is built from every member's, is never needed for a spec that is right;
- a field's docstring becomes its description on first use: pydantic's
  `use_attribute_docstrings` tokenized every class's source at import (180 ms for all of
  them), for text that only the JSON Schema and readers of `model_fields` ever see.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import sys
import textwrap
from types import FrameType
from typing import Annotated, Any, ClassVar, get_args

from pydantic import BaseModel, ConfigDict
from pydantic_core import core_schema


class _FieldsWithDocs:
    """`Schema.model_fields`: pydantic's, with the fields' docstrings read in first."""

    def __get__(self, instance: Any, owner: type[Schema]) -> dict[str, Any]:
        describe(owner)
        return owner.__pydantic_fields__


class Schema(BaseModel):
    """Base of every schema a spec is validated with: unknown keys are refused, values are
    frozen, and a field's docstring is its description (in the JSON Schema too).

    The validator is built on first use, and the descriptions are read when `model_fields`
    or `model_json_schema` first asks (code inside netspec reads `__pydantic_fields__`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    model_fields: ClassVar[dict[str, Any]] = _FieldsWithDocs()  # type: ignore[assignment]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _WHERE[cls] = _class_statement(cls, sys._getframe(1))

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        describe_all()
        return super().model_json_schema(*args, **kwargs)


# Every Schema class in the order it was defined (one that uses another comes after it) and
# where its class statement is; the classes whose fields have their descriptions.
_WHERE: dict[type[Schema], tuple[str, int] | None] = {}
_DESCRIBED: set[type[Schema]] = set()
_DOCS: dict[type, dict[str, str]] = {}  # the docstrings read, by the class that declares them
_stale = False  # a class was built before its descriptions: its validator's schema lacks them


def describe(cls: type[Schema]) -> None:
    """Give `cls`'s fields their docstrings as descriptions, as pydantic would have at class
    creation: each field's from the class that declares it."""
    global _stale
    if cls in _DESCRIBED or cls not in _WHERE:
        return
    for name, info in cls.__pydantic_fields__.items():
        owner = next((k for k in cls.__mro__ if name in vars(k).get("__annotations__", ())), None)
        if info.description is None and owner in _WHERE:
            info.description = _docstrings(owner).get(name)
    _DESCRIBED.add(cls)
    _stale = _stale or cls.__pydantic_complete__


def describe_all() -> None:
    """Describe every Schema class; rebuild those built before (users after what they use),
    so that a JSON Schema made from them carries the descriptions."""
    global _stale
    for cls in list(_WHERE):
        describe(cls)
    if _stale:
        for cls in list(_WHERE):
            if cls.__pydantic_complete__:
                cls.model_rebuild(force=True)
        _stale = False


class Dispatch:
    """`Annotated[Union[...], Dispatch(union)]`: a tagged union validated by the one class its
    tag names, whose validator alone is built. A value that is already one of the classes
    passes as it is; a value without a known tag goes through the union itself (built
    then, once), so its errors are the union's. The JSON Schema is the union's.

    `union` is `Annotated[Union[...], Field(discriminator=KEY)]`.
    """

    def __init__(self, union: Any):
        members, info = get_args(union)[:2]
        self.union = union
        self.key: str = info.discriminator
        self.classes: tuple[type[BaseModel], ...] = get_args(members)
        self._by_tag: dict[str, type[BaseModel]] | None = None
        self._adapter: Any = None

    def validate(self, value: Any) -> Any:
        if isinstance(value, self.classes):
            return value
        if self._by_tag is None:
            self._by_tag = {c.__pydantic_fields__[self.key].default: c for c in self.classes}
        tag = value.get(self.key) if isinstance(value, dict) else None
        cls = self._by_tag.get(tag) if isinstance(tag, str) else None
        if cls is not None:
            return cls.model_validate(value)
        if self._adapter is None:
            self._adapter = _adapter(self.union)
        return self._adapter.validate_python(value)

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> Any:
        return handler(_adapter(self.union).core_schema)  # fresh: the descriptions are in


def dispatched(union: Any) -> Any:
    """The type of a field holding one entry of `union` (see Dispatch)."""
    return Annotated[get_args(union)[0], Dispatch(union)]


def _adapter(union: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(union)


# -- field docstrings ---------------------------------------------------------------------
def _class_statement(cls: type, frame: FrameType | None) -> tuple[str, int] | None:
    """Where the class statement of `cls` runs (file, line): the first frame up in `cls`'s
    module, as pydantic finds it on Python < 3.13."""
    while frame is not None and (
        frame.f_globals.get("__name__") != cls.__module__
        or frame.f_code.co_name == "__pydantic_init_subclass__"
    ):
        frame = frame.f_back
    return None if frame is None else (frame.f_code.co_filename, frame.f_lineno)


def _docstrings(cls: type) -> dict[str, str]:
    """The docstrings of the names `cls` annotates, as `use_attribute_docstrings` reads them:
    a string statement right after an annotated name in the class body."""
    if cls not in _DOCS:
        _DOCS[cls] = _read_docstrings(cls)
    return _DOCS[cls]


def _read_docstrings(cls: type) -> dict[str, str]:
    where = _WHERE.get(cls)
    node = _class_node(*where) if where else None
    if node is None or node.name != cls.__name__:
        return {}
    docs: dict[str, str] = {}
    target = None
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            target = statement.target.id
            continue
        text = statement.value if isinstance(statement, ast.Expr) else None
        if target and isinstance(text, ast.Constant) and isinstance(text.value, str):
            docs[target] = inspect.cleandoc(text.value)
        target = None
    return docs


def _class_node(filename: str, line: int) -> ast.ClassDef | None:
    """The class statement at `line` of the file, parsed; None if there is none."""
    lines = linecache.getlines(filename)
    if not 0 < line <= len(lines) or not lines[line - 1].lstrip().startswith("class"):
        return None
    own = _indent(lines[line - 1]) or 0
    end = line
    while end < len(lines) and _continues(lines[end], own):
        end += 1
    try:
        tree = ast.parse(textwrap.dedent("".join(lines[line - 1 : end])))
    except SyntaxError:
        return None
    first = tree.body[0] if tree.body else None
    return first if isinstance(first, ast.ClassDef) else None


def _indent(line: str) -> int | None:
    """The line's indentation; None for a blank or comment-only line."""
    text = line.lstrip()
    return None if not text or text.startswith("#") else len(line) - len(text)


def _continues(line: str, own: int) -> bool:
    """Whether `line` belongs to a statement indented by `own`: more indented, blank, a
    comment, or the closing bracket of a multi-line header."""
    indent = _indent(line)
    return indent is None or indent > own or line.lstrip().startswith((")", "]", "}"))
