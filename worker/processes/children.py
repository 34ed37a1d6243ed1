"""Starting the worker processes of a pod: `convoai-worker run` once per index.

Each is the worker exactly as a single process runs it, told on its command line what differs:
`--processes 1`; its ops routes on a private Unix socket in the parent's directory
(`--ops-socket`; only the pod's user can open it) instead of the HTTP port; its index
(`--process-index`), on each of its log lines as `process`. The flags the parent was given
(`--bootstrap`, `--group`, `--api-base-url`) are passed on; the environment is the parent's,
except that with static membership (`CONVOAI_GROUP_INSTANCE_ID`) each process is a member of
its own, `<id>-<index>`, which it keeps across restarts.

A process starts in a session of its own, so a Ctrl-C in a terminal reaches the parent alone
(which passes it on once). Its standard input is a pipe from the parent: when the parent dies,
however it dies, the pipe closes and the process drains and exits (`worker.commands.run`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from worker.settings import Settings, variable_name


class WorkerProcesses:
    """Spawns the worker process of each index."""

    def __init__(self, settings: Settings, flags: Sequence[str], directory: Path) -> None:
        self._instance_id = settings.group_instance_id
        self._flags = list(flags)
        self._directory = directory

    def socket(self, index: int) -> Path:
        """The process's private ops socket."""
        return self._directory / f"{index}.sock"

    async def spawn(self, index: int) -> asyncio.subprocess.Process:
        """Start the process of `index` (a process before it may have left its socket)."""
        socket = self.socket(index)
        socket.unlink(missing_ok=True)
        return await asyncio.create_subprocess_exec(
            *self.argv(index),
            stdin=asyncio.subprocess.PIPE,
            env=self._environment(index),
            start_new_session=True,
        )

    def argv(self, index: int) -> list[str]:
        """The command line of the process of `index`."""
        return [
            sys.executable,
            "-m",
            "worker",
            "run",
            *self._flags,
            "--processes",
            "1",
            "--ops-socket",
            str(self.socket(index)),
            "--process-index",
            str(index),
        ]

    def _environment(self, index: int) -> dict[str, str] | None:
        """The parent's environment (None), or with the process's own group instance id."""
        if not self._instance_id:
            return None
        return {**os.environ, variable_name("group_instance_id"): f"{self._instance_id}-{index}"}
