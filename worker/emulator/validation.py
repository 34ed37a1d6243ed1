"""Request-body checks of the emulated API: the replies a client gets for unusable input.

The emulator checks what the real service documents as required and the types of the fields it
reads; everything else in a body is accepted and ignored, as the API does with unknown fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from worker.emulator.errors import InvalidBodyError

E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def as_object(body: Any, what: str = "request body") -> dict[str, Any]:
    """`body` when it is a JSON object, else 400 `InvalidRequestBody`."""
    if not isinstance(body, dict):
        raise InvalidBodyError("InvalidRequestBody", f"{what} must be a JSON object")
    return body


def required_str(obj: dict[str, Any], field: str, path: str = "") -> str:
    """A non-empty string field; 400 `MissingRequiredField` / `InvalidFieldValue` otherwise."""
    value = obj.get(field)
    if value is None:
        raise InvalidBodyError("MissingRequiredField", f"{path}{field} is required")
    if not isinstance(value, str) or not value:
        raise InvalidBodyError("InvalidFieldValue", f"{path}{field} must be a non-empty string")
    return value


def required_object(obj: dict[str, Any], field: str, path: str = "") -> dict[str, Any]:
    """A JSON-object field that must be present."""
    value = obj.get(field)
    if value is None:
        raise InvalidBodyError("MissingRequiredField", f"{path}{field} is required")
    return as_object(value, f"{path}{field}")


def required_list(obj: dict[str, Any], field: str, path: str = "") -> list[Any]:
    """A JSON-array field that must be present."""
    value = obj.get(field)
    if value is None:
        raise InvalidBodyError("MissingRequiredField", f"{path}{field} is required")
    if not isinstance(value, list):
        raise InvalidBodyError("InvalidFieldValue", f"{path}{field} must be an array")
    return value


def optional(obj: dict[str, Any], field: str, kind: type, path: str = "") -> Any:
    """A field that may be absent (or null) but has the JSON type `kind` when present.

    Decoded JSON has exact types, so `type(...) is` keeps `true` from passing as an integer.
    """
    value = obj.get(field)
    if value is not None and type(value) is not kind:
        raise InvalidBodyError("InvalidFieldValue", f"{path}{field} must be {kind.__name__}")
    return value


def string_map(obj: dict[str, Any], field: str, path: str = "") -> dict[str, str] | None:
    """An optional object whose values are all strings (think `metadata`)."""
    value: dict[str, Any] | None = optional(obj, field, dict, path)
    if value is None:
        return None
    if not all(isinstance(item, str) for item in value.values()):
        raise InvalidBodyError("InvalidFieldValue", f"{path}{field} values must be strings")
    return {key: str(item) for key, item in value.items()}


def one_of(obj: dict[str, Any], field: str, allowed: frozenset[str], path: str = "") -> Any:
    """An optional string field restricted to `allowed`."""
    value = obj.get(field)
    if value is not None and value not in allowed:
        raise InvalidBodyError(
            "InvalidFieldValue", f"{path}{field} must be one of {', '.join(sorted(allowed))}"
        )
    return value


def phone_number(value: Any) -> str:
    """An E.164 phone number; 400 `invalid_phone_format` otherwise."""
    if not isinstance(value, str) or not E164.fullmatch(value):
        raise InvalidBodyError(
            "InvalidFieldValue", "phone_number must be in E.164 format", "invalid_phone_format"
        )
    return value


def query_int(
    query: Mapping[str, str], name: str, default: int, low: int, high: int | None = None
) -> int:
    """An integer query parameter within `[low, high]`; 400 when it is not."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidBodyError("InvalidFieldValue", f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        limit = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise InvalidBodyError("InvalidFieldValue", f"{name} must be in {limit}")
    return value


def query_float(query: Mapping[str, str], name: str, default: float) -> float:
    """A numeric query parameter (Unix seconds); 400 when it is not a number."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidBodyError("InvalidFieldValue", f"{name} must be a number") from None
