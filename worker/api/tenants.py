"""Which App IDs the worker serves, and with whose credentials each request is signed.

One worker may serve several tenants (Agora accounts, each with its own App IDs). Two settings
keep them apart:

- `CONVOAI_ALLOWED_APP_IDS` (comma-separated): commands for any other App ID are rejected and
  never reach the API.
- `CONVOAI_API_CREDENTIALS_FILE`: a JSON object mapping each App ID to its credentials,
  `{"<app id>": {"customer_id": "...", "customer_secret": "..."}}` or `{"auth_token": "..."}`
  (a Kubernetes Secret mounted as a file). With it, its App IDs are the only ones served: a
  request is signed with its own App ID's credentials or not sent at all, so one tenant's
  command can never go out with another's credentials. Without it, every request uses
  `CONVOAI_CUSTOMER_ID`/`_SECRET` or `CONVOAI_AUTH_TOKEN`.
"""

from __future__ import annotations

import base64
from pathlib import Path

import msgspec

from worker.settings import Settings, SettingsError

FILE_SHAPE = (
    '{"<app id>": {"customer_id": "...", "customer_secret": "..."} or {"auth_token": "..."}}'
)


class _Credentials(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: str = ""
    customer_secret: str = ""
    auth_token: str = ""


class Tenants:
    """The App IDs served and the `Authorization` value of each."""

    def __init__(self, default: str | None, per_app: dict[str, str], allowed: frozenset[str]):
        """`per_app` replaces `default` entirely when not empty; empty `allowed`: any App ID."""
        self._default = default
        self._per_app = per_app
        self._allowed = allowed

    @classmethod
    def from_settings(cls, settings: Settings) -> Tenants:
        """Read the allowed list and the credentials file (once, at startup)."""
        allowed = frozenset(a.strip() for a in settings.allowed_app_ids.split(",") if a.strip())
        per_app = _read(settings.api_credentials_file) if settings.api_credentials_file else {}
        return cls(authorization(settings), per_app, allowed)

    def refusal(self, app_id: str) -> str | None:
        """Why a command for `app_id` must not be sent, or None when it may be."""
        if self._allowed and app_id not in self._allowed:
            return f"App ID {app_id!r} is not among CONVOAI_ALLOWED_APP_IDS"
        if self._per_app and app_id not in self._per_app:
            return f"no credentials for App ID {app_id!r} in CONVOAI_API_CREDENTIALS_FILE"
        return None

    def named(self) -> list[str]:
        """The App IDs the settings name: the credentials file's, else the allowed ones."""
        return sorted(self._per_app or self._allowed)

    def authorization(self, app_id: str) -> str | None:
        """The `Authorization` header of a request for `app_id`."""
        if self._per_app:
            return self._per_app.get(app_id)  # never the default: unsigned, the API refuses it
        return self._default


def authorization(settings: Settings) -> str | None:
    """The `Authorization` value the SDK would send for these credentials (token wins)."""
    return _header(
        _Credentials(settings.customer_id, settings.customer_secret, settings.auth_token)
    )


def _header(credentials: _Credentials) -> str | None:
    if credentials.auth_token:
        return f"agora token={credentials.auth_token}"
    if credentials.customer_id:
        pair = f"{credentials.customer_id}:{credentials.customer_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()
    return None


def _read(path: str) -> dict[str, str]:
    """App ID → `Authorization`, from the credentials file; errors name the file and App ID."""
    where = f"CONVOAI_API_CREDENTIALS_FILE={path}"
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SettingsError(f"{where}: {error.strerror or error}") from None
    try:
        entries = msgspec.json.decode(data, type=dict[str, _Credentials])
    except msgspec.DecodeError as error:
        raise SettingsError(f"{where}: {error} (expected {FILE_SHAPE})") from None
    headers: dict[str, str] = {}
    for app_id, credentials in entries.items():
        if bool(credentials.customer_id) != bool(credentials.customer_secret):
            raise SettingsError(
                f"{where}: App ID {app_id!r} needs customer_id and customer_secret together"
            )
        header = _header(credentials)
        if header is None:
            raise SettingsError(f"{where}: App ID {app_id!r} has no customer_id nor auth_token")
        headers[app_id] = header
    if not headers:
        raise SettingsError(f"{where}: no App ID in the file")
    return headers
