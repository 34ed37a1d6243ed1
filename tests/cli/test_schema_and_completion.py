"""`convoai-worker schema` prints the shipped documents; `completion` a working script."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.console import console, one_line
from worker.cli import COMMANDS

SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "schema"


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ([], "commands.schema.json"),
        (["--document", "events"], "events.schema.json"),
        (["--document", "commands"], "commands.schema.json"),
        (["--format", "asyncapi"], "asyncapi.yaml"),
    ],
)
def test_schema_prints_the_published_document(args: list[str], name: str) -> None:
    result = console("schema", *args)
    assert result.returncode == 0
    assert result.stdout == (SCHEMAS / name).read_text()


@pytest.mark.parametrize("document", ["events", "commands"])
def test_schema_refuses_a_document_asyncapi_does_not_split(document: str) -> None:
    """Any --document with asyncapi is refused, the default's name too: never ignored."""
    result = console("schema", "--format", "asyncapi", "--document", document)
    assert result.returncode == 2
    assert "--document applies to --format jsonschema only" in one_line(result.stderr)


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_covers_every_command_and_flag(shell: str) -> None:
    result = console("completion", shell)
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout
    for flag in ("--new-ids", "--dry-run", "--verbose", "--error-rate"):
        assert flag in result.stdout


def test_the_bash_script_is_valid_bash(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    script = tmp_path / "convoai-worker.bash"
    script.write_text(console("completion", "bash").stdout)
    checked = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
