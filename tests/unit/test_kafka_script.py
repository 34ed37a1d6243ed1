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
