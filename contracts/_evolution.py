"""Breaking-change detection between two versions of a JSON Schema, and the release gate.

A change is breaking when a document valid under one version is invalid under the other in the
direction that matters:

- `input` schemas (commands) are written by producers against the released version, so the new
  schema must accept everything the released one did: no removed or renamed field, no new
  required field, no narrower type, enum, range, length or pattern.
- `output` schemas (events) are read by consumers built against the released version, so the
  released schema must accept everything the new one can emit: a new enum value or a wider type
  breaks them just like a removed field.

Removing a documented field is breaking in both directions even where unknown fields are allowed:
producers and consumers lose a contract they relied on. Adding an optional field is not.
Annotations (`description`, `title`, `examples`, `default`, `$comment`, `x-*`) never matter and
`$defs` names are followed, not compared, so renaming a Struct is not a change.

The gate: breaking changes need a new major version (a new minor while the major is 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Schema = dict[str, Any]
Direction = Literal["input", "output"]

_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "examples",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "discriminator",
    }
)
_HANDLED = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "anyOf",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "pattern",
        "format",
        "uniqueItems",
    }
)
_NUMERIC_BOUNDS = (
    ("minimum", "minimum", "exclusiveMinimum", 1),
    ("maximum", "maximum", "exclusiveMaximum", -1),
)
_LOWER_BOUNDS = (("minLength", "length"), ("minItems", "items"), ("minProperties", "properties"))
_UPPER_BOUNDS = (("maxLength", "length"), ("maxItems", "items"), ("maxProperties", "properties"))
_JSON_TYPES = ("null", "boolean", "object", "array", "number", "string", "integer")


@dataclass(frozen=True)
class Change:
    """One breaking change: where (`$.properties…` style path) and what."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def breaking_changes(released: Schema, current: Schema, direction: Direction) -> list[Change]:
    """The changes from `released` to `current` that break their producers or consumers."""
    return _Comparison(released, current, direction).run()


def parse_version(version: str) -> tuple[int, int, int]:
    """`MAJOR.MINOR.PATCH` as integers; anything else is refused."""
    parts = version.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"expected a MAJOR.MINOR.PATCH version, got {version!r}")
    major, minor, patch = (int(part) for part in parts)
    return major, minor, patch


def allows_breaking_changes(released: str, current: str) -> bool:
    """Whether `current` is a breaking release after `released` (major, or minor while 0.x)."""
    old, new = parse_version(released), parse_version(current)
    if old[0] == 0:
        return new[:2] > old[:2]
    return new[0] > old[0]


def release_problems(
    released_version: str, current_version: str, changes_by_schema: dict[str, list[Change]]
) -> list[str]:
    """Why `current_version` may not be released with these changes; empty when it may."""
    if parse_version(current_version) < parse_version(released_version):
        return [f"version {current_version} is older than the released {released_version}"]
    if allows_breaking_changes(released_version, current_version):
        return []
    bump = "minor" if parse_version(released_version)[0] == 0 else "major"
    return [
        f"{name} {change} (breaking: bump the {bump} version of {released_version})"
        for name, changes in changes_by_schema.items()
        for change in changes
    ]


