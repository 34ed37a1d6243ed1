"""The chart rendered by the real helm binary, for tests of what it produces."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .artifacts import CHART, REPO

KUBE_VERSION = "1.37.0"  # the newest Kubernetes scripts/check-deploy validates against


@functools.cache
def helm() -> str:
    """The helm binary of scripts/check-deploy (built on first use)."""
    found = subprocess.run(
        ["bash", str(REPO / "scripts" / "go-tool"), "helm"],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return found.stdout.strip()


def render(*files: Path, **values: Any) -> list[dict[str, Any]]:
    """Every manifest of `helm template` with `files` and then `values` (dotted keys as
    `--set-json` takes them: `render(**{"keda.enabled": True})`)."""
    args = [helm(), "template", "test", str(CHART), "--namespace", "convoai"]
    args += ["--kube-version", KUBE_VERSION]
    for path in files:
        args += ["--values", str(path)]
    for key, value in values.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    rendered = subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
    if rendered.returncode:
        raise RenderError(rendered.stderr.strip())
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def kinds(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The manifests of one kind."""
    return [doc for doc in manifests if doc["kind"] == kind]


class RenderError(RuntimeError):
    """helm refused the values; the message is its error."""
