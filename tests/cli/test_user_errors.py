"""Every user error ends in one line naming the flag, variable or file, with the table's code.

The console script runs as a subprocess, as a user runs it; nothing here needs a broker (an
address nothing listens on stands for an unreachable one).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console import clean_environment, console, one_line

NOWHERE = "127.0.0.1:1"  # connection refused at once
NOT_UTF8 = b'{"command":"agent.list","id":"\xff"}\n'
LIST = b'{"command":"agent.list","id":"l-1"}\n'
API_NOWHERE = clean_environment(  # two quick attempts against a port nothing listens on
    CONVOAI_API_BASE_URL="http://127.0.0.1:1/api",
    CONVOAI_APP_ID="app",
    CONVOAI_API_MAX_ATTEMPTS="2",
    CONVOAI_API_BACKOFF_BASE_SECONDS="0.01",
)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


class TestUsage:
    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["emulator", "--port", "70000"], "argument --port: expected a port from 0 to 65535"),
            (["emulator", "--port", "x"], "argument --port: expected a port from 0 to 65535"),
            (
                ["emulator", "--error-rate", "503"],
                "argument --error-rate: expected STATUS=RATE with STATUS 400-599 and RATE 0-1",
            ),
            (
                ["emulator", "--error-rate", "503=five"],
                "argument --error-rate: expected STATUS=RATE",
            ),
            (["emulator", "--drop-rate", "2"], "argument --drop-rate: expected a fraction"),
            (["emulator", "--fault", '{"status": 99}'], "argument --fault: invalid fault rule"),
            (
                ["emulator", "--fault", '{"operation": "agent.strat"}'],
                "unknown operation 'agent.strat'; did you mean 'agent.start'?",
            ),
            (["run", "--http-port", "-1"], "argument --http-port: expected a port"),
            (["tail", "--max-results", "-3"], "argument --max-results: expected an integer >= 0"),
            (["send", "--raw", "--dry-run"], "argument --dry-run: not allowed with argument --raw"),
            (["dance"], "argument COMMAND: invalid choice: 'dance'"),
        ],
    )
    def test_a_bad_flag_is_one_line_and_exit_2(self, args: list[str], expected: str) -> None:
        """argparse's usage block is replaced by the one line that matters."""
        result = console(*args)
        assert result.returncode == 2
        assert expected in one_line(result.stderr)
        assert "(see convoai-worker" in result.stderr

    def test_help_shows_the_exit_codes(self) -> None:
        """The same table on the top-level help and on every subcommand's."""
        for args in (["--help"], ["exec", "--help"], ["dlq", "replay", "--help"]):
            result = console(*args)
            assert result.returncode == 0, result.stderr
            assert "exit codes (every command):" in result.stdout
            assert "3    Kafka or the ConvoAI API cannot be reached" in result.stdout


class TestInput:
    @pytest.mark.parametrize("how", ["file", "stdin", "argument"])
    def test_exec_refuses_bytes_that_are_not_utf8(self, how: str, tmp_path: Path) -> None:
        """Exit 2 (invalid input), not 1 (a command failed), and no traceback."""
        path = tmp_path / "c.json"
        path.write_bytes(NOT_UTF8)
        args = {"file": ["--file", str(path)], "stdin": ["-"], "argument": []}[how]
        if how == "argument":
            args = [NOT_UTF8.decode("utf-8", "surrogateescape")]
        result = console("exec", *args, stdin=NOT_UTF8)
        assert result.returncode == 2
        assert "not UTF-8 text (byte 0xff on line 1)" in one_line(result.stderr)

    def test_exec_names_a_missing_file(self, tmp_path: Path) -> None:
        result = console("exec", "--file", str(tmp_path / "nope.json"))
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            f"convoai-worker exec: --file {tmp_path / 'nope.json'}: no such file"
        )

    @pytest.mark.parametrize("command", ["send", "validate"])
    def test_a_missing_or_unreadable_file_is_named(self, command: str, tmp_path: Path) -> None:
        for path, reason in ((tmp_path / "nope.jsonl", "no such file"), (tmp_path, "directory")):
            result = console(command, str(path))
            assert result.returncode == 2
            assert f"file {path}: " in one_line(result.stderr)
            assert reason in result.stderr

    def test_exec_names_a_json_lines_file_as_one(self, tmp_path: Path) -> None:
        """Several commands are `send`'s job; a command pretty-printed over lines is still one
        (it gets as far as the API, nowhere here: exit 3)."""
        path = tmp_path / "c.jsonl"
        path.write_bytes(LIST + LIST.replace(b"l-1", b"l-2"))
        result = console("exec", "--file", str(path))
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            f"convoai-worker exec: {path}: 2 lines of JSON, but exec runs one command; "
            "`convoai-worker send` produces a JSON-lines file (`validate` checks it)"
        )
        path.write_bytes(b'{\n  "command": "agent.list",\n  "id": "l-1"\n}\n')
        assert console("exec", "--file", str(path), env=API_NOWHERE).returncode == 3

    def test_exec_says_the_input_is_empty(self) -> None:
        result = console("exec", "-", stdin=b"\n")
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            "convoai-worker exec: invalid command: $: empty value, expected a JSON object"
        )

    def test_an_unknown_command_name_gets_the_closest_and_the_list(self) -> None:
        result = console("exec", '{"command":"agent.speek","id":"x"}')
        assert result.returncode == 2
        line = one_line(result.stderr)
        assert "unknown command 'agent.speek'; did you mean 'agent.speak'?" in line
        assert line.endswith("number.list, number.update, number.delete")
        assert line.count(", ") == 18  # all 19 names


