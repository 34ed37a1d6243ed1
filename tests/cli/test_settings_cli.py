"""Settings as a user meets them: the environment, a `.env` file, secret files, warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.console import clean_environment, console, one_line

EMULATOR_URL = "http://127.0.0.1:8090/api/conversational-ai-agent"
LIST = '{"command":"agent.list","id":"l-1"}'


def config(cwd: Path | None = None, **variables: str) -> tuple[int, dict[str, object], str]:
    result = console("config", env=clean_environment(**variables), cwd=cwd)
    settings = json.loads(result.stdout) if result.returncode == 0 else {}
    return result.returncode, settings, result.stderr


def test_enum_values_are_case_insensitive() -> None:
    code, settings, _ = config(CONVOAI_LOG_LEVEL="debug", CONVOAI_API_BASE_URL=EMULATOR_URL)
    assert (code, settings["log_level"]) == (0, "DEBUG")


def test_an_invalid_value_is_one_line_naming_the_variable_and_the_allowed_values() -> None:
    code, _, stderr = config(CONVOAI_HTTP_PORT="abc")
    assert code == 2
    assert one_line(stderr) == (
        "convoai-worker: invalid setting: CONVOAI_HTTP_PORT=abc: "
        "expected an integer >= 0 and <= 65535"
    )


def test_a_misspelt_variable_is_warned_about() -> None:
    code, _, stderr = config(
        CONVOAI_KAFKA_BOOTSTRAPS="kafka:9092", CONVOAI_API_BASE_URL=EMULATOR_URL
    )
    assert code == 0
    assert one_line(stderr) == (
        "convoai-worker: warning: CONVOAI_KAFKA_BOOTSTRAPS is not a setting and is ignored; "
        "did you mean CONVOAI_KAFKA_BOOTSTRAP?"
    )


def test_the_real_api_without_credentials_is_warned_about() -> None:
    code, _, stderr = config()
    assert code == 0
    assert one_line(stderr).startswith(
        "convoai-worker: warning: CONVOAI_API_BASE_URL is the real API (api.agora.io) "
        "but no credentials are set"
    )


def test_a_dotenv_file_asked_for_is_read(tmp_path: Path) -> None:
    """`CONVOAI_ENV_FILE=.env` reads the working directory's (in a container too); the
    environment wins over the file."""
    (tmp_path / ".env").write_text("CONVOAI_GROUP_ID=from-dotenv\nCONVOAI_APP_ID=file-app\n")
    code, settings, _ = config(tmp_path, CONVOAI_APP_ID="env-app", CONVOAI_ENV_FILE=".env")
    assert code == 0
    assert (settings["group_id"], settings["app_id"]) == ("from-dotenv", "env-app")


def test_secret_files_are_read_and_masked(tmp_path: Path) -> None:
    secret = tmp_path / "customer-secret"
    secret.write_text("s3cret-from-file\n")
    code, settings, stderr = config(
        CONVOAI_CUSTOMER_ID="id", CONVOAI_CUSTOMER_SECRET_FILE=str(secret)
    )
    assert (code, stderr) == (0, "")  # credentials set: no warning
    assert settings["customer_secret"] == "***"


def test_an_unreadable_secret_file_is_one_line(tmp_path: Path) -> None:
    code, _, stderr = config(CONVOAI_AUTH_TOKEN_FILE=str(tmp_path / "token"))
    assert code == 2
    assert one_line(stderr) == (
        "convoai-worker: invalid setting: CONVOAI_AUTH_TOKEN_FILE: "
        f"cannot read {tmp_path / 'token'}: no such file or directory"
    )


class TestConfigRefusesWhatRunRefuses:
    """`config` loads settings through the same checks as `run` and `exec`: exit 2, one line."""

    @pytest.mark.parametrize("command", [["config"], ["exec", LIST]])
    def test_a_missing_credentials_file(self, command: list[str], tmp_path: Path) -> None:
        missing = tmp_path / "tenants.json"
        result = console(*command, env=clean_environment(CONVOAI_API_CREDENTIALS_FILE=str(missing)))
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            f"convoai-worker: invalid setting: CONVOAI_API_CREDENTIALS_FILE={missing}: "
            "No such file or directory"
        )

    def test_a_tenant_without_a_secret(self, tmp_path: Path) -> None:
        path = tmp_path / "tenants.json"
        path.write_text('{"app-one": {"customer_id": "c1"}}')
        code, _, stderr = config(CONVOAI_API_CREDENTIALS_FILE=str(path))
        assert code == 2
        assert one_line(stderr).endswith(
            "App ID 'app-one' needs customer_id and customer_secret together"
        )

    def test_a_customer_id_without_its_secret(self) -> None:
        code, _, stderr = config(CONVOAI_CUSTOMER_ID="c1")
        assert code == 2
        assert one_line(stderr) == (
            "convoai-worker: invalid setting: CONVOAI_CUSTOMER_ID and CONVOAI_CUSTOMER_SECRET "
            "go together (HTTP Basic): set both, or neither"
        )

    @pytest.mark.parametrize("url", ["api.agora.io/api", "ftp://host/api", "https:///nohost"])
    def test_an_api_url_that_is_not_an_http_url(self, url: str) -> None:
        code, _, stderr = config(CONVOAI_API_BASE_URL=url)
        assert code == 2
        assert one_line(stderr) == (
            f"convoai-worker: invalid setting: CONVOAI_API_BASE_URL={url}: expected an http(s) "
            "URL such as https://api.agora.io/api/conversational-ai-agent"
        )

    def test_a_kafka_tls_file_that_does_not_exist(self, tmp_path: Path) -> None:
        missing = tmp_path / "ca.pem"
        code, _, stderr = config(
            CONVOAI_API_BASE_URL=EMULATOR_URL,
            CONVOAI_KAFKA_SECURITY_PROTOCOL="SSL",
            CONVOAI_KAFKA_SSL_CAFILE=str(missing),
        )
        assert code == 2
        assert one_line(stderr) == (
            f"convoai-worker: invalid setting: CONVOAI_KAFKA_SSL_CAFILE: no such file: {missing}"
        )

    def test_a_credentials_file_is_no_reason_to_warn_about_401(self, tmp_path: Path) -> None:
        """The real API with per-tenant credentials signs every request: no warning."""
        path = tmp_path / "tenants.json"
        path.write_text('{"app-one": {"customer_id": "c1", "customer_secret": "s1"}}')
        code, settings, stderr = config(CONVOAI_API_CREDENTIALS_FILE=str(path))
        assert (code, stderr) == (0, "")
        assert settings["api_credentials_file"] == str(path)
