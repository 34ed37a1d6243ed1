"""`properties` of agent.start, call.start and agent.update (`docs/api-reference.md` §2.7, §3).

Ranges and enums are the ones the reference documents; anything it leaves open (vendor
`params`, message objects) is a free-form object. Keys this contract does not know are accepted
and reach the API unchanged.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from contracts._fields import JsonObject, Milliseconds, Model, NonEmptyStr, StrMap
from contracts.speech import AsrConfig, LlmConfig, MllmConfig, TtsConfig

Area = Literal["GLOBAL", "NORTH_AMERICA", "EUROPE", "ASIA", "INDIA", "JAPAN"]
ExcludedArea = Literal["NORTH_AMERICA", "EUROPE", "ASIA", "INDIA", "JAPAN"]


class Geofence(Model, frozen=True, kw_only=True):
    """Regions whose servers the agent may use; `exclude_area` only together with `GLOBAL`."""

    area: Area
    exclude_area: ExcludedArea | UnsetType = UNSET


class AdvancedFeatures(Model, frozen=True, kw_only=True):
    """Feature switches; all default to false in the API."""

    enable_mllm: bool | UnsetType = UNSET
    enable_rtm: bool | UnsetType = UNSET
    enable_sal: bool | UnsetType = UNSET
    enable_tools: bool | UnsetType = UNSET


class AvatarConfig(Model, frozen=True, kw_only=True):
    """A video avatar driven by the agent's speech; `params` are vendor specific."""

    enable: bool | UnsetType = UNSET
    vendor: str | UnsetType = UNSET
    params: JsonObject | UnsetType = UNSET


InterruptMs = Annotated[int, Meta(ge=120, le=1200)]


class StartOfSpeechVad(Model, frozen=True, kw_only=True):
    """Voice activity thresholds that start a user turn."""

    interrupt_duration_ms: InterruptMs | UnsetType = UNSET
    speaking_interrupt_duration_ms: InterruptMs | UnsetType = UNSET
    prefix_padding_ms: Annotated[int, Meta(ge=0, le=5000)] | UnsetType = UNSET


class StartOfSpeechKeywords(Model, frozen=True, kw_only=True):
    """Deprecated keyword trigger for a user turn."""

    interrupt_duration_ms: Milliseconds | UnsetType = UNSET
    prefix_padding_ms: Milliseconds | UnsetType = UNSET
    triggered_keywords: list[str] | UnsetType = UNSET


class DisabledStrategy(Model, frozen=True, kw_only=True):
    """What happens to user speech while interruption is off."""

    strategy: Literal["append", "ignore"] | UnsetType = UNSET


class StartOfSpeech(Model, frozen=True, kw_only=True):
    """How a user turn starts; `mode` selects which `<mode>_config` applies."""

    mode: Literal["vad", "keywords", "disabled", "manual"]
    vad_config: StartOfSpeechVad | UnsetType = UNSET
    keywords_config: StartOfSpeechKeywords | UnsetType = UNSET
    disabled_config: DisabledStrategy | UnsetType = UNSET


class EndOfSpeechVad(Model, frozen=True, kw_only=True):
    """Silence that ends a user turn."""

    silence_duration_ms: Annotated[int, Meta(ge=120, le=2000)] | UnsetType = UNSET


class EndOfSpeechSemantic(Model, frozen=True, kw_only=True):
    """Semantic end-of-turn detection (English and Chinese)."""

    silence_duration_ms: Milliseconds | UnsetType = UNSET
    max_wait_ms: (
        Annotated[int, Meta(ge=-1, le=10000, description="500-10000, or -1 for no limit.")]
        | UnsetType
    ) = UNSET
    pause_state_enabled: bool | UnsetType = UNSET


class EndOfSpeech(Model, frozen=True, kw_only=True):
    """How a user turn ends."""

    mode: Literal["vad", "semantic", "manual"] | UnsetType = UNSET
    vad_config: EndOfSpeechVad | UnsetType = UNSET
    semantic_config: EndOfSpeechSemantic | UnsetType = UNSET


class TurnDetectionConfig(Model, frozen=True, kw_only=True):
    """`turn_detection.config`."""

    speech_threshold: Annotated[float, Meta(gt=0, lt=1)] | UnsetType = UNSET
    start_of_speech: StartOfSpeech | UnsetType = UNSET
    end_of_speech: EndOfSpeech | UnsetType = UNSET


