"""Where `CONVOAI_*` values come from: the process environment, an optional `.env` file, and
`*_FILE` variables that name a file holding a secret (how Kubernetes and Docker mount secrets).

The process environment wins over the `.env` file, so a value exported in the shell or set by
the orchestrator is never silently replaced by a forgotten file. `CONVOAI_ENV_FILE` names the
file (empty: none). Without it, `.env` in the working directory is read on a developer's
machine only: not in a container, whose working directory may be writable by others (the
image's `/tmp`) and whose settings come from the orchestrator. A container is recognised by
what the runtimes leave in it: `KUBERNETES_SERVICE_HOST` in the environment (every Kubernetes
container), `/.dockerenv` (Docker) or `/run/.containerenv` (Podman, CRI-O).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

ENV_FILE_VARIABLE = "CONVOAI_ENV_FILE"
DEFAULT_ENV_FILE = ".env"
FILE_SUFFIX = "_FILE"
KUBERNETES_VARIABLE = "KUBERNETES_SERVICE_HOST"
CONTAINER_MARKERS = (".dockerenv", "run/.containerenv")

_LINE = re.compile(r"(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class SourceError(ValueError):
    """A `.env` file or a `*_FILE` variable cannot be used; the message names which."""


def process_environment(
    environ: Mapping[str, str] | None = None, *, root: Path = Path("/")
) -> dict[str, str]:
    """The variables the settings are read from: the env file overlaid by `environ`.

    For the process environment (`environ=None`) the file defaults to `.env` outside a
    container (`root` is where the runtimes' marker files are looked for); a given mapping
    uses a file only when it names one in `CONVOAI_ENV_FILE`.
    """
    env = dict(os.environ if environ is None else environ)
    default = DEFAULT_ENV_FILE if environ is None and not in_container(env, root) else ""
    name = env.get(ENV_FILE_VARIABLE, default)
    if not name:
        return env
    path = Path(name)
    if not path.is_file():
        if ENV_FILE_VARIABLE in env:
            raise SourceError(f"{ENV_FILE_VARIABLE}: no such file: {name}")
        return env
    return {**read_env_file(path), **env}


def in_container(env: Mapping[str, str], root: Path = Path("/")) -> bool:
    """Whether this process runs in a container, by the marks Kubernetes, Docker and Podman
    leave."""
    if KUBERNETES_VARIABLE in env:
        return True
    return any((root / marker).exists() for marker in CONTAINER_MARKERS)


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines: `#` comments, blank lines, `export KEY=...`, '...' and "..." quotes."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"{path}: cannot read the env file: {_reason(error)}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise SourceError(f"{path}:{number}: expected KEY=VALUE, got {line[:40]!r}")
        try:
            values[match["key"]] = _unquote(match["value"])
        except ValueError as error:
            raise SourceError(f"{path}:{number}: {error}") from None
    return values


def resolve_files(env: Mapping[str, str], prefix: str, names: Iterable[str]) -> dict[str, str]:
    """`env` with each `PREFIX<NAME>_FILE` replaced by the content of the file it names.

    The content loses its trailing line break (files written by `echo` have one). Setting both
    `PREFIX<NAME>` and `PREFIX<NAME>_FILE` is an error: which one wins would be a guess.
    """
    resolved = dict(env)
    for name in names:
        variable = f"{prefix}{name.upper()}"
        file_variable = variable + FILE_SUFFIX
        path = env.get(file_variable)
        if not path:
            continue
        if env.get(variable):
            raise SourceError(f"set {variable} or {file_variable}, not both")
        try:
            resolved[variable] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            raise SourceError(f"{file_variable}: cannot read {path}: {_reason(error)}") from None
    return resolved


def _unquote(value: str) -> str:
    if value[:1] == "'":
        end = value.find("'", 1)
        if end < 0:
            raise ValueError("unterminated single quote")
        return value[1:end]
    if value[:1] == '"':
        out: list[str] = []
        index = 1
        while index < len(value):
            char = value[index]
            if char == '"':
                return "".join(out)
            if char == "\\" and index + 1 < len(value):
                index += 1
                out.append(_ESCAPES.get(value[index], "\\" + value[index]))
            else:
                out.append(char)
            index += 1
        raise ValueError("unterminated double quote")
    comment = re.search(r"\s#", value)
    return (value[: comment.start()] if comment else value).strip()


def _reason(error: BaseException) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error)
