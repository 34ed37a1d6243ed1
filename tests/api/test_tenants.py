"""Tenants: App IDs outside the allowed set are refused; each App ID signs with its own account."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.api.tenants import Tenants, authorization
from worker.settings import Settings, SettingsError

BASIC_A = "Basic YS1pZDphLXNlY3JldA=="  # a-id:a-secret
CREDENTIALS = (
    '{"app-a": {"customer_id": "a-id", "customer_secret": "a-secret"},'
    ' "app-b": {"auth_token": "b-token"}}'
)


def test_without_settings_every_app_id_uses_the_default_credentials() -> None:
    """One tenant: the worker's credentials for any App ID."""
    single = Tenants.from_settings(Settings(customer_id="a-id", customer_secret="a-secret"))
    assert single.refusal("anything") is None
    assert single.authorization("anything") == BASIC_A


def test_the_allowed_list_refuses_other_app_ids() -> None:
    """`CONVOAI_ALLOWED_APP_IDS` is the whole list of App IDs served."""
    listed = Tenants.from_settings(Settings(allowed_app_ids="app-a, app-b"))
    assert listed.refusal("app-a") is None
    assert listed.refusal("app-b") is None
    assert listed.refusal("app-c") == "App ID 'app-c' is not among CONVOAI_ALLOWED_APP_IDS"


def test_a_credentials_file_signs_each_app_id_with_its_own_account(tmp_path: Path) -> None:
    """Per-App-ID credentials; an App ID without an entry is refused, never signed otherwise."""
    path = tmp_path / "credentials.json"
    path.write_text(CREDENTIALS)
    served = Tenants.from_settings(
        Settings(api_credentials_file=str(path), customer_id="default", customer_secret="s")
    )
    assert served.authorization("app-a") == BASIC_A
    assert served.authorization("app-b") == "agora token=b-token"
    assert served.refusal("app-c") == (
        "no credentials for App ID 'app-c' in CONVOAI_API_CREDENTIALS_FILE"
    )
    assert served.authorization("app-c") is None  # not the default account's


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file or directory"),
        ("[1]", "Expected `object`, got `array`"),
        ('{"app-a": {"customer_id": "a", "password": "p"}}', "unknown field `password`"),
        ('{"app-a": {}}', "App ID 'app-a' has no customer_id nor auth_token"),
        ("{}", "no App ID in the file"),
    ],
)
def test_a_bad_credentials_file_is_named_at_startup(
    tmp_path: Path, content: str | None, message: str
) -> None:
    """Every mistake in the file is one error naming the variable, the file and the problem."""
    path = tmp_path / "credentials.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError, match=message) as raised:
        Tenants.from_settings(Settings(api_credentials_file=str(path)))
    assert str(raised.value).startswith(f"CONVOAI_API_CREDENTIALS_FILE={path}: ")


def test_authorization_is_what_the_sdk_sends() -> None:
    """Token wins over Basic; no credentials, no header."""
    assert authorization(Settings(customer_id="a-id", customer_secret="a-secret")) == BASIC_A
    assert (
        authorization(Settings(auth_token="t", customer_id="x", customer_secret="y"))
        == "agora token=t"
    )
    assert authorization(Settings()) is None