class TurnDetection(Model, frozen=True, kw_only=True):
    """Turn detection of the cascade pipeline; ignored when `mllm.enable` is true.

    `language` is what the SDK helper always sends (copied into `asr.language`). The flat fields
    after `config` are the deprecated form the SDK model still carries.
    """

    mode: Literal["default"] | UnsetType = UNSET
    config: TurnDetectionConfig | UnsetType = UNSET
    language: str | UnsetType = UNSET
    type: Literal["agora_vad", "server_vad", "semantic_vad"] | UnsetType = UNSET
    interrupt_mode: Literal["interrupt", "append", "ignore", "keyword", "adaptive"] | UnsetType = (
        UNSET
    )
    interrupt_duration_ms: Annotated[float, Meta(ge=0)] | UnsetType = UNSET
    interrupt_keywords: Annotated[list[str], Meta(max_length=128)] | UnsetType = UNSET
    prefix_padding_ms: Milliseconds | UnsetType = UNSET
    silence_duration_ms: Milliseconds | UnsetType = UNSET
    threshold: float | UnsetType = UNSET
    create_response: bool | UnsetType = UNSET
    interrupt_response: bool | UnsetType = UNSET
    eagerness: Literal["auto", "low", "high"] | UnsetType = UNSET


class InterruptionKeywords(Model, frozen=True, kw_only=True):
    """Words that interrupt the agent in `keywords` mode."""

    trigger_keywords: Annotated[list[str], Meta(max_length=128)] | UnsetType = UNSET


class Interruption(Model, frozen=True, kw_only=True):
    """When user speech interrupts the agent."""

    enable: bool | UnsetType = UNSET
    mode: Literal["start_of_speech", "keywords"] | UnsetType = UNSET
    keywords_config: InterruptionKeywords | UnsetType = UNSET
    disabled_config: DisabledStrategy | UnsetType = UNSET


class SalConfig(Model, frozen=True, kw_only=True):
    """Selective attention locking; needs `advanced_features.enable_sal`."""

    sal_mode: Literal["locking", "recognition"] | UnsetType = UNSET
    sample_urls: StrMap | UnsetType = UNSET


class RtcConfig(Model, frozen=True, kw_only=True):
    """Media encryption of the agent's RTC connection."""

    encryption_key: str | UnsetType = UNSET
    encryption_salt: str | UnsetType = UNSET
    encryption_mode: (
        Annotated[int, Meta(ge=1, le=8, description="1 AES_128_XTS … 8 AES_256_GCM2.")] | UnsetType
    ) = UNSET


class FixedTimeTrigger(Model, frozen=True, kw_only=True):
    """Play a filler after the LLM has been silent this long."""

    response_wait_ms: Annotated[int, Meta(ge=100, le=10000)] | UnsetType = UNSET


class FillerTrigger(Model, frozen=True, kw_only=True):
    """When filler words play."""

    mode: Literal["fixed_time"] | UnsetType = UNSET
    fixed_time_config: FixedTimeTrigger | UnsetType = UNSET


class StaticFillers(Model, frozen=True, kw_only=True):
    """A fixed list of filler phrases (each at most 50 words)."""

    phrases: Annotated[list[str], Meta(max_length=100)]
    selection_rule: Literal["shuffle", "round_robin"] | UnsetType = UNSET


class FillerLlmProvider(Model, frozen=True, kw_only=True):
    """The model that writes generated fillers."""

    url: NonEmptyStr
    api_key: str
    params: JsonObject | UnsetType = UNSET


class GeneratedFillers(Model, frozen=True, kw_only=True):
    """Fillers written by a model from the conversation so far."""

    llm_provider: FillerLlmProvider | UnsetType = UNSET
    prompt: str | UnsetType = UNSET
    fallback_strategy: Literal["static"] | UnsetType = UNSET
    context_message_limit: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    history_character_limit: Annotated[int, Meta(ge=0)] | UnsetType = UNSET


class FillerContent(Model, frozen=True, kw_only=True):
    """What filler words say."""

    mode: Literal["static", "generated"] | UnsetType = UNSET
    static_config: StaticFillers | UnsetType = UNSET
    generated_config: GeneratedFillers | UnsetType = UNSET


