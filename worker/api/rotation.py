"""Credentials that change while the worker runs: the credentials file and its token files.

A Kubernetes Secret mounted as a volume is updated by an atomic swap: the kubelet writes the
new files into a fresh directory and repoints the `..data` symlink, so the mounted path names
another file from one instant to the next, never a half-written one. `CredentialsWatcher`
compares what each watched path leads to (device, inode, modification time, size, following
symlinks) every `CONVOAI_API_CREDENTIALS_POLL_SECONDS`, and on a change reads the file again
(`Tenants.reload`). Requests already sent keep the headers they went out with; the next ones
are signed with the new credentials. A file that cannot be used (a plain file caught half
written, a token file missing) is reported and the credentials in force stay: it is read again
at its next change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import structlog

from worker.api.tenants import Tenants
from worker.settings import SettingsError

log = structlog.get_logger(__name__)

Identity = tuple[int, int, int, int] | None


class CredentialsWatcher:
    """Reloads the tenants' credentials when their files change; one task per worker."""

    def __init__(
        self,
        tenants: Tenants,
        interval_seconds: float,
        mask: Callable[[Iterable[str]], None],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`mask` receives every secret read, before it is used (the log masker)."""
        self._tenants = tenants
        self._interval = interval_seconds
        self._mask = mask
        self._sleep = sleep
        self._seen = self._signature()

    async def run(self) -> None:
        """Check the files every interval until cancelled (returns at once when off)."""
        if self._interval <= 0 or not self._tenants.watched():
            return
        while True:
            await self._sleep(self._interval)
            self.check()

    def check(self) -> bool:
        """Reload when a watched file changed since the last check; True when it took effect."""
        signature = self._signature()
        if signature == self._seen:
            return False
        self._seen = signature  # a file that changes again while it is read is read again
        try:
            changed = self._tenants.reload(self._mask)
        except SettingsError as error:  # the message names the file, never a secret
            log.warning("api_credentials_not_reloaded", error=str(error))
            return False
        # token files the new file names for the first time are known as they are now
        self._seen = {
            path: signature.get(path, _identity(path)) for path in self._tenants.watched()
        }
        if changed:
            log.info(
                "api_credentials_reloaded",
                app_ids=len(self._tenants.served),
                generation=self._tenants.generation,
            )
        return changed

    def _signature(self) -> dict[str, Identity]:
        return {path: _identity(path) for path in self._tenants.watched()}


def _identity(path: str) -> Identity:
    """What `path` leads to now; None when it leads nowhere."""
    try:
        stat = Path(path).stat()  # follows the `..data` symlink of a mounted Secret
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
