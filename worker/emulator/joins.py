"""What a join must contain, as Agora's join reference documents it (`Rules.validate_join`).

- `llm` (with a `url`) and `tts` (with a `vendor`) are required unless a preset of their
  category, a `pipeline_id` or an enabled MLLM provides them; `asr` is optional.
- `preset` is a comma-separated list of known preset ids, at most one per category.
- `idle_timeout` is an integer of seconds in 0..259200.
- UIDs are integers (decimal strings, `agent_rtc_uid` up to 2^32-1; `remote_rtc_uids` may hold
  the wildcard `*`) unless `enable_string_uid` is true.

A call's `properties` follow the same rules without a `pipeline_id`; with one, the RTC fields
suffice.
"""

from __future__ import annotations

import re
from typing import Any

from worker.emulator import validation as v
from worker.emulator.errors import InvalidBodyError

PRESETS: dict[str, frozenset[str]] = {
    "asr": frozenset({"deepgram_nova_2", "deepgram_nova_3"}),
    "llm": frozenset(
        {"openai_gpt_4o_mini", "openai_gpt_4_1_mini", "openai_gpt_5_nano", "openai_gpt_5_mini"}
    ),
    "tts": frozenset({"minimax_speech_2_6_turbo", "minimax_speech_2_8_turbo", "openai_tts_1"}),
}
MAX_IDLE_TIMEOUT = 259_200
MAX_UID = 2**32 - 1
WILDCARD = "*"
DIGITS = re.compile(r"[0-9]{1,10}")


def check_join(body: dict[str, Any], properties: dict[str, Any]) -> None:
    """The documented rules of a join body whose RTC fields were checked already."""
    categories = preset_categories(v.optional(body, "preset", str) or "")
    check_uids(properties)
    idle = properties.get("idle_timeout")
    if idle is not None and (type(idle) is not int or not 0 <= idle <= MAX_IDLE_TIMEOUT):
        raise InvalidBodyError(
            "InvalidFieldValue",
            f"properties.idle_timeout must be an integer in 0..{MAX_IDLE_TIMEOUT}",
        )
    if body.get("pipeline_id") or uses_mllm(properties):
        return
    if "llm" not in categories:
        llm = v.required_object(properties, "llm", "properties.")
        v.required_str(llm, "url", "properties.llm.")
    if "tts" not in categories:
        tts = v.required_object(properties, "tts", "properties.")
        v.required_str(tts, "vendor", "properties.tts.")


def preset_categories(preset: str) -> set[str]:
    """The categories a `preset` value covers; 400 for an unknown id or two of one category."""
    covered: set[str] = set()
    for name in filter(None, (part.strip() for part in preset.split(","))):
        category = next((c for c, names in PRESETS.items() if name in names), None)
        if category is None:
            raise InvalidBodyError("InvalidFieldValue", f"preset {name!r} does not exist")
        if category in covered:
            raise InvalidBodyError("InvalidFieldValue", f"preset names two {category} presets")
        covered.add(category)
    return covered


def check_uids(properties: dict[str, Any]) -> None:
    """Integer UIDs unless `enable_string_uid` (the wildcard `*` is always a remote UID)."""
    if properties.get("enable_string_uid") is True:
        return
    if not _is_uid(properties.get("agent_rtc_uid")):
        raise InvalidBodyError(
            "InvalidFieldValue",
            "properties.agent_rtc_uid must be an integer UID (or set enable_string_uid)",
        )
    remote = properties.get("remote_rtc_uids")
    if isinstance(remote, list) and not all(uid == WILDCARD or _is_uid(uid) for uid in remote):
        raise InvalidBodyError(
            "InvalidFieldValue",
            "properties.remote_rtc_uids must hold integer UIDs or * (or set enable_string_uid)",
        )


def uses_mllm(properties: dict[str, Any]) -> bool:
    """Whether the agent runs a multimodal LLM (`mllm.enable`, or the deprecated switch)."""
    mllm = properties.get("mllm")
    features = properties.get("advanced_features")
    return (isinstance(mllm, dict) and mllm.get("enable") is True) or (
        isinstance(features, dict) and features.get("enable_mllm") is True
    )


def _is_uid(value: Any) -> bool:
    return isinstance(value, str) and DIGITS.fullmatch(value) is not None and int(value) <= MAX_UID
