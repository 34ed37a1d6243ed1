"""The Kafka contracts of convoai-worker: commands in, results and agent state out.

Producers and consumers import this package; it depends only on the standard library and
msgspec. The nested objects of `properties` live in `contracts.properties` and
`contracts.speech`, header names in `contracts.headers`. JSON Schema and AsyncAPI documents
generated from these types are shipped in `contracts/schema/`.

`__version__` is the version of the contract (the schemas), not of the worker: it changes major
(minor while 0.x) exactly when a change can break existing producers or consumers.
"""

from contracts.codec import (
    DecodedCommand,
    decode_agent_state,
    decode_command,
    decode_result,
    encode_command,
    encode_event,
)
from contracts.commands import (
    COMMAND_TYPES,
    ENVELOPE_FIELDS,
    AgentCommand,
    AgentGet,
    AgentHistory,
    AgentInterrupt,
    AgentList,
    AgentSpeak,
    AgentStart,
    AgentStop,
    AgentThink,
    AgentTurns,
    AgentUpdate,
    CallGet,
    CallHangup,
    CallList,
    CallStart,
    Command,
    CommandBase,
    InboundConfig,
    NumberAdd,
    NumberDelete,
    NumberGet,
    NumberList,
    NumberRouting,
    NumberUpdate,
    OutboundConfig,
    SipConfig,
)
from contracts.errors import (
    CommandDecodeError,
    ContractDecodeError,
    DecodeErrorKind,
    EventDecodeError,
)
from contracts.events import (
    AGENT_STATUS_CODES,
    KNOWN_AGENT_STATUSES,
    AgentStateEvent,
    ErrorInfo,
    Outcome,
    ResultEvent,
    StateSource,
    TruncatedData,
)
from contracts.headers import (
    AGENT_STATE_EVENT_TYPE,
    COMMAND_RESULT_EVENT_TYPE,
    cloudevent_headers,
    dlq_headers,
)
from contracts.properties import AgentProperties, AgentUpdateProperties, CallProperties
from contracts.topics import AGENT_STATE_TOPIC, COMMANDS_TOPIC, DLQ_TOPIC, RESULTS_TOPIC

__version__ = "0.3.0"

__all__ = [
    "AGENT_STATE_EVENT_TYPE",
    "AGENT_STATE_TOPIC",
    "AGENT_STATUS_CODES",
    "COMMANDS_TOPIC",
    "COMMAND_RESULT_EVENT_TYPE",
    "COMMAND_TYPES",
    "DLQ_TOPIC",
    "ENVELOPE_FIELDS",
    "KNOWN_AGENT_STATUSES",
    "RESULTS_TOPIC",
    "AgentCommand",
    "AgentGet",
    "AgentHistory",
    "AgentInterrupt",
    "AgentList",
    "AgentProperties",
    "AgentSpeak",
    "AgentStart",
    "AgentStateEvent",
    "AgentStop",
    "AgentThink",
    "AgentTurns",
    "AgentUpdate",
    "AgentUpdateProperties",
    "CallGet",
    "CallHangup",
    "CallList",
    "CallProperties",
    "CallStart",
    "Command",
    "CommandBase",
    "CommandDecodeError",
    "ContractDecodeError",
    "DecodeErrorKind",
    "DecodedCommand",
    "ErrorInfo",
    "EventDecodeError",
    "InboundConfig",
    "NumberAdd",
    "NumberDelete",
    "NumberGet",
    "NumberList",
    "NumberRouting",
    "NumberUpdate",
    "OutboundConfig",
    "Outcome",
    "ResultEvent",
    "SipConfig",
    "StateSource",
    "TruncatedData",
    "cloudevent_headers",
    "decode_agent_state",
    "decode_command",
    "decode_result",
    "dlq_headers",
    "encode_command",
    "encode_event",
]
