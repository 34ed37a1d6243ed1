"""Settings as a user meets them: the environment, a `.env` file, secret files, warnings."""

from __future__ import annotations

import json
from pathlib import Path

from tests.console import clean_environment, console, one_line

EMULATOR_URL = "http://127.0.0.1:8090/api/conversational-ai-agent"


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
