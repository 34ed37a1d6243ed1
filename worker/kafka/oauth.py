"""OAUTHBEARER tokens for the Kafka clients, from a file or from a command's output.

aiokafka asks a client's token provider for a token each time it opens a connection (to
bootstrap, to each broker, to the group coordinator), and the broker checks the token once, in
that handshake; it does not ask again while the connection lives. So a provider must answer
with a token that is valid now:

- `FileToken` reads the file at every connection: whatever renews the token (the kubelet's
  projected service-account token, a sidecar, a rotated Secret mounted as a file) only has to
  replace the file.
- `CommandToken` runs a command and keeps what it printed until a minute before the JWT's `exp`
  claim; a token without one (opaque) is fetched anew for each connection.
- `worker.kafka.msk.MskIamToken` signs one with the AWS credentials (AWS MSK IAM).

A token that cannot be had raises `TokenUnavailableError`, a Kafka connection error: the client
treats it as an unreachable broker (it retries; `run` waits for it at start and names the
cause). Tokens are never logged: errors say where the token was looked for, not what it is.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError

from worker.settings import SettingsError, variable_name

RENEW_BEFORE_EXPIRY_SECONDS = 60.0  # room for clock skew between the worker and the brokers
COMMAND_TIMEOUT_SECONDS = 30.0  # a token endpoint that has not answered by then will not
TOKEN_FILE = variable_name("kafka_sasl_oauth_token_file")
TOKEN_COMMAND = variable_name("kafka_sasl_oauth_token_command")


class TokenUnavailableError(KafkaConnectionError):  # type: ignore[misc]
    """No token could be had; the message says from where, never what it is."""


class RenewedToken(AbstractTokenProvider):  # type: ignore[misc]
    """A token fetched again only when the last one is about to expire, one fetch at a time
    (a client opening several connections at once shares it)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token = ""
        self._renew_at = 0.0

    async def token(self) -> str:
        """The cached token while it has more than a minute left, else a new one."""
        async with self._lock:
            if self._clock() >= self._renew_at:
                self._token, expires_at = await self._fetch()
                self._renew_at = (
                    0.0 if expires_at is None else expires_at - RENEW_BEFORE_EXPIRY_SECONDS
                )
            return self._token

    @abc.abstractmethod
    async def _fetch(self) -> tuple[str, float | None]:
        """A new token and when it expires (Unix seconds; None: unknown, fetch every time)."""


class FileToken(AbstractTokenProvider):  # type: ignore[misc]
    """The token a file holds now (`CONVOAI_KAFKA_SASL_OAUTH_TOKEN_FILE`)."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    async def token(self) -> str:
        """The file's content, read afresh: a renewed file is used from the next connection."""
        where = f"{TOKEN_FILE}={self._path}"
        try:
            text = await asyncio.to_thread(self._path.read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise TokenUnavailableError(f"{where}: cannot read the token: {reason}") from None
        return checked(text, where)


class CommandToken(RenewedToken):
    """The token a command prints (`CONVOAI_KAFKA_SASL_OAUTH_TOKEN_COMMAND`), split like a shell
    would split it but run without one."""

    def __init__(self, command: str, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        try:
            self._argv = shlex.split(command)
        except ValueError as error:
            raise SettingsError(f"{TOKEN_COMMAND}: cannot split the command: {error}") from None
        if not self._argv:
            raise SettingsError(f"{TOKEN_COMMAND}: the command is empty")

    async def _fetch(self) -> tuple[str, float | None]:
        where = f"{TOKEN_COMMAND} ({self._argv[0]})"
        try:
            process = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as error:
            raise TokenUnavailableError(f"{where}: cannot run it: {error.strerror}") from None
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                out, err = await process.communicate()
        except TimeoutError:
            raise TokenUnavailableError(
                f"{where}: no token within {COMMAND_TIMEOUT_SECONDS:g} s"
            ) from None
        finally:
            if process.returncode is None:  # timed out or cancelled: it is ours to end
                process.kill()
        if process.returncode:
            said = err.decode(errors="replace").strip().splitlines()[-1:] or ["nothing on stderr"]
            raise TokenUnavailableError(
                f"{where}: exited with {process.returncode}: {said[0][:200]}"
            )
        token = checked(out.decode(errors="replace"), where)
        return token, jwt_expiry(token)


def checked(text: str, where: str) -> str:
    """The token in `text` (surrounding blank space dropped), or why it is none."""
    token = text.strip()
    if not token:
        raise TokenUnavailableError(f"{where}: the token is empty")
    if any(character.isspace() for character in token):
        raise TokenUnavailableError(f"{where}: a token is one word, this has several")
    return token


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (not verified: the brokers verify the token), None when the
    token is no JWT or has no expiry."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = msgspec.json.decode(
            base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        )
    except ValueError:  # not base64, not JSON
        return None
    expiry = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        return None
    return float(expiry)
