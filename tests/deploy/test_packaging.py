"""The three distributions hold what they promise: producers install the contracts alone, the
worker wheel carries no emulator, and `convoai-worker emulator` without it says what to install.

Wheels are built with uv; fresh environments are installed from uv.lock and uv's cache only
(`--offline`, non-editable), the way the Dockerfile installs the production image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

import contracts

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ("convoai-worker", "convoai-contracts", "convoai-emulator")


def _uv() -> str:
    """uv as `uv run` announces it (UV), on PATH, or where scripts/bootstrap installs it."""
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    for candidate in (
        os.environ.get("UV"),
        shutil.which("uv"),
        str(home / "convoai-worker/tools/bin/uv"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("uv not found: run `bash scripts/bootstrap` (make setup) first")


def _run(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    return subprocess.run(
        args,
        cwd=cwd,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """distribution name -> built wheel."""
    out = tmp_path_factory.mktemp("dist")
    built = _run(_uv(), "build", "--all-packages", "--wheel", "--offline", "--out-dir", str(out))
    assert built.returncode == 0, built.stderr
    # wheel names spell the distribution with underscores: convoai_worker-0.1.0-py3-none-any.whl
    found = {path.name.split("-")[0].replace("_", "-"): path for path in out.glob("*.whl")}
    assert set(found) == set(LOCAL), sorted(found)
    return found


def _top_level(wheel: Path) -> set[str]:
    """The first path component of every file of the wheel, metadata excluded."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            "/".join(name.split("/")[:2]) if name.startswith("worker/") else name.split("/")[0]
            for name in archive.namelist()
            if ".dist-info/" not in name
        }


def _installed(tmp_path: Path, *package: str) -> Path:
    """A fresh environment with the locked runtime dependencies of the root project (or of
    `--package NAME`), without the dev group; the bin folder."""
    venv = tmp_path / "venv"
    synced = _run(
        _uv(),
        "sync",
        "--locked",
        "--offline",
        "--no-dev",
        "--no-editable",
        # uv keys its cache of local builds on pyproject.toml alone: rebuild from these sources
        *(f"--reinstall-package={name}" for name in LOCAL),
        *package,
        env={"UV_PROJECT_ENVIRONMENT": str(venv)},
    )
    assert synced.returncode == 0, synced.stderr
    return venv / "bin"


def test_each_wheel_holds_only_its_own_package(wheels: dict[str, Path]) -> None:
    assert _top_level(wheels["convoai-contracts"]) == {"contracts"}
    assert _top_level(wheels["convoai-emulator"]) == {"worker/emulator"}
    worker = _top_level(wheels["convoai-worker"])
    assert "worker/emulator" not in worker
    assert "contracts" not in worker
    assert {"worker/pipeline", "worker/api", "worker/kafka"} <= worker


def test_producers_install_the_contracts_alone(tmp_path: Path) -> None:
    python = _installed(tmp_path, "--package", "convoai-contracts") / "python"
    script = (
        "import importlib.util, contracts\n"
        "decoded = contracts.decode_command("
        'b\'{"command":"agent.stop","id":"c1","agent_id":"a1"}\')\n'
        "assert importlib.util.find_spec('worker') is None, 'the worker came along'\n"
        "assert importlib.util.find_spec('aiohttp') is None, 'a worker dependency came along'\n"
        "print(contracts.__version__, type(decoded.command).__name__)\n"
    )
    result = _run(str(python), "-c", script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    version, kind = result.stdout.split()
    assert version == contracts.__version__
    assert kind == "AgentStop"


def test_the_worker_without_the_emulator_says_what_to_install(tmp_path: Path) -> None:
    cli = _installed(tmp_path) / "convoai-worker"
    # were the emulator there, it would serve until stopped: the timeout fails the test
    served = _run(str(cli), "emulator", "--port", "0", cwd=tmp_path, timeout=30)
    assert served.returncode == 2
    assert served.stderr.strip().endswith("pip install convoai-emulator"), served.stderr
    listed = _run(str(cli), "--help", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "emulator" in listed.stdout
    (tmp_path / "one.jsonl").write_text('{"command":"agent.list","id":"p-1"}\n')
    checked = _run(str(cli), "validate", "one.jsonl", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    traced = _run(str(cli), "config", cwd=tmp_path, env={"CONVOAI_TRACING": "true"})
    assert traced.returncode == 2
    assert "needs the otel extra: install 'convoai-worker[otel]'" in traced.stderr


def test_aws_msk_iam_comes_with_the_msk_extra_only(tmp_path: Path) -> None:
    """The default install (and image) carries no AWS SDK; configured for MSK IAM it says what
    to install, and with `convoai-worker[msk]` the same settings are accepted."""
    msk = {
        "CONVOAI_ENV_FILE": "",
        "CONVOAI_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CONVOAI_KAFKA_SASL_MECHANISM": "AWS_MSK_IAM",
        "CONVOAI_KAFKA_AWS_REGION": "eu-west-1",
    }
    (tmp_path / "plain").mkdir()
    (tmp_path / "extra").mkdir()
    plain = _installed(tmp_path / "plain") / "convoai-worker"
    refused = _run(str(plain), "config", cwd=tmp_path, env=msk)
    assert refused.returncode == 2
    assert "pip install 'convoai-worker[msk]'" in refused.stderr
    extra = _installed(tmp_path / "extra", "--extra", "msk") / "convoai-worker"
    accepted = _run(str(extra), "config", cwd=tmp_path, env=msk)
    assert accepted.returncode == 0, accepted.stderr
