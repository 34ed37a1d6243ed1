"""Without Java 17+ (or Maven to build it) the JVM peer's row of `make bench` says why it did not
run instead of vanishing from the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import compare, jvm, report


def test_without_java_the_peer_is_not_run_and_its_row_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no java, no mvn

    peer = compare.jvm_peer()
    row = report.row(compare.JVM_PEER, {"not_run": peer.about, "phases": []})

    assert peer.argv is None
    assert peer.about == "needs Java 17+: no `java` on PATH"
    assert row.startswith(f"| parallel-consumer (JVM) | not run: {peer.about} |")
    assert row.count("|") == report.HEADER.splitlines()[0].count("|")  # a full row


def test_an_old_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert jvm.missing() == "needs Java 17+: `java` is 11.0.2"
