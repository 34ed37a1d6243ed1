"""The 19 commands: one Struct per ConvoAI REST operation, tagged by the `command` field.

A command is the envelope (`id`, `app_id`, `expires_at`, `correlation_id`), the path parameters
as plain fields (`agent_id`, `phone_number`; agent commands may give `name` instead of
`agent_id`) and every other field verbatim from the REST API: the JSON body of POST/PATCH
operations, the query parameters of GET operations.

Each class carries, as class variables, what the API layer needs to make the call:
`http_method`, `path_template` (relative to the API base URL, placeholders `{appid}`,
`{agent_id}`, `{phone_number}`), `rest_location` (`body` or `query`: where the decoded `rest`
payload goes), `idempotent` (whether re-sending after an ambiguous failure is safe) and
`address_fields` (the keys that address the resource and are therefore not part of `rest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, get_args

import msgspec
from msgspec import UNSET, Meta, UnsetType

from contracts._fields import (
    E164,
    AgentId,
    AppId,
    AwareDatetime,
    CommandId,
    FieldValueError,
    Model,
    NonEmptyStr,
    NonNegativeInt,
    PositiveInt,
    StrMap,
    whole_match,
)
from contracts.events import AGENT_STATUS_CODES
from contracts.properties import AgentProperties, AgentUpdateProperties, CallProperties

HttpMethod = Literal["GET", "POST", "PATCH", "DELETE"]
RestLocation = Literal["body", "query"]

ENVELOPE_FIELDS = frozenset(
    {"command", "id", "app_id", "expires_at", "correlation_id", "api_headers"}
)
"""Keys every command may carry that are never sent to the API as payload."""
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"  # an HTTP token (RFC 9110)
HEADER_VALUE = r"^[^\r\n\x00]*$"  # no line breaks: a value can never add a header

ApiHeaders = Annotated[
    dict[
        Annotated[str, Meta(min_length=1, max_length=128, pattern=HEADER_NAME)],
        Annotated[str, Meta(max_length=4096, pattern=HEADER_VALUE)],
    ],
    Meta(
        max_length=16,
        description=(
            "Extra HTTP request headers (e.g. a preview feature's), sent as given; only names "
            "the worker's operator allows (CONVOAI_API_EXTRA_HEADERS), else `rejected`."
        ),
    ),
]
PageCount = Annotated[
    int,
    Meta(
        ge=1,
        le=100,
        description=(
            "Read up to this many pages into one result (the worker's CONVOAI_MAX_LIST_PAGES and "
            "the result budget may stop sooner; the last page's cursor then says where to go on)."
        ),
    ),
]

SPEAK_TEXT_MAX_BYTES = 512

_NO_SCHEMA_EXTRA: Mapping[str, Any] = MappingProxyType({})


class CommandBase(
    msgspec.Struct, tag_field="command", frozen=True, kw_only=True, omit_defaults=True
):
    """The envelope shared by every command.

    `id` is the producer's command id (1-128 characters): the worker's idempotency key and the
    `command_id` of the result. `app_id` defaults to the worker's configured App ID.
    `expires_at` (RFC 3339 with an offset) is the deadline after which the command is not
    executed (outcome `expired`). `correlation_id` is echoed in the result. `api_headers` adds
    request headers the operator allows.
    """

    id: CommandId
    app_id: AppId | None = None
    expires_at: AwareDatetime | None = None
    correlation_id: str | None = None
    api_headers: ApiHeaders | None = None

    http_method: ClassVar[HttpMethod]
    path_template: ClassVar[str]
    rest_location: ClassVar[RestLocation]
    idempotent: ClassVar[bool] = True
    address_fields: ClassVar[frozenset[str]] = frozenset()
    worker_fields: ClassVar[frozenset[str]] = frozenset()  # options for the worker, not the API
    # JSON Schema keywords stating the rules `__post_init__` checks; merged into the schema.
    json_schema_extra: ClassVar[Mapping[str, Any]] = _NO_SCHEMA_EXTRA

    @classmethod
    def tag(cls) -> str:
        """The `command` value of this class, e.g. `agent.speak`."""
        tag = cls.__struct_config__.tag
        if not isinstance(tag, str):
            raise TypeError(f"{cls.__name__} is not a concrete command")
        return tag

    @classmethod
    def non_rest_fields(cls) -> frozenset[str]:
        """Keys of the record that are not forwarded to the API."""
        return ENVELOPE_FIELDS | cls.address_fields | cls.worker_fields


class AgentCommand(CommandBase, frozen=True, kw_only=True):
    """A command on a running agent, addressed by exactly one of `agent_id` or `name`.

    `name` is the one given to agent.start; the worker resolves it to the agent id.
    """

    agent_id: AgentId | None = None
    name: NonEmptyStr | None = None

    address_fields: ClassVar[frozenset[str]] = frozenset({"agent_id", "name"})
    json_schema_extra: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {
            "oneOf": [
                {"required": [field], "properties": {field: {"type": "string"}}}
                for field in ("agent_id", "name")
            ]
        }
    )

    def __post_init__(self) -> None:
        """Reject a command that names no agent or names it twice."""
        if (self.agent_id is None) == (self.name is None):
            raise ValueError("exactly one of `agent_id` or `name` is required")


# ---------------------------------------------------------------------------------------- agents


class AgentStart(CommandBase, tag="agent.start", frozen=True, kw_only=True):
    """Start an agent in an RTC channel.

    `POST /v2/projects/{appid}/join`, rest = JSON body. `name` is a body field here: the agent's
    unique name, which later agent commands may use instead of the id. Idempotent: a retry with
    the same `name` gets 409 from the API instead of a second agent.
    """

    name: Annotated[str, Meta(min_length=1, description="Unique agent name.")]
    preset: Annotated[str, Meta(description="Comma-separated preset ids.")] | UnsetType = UNSET
    pipeline_id: str | UnsetType = UNSET
    properties: AgentProperties

    http_method: ClassVar[HttpMethod] = "POST"
    path_template: ClassVar[str] = "/v2/projects/{appid}/join"
    rest_location: ClassVar[RestLocation] = "body"


class AgentStop(AgentCommand, tag="agent.stop", frozen=True, kw_only=True):
    """Stop an agent; it leaves the channel asynchronously.

    `POST /v2/projects/{appid}/agents/{agent_id}/leave`, rest = JSON body (normally empty).
    Idempotent: the API answers 404 for an agent that already stopped.
    """

    http_method: ClassVar[HttpMethod] = "POST"
    path_template: ClassVar[str] = "/v2/projects/{appid}/agents/{agent_id}/leave"
    rest_location: ClassVar[RestLocation] = "body"


class AgentUpdate(AgentCommand, tag="agent.update", frozen=True, kw_only=True):
    """Give a running agent a new RTC token or new LLM/MLLM settings.

    `POST /v2/projects/{appid}/agents/{agent_id}/update`, rest = JSON body. Idempotent: the
    same update applied twice leaves the same configuration.
    """

    properties: AgentUpdateProperties | UnsetType = UNSET

    http_method: ClassVar[HttpMethod] = "POST"
    path_template: ClassVar[str] = "/v2/projects/{appid}/agents/{agent_id}/update"
    rest_location: ClassVar[RestLocation] = "body"


class AgentSpeak(AgentCommand, tag="agent.speak", frozen=True, kw_only=True):
    """Make the agent say `text` (1 to 512 bytes of UTF-8) through its TTS.

    `POST /v2/projects/{appid}/agents/{agent_id}/speak`, rest = JSON body. Not idempotent: a
    re-sent request may be spoken twice. Not available for agents running an `mllm`.
    """

    text: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=SPEAK_TEXT_MAX_BYTES,
            description="1 to 512 bytes of UTF-8.",
        ),
    ]
    priority: Literal["INTERRUPT", "APPEND", "IGNORE"] | UnsetType = UNSET
    interruptable: bool | UnsetType = UNSET

    http_method: ClassVar[HttpMethod] = "POST"
    path_template: ClassVar[str] = "/v2/projects/{appid}/agents/{agent_id}/speak"
    rest_location: ClassVar[RestLocation] = "body"
    idempotent: ClassVar[bool] = False

    def __post_init__(self) -> None:
        """Enforce the API's byte limit, which a character count cannot express."""
        super().__post_init__()
        size = len(self.text.encode("utf-8", "surrogatepass"))
        if size > SPEAK_TEXT_MAX_BYTES:
            raise FieldValueError(
                "text", f"expected at most {SPEAK_TEXT_MAX_BYTES} bytes of UTF-8, got {size}"
            )


