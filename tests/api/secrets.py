"""A Kubernetes Secret volume on disk, updated the way the kubelet updates it."""

from __future__ import annotations

import itertools
from pathlib import Path

_versions = itertools.count(1)


def publish(volume: Path, files: dict[str, str]) -> None:
    """Write `files` as the volume's new content: a fresh `..<version>` directory, the `..data`
    symlink repointed in one rename, and each name a symlink through `..data` (what a pod sees
    after a Secret update)."""
    version = volume / f"..{next(_versions)}"
    version.mkdir(parents=True)
    for name, content in files.items():
        (version / name).write_text(content)
    swap = volume / "..data_tmp"
    swap.symlink_to(version.name)
    swap.replace(volume / "..data")
    for name in files:
        link = volume / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
