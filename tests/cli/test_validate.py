"""`convoai-worker validate` and `send --dry-run`: the file checked like `send`, no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console import console, one_line

REPO = Path(__file__).resolve().parents[2]
GOOD = b'{"command":"agent.list","id":"v-1"}\n'
BAD_TYPE = b'{"command":"agent.speak","id":"v-2","name":"bot","text":5}\n'
DUPLICATE = b'{"command":"agent.get","id":"v-1","name":"bot"}\n'


@pytest.fixture
def commands(tmp_path: Path) -> Path:
    path = tmp_path / "commands.jsonl"
    path.write_bytes(b"# comment\n" + GOOD + BAD_TYPE + b"\n" + DUPLICATE + b"{oops\n")
    return path


def test_the_readme_scenario_is_valid() -> None:
    """`convoai-worker send examples/scenario.jsonl` works as the README says."""
    result = console("validate", str(REPO / "examples" / "scenario.jsonl"))
    assert result.returncode == 0, result.stdout
    assert result.stdout.endswith(" 18 valid command(s), 0 refused\n")


@pytest.mark.parametrize(
    "args", [["validate"], ["send", "--dry-run", "--bootstrap", "127.0.0.1:1"]]
)
def test_each_bad_line_is_named_then_a_summary(args: list[str], commands: Path) -> None:
    """Numbers count from the file's first line; duplicate ids are refused (the worker would
    skip them as done); exit 1. `send --dry-run` never contacts the (absent) broker."""
    result = console(*args, str(commands))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "line 3: $.text: expected str, got int",
        "line 5: $.id: 'v-1' is already the id of line 2; the worker would skip this line as done",
        "line 6: $: JSON is malformed: object keys must be strings (byte 1)",
        f"{commands}: 1 valid command(s), 3 refused",
    ]


def test_stdin_is_checked_too() -> None:
    result = console("validate", "-", stdin=GOOD)
    assert (result.returncode, result.stdout) == (0, "stdin: 1 valid command(s), 0 refused\n")


@pytest.mark.parametrize("args", [["validate"], ["send", "--bootstrap", "127.0.0.1:1"]])
@pytest.mark.parametrize("content", [b"", b"# only a comment\n\n"])
def test_an_input_without_commands_is_refused(
    args: list[str], content: bytes, tmp_path: Path
) -> None:
    """An empty file is a wrong path or a failed export: exit 2, not "0 valid, 0 refused"."""
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    result = console(*args, str(path))
    assert result.returncode == 2
    assert one_line(result.stderr).endswith(
        f"{path}: no commands: it is empty or holds only comments"
    )
