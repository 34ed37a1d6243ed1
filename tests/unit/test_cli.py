"""The console script: help, version, settings errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli import COMMANDS, build_parser, main
from worker.commands.exit_codes import TABLE


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
    result = run_cli(
        "config",
        env={
            "CONVOAI_CUSTOMER_ID": "customer",
            "CONVOAI_CUSTOMER_SECRET": "very-secret-value",
            "PATH": "",
        },
    )
    assert result.returncode == 0
    assert '"customer_secret": "***"' in result.stdout
    assert "very-secret-value" not in result.stdout


def test_the_readme_lists_every_command_and_the_exit_codes() -> None:
    """A new command or exit code is documented where users look first."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in COMMANDS:
        assert f"| `{name}" in readme, name
    codes = re.findall(r"^  (\d+) ", TABLE, re.MULTILINE)
    assert codes == ["0", "1", "2", "3", "130"]
    for code in codes:
        assert f"\n| {code} | " in readme, code


def test_the_readme_quick_start_names_real_targets_commands_and_flags() -> None:
    """Every line of the quick start runs as written: its make targets exist and each
    `convoai-worker` line parses with the CLI's own parser."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    targets = set(re.findall(r"^([a-z-]+):", (root / "Makefile").read_text(), re.MULTILINE))
    commands = []
    for line in block.splitlines():
        for step in line.split("#", 1)[0].split(";"):
            words = step.split(">", 1)[0].rstrip(" &").split()
            if words[:1] == ["make"]:
                assert set(words[1:]) <= targets, words
            elif words[:1] == ["convoai-worker"]:
                commands.append(words[1:])
    assert [words[0] for words in commands] == ["emulator", "run", "send", "tail"]
    for words in commands:
        build_parser(words).parse_args(words)
