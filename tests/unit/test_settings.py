"""Settings come from CONVOAI_* variables and fail fast with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.settings import (
    SECRET_FIELDS,
    Settings,
    SettingsError,
    credentials_warning,
    load_settings,
    unknown_variables,
)


def test_defaults_match_the_design() -> None:
    """Fixed names and defaults from the design document."""
    settings = load_settings({})
    assert settings.api_base_url == "https://api.agora.io/api/conversational-ai-agent"
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.http_port == 8080
    assert settings.group_id == "convoai-worker"
    assert (
        settings.topic_commands,
        settings.topic_results,
        settings.topic_state,
        settings.topic_dlq,
    ) == ("convoai.commands", "convoai.results", "convoai.agent-state", "convoai.commands.dlq")


def test_environment_values_are_converted() -> None:
    """Strings from the environment become typed values; empty means unset."""
    settings = load_settings(
        {
            "CONVOAI_HTTP_PORT": "9000",
            "CONVOAI_CREATE_TOPICS": "false",
            "CONVOAI_DRAIN_GRACE_SECONDS": "2.5",
            "CONVOAI_APP_ID": "",
            "UNRELATED": "x",
        }
    )
    assert settings.http_port == 9000
    assert settings.create_topics is False
    assert settings.drain_grace_seconds == 2.5
    assert settings.app_id == ""


def test_overrides_win_and_none_is_ignored() -> None:
    """CLI flags override the environment; flags not given leave it alone."""
    settings = load_settings({"CONVOAI_GROUP_ID": "env"}, group_id="flag", http_port=None)
    assert settings.group_id == "flag"
    assert settings.http_port == 8080


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CONVOAI_HTTP_PORT", "eighty", "expected an integer >= 0 and <= 65535"),
        ("CONVOAI_HTTP_PORT", "70000", "expected an integer >= 0 and <= 65535"),
        ("CONVOAI_MAX_IN_FLIGHT", "0", "expected an integer >= 1"),
        ("CONVOAI_DRAIN_GRACE_SECONDS", "soon", "expected a number > 0"),
        ("CONVOAI_PARTITION_RESUME_RATIO", "1", "expected a number > 0 and < 1"),
        ("CONVOAI_CREATE_TOPICS", "yes", "expected true or false (or 1 or 0)"),
        ("CONVOAI_LOG_LEVEL", "LOUD", "expected one of DEBUG, INFO, WARNING, ERROR (any case)"),
        ("CONVOAI_LOG_FORMAT", "xml", "expected one of auto, json, console (any case)"),
    ],
)
def test_invalid_values_name_the_variable_and_what_it_allows(
    variable: str, value: str, message: str
) -> None:
    """An operator sees which variable is wrong, its value, and what it accepts."""
    with pytest.raises(SettingsError) as raised:
        load_settings({variable: value})
    assert str(raised.value) == f"{variable}={value}: {message}"


def test_an_invalid_flag_value_names_the_flag() -> None:
    """A value that came from a flag is reported under the flag's name."""
    with pytest.raises(SettingsError) as raised:
        load_settings({}, flags={"http_port": "--http-port"}, http_port=70000)
    assert str(raised.value).startswith("--http-port=70000: expected an integer")


@pytest.mark.parametrize(("value", "level"), [("debug", "DEBUG"), ("Warning", "WARNING")])
def test_enum_values_ignore_case(value: str, level: str) -> None:
    """`CONVOAI_LOG_LEVEL=debug` is DEBUG."""
    assert load_settings({"CONVOAI_LOG_LEVEL": value}).log_level == level
    assert load_settings({"CONVOAI_LOG_FORMAT": "JSON"}).log_format == "json"


PARTNERS = {
    "customer_id": {"CONVOAI_CUSTOMER_SECRET": "s"},
    "customer_secret": {"CONVOAI_CUSTOMER_ID": "c"},
}


