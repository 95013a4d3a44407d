"""A small declarative schema: one tree validates request bodies (per-field errors with
dotted paths) and generates the JSON Schema of the OpenAPI document, so they never drift."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from osago.errors import FieldError

__all__ = ["Arr", "Bool", "Day", "Int", "Node", "Num", "Obj", "Str", "Uuid", "check", "opt", "req"]


@dataclass(frozen=True)
class Node:
    """Base of schema nodes."""

    description: str = field(default="", kw_only=True)
    # More JSON Schema for the document only: rules that check() leaves to the cross-field
    # stage (osago.domain.request._rules), stated so that the document says what is accepted.
    rules: tuple[dict[str, Any], ...] = field(default=(), kw_only=True)

    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def _doc(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.rules:
            schema = {**schema, "allOf": list(self.rules)}
        return {**schema, "description": self.description} if self.description else schema


@dataclass(frozen=True)
class Str(Node):
    min_len: int = 1
    max_len: int = 128
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    pattern_message: str = "has the wrong format"

    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, str):
            errors.append(FieldError(path, "must be a string"))
        elif self.enum is not None and value not in self.enum:
            errors.append(FieldError(path, f"must be one of {', '.join(self.enum)}"))
        elif self.min_len and len(value.strip()) < self.min_len:
            errors.append(FieldError(path, "must not be empty"))
        elif not value.isprintable():  # NUL, newlines, escapes: no field needs them
            errors.append(FieldError(path, "must not contain control characters"))
        elif len(value) > self.max_len:
            errors.append(FieldError(path, f"must be at most {self.max_len} characters"))
        elif self.pattern is not None and not re.fullmatch(self.pattern, value):
            errors.append(FieldError(path, self.pattern_message))
        else:
            return value
        return None

    def json_schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "string", "maxLength": self.max_len}
        if self.min_len:
            s["minLength"] = self.min_len
        if self.enum is not None:
            s["enum"] = list(self.enum)
        if self.pattern is not None:
            s["pattern"] = f"^(?:{self.pattern})$"  # a group: alternations stay anchored
        return self._doc(s)


@dataclass(frozen=True)
class Uuid(Node):
    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        try:
            if not isinstance(value, str):
                raise ValueError
            return str(uuid.UUID(value))
        except ValueError:
            errors.append(FieldError(path, "must be a UUID"))
            return None

    def json_schema(self) -> dict[str, Any]:
        return self._doc({"type": "string", "format": "uuid"})


@dataclass(frozen=True)
class Int(Node):
    minimum: int = 0
    maximum: int = 2**31

    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value != value
            or (isinstance(value, float) and not value.is_integer())
        ):
            errors.append(FieldError(path, "must be a whole number"))
        elif not self.minimum <= value <= self.maximum:
            errors.append(FieldError(path, f"must be between {self.minimum} and {self.maximum}"))
        else:
            return int(value)
        return None

    def json_schema(self) -> dict[str, Any]:
        return self._doc({"type": "integer", "minimum": self.minimum, "maximum": self.maximum})


@dataclass(frozen=True)
class Num(Node):
    minimum: float = 0.0
    maximum: float = 1e9

    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            errors.append(FieldError(path, "must be a number"))
        elif not self.minimum <= value <= self.maximum:
            errors.append(
                FieldError(path, f"must be between {self.minimum:g} and {self.maximum:g}")
            )
        else:
            return value
        return None

    def json_schema(self) -> dict[str, Any]:
        return self._doc({"type": "number", "minimum": self.minimum, "maximum": self.maximum})


@dataclass(frozen=True)
class Bool(Node):
    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, bool):
            errors.append(FieldError(path, "must be true or false"))
            return None
        return value

    def json_schema(self) -> dict[str, Any]:
        return self._doc({"type": "boolean"})


@dataclass(frozen=True)
class Day(Node):
    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        try:
            if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ValueError
            date.fromisoformat(value)
            return value
        except ValueError:
            errors.append(FieldError(path, "must be a date as YYYY-MM-DD"))
            return None

    def json_schema(self) -> dict[str, Any]:
        return self._doc({"type": "string", "format": "date"})


@dataclass(frozen=True)
class Arr(Node):
    items: Node = field(default_factory=Node)
    min_items: int = 0
    max_items: int = 100

    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, list):
            errors.append(FieldError(path, "must be a list"))
            return None
        if not self.min_items <= len(value) <= self.max_items:
            errors.append(FieldError(path, f"must have {self.min_items} to {self.max_items} items"))
            return None
        out = [self.items.check(v, f"{path}.{i}", errors) for i, v in enumerate(value)]
        return out

    def json_schema(self) -> dict[str, Any]:
        return self._doc(
            {
                "type": "array",
                "items": self.items.json_schema(),
                "minItems": self.min_items,
                "maxItems": self.max_items,
            }
        )


@dataclass(frozen=True)
class Obj(Node):
    """An object: ``fields`` maps a name to (node, required, default)."""

    fields: dict[str, tuple[Node, bool, Any]] = field(default_factory=dict)

    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, dict):
            errors.append(FieldError(path or "body", "must be an object"))
            return None
        # Unknown keys are dropped: only what was checked goes on (a stray "\u0000" key or a
        # lone surrogate deep in one would otherwise reach PostgreSQL's jsonb and fail there).
        out: dict[str, Any] = {}
        for name, (node, required, default) in self.fields.items():
            sub = f"{path}.{name}" if path else name
            if value.get(name) is None:
                if required:
                    errors.append(FieldError(sub, "is required"))
                elif default is not None:
                    out[name] = default
                continue
            out[name] = node.check(value[name], sub, errors)
        return out

    def json_schema(self) -> dict[str, Any]:
        props = {}
        for name, (node, needed, default) in self.fields.items():
            props[name] = node.json_schema()
            if not needed:  # check() takes null for an optional field as absent
                props[name] = {"anyOf": [props[name], {"type": "null"}]}
            if default is not None:
                props[name]["default"] = default
        required = [n for n, (_, req, _) in self.fields.items() if req]
        s: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            s["required"] = required
        return self._doc(s)


def req(node: Node) -> tuple[Node, bool, Any]:
    """A required field of an :class:`Obj`."""
    return node, True, None


def opt(node: Node, default: Any = None) -> tuple[Node, bool, Any]:
    """An optional field of an :class:`Obj`, filled with ``default`` when absent."""
    return node, False, default


def check(node: Node, value: Any) -> tuple[Any, list[FieldError]]:
    """Validate ``value`` against ``node``: (cleaned value, errors)."""
    errors: list[FieldError] = []
    return node.check(value, "", errors), errors
