"""JSON Schema (draft 2020-12) of the commands and the events, generated from the Structs.

`scripts/generate-schemas` writes these to `contracts/schema/`; a test fails when the committed
files drift from what this module produces. Rules that live in `__post_init__` rather than in a
type are added from the class's `json_schema_extra`, so validators in other languages apply them
too. The one rule a JSON Schema cannot state exactly is speak's 512-byte limit: the schema
bounds `text` at 512 characters, a necessary condition; the decoder also counts bytes.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from contracts.commands import COMMAND_TYPES, Command
from contracts.events import AgentStateEvent, ResultEvent, TruncatedData

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
GENERATED_NOTE = "Generated from the contracts package by scripts/generate-schemas; do not edit."
VERSION_KEY = "x-contracts-version"
_REF_TEMPLATE = "#/$defs/{name}"

Schema = dict[str, Any]


def commands_schema(version: str) -> Schema:
    """The schema of one command record value (the `Command` union)."""
    (root,), defs = msgspec.json.schema_components([Command], ref_template=_REF_TEMPLATE)
    return _document(
        schema_id="urn:convoai:contracts:commands",
        title="convoai command",
        description="One record value of the commands topic: a JSON object tagged by `command`.",
        version=version,
        root=root,
        defs=_refined(defs, COMMAND_TYPES.values()),
    )


def events_schema(version: str) -> Schema:
    """The schemas of the output events; each topic's records match one of the `$defs`.

    `TruncatedData` is in the `$defs` too, not a record of its own: the shape a result's
    `data` (or `error.details`) takes when it was too large to publish, which consumers need
    to recognise it (their code generators see it only if it is defined)."""
    event_types = (ResultEvent, AgentStateEvent)
    roots, defs = msgspec.json.schema_components(
        (*event_types, TruncatedData), ref_template=_REF_TEMPLATE
    )
    return _document(
        schema_id="urn:convoai:contracts:events",
        title="convoai events",
        description=(
            "Record values of the output topics: `ResultEvent` on the results topic, "
            "`AgentStateEvent` on the agent-state topic. `TruncatedData` is what a result's "
            "`data` or `error.details` holds when it was too large to publish."
        ),
        version=version,
        root={"anyOf": list(roots[: len(event_types)])},
        defs=_refined(defs, event_types),
    )


def _document(
    *, schema_id: str, title: str, description: str, version: str, root: Schema, defs: Schema
) -> Schema:
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id,
        "$comment": GENERATED_NOTE,
        VERSION_KEY: version,
        "title": title,
        "description": description,
        **root,
        "$defs": defs,
    }


def _refined(defs: Mapping[str, Schema], classes: Iterable[type]) -> Schema:
    """Definitions with tidy descriptions and the cross-field rules of `classes` merged in."""
    extras = {cls.__name__: getattr(cls, "json_schema_extra", {}) for cls in classes}
    refined: Schema = {}
    for name, definition in sorted(defs.items()):
        merged = dict(definition)
        if "description" in merged:
            merged["description"] = inspect.cleandoc(merged["description"])
        merged.update(extras.get(name, {}))
        refined[name] = merged
    return refined
