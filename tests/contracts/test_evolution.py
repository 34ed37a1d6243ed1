"""The compatibility gate: the current schemas against the last release, and the gate itself on
synthetic schema pairs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

import contracts
from contracts._evolution import (
    Direction,
    allows_breaking_changes,
    breaking_changes,
    parse_version,
    release_problems,
)
from contracts._schemas import VERSION_KEY, commands_schema, events_schema
from tests.contracts.support import SCHEMA_DIR, load_schema

Schema = dict[str, Any]

BASE: Schema = {
    "$defs": {
        "Speak": {
            "type": "object",
            "properties": {
                "command": {"enum": ["agent.speak"]},
                "text": {"type": "string", "maxLength": 512},
                "priority": {"enum": ["APPEND", "IGNORE", "INTERRUPT"]},
                "volume": {"type": "number", "minimum": 0, "maximum": 1},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["command", "text"],
        },
        "Stop": {
            "type": "object",
            "properties": {"command": {"enum": ["agent.stop"]}, "agent_id": {"type": "string"}},
            "required": ["command", "agent_id"],
        },
    },
    "anyOf": [{"$ref": "#/$defs/Speak"}, {"$ref": "#/$defs/Stop"}],
}


Edit = Callable[[Schema], object]
Path = tuple[str | int, ...]
SPEAK = ("$defs", "Speak")
PROPS = (*SPEAK, "properties")
AT = "$[command=agent.speak]"


def at(schema: Schema, path: Path) -> Any:
    node: Any = schema
    for key in path:
        node = node[key]
    return node


def update(path: Path, **patch: Any) -> Edit:
    return lambda schema: at(schema, path).update(patch)


def pop(path: Path, key: str | int) -> Edit:
    return lambda schema: at(schema, path).pop(key)


def rename(path: Path, old: str, new: str) -> Edit:
    return lambda schema: at(schema, path).update({new: at(schema, path).pop(old)})


def append(path: Path, value: Any) -> Edit:
    return lambda schema: at(schema, path).append(value)


def remove(path: Path, value: Any) -> Edit:
    return lambda schema: at(schema, path).remove(value)


def changed(*edits: Edit) -> Schema:
    """A deep copy of BASE with the edits applied."""
    schema = copy.deepcopy(BASE)
    for edit in edits:
        edit(schema)
    return schema


def reasons(released: Schema, current: Schema, direction: Direction = "input") -> list[str]:
    return [str(change) for change in breaking_changes(released, current, direction)]


BREAKING_FOR_PRODUCERS = [
    (pop(PROPS, "priority"), f"{AT}.priority: field removed"),
    (rename(PROPS, "priority", "prio"), f"{AT}.priority: field removed"),
    (append((*SPEAK, "required"), "priority"), f"{AT}.priority: new required field"),
    (update((*PROPS, "volume"), type="integer"), f"{AT}.volume: type number removed"),
    (
        remove((*PROPS, "priority", "enum"), "IGNORE"),
        f"{AT}.priority: enum value 'IGNORE' removed",
    ),
    (update((*PROPS, "text"), maxLength=256), f"{AT}.text: maximum length 512 -> 256"),
    (update((*PROPS, "text"), minLength=1), f"{AT}.text: minimum length 0 -> 1"),
    (update((*PROPS, "volume"), minimum=0.1), f"{AT}.volume: minimum tightened from 0 to 0.1"),
    (
        update((*PROPS, "volume"), exclusiveMaximum=1),
        f"{AT}.volume: maximum tightened from 1 to 1 (exclusive)",
    ),
    (update((*PROPS, "text"), pattern="^[a-z]*$"), f"{AT}.text: pattern None -> '^[a-z]*$'"),
    (update(PROPS, note={"type": "string"}), f"{AT}.note: alternative null removed"),
    (update((*PROPS, "tags", "items"), type="integer"), f"{AT}.tags[]: type string removed"),
    (
        update((*PROPS, "labels", "additionalProperties"), maxLength=3),
        f"{AT}.labels{{}}: maximum length none -> 3",
    ),
    (update(SPEAK, additionalProperties=False), f"{AT}: unknown fields no longer accepted"),
    (
        update(SPEAK, oneOf=[{"required": ["text"]}]),
        f"{AT}: constraint 'oneOf' added or changed",
    ),
    (pop(("anyOf",), 1), "$: alternative command=agent.stop removed"),
]

COMPATIBLE_FOR_PRODUCERS = [
    [update(PROPS, speed={"type": "number"})],
    [append((*PROPS, "priority", "enum"), "LATER")],
    [pop((*PROPS, "volume"), "maximum")],
    [update((*PROPS, "volume"), type=["number", "string"])],
    [update((*PROPS, "text"), maxLength=1024, description="longer")],
    [remove((*SPEAK, "required"), "text")],
    [rename(("$defs",), "Stop", "Halt"), update(("anyOf", 1), **{"$ref": "#/$defs/Halt"})],
    [append(("anyOf",), {"$ref": "#/$defs/Speak"})],
    [update((), title="renamed", **{"x-contracts-version": "9.9.9"})],
]


class TestBreakingChanges:
    def test_identical_schemas_have_no_breaking_changes(self) -> None:
        """The baseline of every other case."""
        assert reasons(BASE, copy.deepcopy(BASE)) == []

    @pytest.mark.parametrize(("edit", "expected"), BREAKING_FOR_PRODUCERS)
    def test_narrowing_a_command_schema_breaks_producers(self, edit: Edit, expected: str) -> None:
        """What a producer could send before and cannot now is reported, with its path."""
        assert reasons(BASE, changed(edit)) == [expected]

    @pytest.mark.parametrize("edits", COMPATIBLE_FOR_PRODUCERS)
    def test_widening_a_command_schema_is_compatible(self, edits: list[Edit]) -> None:
        """New optional fields, wider types, ranges and enums, renamed $defs: no change."""
        assert reasons(BASE, changed(*edits)) == []

    def test_for_events_a_new_enum_value_breaks_consumers(self) -> None:
        """An old consumer cannot decode an outcome it has never heard of."""
        current = changed(append((*PROPS, "priority", "enum"), "LATER"))
        assert reasons(BASE, current, "output") == [f"{AT}.priority: enum value 'LATER' added"]

    def test_for_events_a_field_no_longer_required_breaks_consumers(self) -> None:
        """Consumers rely on required fields being present."""
        current = changed(remove((*SPEAK, "required"), "text"))
        assert reasons(BASE, current, "output") == [
            "$[command=agent.speak].text: no longer required"
        ]

    def test_for_events_removing_a_field_breaks_consumers(self) -> None:
        """Removal is breaking in both directions."""
        current = changed(pop(PROPS, "note"))
        assert reasons(BASE, current, "output") == [f"{AT}.note: field removed"]

    def test_for_events_narrowing_is_compatible(self) -> None:
        """Emitting less than before never surprises a consumer."""
        current = changed(remove((*PROPS, "priority", "enum"), "IGNORE"))
        assert reasons(BASE, current, "output") == []

    def test_a_real_narrowing_in_the_generated_schema_is_found(self) -> None:
        """On the real command schema, dropping one priority value is located precisely."""
        released = commands_schema("0.1.0")
        current = copy.deepcopy(released)
        current["$defs"]["AgentSpeak"]["properties"]["priority"]["enum"].remove("APPEND")
        assert reasons(released, current) == [f"{AT}.priority: enum value 'APPEND' removed"]


class TestVersionGate:
    @pytest.mark.parametrize(
        ("released", "current", "allowed"),
        [
            ("0.1.0", "0.1.1", False),
            ("0.1.0", "0.2.0", True),
            ("0.1.0", "1.0.0", True),
            ("1.4.2", "1.5.0", False),
            ("1.4.2", "2.0.0", True),
        ],
    )
    def test_breaking_needs_a_major_or_a_0x_minor(
        self, released: str, current: str, allowed: bool
    ) -> None:
        """Semantic versioning, with 0.x minors counting as majors."""
        assert allows_breaking_changes(released, current) is allowed

    def test_breaking_changes_without_the_bump_are_reported(self) -> None:
        """The gate names each change and the bump it needs."""
        changes = breaking_changes(BASE, changed(pop(("anyOf",), 1)), "input")
        assert release_problems("0.1.0", "0.1.1", {"commands": changes}) == [
            (
                "commands $: alternative command=agent.stop removed "
                "(breaking: bump the minor version of 0.1.0)"
            )
        ]
        assert release_problems("0.1.0", "0.2.0", {"commands": changes}) == []

    def test_going_back_in_version_is_refused(self) -> None:
        """A release can never be older than the last one."""
        assert release_problems("0.2.0", "0.1.9", {}) != []

    @pytest.mark.parametrize("version", ["1.2", "1.2.3-rc1", "v1.2.3", ""])
    def test_only_plain_semantic_versions_are_accepted(self, version: str) -> None:
        """A version the gate cannot order is an error, not a silent pass."""
        with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
            parse_version(version)


def test_the_current_contract_is_compatible_with_the_last_release() -> None:
    """THE gate: a breaking change fails here unless `contracts.__version__` is bumped for it."""
    released_dir = SCHEMA_DIR / "released"
    released_commands = load_schema("commands.schema.json", released_dir)
    released_events = load_schema("events.schema.json", released_dir)
    version = contracts.__version__
    changes = {
        "commands.schema.json": breaking_changes(
            released_commands, commands_schema(version), "input"
        ),
        "events.schema.json": breaking_changes(released_events, events_schema(version), "output"),
    }
    assert released_commands[VERSION_KEY] == released_events[VERSION_KEY]
    assert release_problems(released_commands[VERSION_KEY], version, changes) == []
