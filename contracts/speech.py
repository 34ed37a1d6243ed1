"""The speech pipeline of an agent: `asr`, `tts`, `llm` and `mllm` inside `properties`.

Field names and shapes are the REST API's (`docs/api-reference.md` §3.2-3.5). Vendor-specific
`params` stay free-form objects: vendors and their options change faster than this contract, and the
worker forwards the producer's JSON verbatim anyway. Vendor, model and language names are open
strings; the behavioural switches the reference enumerates are enums.

Every optional field defaults to `UNSET`, so "absent" and an explicit JSON `null` stay distinct
and `encode_command` writes back only what the producer set.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from contracts._fields import (
    JsonObject,
    Milliseconds,
    Model,
    NonEmptyStr,
    PositiveInt,
    StrMap,
    whole_match,
)


class AsrConfig(Model, frozen=True, kw_only=True):
    """Speech recognition (`properties.asr`). Without `vendor` the API uses `ares`."""

    vendor: str | UnsetType = UNSET
    language: str | UnsetType = UNSET
    params: JsonObject | UnsetType = UNSET
    keywords: list[str] | UnsetType = UNSET


SkipPattern = Annotated[
    int,
    Meta(
        ge=1,
        le=5,
        description=(
            "Brackets whose content is not spoken: 1 full-width parentheses, 2 full-width "
            "lenticular brackets, 3 ( ), 4 [ ], 5 { }."
        ),
    ),
]


class TtsConfig(Model, frozen=True, kw_only=True):
    """Text to speech (`properties.tts`).

    With a TTS preset the API accepts `params` alone, so `vendor` is optional. `url` and `headers`
    belong to the `generic_http` vendor, `credential_mode` to `rime`.
    """

    vendor: str | UnsetType = UNSET
    params: JsonObject | UnsetType = UNSET
    skip_patterns: list[SkipPattern] | UnsetType = UNSET
    url: str | UnsetType = UNSET
    headers: StrMap | UnsetType = UNSET
    credential_mode: Literal["managed", "byok"] | UnsetType = UNSET


class GreetingConfigs(Model, frozen=True, kw_only=True):
    """`llm.greeting_configs`; the documentation and the SDK name different fields, both kept."""

    mode: Literal["single_every", "single_first"] | UnsetType = UNSET
    delay_ms: Annotated[int, Meta(ge=0, le=5000)] | UnsetType = UNSET
    interruptable: bool | UnsetType = UNSET
    audio_download_timeout_ms: Milliseconds | UnsetType = UNSET
    audio_pcm_sample_rate: PositiveInt | UnsetType = UNSET
    uninterruptible_asr_policy: Literal["merge_reply", "context"] | UnsetType = UNSET


McpServerName = Annotated[
    str, Meta(pattern=whole_match("[A-Za-z0-9]{1,48}"), description="At most 48 letters/digits.")
]


class McpServer(Model, frozen=True, kw_only=True):
    """An MCP server whose tools the model may call. `allowed_tools`: absent = all, `[]` = none."""

    name: McpServerName
    endpoint: NonEmptyStr
    transport: Literal["streamable_http"] | UnsetType = UNSET
    headers: StrMap | UnsetType = UNSET
    allowed_tools: list[str] | Literal["*"] | UnsetType = UNSET
    timeout_ms: Milliseconds | UnsetType = UNSET


class ToolParameters(Model, frozen=True, kw_only=True):
    """JSON Schema of a tool's arguments (an object schema)."""

    type: Literal["object"] | UnsetType = UNSET
    properties: JsonObject
    required: list[str] | UnsetType = UNSET


class ToolFunction(Model, frozen=True, kw_only=True):
    """What the model sees of an inline tool."""

    name: NonEmptyStr
    description: str | UnsetType = UNSET
    parameters: ToolParameters


class ToolExecution(Model, frozen=True, kw_only=True):
    """How the engine runs the tool; only synchronous calls exist."""

    mode: Literal["sync"] | UnsetType = UNSET


class ToolServer(Model, frozen=True, kw_only=True):
    """The REST endpoint the engine calls; `{{args.x}}` placeholders are filled from the call."""

    method: Literal["GET", "POST"]
    url: NonEmptyStr
    headers: StrMap | UnsetType = UNSET
    body: JsonObject | UnsetType = UNSET
    timeout_ms: Annotated[int, Meta(ge=1000, le=100000)] | UnsetType = UNSET


