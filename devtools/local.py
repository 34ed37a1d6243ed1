"""Loopback ports and processes for the demo, the tests, the benchmarks and the chaos suite."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

START_SECONDS = 30.0


def free_port() -> int:
    """An unused loopback port, so nothing collides with a server already running."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    """Block until `port` accepts connections; fail at once if `process` died."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not open port {port} within {START_SECONDS:.0f} s")


def exit_with_parent() -> None:
    """End this process once its parent is gone, so no benchmark server outlives its run."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()
