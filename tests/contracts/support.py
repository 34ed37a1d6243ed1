"""Shared test helpers: the committed schemas as validators, and the examples in the docs."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "contracts" / "schema"
GUIDE = ROOT / "docs" / "contracts.md"

# ```json <role> [expected error path]
_FENCE = re.compile(r"^```json(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def load_schema(name: str, directory: Path = SCHEMA_DIR) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((directory / name).read_text())
    return schema


@cache
def command_validator() -> Draft202012Validator:
    """Validates a command value against the committed commands schema, formats asserted."""
    return Draft202012Validator(
        load_schema("commands.schema.json"), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@cache
def event_validator(definition: str) -> Draft202012Validator:
    """Validates against one `$defs` entry of the events schema, e.g. `ResultEvent`."""
    schema = load_schema("events.schema.json")
    registry: Registry[Any] = Registry().with_resource(
        schema["$id"], Resource.from_contents(schema)
    )
    return Draft202012Validator(
        {"$ref": f"{schema['$id']}#/$defs/{definition}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def guide_examples() -> list[tuple[str, str, str]]:
    """(role, argument, JSON text) of every ```json block in docs/contracts.md."""
    found = []
    for match in _FENCE.finditer(GUIDE.read_text()):
        role, _, argument = match["info"].strip().partition(" ")
        found.append((role, argument, match["body"]))
    return found