class TestUnreachable:
    def test_exec_exits_3_when_the_api_never_answers(self) -> None:
        """`--verbose` shows each attempt and backoff meanwhile; the result is still printed."""
        result = console("exec", "--verbose", LIST.decode(), env=API_NOWHERE)
        assert result.returncode == 3
        assert '"outcome":"failed"' in result.stdout
        lines = result.stderr.splitlines()
        assert lines[0].startswith("attempt 1: agent.list -> error in ")
        assert lines[1].startswith("retrying agent.list in ")
        assert lines[1].endswith(" s (connection)")
        assert lines[2].startswith("attempt 2: agent.list -> error in ")

    def test_exec_is_quiet_without_verbose(self) -> None:
        result = console("exec", LIST.decode(), env=API_NOWHERE)
        assert (result.returncode, result.stderr) == (3, "")

    def test_send_reports_refused_lines_before_the_broker(self, tmp_path: Path) -> None:
        """The refused line is not hidden by the broker error; nothing sent: exit 3."""
        path = tmp_path / "c.jsonl"
        path.write_bytes(LIST + NOT_UTF8)
        result = console("send", str(path), "--bootstrap", NOWHERE)
        assert result.returncode == 3
        first, second = result.stderr.splitlines()
        assert first.startswith("line 2: $")
        assert second.startswith(
            "convoai-worker send: nothing sent to convoai.commands on 127.0.0.1:1: cannot connect"
        )

    def test_send_raw_takes_any_bytes(self, tmp_path: Path) -> None:
        path = tmp_path / "c.jsonl"
        path.write_bytes(NOT_UTF8)
        result = console("send", "--raw", str(path), "--bootstrap", NOWHERE)
        assert result.returncode == 3
        assert "cannot connect to the broker" in one_line(result.stderr)

    def test_tail_exits_3_in_one_line_without_warnings(self) -> None:
        """No `Unclosed AIOKafkaConsumer` after a failed start."""
        result = console("tail", "--bootstrap", NOWHERE)
        assert result.returncode == 3
        assert one_line(result.stderr).startswith(
            "convoai-worker tail: cannot follow 127.0.0.1:1: cannot connect to the broker"
        )

    def test_run_exits_3_when_kafka_stays_unreachable(self) -> None:
        """It waits `CONVOAI_STARTUP_TIMEOUT_SECONDS` with one line per attempt, then gives up."""
        env = clean_environment(
            CONVOAI_LOG_FORMAT="console",
            CONVOAI_LOG_LEVEL="WARNING",
            CONVOAI_STARTUP_TIMEOUT_SECONDS="1.2",
        )
        started = time.monotonic()
        result = console("run", "--bootstrap", NOWHERE, "--http-port", "0", env=env)
        assert time.monotonic() - started >= 1.2
        assert result.returncode == 3
        attempts = [line for line in result.stderr.splitlines() if "kafka_unreachable" in line]
        assert len(attempts) >= 2, result.stderr  # at 0 and 0.5 s, then 1.5 s is past it
        assert all("attempt=" in line and "retry_in_seconds=" in line for line in attempts)
        # aiokafka's own log line may precede it; the worker's verdict is the last line
        assert "worker_cannot_start" in result.stderr.splitlines()[-1]
        assert "cannot connect to Kafka at 127.0.0.1:1 (PLAINTEXT)" in result.stderr
        assert "Connection refused" in result.stderr.splitlines()[-1]
        assert "Traceback" not in result.stderr

    def test_run_on_a_busy_port_names_the_setting(self, busy_port: int) -> None:
        env = clean_environment(CONVOAI_LOG_FORMAT="json", CONVOAI_LOG_LEVEL="ERROR")
        result = console("run", "--http-port", str(busy_port), "--bootstrap", NOWHERE, env=env)
        assert result.returncode == 2
        line = one_line(result.stderr)
        assert (
            f"CONVOAI_HTTP_PORT (--http-port): cannot listen on 0.0.0.0:{busy_port}: "
            "address already in use; choose another port"
        ) in line
        assert "Traceback" not in line

    def test_emulator_on_a_busy_port_names_the_flag(self, busy_port: int) -> None:
        result = console("emulator", "--port", str(busy_port))
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            "convoai-worker emulator: --host/--port: cannot listen on "
            f"127.0.0.1:{busy_port}: address already in use; choose another --port"
        )
