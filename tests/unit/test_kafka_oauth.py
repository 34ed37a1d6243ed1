"""OAUTHBEARER tokens from a file or a command: fresh at every connection, never shown."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import OAuthAuthenticator
from aiokafka.errors import KafkaConnectionError

from tests.tokens import unsecured_jws
from worker.kafka import oauth
from worker.kafka.connection import client_options
from worker.kafka.oauth import CommandToken, FileToken, TokenUnavailableError, jwt_expiry
from worker.settings import Settings, SettingsError

NOW = 1_800_000_000.0


class Clock:
    """A settable `time.time`."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def printing(tmp_path: Path, token: str) -> str:
    """A command that prints `token` and counts its runs in `runs`."""
    (tmp_path / "token").write_text(token + "\n")
    script = "open('runs', 'a').write('.'); print(open('token').read(), end='')"
    return f'{sys.executable} -c "{script}"'


def runs(tmp_path: Path) -> int:
    path = tmp_path / "runs"
    return len(path.read_text()) if path.exists() else 0


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


class TestFileToken:
    async def test_a_replaced_file_is_read_at_the_next_connection(self, tmp_path: Path) -> None:
        """Whatever renews the file (kubelet, sidecar) is followed without a restart."""
        path = tmp_path / "token"
        path.write_text("first-token\n")
        provider = FileToken(str(path))
        assert await provider.token() == "first-token"
        renewed = tmp_path / "renewed"
        renewed.write_text("second-token")
        renewed.replace(path)  # how the kubelet swaps a projected or Secret volume's file
        assert await provider.token() == "second-token"

    @pytest.mark.parametrize(
        ("content", "reason"),
        [(None, "No such file"), ("\n", "empty"), ("two words", "one word"), (b"\xff", "UTF-8")],
    )
    async def test_no_usable_token_is_a_connection_error_naming_the_file(
        self, tmp_path: Path, content: str | bytes | None, reason: str
    ) -> None:
        """The client retries as for an unreachable broker; the message says where to look."""
        path = tmp_path / "token"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        with pytest.raises(KafkaConnectionError, match=reason) as raised:
            await FileToken(str(path)).token()
        assert f"CONVOAI_KAFKA_SASL_OAUTH_TOKEN_FILE={path}" in str(raised.value)


class TestCommandToken:
    async def test_a_jwt_is_kept_until_a_minute_before_it_expires(self, in_tmp: Path) -> None:
        token = unsecured_jws("worker", NOW + 600)
        clock = Clock()
        provider = CommandToken(printing(in_tmp, token), clock=clock)
        assert await provider.token() == token
        clock.now = NOW + 600 - 61
        assert await provider.token() == token
        assert runs(in_tmp) == 1
        clock.now = NOW + 600 - 59
        assert await provider.token() == token
        assert runs(in_tmp) == 2

    async def test_a_token_without_expiry_is_fetched_for_every_connection(
        self, in_tmp: Path
    ) -> None:
        provider = CommandToken(printing(in_tmp, "opaque-token"), clock=Clock())
        assert [await provider.token() for _ in range(3)] == ["opaque-token"] * 3
        assert runs(in_tmp) == 3

    async def test_connections_opened_together_share_one_run(self, in_tmp: Path) -> None:
        token = unsecured_jws("worker", NOW + 600)
        provider = CommandToken(printing(in_tmp, token), clock=Clock())
        assert await asyncio.gather(*(provider.token() for _ in range(5))) == [token] * 5
        assert runs(in_tmp) == 1

    @pytest.mark.parametrize(
        ("command", "reason"),
        [
            ("no-such-program-7f3a", "cannot run it"),
            (
                f"{sys.executable} -c \"print('hunter2'); exit('401 from the IdP')\"",
                "exited with 1: 401 from the IdP",
            ),
            (f"{sys.executable} -c pass", "empty"),
        ],
    )
    async def test_a_failing_command_is_a_connection_error_without_its_output(
        self, command: str, reason: str
    ) -> None:
        """What it printed to stdout (a token, perhaps) never appears; stderr's last line does."""
        with pytest.raises(TokenUnavailableError, match=reason) as raised:
            await CommandToken(command).token()
        assert "CONVOAI_KAFKA_SASL_OAUTH_TOKEN_COMMAND" in str(raised.value)
        assert "hunter2" not in str(raised.value)

    async def test_a_command_that_hangs_is_ended(
        self, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(oauth, "COMMAND_TIMEOUT_SECONDS", 0.5)
        script = "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(30)"
        with pytest.raises(TokenUnavailableError, match=r"no token within 0\.5 s"):
            await CommandToken(f'{sys.executable} -c "{script}"').token()
        pid = int((in_tmp / "pid").read_text())
        await asyncio.sleep(0.2)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    def test_a_command_that_cannot_be_split_is_refused_at_start(self) -> None:
        with pytest.raises(SettingsError, match="CONVOAI_KAFKA_SASL_OAUTH_TOKEN_COMMAND"):
            CommandToken("get-token --audience 'kafka")


@pytest.mark.parametrize(
    ("token", "expiry"),
    [
        (unsecured_jws("worker", NOW), NOW),
        ("opaque-0123456789", None),
        ("a.not-base64!.c", None),
        ("a.bm90IGpzb24.c", None),  # "not json"
        ("a.eyJleHAiOnRydWV9.c", None),  # {"exp":true}
        ("a.eyJzdWIiOiJ4In0.c", None),  # {"sub":"x"}
    ],
)
def test_only_a_jwt_exp_claim_counts_as_expiry(token: str, expiry: float | None) -> None:
    assert jwt_expiry(token) == expiry


class TestClientOptions:
    def oauth(self, **values: Any) -> Settings:
        return Settings(
            kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER", **values
        )

    async def test_every_client_gets_a_provider_aiokafka_sends_as_a_bearer(
        self, tmp_path: Path
    ) -> None:
        """aiokafka's own authenticator sends the file's token in the SASL initial response."""
        (tmp_path / "token").write_text("the-token")
        options = client_options(self.oauth(kafka_sasl_oauth_token_file=str(tmp_path / "token")))
        assert options["sasl_mechanism"] == "OAUTHBEARER"
        provider = options["sasl_oauth_token_provider"]
        assert isinstance(provider, AbstractTokenProvider)
        assert (
            provider
            is not client_options(self.oauth(kafka_sasl_oauth_token_file="x"))[
                "sasl_oauth_token_provider"
            ]
        )
        first, _ = await OAuthAuthenticator(sasl_oauth_token_provider=provider).step(None)
        assert first == b"n,,\x01auth=Bearer the-token\x01\x01"

    @pytest.mark.parametrize(
        "values",
        [{}, {"kafka_sasl_oauth_token_file": "t", "kafka_sasl_oauth_token_command": "cat t"}],
        ids=["neither", "both"],
    )
    def test_exactly_one_token_source_is_required(self, values: dict[str, str]) -> None:
        with pytest.raises(SettingsError, match="needs one of CONVOAI_KAFKA_SASL_OAUTH_TOKEN_FILE"):
            client_options(self.oauth(**values))
