"""How the parent starts each worker process, and how a worker process notices its parent died."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from worker.cli import build_parser
from worker.commands.run import passed_on, watch_parent
from worker.processes.children import WorkerProcesses
from worker.settings import Settings


def test_each_process_is_the_worker_with_its_socket_its_index_and_the_flags_given():
    """`run --processes 1` on its own socket, with the parent's flags except the HTTP port
    (the parent's) and the process count."""
    argv = ["run", "--processes", "2", "--http-port", "9000", "--group", "g", "--bootstrap", "k:1"]
    flags = passed_on(build_parser(argv).parse_args(argv))
    assert flags == ["--bootstrap", "k:1", "--group", "g"]
    processes = WorkerProcesses(Settings(), flags, Path("/run/pod"))
    assert processes.argv(1)[1:] == [
        "-m",
        "worker",
        "run",
        "--bootstrap",
        "k:1",
        "--group",
        "g",
        "--processes",
        "1",
        "--ops-socket",
        "/run/pod/1.sock",
        "--process-index",
        "1",
    ]


def test_static_members_get_an_instance_id_each_that_survives_their_restarts():
    """Two processes with one group.instance.id would fence each other out of the group."""
    processes = WorkerProcesses(Settings(group_instance_id="pod-0"), [], Path("/run/pod"))
    environments = [processes._environment(index) for index in range(2)]
    assert [env and env["CONVOAI_GROUP_INSTANCE_ID"] for env in environments] == [
        "pod-0-0",
        "pod-0-1",
    ]
    assert WorkerProcesses(Settings(), [], Path("/run/pod"))._environment(0) is None


async def test_a_worker_process_stops_when_its_parent_is_gone():
    """The pipe from the parent reaches its end (the parent exited or was killed): the worker
    process is told once, as if it got SIGTERM."""
    read, write = os.pipe()
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    calls = []

    def on_gone() -> None:
        calls.append("gone")
        gone.set()

    try:
        watch_parent(loop, read, on_gone)
        await asyncio.sleep(0.01)
        assert not gone.is_set()
        os.close(write)
        await asyncio.wait_for(gone.wait(), 5)
        await asyncio.sleep(0.01)
        assert calls == ["gone"]
    finally:
        os.close(read)
