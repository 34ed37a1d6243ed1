"""Constrained field types shared by commands, agent properties and events.

Constraints live in the types (`msgspec.Meta`) so the decoder enforces them and the generated JSON
Schema states them: a producer in another language gets the same verdict from the schema.

Patterns are anchored with `^…` and the lookahead `(?![\\s\\S])` rather than `$`: in Python `$`
also matches before a trailing newline, so `"A42\\n"` would pass here and fail in an ECMA-262
validator. The lookahead means "end of input" in both dialects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta


def whole_match(body: str) -> str:
    """A regex that matches only if `body` matches the entire string, in Python and ECMA-262."""
    return f"^(?:{body})(?![\\s\\S])"


CommandId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        description="The producer's command id: the idempotency and correlation key.",
    ),
]
NonEmptyStr = Annotated[str, Meta(min_length=1)]

# Path parameters are inserted verbatim into the request URL, so characters that would end or
# escape the path segment (`/ ? # %`, whitespace, control characters) are refused up front, and
# so are `.` and `..`, which URL normalisation (RFC 3986 §5.2.4) would turn into another path:
# `agents/../leave` is `leave` of the App ID.
PathSegment = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=256,
        pattern=whole_match(r"(?!\.\.?(?![\s\S]))[^\s/?#%\x00-\x1f\x7f]+"),
    ),
]
AgentId = Annotated[PathSegment, Meta(description="Agent id returned by start or call.")]
AppId = Annotated[PathSegment, Meta(description="Agora App ID; the worker's default when absent.")]
E164 = Annotated[
    str,
    Meta(
        pattern=whole_match(r"\+[1-9][0-9]{1,14}"),
        description="Phone number in E.164 format, e.g. +14155550100.",
        examples=["+14155550100"],
    ),
]
# The pattern restates the offset requirement for validators that do not assert `format`
# (most JSON Schema libraries only annotate it by default).
AwareDatetime = Annotated[
    datetime,
    Meta(
        tz=True,
        description="RFC 3339 timestamp with a timezone offset.",
        extra_json_schema={
            "pattern": whole_match(
                r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                r"([Zz]|[+-][0-9]{2}:?[0-9]{2})"
            )
        },
    ),
]
NonNegativeInt = Annotated[int, Meta(ge=0)]
PositiveInt = Annotated[int, Meta(ge=1)]
Milliseconds = Annotated[int, Meta(ge=0, description="Duration in milliseconds.")]
StrMap = dict[str, str]
JsonObject = dict[str, Any]


class Model(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every nested object: immutable, keyword-only, unknown keys ignored by the type.

    Unknown keys are not lost: the worker sends the producer's original JSON, not these objects.
    """


class FieldValueError(ValueError):
    """A field-level check in `__post_init__` failed; the codec appends `field` to the error path.

    msgspec reports `__post_init__` failures at the path of the whole object; naming the field
    keeps the decode error as precise as a type error (`$.text: …` rather than `$: …`).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
