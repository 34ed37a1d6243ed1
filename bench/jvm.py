"""The JVM peer of the comparison (`bench/parallel-consumer/`, Confluent Parallel Consumer): how
to start it, and its one jar, built by Maven once and cached outside the work tree under the
digest of its sources, so a second run (or a test after a benchmark) does not rebuild it.

Java 17+ runs it; Maven is needed only to build it (about 25 s with a warm Maven cache).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

SOURCE = Path(__file__).parent / "parallel-consumer"
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "convoai-worker"
    / "parallel-consumer"
)
JAVA_MAJOR = 17
# the JVM's defaults otherwise (G1 on this machine); the heap bounded like the broker's
JVM_OPTIONS = ("-Xmx512m",)
BUILD_SECONDS = 600.0


def missing() -> str | None:
    """Why the peer cannot run here (None: it can): Java 17+, and Maven unless it is built."""
    java = shutil.which("java")
    if java is None:
        return "needs Java 17+: no `java` on PATH"
    found = java_version(java)
    if _major(found) < JAVA_MAJOR:
        return f"needs Java 17+: `java` is {found or 'of an unknown version'}"
    if not jar_path().exists() and shutil.which("mvn") is None:
        return "needs Maven to build bench/parallel-consumer: no `mvn` on PATH"
    return None


def java_version(java: str = "java") -> str:
    """`java -version`'s version, e.g. 17.0.15 ("" when it prints none)."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    found = re.search(r'version "([^"]+)"', out)
    return found.group(1) if found else ""


def _major(version: str) -> int:
    parts = re.findall(r"\d+", version)
    if not parts:
        return 0
    return int(parts[1]) if parts[0] == "1" and len(parts) > 1 else int(parts[0])  # 1.8: Java 8


def digest() -> str:
    """Of the pom and the sources: a change to either builds a new jar."""
    hashed = hashlib.sha256()
    sources = [SOURCE / "pom.xml", *(p for p in (SOURCE / "src").rglob("*") if p.is_file())]
    for path in sorted(sources):
        hashed.update(str(path.relative_to(SOURCE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return hashed.hexdigest()[:16]


def jar_path() -> Path:
    return CACHE / f"peer-{digest()}.jar"


def build() -> Path:
    """The cached jar, built first when absent (one builder at a time across processes)."""
    jar = jar_path()
    with _locked(CACHE / "build.lock"):
        if jar.exists():
            return jar
        print(f"building {SOURCE.name} with Maven into {jar}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(dir=CACHE, prefix="build-") as out:
            done = subprocess.run(
                ["mvn", "-B", "-q", "-f", str(SOURCE / "pom.xml"), f"-Dbuild.dir={out}", "package"],  # noqa: S607 - Maven from PATH
                capture_output=True,
                text=True,
                timeout=BUILD_SECONDS,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"mvn package of {SOURCE} failed ({done.returncode}):\n"
                    f"{done.stdout[-4000:]}{done.stderr[-4000:]}"
                )
            (Path(out) / "peer.jar").replace(jar)
        for stale in CACHE.glob("peer-*.jar"):  # of earlier sources
            if stale != jar:
                stale.unlink(missing_ok=True)
    return jar


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def command(jar: Path) -> list[str]:
    """The argv that starts the peer (then `--api … --commands … --results … --group …`)."""
    return ["java", *JVM_OPTIONS, "-jar", str(jar)]


def describe(jar: Path) -> str:
    """Versions and flags, for the benchmark's setup line."""
    with zipfile.ZipFile(jar) as archive:

        def version(entry: str) -> str:
            found = re.search(r"^version=(\S+)", archive.read(entry).decode(), re.MULTILINE)
            return found.group(1) if found else "?"

        pc = version(
            "META-INF/maven/io.confluent.parallelconsumer/parallel-consumer-vertx/pom.properties"
        )
        vertx = version("META-INF/maven/io.vertx/vertx-core/pom.properties")
        kafka = version("kafka/kafka-version.properties")
    return (
        f"Java {java_version()}, Parallel Consumer {pc} (Vert.x module, Vert.x {vertx}), "
        f"kafka-clients {kafka}; JVM flags {' '.join(JVM_OPTIONS)}, otherwise defaults"
    )