class AgentInterrupt(AgentCommand, tag="agent.interrupt", frozen=True, kw_only=True):
    """Stop the agent speaking or thinking right now.

    `POST /v2/projects/{appid}/agents/{agent_id}/interrupt`, rest = JSON body (normally empty).
    Not idempotent: a late re-send may cut off a newer turn.
    """

    http_method: ClassVar[HttpMethod] = "POST"
    path_template: ClassVar[str] = "/v2/projects/{appid}/agents/{agent_id}/interrupt"
    rest_location: ClassVar[RestLocation] = "body"
    idempotent: ClassVar[bool] = False


ThinkAction = Literal["interrupt", "ignore", "append"]


class AgentThink(AgentCommand, tag="agent.think", frozen=True, kw_only=True):
    """Inject `text` into the agent's pipeline as if the user had said it.

    `POST /v2/projects/{appid}/agents/{agent_id}/think`, rest = JSON body. Not idempotent: a
    re-sent request injects the instruction twice. The three actions decide what happens while
    the agent is listening, thinking or speaking.
    """

    text: NonEmptyStr
    on_listening_action: Literal["inject", "interrupt", "ignore", "append"] | UnsetType = UNSET
    on_thinking_action: ThinkAction | UnsetType = UNSET
    on_speaking_action: ThinkAction | UnsetType = UNSET
    interruptable: bool | UnsetType = UNSET
    metadata: StrMap | UnsetType = UNSET

    http_method: ClassVar[HttpMethod] = "POST"
    path_template: ClassVar[str] = "/v2/projects/{appid}/agents/{agent_id}/think"
    rest_location: ClassVar[RestLocation] = "body"
    idempotent: ClassVar[bool] = False


