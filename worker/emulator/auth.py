"""Who may call the emulated API: the `Authorization` header of each request.

In order: an App ID given its own account (`EmulatorConfig.tenants`) accepts only that
account's Basic credentials; configured credentials (`customer_id`/`customer_secret`,
`auth_token`) are accepted, and so is a token signed with the App ID's certificate
(`app_certificates`). Without configured credentials, `Rules.require_auth` still refuses a
request without credentials or with malformed ones: a Basic pair must have both parts, a token
must be an AccessToken2 of the path's App ID that has not expired (`worker.emulator.tokens`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from worker.emulator import tokens
from worker.emulator.rules import Rules

BASIC = "Basic "
TOKEN_SCHEME = "agora token="  # noqa: S105 - the scheme's name, not a token


def basic(customer_id: str, secret: str) -> str:
    """The Basic `Authorization` value of a customer pair."""
    return BASIC + base64.b64encode(f"{customer_id}:{secret}".encode()).decode()


class Authenticator:
    """Decides whether a request's `Authorization` header may reach an App ID's data."""

    def __init__(
        self,
        rules: Rules,
        *,
        accepted: frozenset[str],
        owners: Mapping[str, str],
        certificates: Mapping[str, str],
    ) -> None:
        """`accepted`: header values configured for every App ID; `owners`: App ID → the only
        header its paths accept; `certificates`: App ID → its App Certificate."""
        self._rules = rules
        self._accepted = accepted
        self._owners = dict(owners)
        self._certificates = dict(certificates)

    def allows(self, given: str | None, app_id: str, now: float) -> bool:
        """Whether `given` may reach `app_id` ("" for phone-number paths) at `now`."""
        owner = self._owners.get(app_id)
        if owner is not None:
            return given == owner
        if given is not None and given in self._accepted:
            return True
        certificate = self._certificates.get(app_id)
        if certificate is not None:
            token = self._token(given, app_id, now)
            return token is not None and token.signed_with(certificate)
        if self._accepted:
            return False
        return not self._rules.require_auth or self._well_formed(given, app_id, now)

    def _well_formed(self, given: str | None, app_id: str, now: float) -> bool:
        if given is None:
            return False
        if given.startswith(BASIC):
            try:
                pair = base64.b64decode(given.removeprefix(BASIC), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            customer_id, _, secret = pair.partition(":")
            return bool(customer_id and secret)
        return self._token(given, app_id, now) is not None

    @staticmethod
    def _token(given: str | None, app_id: str, now: float) -> tokens.AccessToken | None:
        """The token of an `agora token=` header, when it is valid for `app_id` at `now`."""
        if given is None or not given.startswith(TOKEN_SCHEME):
            return None
        token = tokens.parse(given.removeprefix(TOKEN_SCHEME))
        if token is None or now >= token.expires_at or (app_id and token.app_id != app_id):
            return None
        return token
