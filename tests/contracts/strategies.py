"""Hypothesis strategies that write contract documents the way a producer would: as JSON values.

They are derived from the Structs' own type information (`msgspec.inspect`), constraints
included, so a new field or a tightened limit is covered without touching this file. Every
object also gets a few unknown keys, because the contract must accept and forward them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import settings
from hypothesis import strategies as st

from contracts import COMMAND_TYPES, AgentCommand, AgentStateEvent, ResultEvent

MAX_TEXT = 24  # short strings keep examples fast; speak's byte limit is tested on its own
MAX_ITEMS = 3
UNKNOWN_KEYS = st.from_regex(r"\Ax_[a-z]{1,8}\Z")

# Generated documents vary widely in size (a full agent.start is a hundred times a speak), so a
# per-example time limit would only make the property tests flaky on a busy machine.
no_deadline = settings(deadline=None)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=MAX_TEXT)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=MAX_ITEMS)
        | st.dictionaries(st.text(max_size=8), children, max_size=MAX_ITEMS)
    ),
    max_leaves=8,
)


def aware_datetimes() -> st.SearchStrategy[datetime]:
    offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    )
    # Hypothesis takes naive bounds and attaches the drawn timezone itself.
    return st.datetimes(
        min_value=datetime(1971, 1, 1),  # noqa: DTZ001
        max_value=datetime(9998, 12, 31),  # noqa: DTZ001
        timezones=offsets,
    )


def rfc3339(value: datetime) -> str:
    text: str = msgspec.json.decode(msgspec.json.encode(value))
    return text


def for_type(node: mi.Type) -> st.SearchStrategy[Any]:
    """JSON values valid for one msgspec type node."""
    build = _BUILDERS.get(type(node))
    if build is None:
        raise TypeError(f"no strategy for {node!r}")
    return build(node)


def struct_objects(node: mi.StructType) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with every required field, some optional ones and some unknown keys."""
    required = {f.encode_name: for_type(f.type) for f in node.fields if f.required}
    optional = {f.encode_name: for_type(f.type) for f in node.fields if not f.required}
    if node.tag_field is not None:
        required[node.tag_field] = st.just(node.tag)
    known = st.fixed_dictionaries(required, optional=optional)
    unknown = st.dictionaries(UNKNOWN_KEYS, json_values, max_size=2)
    return st.tuples(known, unknown).map(lambda pair: {**pair[1], **pair[0]})


@st.composite
def command_objects(draw: st.DrawFn, tag: str | None = None) -> dict[str, Any]:
    """A valid command as a JSON object; any command unless `tag` is given."""
    cls = COMMAND_TYPES[tag] if tag else draw(st.sampled_from(list(COMMAND_TYPES.values())))
    node = mi.type_info(cls)
    assert isinstance(node, mi.StructType)
    obj = draw(struct_objects(node))
    if issubclass(cls, AgentCommand):
        chosen, other = draw(st.permutations(["agent_id", "name"]))
        field = next(f for f in node.fields if f.name == chosen)
        obj[chosen] = draw(for_type(field.type).filter(lambda value: value is not None))
        if draw(st.booleans()):
            obj[other] = None
        else:
            obj.pop(other, None)
    return obj


@st.composite
def result_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A valid result event as a JSON object (`error` present exactly when not succeeded)."""
    node = mi.type_info(ResultEvent)
    assert isinstance(node, mi.StructType)
    obj = draw(struct_objects(node))
    error_field = next(f for f in node.fields if f.name == "error")
    if obj["outcome"] == "succeeded":
        obj.pop("error", None)
    else:
        obj["error"] = draw(for_type(error_field.type).filter(lambda value: value is not None))
    return obj


def agent_state_objects() -> st.SearchStrategy[dict[str, Any]]:
    node = mi.type_info(AgentStateEvent)
    assert isinstance(node, mi.StructType)
    return struct_objects(node)


def _strings(node: mi.StrType) -> st.SearchStrategy[str]:
    low = node.min_length or 0
    high = node.max_length if node.max_length is not None else low + MAX_TEXT
    if node.pattern is None:
        return st.text(min_size=low, max_size=min(high, low + MAX_TEXT))
    return st.from_regex(node.pattern).filter(lambda text: low <= len(text) <= high)


def _int_bounds(node: mi.IntType) -> tuple[int | None, int | None]:
    low = node.ge if node.ge is not None else (node.gt + 1 if node.gt is not None else None)
    high = node.le if node.le is not None else (node.lt - 1 if node.lt is not None else None)
    return low, high


def _floats(node: mi.FloatType) -> st.SearchStrategy[float]:
    low = node.ge if node.ge is not None else node.gt
    high = node.le if node.le is not None else node.lt
    return st.floats(
        min_value=low,
        max_value=high,
        exclude_min=node.gt is not None,
        exclude_max=node.lt is not None,
        allow_nan=False,
        allow_infinity=False,
    )


def _lists(node: mi.ListType) -> st.SearchStrategy[list[Any]]:
    low = node.min_length or 0
    high = min(node.max_length if node.max_length is not None else MAX_ITEMS, low + MAX_ITEMS)
    return st.lists(for_type(node.item_type), min_size=low, max_size=high)


_BUILDERS: dict[type[mi.Type], Callable[[Any], st.SearchStrategy[Any]]] = {
    mi.Metadata: lambda node: for_type(node.type),
    mi.StrType: _strings,
    mi.IntType: lambda node: st.integers(*_int_bounds(node)),
    mi.FloatType: _floats,
    mi.BoolType: lambda _: st.booleans(),
    mi.NoneType: lambda _: st.none(),
    mi.AnyType: lambda _: json_values,
    mi.LiteralType: lambda node: st.sampled_from(node.values),
    mi.DateTimeType: lambda _: aware_datetimes().map(rfc3339),
    mi.ListType: _lists,
    mi.DictType: lambda node: st.dictionaries(
        for_type(node.key_type), for_type(node.value_type), max_size=2
    ),
    mi.UnionType: lambda node: st.one_of([for_type(option) for option in node.types]),
    mi.StructType: struct_objects,
}
