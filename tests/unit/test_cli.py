"""The console script: help, version, settings errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli import COMMANDS, main


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )


def test_help_lists_every_subcommand() -> None:
    """`--help` explains each registered subcommand."""
    result = run_cli("--help")
    assert result.returncode == 0
    for name, (_, help_text) in COMMANDS.items():
        assert name in result.stdout
        assert help_text.split()[0] in result.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every subcommand module configures its own parser."""
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    assert exited.value.code == 0
    assert COMMANDS[name][1] in " ".join(capsys.readouterr().out.split())


def test_invalid_setting_exits_2_with_the_variable_name() -> None:
    """A bad environment is reported, not a traceback."""
    result = run_cli("config", env={"CONVOAI_HTTP_PORT": "nope", "PATH": ""})
    assert result.returncode == 2
    assert "CONVOAI_HTTP_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_masks_secrets() -> None:
    """`config` prints resolved settings without secret values."""
    result = run_cli("config", env={"CONVOAI_CUSTOMER_SECRET": "very-secret-value", "PATH": ""})
    assert result.returncode == 0
    assert '"customer_secret": "***"' in result.stdout
    assert "very-secret-value" not in result.stdout


def test_send_reports_an_unreachable_broker(tmp_path: Path) -> None:
    """No traceback when Kafka cannot be reached: one line naming the address, exit 2."""
    commands = tmp_path / "c.jsonl"
    commands.write_text('{"command":"agent.list","id":"x"}\n')
    result = run_cli("send", str(commands), "--bootstrap", "127.0.0.1:1", "--quiet")
    assert result.returncode == 2
    assert "nothing sent to convoai.commands on 127.0.0.1:1: cannot connect" in result.stderr
    assert "Traceback" not in result.stderr
