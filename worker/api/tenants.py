"""Which App IDs the worker serves, whose credentials sign each request, and each one's NCS secret.

One worker may serve several tenants (App IDs, possibly of different Agora accounts). The set
served is closed by default:

- `CONVOAI_API_CREDENTIALS_FILE`: a JSON object mapping each App ID to its credentials,
  `{"<app id>": {"customer_id": "...", "customer_secret": "...", "webhook_secret": "..."}}`
  (or `"auth_token"` instead of the customer pair; `webhook_secret`, the App ID's NCS secret, is
  optional), a Kubernetes Secret mounted as a file. Its App IDs are the only ones served: a
  request is signed with its own App ID's credentials or not sent at all, so one tenant's
  command can never go out with another's credentials, and each App ID's webhooks are checked
  with its own secret.
- Without the file, `CONVOAI_CUSTOMER_ID`/`_SECRET` (or `CONVOAI_AUTH_TOKEN`) sign every
  request, and only `CONVOAI_APP_ID` is served, or the App IDs of `CONVOAI_ALLOWED_APP_IDS`
  (comma-separated) when it is set. `CONVOAI_WEBHOOK_SECRET` then serves the single App ID; a
  worker of several App IDs takes their NCS secrets from the file, never one shared secret that
  would let any tenant forge notices about the others.

`CONVOAI_ALLOWED_APP_IDS` also narrows the file's App IDs. A command for any other App ID is
rejected and never reaches the API.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import msgspec

from worker.settings import Settings, SettingsError

FILE_VARIABLE = "CONVOAI_API_CREDENTIALS_FILE"
BASIC = "Basic "
FILE_SHAPE = (
    '{"<app id>": {"customer_id": "...", "customer_secret": "...", "webhook_secret": "..."} '
    'or {"auth_token": "...", "webhook_secret": "..."}}'
)


class _Credentials(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: str = ""
    customer_secret: str = ""
    auth_token: str = ""
    webhook_secret: str = ""


class Tenant(NamedTuple):
    """What the worker holds for one App ID: its `Authorization` value and its NCS secret."""

    authorization: str | None
    webhook_secret: str


class Tenants:
    """The App IDs served, with each one's `Authorization` value and NCS secret."""

    def __init__(
        self, tenants: Mapping[str, Tenant], *, source: str, secrets: tuple[str, ...] = ()
    ):
        """`source` names the settings that chose the App IDs (it goes into refusals);
        `secrets` are the credential values read for them, for log masking."""
        self._tenants = dict(tenants)
        self._source = source
        self._secrets = secrets

    @classmethod
    def from_settings(cls, settings: Settings) -> Tenants:
        """Read the allowed list and the credentials file (once, at startup)."""
        allowed = frozenset(a.strip() for a in settings.allowed_app_ids.split(",") if a.strip())
        if settings.api_credentials_file:
            return cls._from_file(settings, allowed)
        served = allowed or frozenset({settings.app_id} - {""})
        if settings.webhook_secret and len(served) > 1:
            raise SettingsError(
                "CONVOAI_WEBHOOK_SECRET serves a worker of one App ID, and "
                f"CONVOAI_ALLOWED_APP_IDS lists {len(served)}: give each App ID its own "
                f"webhook_secret in {FILE_VARIABLE}"
            )
        tenant = Tenant(authorization(settings), settings.webhook_secret)
        source = "CONVOAI_ALLOWED_APP_IDS" if allowed else "CONVOAI_APP_ID"
        return cls(dict.fromkeys(served, tenant), source=source)

    @classmethod
    def _from_file(cls, settings: Settings, allowed: frozenset[str]) -> Tenants:
        where = f"{FILE_VARIABLE}={settings.api_credentials_file}"
        if settings.webhook_secret:
            raise SettingsError(
                f"CONVOAI_WEBHOOK_SECRET is not used with {FILE_VARIABLE}: give each App ID "
                f"its own webhook_secret in the file ({where})"
            )
        entries = _read(settings.api_credentials_file, where)
        tenants = {
            app_id: Tenant(_header(credentials), credentials.webhook_secret)
            for app_id, credentials in entries.items()
            if not allowed or app_id in allowed
        }
        source = f"{FILE_VARIABLE} and CONVOAI_ALLOWED_APP_IDS" if allowed else FILE_VARIABLE
        return cls(tenants, source=source, secrets=tuple(_values(entries)))

    @property
    def served(self) -> frozenset[str]:
        """Every App ID served."""
        return frozenset(self._tenants)

    @property
    def single(self) -> str | None:
        """The App ID served when there is exactly one (the unqualified webhook path's)."""
        return next(iter(self._tenants)) if len(self._tenants) == 1 else None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential read from the credentials file, and the headers made of them."""
        return self._secrets

    def serves(self, app_id: str) -> bool:
        """Whether commands and webhooks of `app_id` are served."""
        return app_id in self._tenants

    def refusal(self, app_id: str) -> str | None:
        """Why a command for `app_id` must not be sent, or None when it may be."""
        if app_id in self._tenants:
            return None
        if not self._tenants:
            return (
                "this worker serves no App ID: set CONVOAI_APP_ID, CONVOAI_ALLOWED_APP_IDS or "
                f"{FILE_VARIABLE}"
            )
        return f"App ID {app_id!r} is not served (the App IDs of {self._source})"

    def named(self) -> list[str]:
        """The App IDs served, in order (for checks that go through them one by one)."""
        return sorted(self._tenants)

    def authorization(self, app_id: str) -> str | None:
        """The `Authorization` header of a request for `app_id`; None when it is not served
        (unsigned, the API refuses it: never another tenant's credentials)."""
        tenant = self._tenants.get(app_id)
        return tenant.authorization if tenant else None

    def webhook_secret(self, app_id: str) -> str:
        """The NCS secret of `app_id`; empty when none is configured or it is not served."""
        tenant = self._tenants.get(app_id)
        return tenant.webhook_secret if tenant else ""


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
        return BASIC + base64.b64encode(pair).decode()
    return None


def _read(path: str, where: str) -> dict[str, _Credentials]:
    """App ID → credentials, from the credentials file; errors name the file and App ID."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SettingsError(f"{where}: {error.strerror or error}") from None
    try:
        entries = msgspec.json.decode(data, type=dict[str, _Credentials])
    except msgspec.DecodeError as error:
        raise SettingsError(f"{where}: {error} (expected {FILE_SHAPE})") from None
    for app_id, credentials in entries.items():
        if bool(credentials.customer_id) != bool(credentials.customer_secret):
            raise SettingsError(
                f"{where}: App ID {app_id!r} needs customer_id and customer_secret together"
            )
        header = _header(credentials)
        if header is None:
            raise SettingsError(f"{where}: App ID {app_id!r} has no customer_id nor auth_token")
    if not entries:
        raise SettingsError(f"{where}: no App ID in the file")
    return entries


def _values(entries: Mapping[str, _Credentials]) -> Iterator[str]:
    """Every value of the file and every header made of them: none may reach a log."""
    for credentials in entries.values():
        yield from (value for value in msgspec.structs.astuple(credentials) if value)
        header = _header(credentials) or ""
        if header.startswith(BASIC):
            yield header.removeprefix(BASIC)  # base64 of the pair, as a log might quote it
