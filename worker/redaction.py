"""What counts as a secret in the worker's outputs, and how it is masked.

Two rules, used by the logs (`worker.logging`), `convoai-worker config` and the optional
redaction of dead letters (`worker.dlq_redaction`):

- **By name.** A field whose name contains one of `SECRET_WORDS` (in any case and spelling:
  `apiKey`, `Api-Key`, `access_token`, `X-Auth-Token`, `clientSecret`, `Authorization`) holds a
  secret, whatever its value. `key` alone is one: vendors call their API keys `key` (the TTS
  and ASR `params` of an agent). `HARMLESS_NAMES` lists the names that contain such a word but
  name no credential: token counts and limits of LLMs, the interruption keywords of an agent,
  and the worker's own words for a Kafka record key (an agent name, id or phone number); and a
  name ending in `file` or `path` holds where a secret is (`CONVOAI_KAFKA_SSL_KEYFILE`), not
  the secret.
- **By value.** Known secret values (the settings' credentials, every value of the credentials
  file) are masked wherever they appear in text, also as JSON, `repr` or URL escapes render
  them; and the password of any URL with `user:password@` is masked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
SECRET_WORDS = (
    "secret",
    "token",
    "password",
    "passwd",
    "passphrase",
    "key",
    "credential",
    "authorization",
    "cookie",
)
HARMLESS_NAMES = frozenset(
    {
        # LLM parameters and usage figures (`llm.params.max_tokens` of a join)
        "max_tokens",
        "max_completion_tokens",
        "tokens",
        "total_tokens",
        "prompt_tokens",
        "completion_tokens",
        # agent settings: words that interrupt the agent
        "keyword",
        "keywords",
        "interruption_keywords",
        # the worker's names for a Kafka record key: an agent name or id, a phone number
        "record_key",
        "ordering_key",
        "partition_key",
    }
)
MIN_SECRET_LENGTH = 6  # shorter values would mask innocent text; credentials are longer

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@\"']+:)[^\s/@\"']+@")


def normalized(name: str) -> str:
    """`apiKey`, `Api-Key` and `API_KEY` alike as `api_key`."""
    return _SEPARATORS.sub("_", _CAMEL.sub("_", name).lower()).strip("_")


def is_secret_name(name: object) -> bool:
    """Whether a field of this name holds a credential."""
    text = normalized(str(name))
    if text in HARMLESS_NAMES or text.endswith(("file", "path")):
        return False
    return any(word in text for word in SECRET_WORDS)


def mask_secret_fields(value: Any) -> Any:
    """`value` with the value of every secret-named field masked, in nested objects and lists
    (unless empty: the line then shows that the secret is not set, as `config` does)."""
    if isinstance(value, Mapping):
        # an empty or null value reveals nothing and shows that the secret is not set
        return {
            k: MASK if is_secret_name(k) and _revealing(v) else mask_secret_fields(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secret_fields(v) for v in value]
    return value


def _revealing(value: Any) -> bool:
    """Whether a value under a secret-named field would reveal anything: not when empty or null
    (the line then shows the secret is not set), nor a flag (`dlq_redact_secrets: false`)."""
    return value not in ("", None) and not isinstance(value, bool)


def mask_url_passwords(text: str) -> str:
    """`scheme://user:password@host` as `scheme://user:***@host`, anywhere in `text`."""
    return _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)


def renderings(secret: str) -> set[str]:
    """The forms a secret value takes in a log line: as it is, JSON-escaped (ASCII or not),
    as `repr` shows it, percent-encoded."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class ValueMasker:
    """Replaces known secret values (in all their renderings) and URL passwords in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these values too from now on."""
        forms = set(self._forms)
        for secret in secrets:
            if secret:
                forms |= renderings(secret)
        self._forms = sorted(forms, key=len, reverse=True)  # longest first: no partial masks

    def mask(self, text: str) -> str:
        """`text` with every known secret and URL password replaced by the mask."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return mask_url_passwords(text) if "://" in text else text