class _Comparison:
    """Walks the released and the current schema side by side."""

    def __init__(self, released: Schema, current: Schema, direction: Direction) -> None:
        self.released_root = released
        self.current_root = current
        self.direction = direction
        self.changes: list[Change] = []
        self._seen: set[tuple[int, int]] = set()

    def run(self) -> list[Change]:
        self.compare(self.released_root, self.current_root, "$")
        return self.changes

    def report(self, path: str, reason: str) -> None:
        self.changes.append(Change(path, reason))

    def compare(self, released: Schema, current: Schema, path: str) -> None:
        """Report breaking differences between two corresponding schema nodes."""
        released = _resolve(self.released_root, released)
        current = _resolve(self.current_root, current)
        key = (id(released), id(current))
        if key in self._seen:
            return
        self._seen.add(key)
        for name in sorted(_properties(released).keys() - _properties(current).keys()):
            self.report(f"{path}.{name}", "field removed")
        # `wide` must accept everything `narrow` is asked to accept.
        if self.direction == "input":
            self.narrowing(wide=released, narrow=current, path=path)
        else:
            self.narrowing(wide=current, narrow=released, path=path)

    def pair(self, wide: Schema, narrow: Schema, path: str) -> None:
        """Recurse into sub-schemas, keeping released/current order for `compare`."""
        if self.direction == "input":
            self.compare(wide, narrow, path)
        else:
            self.compare(narrow, wide, path)

    def narrowing(self, wide: Schema, narrow: Schema, path: str) -> None:
        wide_root, narrow_root = self.released_root, self.current_root
        if self.direction == "output":
            wide_root, narrow_root = narrow_root, wide_root
        wide_options = _alternatives(wide_root, wide)
        narrow_options = _alternatives(narrow_root, narrow)
        if len(wide_options) > 1 or len(narrow_options) > 1:
            self.union(wide_options, narrow_options, path)
            return
        self.types_and_values(wide, narrow, path)
        self.bounds(wide, narrow, path)
        self.strings(wide, narrow, path)
        self.objects(wide, narrow, path)
        if "items" in narrow:
            self.pair(wide.get("items", {}), narrow["items"], f"{path}[]")
        self.other_keywords(wide, narrow, path)

    def union(self, wide_options: list[Schema], narrow_options: list[Schema], path: str) -> None:
        """Every alternative of `wide` must survive as some alternative of `narrow`."""
        for option in wide_options:
            label = _label(option)
            candidates = [
                candidate for candidate in narrow_options if _same_kind(option, candidate)
            ]
            if not candidates:
                self.report(path, f"alternative {label} {self.lost}")
                continue
            best = min(candidates, key=lambda candidate: self.trial(option, candidate, path))
            self.pair(option, best, _union_path(path, option))

    def trial(self, wide: Schema, narrow: Schema, path: str) -> int:
        """How many changes comparing this pair would report (without reporting them)."""
        trial = _Comparison(self.released_root, self.current_root, self.direction)
        trial.pair(wide, narrow, path)
        return len(trial.changes)

    @property
    def lost(self) -> str:
        return "removed" if self.direction == "input" else "added"

    def types_and_values(self, wide: Schema, narrow: Schema, path: str) -> None:
        wide_types, narrow_types = _types(wide), _types(narrow)
        missing = sorted(
            t
            for t in wide_types - narrow_types
            if not (t == "integer" and "number" in narrow_types)
        )
        if missing:
            self.report(path, f"type {', '.join(missing)} {self.lost}")
        if "enum" in narrow or "const" in narrow:
            narrow_values = _values(narrow)
            if "enum" not in wide and "const" not in wide:
                self.report(
                    path,
                    "values restricted to an enum"
                    if self.direction == "input"
                    else "enum restriction lifted",
                )
                return
            for value in _values(wide):
                if value not in narrow_values:
                    self.report(path, f"enum value {value!r} {self.lost}")

    def bounds(self, wide: Schema, narrow: Schema, path: str) -> None:
        for label, inclusive, exclusive, sign in _NUMERIC_BOUNDS:
            wide_bound = _tightest(wide, inclusive, exclusive, sign)
            narrow_bound = _tightest(narrow, inclusive, exclusive, sign)
            if narrow_bound is not None and (wide_bound is None or narrow_bound > wide_bound):
                before, after = _show(wide_bound, sign), _show(narrow_bound, sign)
                self.report(path, f"{label} tightened from {before} to {after}")
        for keyword, what in _LOWER_BOUNDS:
            if keyword in narrow and narrow[keyword] > wide.get(keyword, 0):
                self.report(path, f"minimum {what} {wide.get(keyword, 0)} -> {narrow[keyword]}")
        for keyword, what in _UPPER_BOUNDS:
            if keyword in narrow and narrow[keyword] < wide.get(keyword, float("inf")):
                limit = wide.get(keyword, "none")
                self.report(path, f"maximum {what} {limit} -> {narrow[keyword]}")

    def strings(self, wide: Schema, narrow: Schema, path: str) -> None:
        for keyword in ("pattern", "format"):
            if keyword in narrow and narrow[keyword] != wide.get(keyword):
                self.report(path, f"{keyword} {wide.get(keyword)!r} -> {narrow[keyword]!r}")
        if narrow.get("uniqueItems") and not wide.get("uniqueItems"):
            self.report(path, "items must now be unique")

    def objects(self, wide: Schema, narrow: Schema, path: str) -> None:
        for name in sorted(set(narrow.get("required", ())) - set(wide.get("required", ()))):
            reason = "new required field" if self.direction == "input" else "no longer required"
            self.report(f"{path}.{name}", reason)
        wide_properties, narrow_properties = _properties(wide), _properties(narrow)
        for name in sorted(wide_properties.keys() & narrow_properties.keys()):
            self.pair(wide_properties[name], narrow_properties[name], f"{path}.{name}")
        wide_extra = wide.get("additionalProperties", True)
        narrow_extra = narrow.get("additionalProperties", True)
        if narrow_extra is False and wide_extra is not False:
            self.report(path, "unknown fields no longer accepted")
        elif isinstance(narrow_extra, dict):
            self.pair(
                wide_extra if isinstance(wide_extra, dict) else {}, narrow_extra, f"{path}{{}}"
            )

    def other_keywords(self, wide: Schema, narrow: Schema, path: str) -> None:
        """Any other assertion (`oneOf`, `if`, `not`, …) counts as changed unless identical."""
        for keyword in sorted(narrow.keys() - _HANDLED - _ANNOTATIONS):
            if keyword.startswith("x-"):
                continue
            if narrow[keyword] != wide.get(keyword):
                self.report(path, f"constraint {keyword!r} added or changed")


