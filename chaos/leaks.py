"""The secrets scan: everything a chaos run emitted, searched for the credentials it configured."""

from __future__ import annotations

from collections import Counter


class SecretScan:
    """Counts, per kind of output, the bytes searched and where each secret was found (the
    credentials of `SECRET_FIELDS`, the customer ID among them, must never appear)."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self._secrets = {name: value.encode() for name, value in secrets.items()}
        self.scanned: Counter[str] = Counter()  # bytes searched per kind of output
        self.leaks: Counter[str] = Counter()  # "secret in output" -> occurrences

    def __call__(self, where: str, data: bytes | None) -> None:
        """Search `data`, one of the outputs of kind `where` (logs, results, metrics, ...)."""
        if not data:
            return
        self.scanned[where] += len(data)
        for name, value in self._secrets.items():
            if count := data.count(value):
                self.leaks[f"{name} in {where}"] += count

    def summary(self) -> dict[str, object]:
        return {
            "secrets": sorted(self._secrets),
            "bytes_scanned": dict(self.scanned),
            "secret_hits": dict(self.leaks),
        }