class AgentGet(AgentCommand, tag="agent.get", frozen=True, kw_only=True):
    """Read an agent's status.

    `GET /v2/projects/{appid}/agents/{agent_id}`, rest = query string. Idempotent.
    """

    http_method: ClassVar[HttpMethod] = "GET"
    path_template: ClassVar[str] = "/v2/projects/{appid}/agents/{agent_id}"
    rest_location: ClassVar[RestLocation] = "query"


AgentStateFilter = (
    Annotated[int, Meta(ge=0, description="A status code, e.g. 2 (RUNNING, the API default).")]
    | Annotated[
        str,
        Meta(
            pattern=whole_match("[0-9]+(,[0-9]+)*|" + "|".join(AGENT_STATUS_CODES)),
            description=(
                "A status code as text (`2`) or a status name (`RUNNING`). Comma-separated codes"
                " (`0,1,2`) are forwarded as they are, but the API documents one state per query."
            ),
        ),
    ]
)


class AgentList(CommandBase, tag="agent.list", frozen=True, kw_only=True):
    """List the project's agents, one page per command (`cursor` continues), or up to `pages`.

    `GET /v2/projects/{appid}/agents`, rest = query string. Idempotent. `state` is sent as the
    numeric code the API documents, whichever of the accepted forms the producer used.
    """

    channel: str | UnsetType = UNSET
    from_time: Annotated[float, Meta(description="Unix seconds.")] | UnsetType = UNSET
    to_time: Annotated[float, Meta(description="Unix seconds.")] | UnsetType = UNSET
    state: AgentStateFilter | UnsetType = UNSET
    limit: PositiveInt | UnsetType = UNSET
    cursor: str | UnsetType = UNSET
    pages: PageCount | None = None

    http_method: ClassVar[HttpMethod] = "GET"
    path_template: ClassVar[str] = "/v2/projects/{appid}/agents"
    rest_location: ClassVar[RestLocation] = "query"
    worker_fields: ClassVar[frozenset[str]] = frozenset({"pages"})

    def state_query(self) -> str | None:
        """`state` as the API takes it: numeric codes (a status name becomes its code)."""
        if self.state is UNSET:
            return None
        if isinstance(self.state, int):
            return str(self.state)
        return str(AGENT_STATUS_CODES.get(self.state, self.state))


class AgentHistory(AgentCommand, tag="agent.history", frozen=True, kw_only=True):
    """Read the conversation history cached by a running agent, or part of it.

    `GET /v2/projects/{appid}/agents/{agent_id}/history`, rest = query string. Idempotent.
    `contents_from` and `contents_count` make the result hold only those entries of `contents`
    (the worker adds `contents_total`): how a history over the result budget is read in parts.
    Each part is a fresh read of a history that may have moved on since the last.
    """

    contents_from: NonNegativeInt | None = None
    contents_count: PositiveInt | None = None

    worker_fields: ClassVar[frozenset[str]] = frozenset({"contents_from", "contents_count"})
    http_method: ClassVar[HttpMethod] = "GET"
    path_template: ClassVar[str] = "/v2/projects/{appid}/agents/{agent_id}/history"
    rest_location: ClassVar[RestLocation] = "query"


