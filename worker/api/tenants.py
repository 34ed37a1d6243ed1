"""Which App IDs the worker serves, whose credentials sign each request, and each one's NCS secret.

One worker may serve several tenants (App IDs, possibly of different Agora accounts). The set
served is closed by default:

- `CONVOAI_API_CREDENTIALS_FILE`: a JSON object mapping each App ID to its credentials,
  `{"<app id>": {"customer_id": "...", "customer_secret": "...", "webhook_secret": "..."}}`
  (or `"auth_token"`, or `"auth_token_file"` naming a file that holds the token, instead of the
  customer pair; `webhook_secret`, the App ID's NCS secret, is optional), a Kubernetes Secret
  mounted as a file. Its App IDs are the only ones served: a request is signed with its own App
  ID's credentials or not sent at all, so one tenant's command can never go out with another's
  credentials, and each App ID's webhooks are checked with its own secret. An entry may also
  say where its requests go: `"region"` (an SDK area: us, eu, ap, cn) or `"base_urls"` (a
  list, the first preferred; `"base_url"` for one), else the worker's own base URLs. The file
  and its token files are read again when they change (`worker.api.rotation`).
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
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import msgspec

from worker.api.regions import AREAS, Regions, area_urls
from worker.settings import Settings, SettingsError

FILE_VARIABLE = "CONVOAI_API_CREDENTIALS_FILE"
BASIC = "Basic "
FILE_SHAPE = (
    '{"<app id>": {"customer_id": "...", "customer_secret": "...", "webhook_secret": "...", '
    '"region": "us|eu|ap|cn", "base_urls": ["https://..."]} '
    'or {"auth_token": "..." or "auth_token_file": "/path", ...}}'
)
BASE_URL = re.compile(r"^https?://[^/?#\s]+")


class _Credentials(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: str = ""
    customer_secret: str = ""
    auth_token: str = ""
    auth_token_file: str = ""
    webhook_secret: str = ""
    region: str = ""
    base_url: str = ""
    base_urls: list[str] = msgspec.field(default_factory=list)


class Tenant(NamedTuple):
    """What the worker holds for one App ID: its `Authorization` value, its NCS secret and the
    base URLs its requests go to."""

    authorization: str | None
    webhook_secret: str
    regions: Regions
    token_file: str = ""  # where the token was read from, watched for changes


class Tenants:
    """The App IDs served, with each one's `Authorization` value, NCS secret and base URLs.

    What it holds may be replaced while requests run (`reload`): every reader takes the current
    table at once, so a request is signed and addressed from one version of the file.
    """

    def __init__(
        self,
        tenants: Mapping[str, Tenant],
        *,
        source: str,
        default: Regions,
        secrets: tuple[str, ...] = (),
    ):
        """`source` names the settings that chose the App IDs (it goes into refusals);
        `secrets` are the credential values read for them, for log masking; `default` is where
        requests of App IDs not served go (unsigned: the API refuses them)."""
        self._tenants = dict(tenants)
        self._source = source
        self._secrets = secrets
        self._default = default
        self._settings: Settings | None = None
        self._allowed: frozenset[str] = frozenset()
        self.generation = 0  # bumped by every reload that changed something

    @classmethod
    def from_settings(cls, settings: Settings) -> Tenants:
        """Read the allowed list and the credentials file (at startup; `reload` re-reads it)."""
        allowed = frozenset(a.strip() for a in settings.allowed_app_ids.split(",") if a.strip())
        default = default_regions(settings)
        if settings.api_credentials_file:
            if settings.webhook_secret:
                raise SettingsError(
                    f"CONVOAI_WEBHOOK_SECRET is not used with {FILE_VARIABLE}: give each App ID "
                    f"its own webhook_secret in the file ({_where(settings)})"
                )
            table, source, secrets = _from_file(settings, allowed, default, {})
            tenants = cls(table, source=source, secrets=secrets, default=default)
            tenants._settings, tenants._allowed = settings, allowed
            return tenants
        served = allowed or frozenset({settings.app_id} - {""})
        if settings.webhook_secret and len(served) > 1:
            raise SettingsError(
                "CONVOAI_WEBHOOK_SECRET serves a worker of one App ID, and "
                f"CONVOAI_ALLOWED_APP_IDS lists {len(served)}: give each App ID its own "
                f"webhook_secret in {FILE_VARIABLE}"
            )
        tenant = Tenant(authorization(settings), settings.webhook_secret, default)
        source = "CONVOAI_ALLOWED_APP_IDS" if allowed else "CONVOAI_APP_ID"
        return cls(dict.fromkeys(served, tenant), source=source, default=default)

    def reload(self, mask: Callable[[Iterable[str]], None]) -> bool:
        """Read the credentials file (and its token files) again; True when anything changed.

        `mask` receives the secrets read before they are used, so no log line can show them.
        Raises `SettingsError` when the file cannot be used now (half written, say): the
        credentials read before stay in force. A URL list that did not change keeps its health.
        """
        if self._settings is None:
            return False
        known = {tenant.regions.urls: tenant.regions for tenant in self._tenants.values()}
        tenants, source, secrets = _from_file(self._settings, self._allowed, self._default, known)
        if tenants == self._tenants:
            return False
        mask(secrets)
        self._tenants, self._source, self._secrets = tenants, source, secrets
        self.generation += 1
        return True

    def watched(self) -> tuple[str, ...]:
        """The files whose change `reload` must see: the credentials file and its token files."""
        if self._settings is None:
            return ()
        files = [self._settings.api_credentials_file]
        files.extend(sorted({t.token_file for t in self._tenants.values() if t.token_file}))
        return tuple(files)

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

    def regions(self, app_id: str) -> Regions:
        """Where requests for `app_id` go (the worker's own base URLs when it is not served)."""
        tenant = self._tenants.get(app_id)
        return tenant.regions if tenant else self._default

    def webhook_secret(self, app_id: str) -> str:
        """The NCS secret of `app_id`; empty when none is configured or it is not served."""
        tenant = self._tenants.get(app_id)
        return tenant.webhook_secret if tenant else ""


def authorization(settings: Settings) -> str | None:
    """The `Authorization` value the SDK would send for these credentials (token wins)."""
    return _header(
        _Credentials(settings.customer_id, settings.customer_secret, settings.auth_token)
    )


def default_regions(settings: Settings) -> Regions:
    """The worker's own base URLs: `CONVOAI_API_REGION`'s, `CONVOAI_API_BASE_URLS`, or
    `CONVOAI_API_BASE_URL`."""
    listed = [url.strip() for url in settings.api_base_urls.split(",") if url.strip()]
    if listed and settings.api_region:
        raise SettingsError("set CONVOAI_API_REGION or CONVOAI_API_BASE_URLS, not both")
    for url in listed:
        if not BASE_URL.match(url):
            raise SettingsError(f"CONVOAI_API_BASE_URLS: {url!r} is not an http(s) URL")
    if settings.api_region:
        listed = list(area_urls(settings.api_region))
    return Regions(
        listed or [settings.api_base_url], cooldown_seconds=settings.api_region_cooldown_seconds
    )


def _header(credentials: _Credentials) -> str | None:
    if credentials.auth_token:
        return f"agora token={credentials.auth_token}"
    if credentials.customer_id:
        pair = f"{credentials.customer_id}:{credentials.customer_secret}".encode()
        return BASIC + base64.b64encode(pair).decode()
    return None


def _where(settings: Settings) -> str:
    return f"{FILE_VARIABLE}={settings.api_credentials_file}"


def _from_file(
    settings: Settings,
    allowed: frozenset[str],
    default: Regions,
    known: Mapping[tuple[str, ...], Regions],
) -> tuple[dict[str, Tenant], str, tuple[str, ...]]:
    """The tenants of the credentials file, the source to name in refusals, and its secrets.

    `known` holds the pools already in use, by URL list, so a reload keeps their health.
    """
    where = _where(settings)
    entries = _read(settings.api_credentials_file, where)
    pools = dict(known)  # App IDs with the same URLs share one pool, and so its health
    tenants: dict[str, Tenant] = {}
    for app_id, credentials in entries.items():
        if allowed and app_id not in allowed:
            continue
        urls = _urls(credentials, where, app_id)
        regions = default
        if urls:
            regions = pools.setdefault(
                urls, Regions(urls, cooldown_seconds=settings.api_region_cooldown_seconds)
            )
        tenants[app_id] = Tenant(
            _header(credentials), credentials.webhook_secret, regions, credentials.auth_token_file
        )
    source = f"{FILE_VARIABLE} and CONVOAI_ALLOWED_APP_IDS" if allowed else FILE_VARIABLE
    return tenants, source, tuple(_values(entries))


def _read(path: str, where: str) -> dict[str, _Credentials]:
    """App ID → credentials (tokens read from their files); errors name the file and App ID."""
    data = _file(path, where)
    try:
        entries = msgspec.json.decode(data, type=dict[str, _Credentials])
    except msgspec.DecodeError as error:
        raise SettingsError(f"{where}: {error} (expected {FILE_SHAPE})") from None
    for app_id, credentials in entries.items():
        if bool(credentials.customer_id) != bool(credentials.customer_secret):
            raise SettingsError(
                f"{where}: App ID {app_id!r} needs customer_id and customer_secret together"
            )
        if credentials.auth_token_file:
            if credentials.auth_token:
                raise SettingsError(
                    f"{where}: App ID {app_id!r} has auth_token and auth_token_file: keep one"
                )
            token_where = f"{where}: App ID {app_id!r} auth_token_file"
            token = _file(credentials.auth_token_file, token_where).decode(errors="replace")
            credentials.auth_token = token.strip()
            if not credentials.auth_token:
                raise SettingsError(f"{token_where}: the file is empty")
        if _header(credentials) is None:
            raise SettingsError(f"{where}: App ID {app_id!r} has no customer_id nor auth_token")
    if not entries:
        raise SettingsError(f"{where}: no App ID in the file")
    return entries


def _file(path: str, where: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise SettingsError(f"{where}: {error.strerror or error}") from None


def _urls(credentials: _Credentials, where: str, app_id: str) -> tuple[str, ...]:
    """The entry's own base URLs, in order; empty when it uses the worker's."""
    urls = list(credentials.base_urls)
    if credentials.base_url:
        if urls:
            raise SettingsError(f"{where}: App ID {app_id!r} has base_url and base_urls: keep one")
        urls = [credentials.base_url]
    if credentials.region:
        if credentials.region not in AREAS:
            raise SettingsError(
                f"{where}: App ID {app_id!r} region {credentials.region!r} is not one of "
                f"{', '.join(AREAS)}"
            )
        urls = urls or list(area_urls(credentials.region))
    for url in urls:
        if not BASE_URL.match(url):
            raise SettingsError(f"{where}: App ID {app_id!r} base URL {url!r} is not http(s)")
    return tuple(url.rstrip("/") for url in urls)


def _values(entries: Mapping[str, _Credentials]) -> Iterator[str]:
    """Every secret of the file and every header made of them: none may reach a log."""
    for credentials in entries.values():
        secrets = (credentials.customer_id, credentials.customer_secret, credentials.auth_token)
        yield from (value for value in (*secrets, credentials.webhook_secret) if value)
        header = _header(credentials) or ""
        if header.startswith(BASIC):
            yield header.removeprefix(BASIC)  # base64 of the pair, as a log might quote it