class FillerWords(Model, frozen=True, kw_only=True):
    """Short phrases played while the LLM is thinking."""

    enable: bool | UnsetType = UNSET
    trigger: FillerTrigger | UnsetType = UNSET
    content: FillerContent | UnsetType = UNSET


class SilenceConfig(Model, frozen=True, kw_only=True):
    """What the agent does after the user has been silent for `timeout_ms` (0 = never)."""

    timeout_ms: Annotated[int, Meta(ge=0, le=60000)] | UnsetType = UNSET
    action: Literal["speak", "think"] | UnsetType = UNSET
    content: str | UnsetType = UNSET


class FarewellConfig(Model, frozen=True, kw_only=True):
    """Graceful stop: wait until the agent is idle before leaving."""

    graceful_enabled: bool | UnsetType = UNSET
    graceful_timeout_seconds: Annotated[int, Meta(ge=0, le=120)] | UnsetType = UNSET


class AgentParameters(Model, frozen=True, kw_only=True):
    """`properties.parameters`: session behaviour switches."""

    silence_config: SilenceConfig | UnsetType = UNSET
    farewell_config: FarewellConfig | UnsetType = UNSET
    data_channel: Literal["rtm", "datastream"] | UnsetType = UNSET
    enable_metrics: bool | UnsetType = UNSET
    enable_error_message: bool | UnsetType = UNSET
    audio_scenario: Literal["default", "chorus", "aiserver"] | UnsetType = UNSET
    opt_out: bool | UnsetType = UNSET


class SessionProperties(Model, frozen=True, kw_only=True):
    """What agent.start and call.start share in `properties` (all but `remote_rtc_uids`)."""

    channel: Annotated[str, Meta(min_length=1, description="RTC channel the agent joins.")]
    token: Annotated[str, Meta(description="The agent's RTC (and RTM) token.")]
    agent_rtc_uid: Annotated[str, Meta(min_length=1, description='"0" lets the server pick.')]
    enable_string_uid: bool | UnsetType = UNSET
    idle_timeout: Annotated[int, Meta(ge=0, le=259200)] | UnsetType = UNSET
    geofence: Geofence | UnsetType = UNSET
    advanced_features: AdvancedFeatures | UnsetType = UNSET
    asr: AsrConfig | UnsetType = UNSET
    tts: TtsConfig | UnsetType = UNSET
    llm: LlmConfig | UnsetType = UNSET
    mllm: MllmConfig | UnsetType = UNSET
    avatar: AvatarConfig | UnsetType = UNSET
    turn_detection: TurnDetection | UnsetType = UNSET
    interruption: Interruption | UnsetType = UNSET
    sal: SalConfig | UnsetType = UNSET
    labels: StrMap | UnsetType = UNSET
    rtc: RtcConfig | UnsetType = UNSET
    filler_words: FillerWords | UnsetType = UNSET
    parameters: AgentParameters | UnsetType = UNSET


RemoteUids = Annotated[
    list[NonEmptyStr],
    Meta(min_length=1, description='UIDs the agent listens to; ["*"] for anyone.'),
]


class AgentProperties(SessionProperties, frozen=True, kw_only=True):
    """Everything the agent joins with (`properties` of agent.start).

    The four RTC fields are required by the API in every form, including with a `pipeline_id`
    or presets, which make `asr`, `tts` and `llm` optional.
    """

    remote_rtc_uids: RemoteUids


class CallProperties(SessionProperties, frozen=True, kw_only=True):
    """`properties` of call.start: as for agent.start, but `remote_rtc_uids` may be left out.

    With a `pipeline_id` it should hold the SIP gateway's `rtc_uid`.
    """

    remote_rtc_uids: RemoteUids | UnsetType = UNSET


class LlmUpdate(Model, frozen=True, kw_only=True):
    """`llm` fields a running agent accepts; `params` replaces the params given at start."""

    system_messages: list[JsonObject] | UnsetType = UNSET
    params: JsonObject | UnsetType = UNSET


class MllmUpdate(Model, frozen=True, kw_only=True):
    """`mllm` fields a running agent accepts."""

    params: JsonObject | UnsetType = UNSET


class AgentUpdateProperties(Model, frozen=True, kw_only=True):
    """`properties` of agent.update: a fresh RTC token or new model instructions."""

    token: str | UnsetType = UNSET
    llm: LlmUpdate | UnsetType = UNSET
    mllm: MllmUpdate | UnsetType = UNSET