class TestSecretFiles:
    @pytest.mark.parametrize("name", SECRET_FIELDS)
    def test_every_secret_can_come_from_a_file(self, name: str, tmp_path: Path) -> None:
        """`CONVOAI_<SECRET>_FILE` holds a path; the file's text (without its line break) is
        the value, as a mounted Kubernetes secret provides it."""
        path = tmp_path / name
        path.write_text("from-a-file\n")
        partner = PARTNERS.get(name, {})  # the half of a Basic pair the file does not hold
        settings = load_settings({f"CONVOAI_{name.upper()}_FILE": str(path), **partner})
        assert getattr(settings, name) == "from-a-file"

    def test_a_value_and_a_file_for_one_secret_are_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "secret"
        path.write_text("x")
        env = {"CONVOAI_AUTH_TOKEN": "t", "CONVOAI_AUTH_TOKEN_FILE": str(path)}
        with pytest.raises(SettingsError) as raised:
            load_settings(env)
        assert str(raised.value) == "set CONVOAI_AUTH_TOKEN or CONVOAI_AUTH_TOKEN_FILE, not both"

    def test_an_unreadable_file_is_named(self, tmp_path: Path) -> None:
        missing = tmp_path / "missing"
        with pytest.raises(SettingsError) as raised:
            load_settings({"CONVOAI_WEBHOOK_SECRET_FILE": str(missing)})
        assert str(raised.value) == (
            f"CONVOAI_WEBHOOK_SECRET_FILE: cannot read {missing}: no such file or directory"
        )


class TestEnvFile:
    def test_values_come_from_the_env_file_unless_the_environment_sets_them(
        self, tmp_path: Path
    ) -> None:
        env_file = tmp_path / "worker.env"
        env_file.write_text(
            "# local settings\n"
            "export CONVOAI_GROUP_ID=from-file\n"
            "CONVOAI_APP_ID = 'quoted # not a comment'\n"
            'CONVOAI_TOPIC_DLQ="dlq\\"x" # a comment\n'
            "CONVOAI_HTTP_PORT=9000 # a comment\n"
            "\n"
        )
        settings = load_settings({"CONVOAI_ENV_FILE": str(env_file), "CONVOAI_HTTP_PORT": "9100"})
        assert settings.group_id == "from-file"
        assert settings.app_id == "quoted # not a comment"
        assert settings.topic_dlq == 'dlq"x'
        assert settings.http_port == 9100

    def test_a_line_that_is_no_assignment_is_named(self, tmp_path: Path) -> None:
        env_file = tmp_path / ".env"
        env_file.write_text("CONVOAI_GROUP_ID=g\nthis is not it\n")
        with pytest.raises(SettingsError) as raised:
            load_settings({"CONVOAI_ENV_FILE": str(env_file)})
        assert str(raised.value) == f"{env_file}:2: expected KEY=VALUE, got 'this is not it'"

    def test_a_named_env_file_must_exist(self, tmp_path: Path) -> None:
        with pytest.raises(SettingsError) as raised:
            load_settings({"CONVOAI_ENV_FILE": str(tmp_path / "nope")})
        assert str(raised.value) == f"CONVOAI_ENV_FILE: no such file: {tmp_path / 'nope'}"


class TestWarnings:
    def test_unknown_variables_are_named_with_the_closest_setting(self) -> None:
        env = {
            "CONVOAI_KAFKA_BOOTSTRAPS": "k:9092",
            "CONVOAI_NONSENSE": "1",
            "CONVOAI_AUTH_TOKEN_FILE": "/run/secrets/token",
            "CONVOAI_TOOLS_CACHE": "~/.cache/tools",
            "OTHER": "x",
        }
        assert unknown_variables(env) == [
            (
                "CONVOAI_KAFKA_BOOTSTRAPS is not a setting and is ignored; "
                "did you mean CONVOAI_KAFKA_BOOTSTRAP?"
            ),
            "CONVOAI_NONSENSE is not a setting and is ignored",
        ]

    @pytest.mark.parametrize(
        ("settings", "warns"),
        [
            (Settings(), True),
            (Settings(api_credentials_file="/run/secrets/tenants.json"), False),
            (Settings(customer_id="id", customer_secret="s"), False),
            (Settings(auth_token="t"), False),
            (Settings(api_base_url="https://api.eu.agora.io/api/conversational-ai-agent"), True),
            (Settings(api_base_url="http://127.0.0.1:8090/api/conversational-ai-agent"), False),
            (Settings(api_base_url="http://emulator:8081/api/conversational-ai-agent"), False),
        ],
    )
    def test_the_real_api_without_credentials_warns(self, settings: Settings, warns: bool) -> None:
        warning = credentials_warning(settings)
        assert (warning is not None) == warns
        if warning is not None:
            assert warning.startswith("CONVOAI_API_BASE_URL is the real API")


def test_redacted_masks_only_set_secrets() -> None:
    """Secrets are masked for logging; empty ones stay visibly empty."""
    redacted = Settings(customer_id="c", customer_secret="s3cr3t-value").redacted()
    assert redacted["customer_secret"] == "***"
    assert redacted["auth_token"] == ""
    assert "s3cr3t-value" not in repr(redacted)
