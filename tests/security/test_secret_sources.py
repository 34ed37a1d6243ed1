"""Where secrets come from: a `.env` file is read only when asked for or outside a container."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker.environment import ENV_FILE_VARIABLE, KUBERNETES_VARIABLE, process_environment


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a `.env` that sets a secret, and a clean environment."""
    for name in [n for n in os.environ if n.startswith("CONVOAI_") or n == KUBERNETES_VARIABLE]:
        monkeypatch.delenv(name)
    (tmp_path / ".env").write_text("CONVOAI_CUSTOMER_SECRET=planted-by-someone\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def root_with(tmp_path: Path, *markers: str) -> Path:
    """A file system root holding the container runtimes' `markers`."""
    root = tmp_path / "root"
    for marker in markers:
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / marker).touch()
    return root


def test_outside_a_container_the_working_directorys_env_file_is_read(workdir: Path) -> None:
    """A developer's checkout: `.env` is the convenience it always was."""
    env = process_environment(root=root_with(workdir))
    assert env["CONVOAI_CUSTOMER_SECRET"] == "planted-by-someone"


@pytest.mark.parametrize("marker", [".dockerenv", "run/.containerenv"])
def test_in_a_container_it_is_not_read(workdir: Path, marker: str) -> None:
    """Docker and Podman leave a file at the root."""
    assert "CONVOAI_CUSTOMER_SECRET" not in process_environment(root=root_with(workdir, marker))


def test_in_a_kubernetes_pod_it_is_not_read(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kubernetes sets KUBERNETES_SERVICE_HOST in every container (without marker files)."""
    monkeypatch.setenv(KUBERNETES_VARIABLE, "10.0.0.1")
    assert "CONVOAI_CUSTOMER_SECRET" not in process_environment(root=root_with(workdir))


def test_in_a_container_a_file_asked_for_is_read(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`CONVOAI_ENV_FILE` names the file to read wherever the worker runs."""
    monkeypatch.setenv(ENV_FILE_VARIABLE, ".env")
    env = process_environment(root=root_with(workdir, ".dockerenv"))
    assert env["CONVOAI_CUSTOMER_SECRET"] == "planted-by-someone"
