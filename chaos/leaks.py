"""The secrets scan: everything a chaos run emitted, searched for the credentials it configured."""

from __future__ import annotations

from collections import Counter


class SecretScan:
    """Counts, per kind of output, the bytes searched and where each value was found.

    `secrets` must never appear; `identifiers` (the customer ID, which the worker logs at
    startup like `convoai-worker config` shows it) are only counted.
    """

    def __init__(self, secrets: dict[str, str], identifiers: dict[str, str]) -> None:
        self._secrets = {name: value.encode() for name, value in secrets.items()}
        self._identifiers = {name: value.encode() for name, value in identifiers.items()}
        self.scanned: Counter[str] = Counter()  # bytes searched per kind of output
        self.leaks: Counter[str] = Counter()  # "secret in output" -> occurrences
        self.seen: Counter[str] = Counter()  # "identifier in output" -> occurrences

    def __call__(self, where: str, data: bytes | None) -> None:
        """Search `data`, one of the outputs of kind `where` (logs, results, metrics, ...)."""
        if not data:
            return
        self.scanned[where] += len(data)
        for values, found in ((self._secrets, self.leaks), (self._identifiers, self.seen)):
            for name, value in values.items():
                if count := data.count(value):
                    found[f"{name} in {where}"] += count

    def summary(self) -> dict[str, object]:
        return {
            "secrets": sorted(self._secrets),
            "bytes_scanned": dict(self.scanned),
            "secret_hits": dict(self.leaks),
            "identifiers": dict(self.seen),
        }
