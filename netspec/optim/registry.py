"""The registry behind `train.optimizer` and `train.lr_schedule`: every schema class that
names a `type` enters it when it is defined, so adding an optimizer or a schedule is writing
its class, and the discriminated union the Spec validates against follows by itself.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Generic, TypeVar, Union

from pydantic import BaseModel, Field

from netspec import types

Schema = TypeVar("Schema", bound=BaseModel)


class Registry(Generic[Schema]):
    """Schema classes by their `type` name, in the order they were defined: the order of the
    union, of the JSON schema's lists and of "expected one of" in error messages."""

    def __init__(self, kind: str):
        self.kind = kind
        self.types: dict[str, type[Schema]] = {}

    def add(self, cls: type[Schema]) -> None:
        """Enter `cls` under its `type` default; a class without one (a base shared by a
        family, like Adam's and AdamW's) is no entry and is skipped."""
        fields = cls.__pydantic_fields__  # not model_fields: that reads the docstrings
        name = fields["type"].default if "type" in fields else None
        if not isinstance(name, str):
            return
        if name in self.types:
            raise TypeError(f"two {self.kind} schemas are named {name!r}")
        self.types[name] = cls

    def classes(self) -> tuple[type[Schema], ...]:
        return tuple(self.types.values())

    def union(self) -> Any:
        """`Annotated[Union[...], Field(discriminator="type")]` over every entry."""
        return Annotated[Union[self.classes()], Field(discriminator="type")]  # noqa: UP007


class RegisteredSchema(types.Schema):
    """Base of a family of schemas (optimizers, schedules): each subclass that names its
    `type` enters the family's `registry` when it is defined."""

    registry: ClassVar[Registry]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.registry.add(cls)

    def torch_arguments(self) -> dict[str, Any]:
        """The constructor arguments, as PyTorch names them."""
        return {k: v for k, v in self.model_dump().items() if k != "type"}