class AgentTurns(AgentCommand, tag="agent.turns", frozen=True, kw_only=True):
    """Read one page of an agent's turns (sessions of the last 7 days), or up to `pages`.

    `GET /v2/projects/{appid}/agents/{agent_id}/turns`, rest = query string. Idempotent.
    """

    page_index: PositiveInt | UnsetType = UNSET
    page_size: Annotated[int, Meta(ge=10, le=200)] | UnsetType = UNSET
    pages: PageCount | None = None

    worker_fields: ClassVar[frozenset[str]] = frozenset({"pages"})

    http_method: ClassVar[HttpMethod] = "GET"
    path_template: ClassVar[str] = "/v2/projects/{appid}/agents/{agent_id}/turns"
    rest_location: ClassVar[RestLocation] = "query"


# ------------------------------------------------------------------------------------- telephony


class SipConfig(Model, frozen=True, kw_only=True):
    """The SIP leg of an outbound call (names as in API v2 and SDK 2.12: `rtc_uid`, `rtc_token`)."""

    to_number: E164
    from_number: E164
    rtc_uid: NonEmptyStr
    rtc_token: str


class CallStart(CommandBase, tag="call.start", frozen=True, kw_only=True):
    """Place an outbound SIP call answered by a new agent.

    `POST /v2/projects/{appid}/call`, rest = JSON body. `name` is a body field (the call
    session's name). Not idempotent: a re-sent request may dial the callee twice.
    """

    name: NonEmptyStr
    sip: SipConfig
    pipeline_id: str | UnsetType = UNSET
    properties: CallProperties

    http_method: ClassVar[HttpMethod] = "POST"
    path_template: ClassVar[str] = "/v2/projects/{appid}/call"
    rest_location: ClassVar[RestLocation] = "body"
    idempotent: ClassVar[bool] = False


class CallHangup(CommandBase, tag="call.hangup", frozen=True, kw_only=True):
    """Hang up a call; its agent leaves the channel.

    `POST /v2/projects/{appid}/calls/{agent_id}/hangup`, rest = JSON body (normally empty).
    Idempotent.
    """

    agent_id: AgentId

    http_method: ClassVar[HttpMethod] = "POST"
    path_template: ClassVar[str] = "/v2/projects/{appid}/calls/{agent_id}/hangup"
    rest_location: ClassVar[RestLocation] = "body"
    address_fields: ClassVar[frozenset[str]] = frozenset({"agent_id"})


class CallGet(CommandBase, tag="call.get", frozen=True, kw_only=True):
    """Read a call's state.

    `GET /v2/projects/{appid}/calls/{agent_id}`, rest = query string. Idempotent.
    """

    agent_id: AgentId

    http_method: ClassVar[HttpMethod] = "GET"
    path_template: ClassVar[str] = "/v2/projects/{appid}/calls/{agent_id}"
    rest_location: ClassVar[RestLocation] = "query"
    address_fields: ClassVar[frozenset[str]] = frozenset({"agent_id"})


class CallList(CommandBase, tag="call.list", frozen=True, kw_only=True):
    """List calls, one page per command (`cursor` continues), or up to `pages`.

    `GET /v2/projects/{appid}/call`, rest = query string. Idempotent.
    """

    number: str | UnsetType = UNSET
    from_time: Annotated[int, Meta(description="Unix seconds.")] | UnsetType = UNSET
    to_time: Annotated[int, Meta(description="Unix seconds.")] | UnsetType = UNSET
    type: Literal["inbound", "outbound"] | UnsetType = UNSET
    limit: PositiveInt | UnsetType = UNSET
    cursor: str | UnsetType = UNSET
    pages: PageCount | None = None

    http_method: ClassVar[HttpMethod] = "GET"
    path_template: ClassVar[str] = "/v2/projects/{appid}/call"
    rest_location: ClassVar[RestLocation] = "query"
    worker_fields: ClassVar[frozenset[str]] = frozenset({"pages"})


# ---------------------------------------------------------------------------------- phone numbers