def _resolve(root: Schema, node: Schema) -> Schema:
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported, got {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **siblings} if siblings else target
    return node


def _alternatives(root: Schema, node: Schema) -> list[Schema]:
    """The members of a (possibly nested) `anyOf`, references resolved."""
    node = _resolve(root, node)
    if "anyOf" not in node:
        return [node]
    return [member for option in node["anyOf"] for member in _alternatives(root, option)]


def _types(node: Schema) -> set[str]:
    if "type" in node:
        declared = node["type"]
        return {declared} if isinstance(declared, str) else set(declared)
    if "enum" in node or "const" in node:
        return {_json_type(value) for value in _values(node)}
    return set(_JSON_TYPES)


def _values(node: Schema) -> list[Any]:
    return [node["const"]] if "const" in node else list(node.get("enum", ()))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _properties(node: Schema) -> dict[str, Schema]:
    properties: dict[str, Schema] = node.get("properties", {})
    return properties


def _tag(node: Schema) -> tuple[str, Any] | None:
    """The (field, value) that identifies a tagged-union member: a required single-value field."""
    for name in node.get("required", ()):
        values = _values(_properties(node).get(name, {}))
        if len(values) == 1:
            return name, values[0]
    return None


def _same_kind(wide: Schema, narrow: Schema) -> bool:
    wide_tag, narrow_tag = _tag(wide), _tag(narrow)
    if wide_tag is not None or narrow_tag is not None:
        return wide_tag == narrow_tag
    return bool(_types(wide) & _types(narrow)) or (
        "integer" in _types(wide) and "number" in _types(narrow)
    )


def _label(node: Schema) -> str:
    tag = _tag(node)
    if tag is not None:
        return f"{tag[0]}={tag[1]}"
    return "|".join(sorted(_types(node)))


def _union_path(path: str, option: Schema) -> str:
    tag = _tag(option)
    return f"{path}[{tag[0]}={tag[1]}]" if tag is not None else path


Bound = tuple[float, bool]
"""A numeric bound as (sign * value, exclusive): for either side, a larger Bound is tighter."""


def _tightest(node: Schema, inclusive: str, exclusive: str, sign: int) -> Bound | None:
    bounds = [
        (sign * float(node[keyword]), is_exclusive)
        for keyword, is_exclusive in ((inclusive, False), (exclusive, True))
        if keyword in node
    ]
    return max(bounds) if bounds else None


def _show(bound: Bound | None, sign: int) -> str:
    if bound is None:
        return "none"
    value, exclusive = bound
    return f"{sign * value:g}{' (exclusive)' if exclusive else ''}"
