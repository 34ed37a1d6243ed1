"""Settings come from CONVOAI_* variables and fail fast with the variable's name."""

from __future__ import annotations

import pytest

from worker.settings import Settings, SettingsError, load_settings


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
        ("CONVOAI_HTTP_PORT", "eighty", "CONVOAI_HTTP_PORT: Expected `int`, got `str`"),
        ("CONVOAI_HTTP_PORT", "70000", "CONVOAI_HTTP_PORT: Expected `int` <= 65535"),
        ("CONVOAI_MAX_IN_FLIGHT", "0", "CONVOAI_MAX_IN_FLIGHT: Expected `int` >= 1"),
        ("CONVOAI_LOG_LEVEL", "LOUD", "CONVOAI_LOG_LEVEL: Invalid enum value 'LOUD'"),
    ],
)
def test_invalid_values_name_the_variable(variable: str, value: str, message: str) -> None:
    """An operator sees which variable is wrong and why."""
    with pytest.raises(SettingsError) as raised:
        load_settings({variable: value})
    assert str(raised.value) == message


def test_redacted_masks_only_set_secrets() -> None:
    """Secrets are masked for logging; empty ones stay visibly empty."""
    redacted = Settings(customer_secret="s3cr3t-value", auth_token="").redacted()
    assert redacted["customer_secret"] == "***"
    assert redacted["auth_token"] == ""
    assert "s3cr3t-value" not in repr(redacted)