class LlmTool(Model, frozen=True, kw_only=True):
    """An inline REST tool (`llm.tools[]`, `mllm.tools[]`); requires `enable_tools`."""

    type: Literal["function"] | UnsetType = UNSET
    function: ToolFunction
    execution: ToolExecution | UnsetType = UNSET
    server: ToolServer


class LlmConfig(Model, frozen=True, kw_only=True):
    """The chat-completions model of a cascade pipeline (`properties.llm`).

    `url` is optional because an LLM preset or a `pipeline_id` supplies it. `params` is passed to
    the model as is.
    """

    url: str | UnsetType = UNSET
    api_key: str | UnsetType = UNSET
    access_key: str | UnsetType = UNSET
    secret_key: str | UnsetType = UNSET
    region: str | UnsetType = UNSET
    model: str | UnsetType = UNSET
    vendor: str | UnsetType = UNSET
    style: Literal["openai", "gemini", "anthropic", "dify", "bedrock"] | UnsetType = UNSET
    system_messages: list[JsonObject] | UnsetType = UNSET
    params: JsonObject | UnsetType = UNSET
    max_history: Annotated[int, Meta(ge=1, le=1024)] | UnsetType = UNSET
    input_modalities: list[Literal["text", "image"]] | UnsetType = UNSET
    output_modalities: list[Literal["text", "audio"]] | UnsetType = UNSET
    greeting_message: str | UnsetType = UNSET
    greeting_audio_url: str | UnsetType = UNSET
    failure_message: str | UnsetType = UNSET
    greeting_configs: GreetingConfigs | UnsetType = UNSET
    template_variables: StrMap | UnsetType = UNSET
    ignore_empty: bool | UnsetType = UNSET
    mcp_servers: list[McpServer] | UnsetType = UNSET
    tools: list[LlmTool] | UnsetType = UNSET
    headers: StrMap | UnsetType = UNSET


class AgoraVadConfig(Model, frozen=True, kw_only=True):
    """`mllm.turn_detection.agora_vad_config`."""

    interrupt_duration_ms: Milliseconds | UnsetType = UNSET
    prefix_padding_ms: Milliseconds | UnsetType = UNSET
    silence_duration_ms: Milliseconds | UnsetType = UNSET
    threshold: float | UnsetType = UNSET


class ServerVadConfig(Model, frozen=True, kw_only=True):
    """`mllm.turn_detection.server_vad_config`: the model vendor's own voice activity detection."""

    prefix_padding_ms: Milliseconds | UnsetType = UNSET
    silence_duration_ms: Milliseconds | UnsetType = UNSET
    threshold: float | UnsetType = UNSET
    idle_timeout_ms: Milliseconds | UnsetType = UNSET
    start_of_speech_sensitivity: (
        Literal["START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW"] | UnsetType
    ) = UNSET
    end_of_speech_sensitivity: (
        Literal["END_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW"] | UnsetType
    ) = UNSET


class SemanticVadConfig(Model, frozen=True, kw_only=True):
    """`mllm.turn_detection.semantic_vad_config`."""

    eagerness: Literal["auto", "low", "medium", "high"] | UnsetType = UNSET


class MllmTurnDetection(Model, frozen=True, kw_only=True):
    """`mllm.turn_detection`; when set it overrides the top-level `turn_detection`."""

    mode: Literal["agora_vad", "server_vad", "semantic_vad"] | UnsetType = UNSET
    agora_vad_config: AgoraVadConfig | UnsetType = UNSET
    server_vad_config: ServerVadConfig | UnsetType = UNSET
    semantic_vad_config: SemanticVadConfig | UnsetType = UNSET


class MllmConfig(Model, frozen=True, kw_only=True):
    """A realtime multimodal model (`properties.mllm`), the alternative to asr + llm + tts."""

    enable: bool | UnsetType = UNSET
    url: str | UnsetType = UNSET
    api_key: str | UnsetType = UNSET
    adc_credentials_string: str | UnsetType = UNSET
    project_id: str | UnsetType = UNSET
    location: str | UnsetType = UNSET
    messages: list[JsonObject] | UnsetType = UNSET
    params: JsonObject | UnsetType = UNSET
    max_history: PositiveInt | UnsetType = UNSET
    input_modalities: list[str] | UnsetType = UNSET
    output_modalities: list[str] | UnsetType = UNSET
    greeting_message: str | UnsetType = UNSET
    failure_message: str | UnsetType = UNSET
    tools: list[LlmTool] | UnsetType = UNSET
    mcp_servers: list[McpServer] | UnsetType = UNSET
    vendor: str | UnsetType = UNSET
    turn_detection: MllmTurnDetection | UnsetType = UNSET
