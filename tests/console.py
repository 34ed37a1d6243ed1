"""Running the installed `convoai-worker` console script as a user does, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("convoai-worker")


def clean_environment(**variables: str) -> dict[str, str]:
    """The test process's environment without any CONVOAI_* variable, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOAI_")}
    return env | variables


def console(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: bytes = b"",
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run `convoai-worker ARGS`; stdout and stderr decoded (undecodable bytes replaced)."""
    process = subprocess.run(
        [str(SCRIPT), *args],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=timeout,
        env=clean_environment() if env is None else env,
        cwd=cwd,
    )
    return subprocess.CompletedProcess(
        process.args,
        process.returncode,
        process.stdout.decode("utf-8", "replace"),
        process.stderr.decode("utf-8", "replace"),
    )


def one_line(text: str) -> str:
    """The only line of `text`; fails when there are more (a user error is one line)."""
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]
