"""`scripts/kafka` names the missing prerequisite instead of failing obscurely."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.kafka import ROOT

BASIC_TOOLS = ("bash", "dirname", "cat", "mkdir", "rm", "sed", "python3")


def test_missing_java_and_maven_are_named(tmp_path: Path) -> None:
    """Without java and mvn on PATH the script exits 3 and says what to install."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BASIC_TOOLS:
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    result = subprocess.run(
        [str(bin_dir / "bash"), str(ROOT / "scripts" / "kafka"), "fetch"],
        env={
            "PATH": str(bin_dir),
            "KAFKA_CACHE": str(tmp_path / "cache"),
            "HOME": os.environ["HOME"],
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert "java (install OpenJDK 17" in result.stderr
    assert "mvn (install Maven 3.8+" in result.stderr


def test_a_cluster_id_starting_with_a_dash_formats(tmp_path: Path) -> None:
    """One random cluster id in 64 starts with `-`; formatting must not take it for an option."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").write_text("#!/bin/sh\necho -AAAAAAAAAAAAAAAAAAAAA\n")  # the id generator
    (shim / "python3").chmod(0o755)
    run = tmp_path / "run"
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kafka"), "format"],
        env={**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "KAFKA_RUN": str(run)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "cluster.id=-AAAAAAAAAAAAAAAAAAAAA" in (run / "data" / "meta.properties").read_text()