class InboundConfig(Model, frozen=True, kw_only=True):
    """Where inbound SIP traffic for an imported number may come from."""

    allowed_addresses: (
        Annotated[list[str], Meta(description="CIDR blocks, e.g. 112.126.15.64/27.")] | UnsetType
    ) = UNSET


class OutboundConfig(Model, frozen=True, kw_only=True):
    """The SIP trunk outbound calls from an imported number use."""

    address: str | UnsetType = UNSET
    transport: str | UnsetType = UNSET
    prefix: str | UnsetType = UNSET


class NumberRouting(Model, frozen=True, kw_only=True):
    """The pipeline a number's calls are routed to; `null` removes the association."""

    pipeline_id: str | UnsetType | None = UNSET


class NumberAdd(CommandBase, tag="number.add", frozen=True, kw_only=True):
    """Import a phone number from a carrier (`byo` or `twilio`).

    `POST /v2/phone-numbers`, rest = JSON body; `phone_number` is a body field here. Idempotent:
    importing the same number again gets 409 `phone_number_exists` from the API.
    """

    provider: Literal["byo", "twilio"]
    phone_number: E164
    label: NonEmptyStr
    inbound: bool | UnsetType = UNSET
    outbound: bool | UnsetType = UNSET
    inbound_config: InboundConfig
    outbound_config: OutboundConfig

    http_method: ClassVar[HttpMethod] = "POST"
    path_template: ClassVar[str] = "/v2/phone-numbers"
    rest_location: ClassVar[RestLocation] = "body"


class NumberGet(CommandBase, tag="number.get", frozen=True, kw_only=True):
    """Read one imported phone number.

    `GET /v2/phone-numbers/{phone_number}`, rest = query string. Idempotent.
    """

    phone_number: E164

    http_method: ClassVar[HttpMethod] = "GET"
    path_template: ClassVar[str] = "/v2/phone-numbers/{phone_number}"
    rest_location: ClassVar[RestLocation] = "query"
    address_fields: ClassVar[frozenset[str]] = frozenset({"phone_number"})


class NumberList(CommandBase, tag="number.list", frozen=True, kw_only=True):
    """List every imported phone number (the API does not paginate).

    `GET /v2/phone-numbers`, rest = query string. Idempotent.
    """

    http_method: ClassVar[HttpMethod] = "GET"
    path_template: ClassVar[str] = "/v2/phone-numbers"
    rest_location: ClassVar[RestLocation] = "query"


class NumberUpdate(CommandBase, tag="number.update", frozen=True, kw_only=True):
    """Change which pipeline a number's inbound or outbound calls use.

    `PATCH /v2/phone-numbers/{phone_number}`, rest = JSON body; an explicit `null` clears a
    configuration and is forwarded as such. Idempotent.
    """

    phone_number: E164
    inbound_config: NumberRouting | UnsetType | None = UNSET
    outbound_config: NumberRouting | UnsetType | None = UNSET

    http_method: ClassVar[HttpMethod] = "PATCH"
    path_template: ClassVar[str] = "/v2/phone-numbers/{phone_number}"
    rest_location: ClassVar[RestLocation] = "body"
    address_fields: ClassVar[frozenset[str]] = frozenset({"phone_number"})


class NumberDelete(CommandBase, tag="number.delete", frozen=True, kw_only=True):
    """Remove a number from Agora (not from the carrier).

    `DELETE /v2/phone-numbers/{phone_number}`, rest = query string. Idempotent: the API answers
    404 for a number already removed.
    """

    phone_number: E164

    http_method: ClassVar[HttpMethod] = "DELETE"
    path_template: ClassVar[str] = "/v2/phone-numbers/{phone_number}"
    rest_location: ClassVar[RestLocation] = "query"
    address_fields: ClassVar[frozenset[str]] = frozenset({"phone_number"})


Command: TypeAlias = (
    AgentStart
    | AgentStop
    | AgentUpdate
    | AgentSpeak
    | AgentInterrupt
    | AgentThink
    | AgentGet
    | AgentList
    | AgentHistory
    | AgentTurns
    | CallStart
    | CallHangup
    | CallGet
    | CallList
    | NumberAdd
    | NumberGet
    | NumberList
    | NumberUpdate
    | NumberDelete
)
"""Any command; msgspec picks the class from the `command` tag."""

COMMAND_TYPES: Mapping[str, type[Command]] = MappingProxyType(
    {cls.tag(): cls for cls in get_args(Command)}
)
"""Command class by `command` value, in the order of the API reference."""
