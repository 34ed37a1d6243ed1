"""The AsyncAPI 3.0 document of the worker's topics, built from the same constants the code uses.

Payloads reference the generated JSON Schema files next to it (`commands.schema.json`,
`events.schema.json`), so the document and the schemas cannot disagree.
"""

from __future__ import annotations

from typing import Any

from contracts import headers, topics

COMMANDS_SCHEMA_FILE = "commands.schema.json"
EVENTS_SCHEMA_FILE = "events.schema.json"
_SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
_KAFKA_BINDING_VERSION = "0.5.0"

Document = dict[str, Any]


def asyncapi_document(version: str) -> Document:
    """The AsyncAPI document; `version` is the contracts version."""
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "convoai-worker",
            "version": version,
            "description": (
                "Services put commands on the commands topic; the worker executes each one "
                "against the Agora Conversational AI REST API and publishes exactly one final "
                "result per command, agent state changes, and undecodable or exhausted "
                "commands to the dead-letter topic."
            ),
        },
        "defaultContentType": headers.JSON_CONTENT_TYPE,
        "channels": _channels(),
        "operations": _operations(),
        "components": {"messages": _messages(), "schemas": _header_schemas()},
    }


def _channels() -> Document:
    return {
        "commands": _channel(topics.COMMANDS_TOPIC, "Command", "Commands from producers."),
        "results": _channel(topics.RESULTS_TOPIC, "CommandResult", "One result per command."),
        "agentState": _channel(
            topics.AGENT_STATE_TOPIC,
            "AgentState",
            "Last known state of every agent (log-compacted).",
            {"topicConfiguration": {"cleanup.policy": ["compact"]}},
        ),
        "deadLetters": _channel(
            topics.DLQ_TOPIC, "DeadLetter", "Commands that were rejected or ran out of retries."
        ),
    }


def _channel(
    address: str, message: str, description: str, binding: Document | None = None
) -> Document:
    return {
        "address": address,
        "description": description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {
            "kafka": {"topic": address, **(binding or {}), "bindingVersion": _KAFKA_BINDING_VERSION}
        },
    }


def _operations() -> Document:
    return {
        "executeCommands": _operation(
            "receive",
            "commands",
            "Command",
            "The worker consumes commands; same key in order, different keys concurrently.",
            {"groupId": {"type": "string", "default": "convoai-worker"}},
        ),
        "publishResults": _operation(
            "send", "results", "CommandResult", "Published before the command's offset commits."
        ),
        "publishAgentState": _operation(
            "send", "agentState", "AgentState", "Published on every observed state change."
        ),
        "publishDeadLetters": _operation(
            "send", "deadLetters", "DeadLetter", "The original record plus context headers."
        ),
    }


def _operation(
    action: str, channel: str, message: str, summary: str, binding: Document | None = None
) -> Document:
    operation: Document = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
    }
    if binding is not None:
        operation["bindings"] = {"kafka": {**binding, "bindingVersion": _KAFKA_BINDING_VERSION}}
    return operation


def _messages() -> Document:
    return {
        "Command": {
            "name": "Command",
            "title": "Command",
            "summary": "One ConvoAI operation, tagged by `command`.",
            "contentType": headers.JSON_CONTENT_TYPE,
            "payload": _payload(COMMANDS_SCHEMA_FILE),
            "bindings": _key_binding(
                "Ordering key chosen by the producer: the agent name or id for agent commands, "
                "the phone number for number commands."
            ),
        },
        "CommandResult": {
            "name": "CommandResult",
            "title": "Command result",
            "summary": "The final outcome of one command.",
            "contentType": headers.JSON_CONTENT_TYPE,
            "headers": {"$ref": "#/components/schemas/CommandResultHeaders"},
            "payload": _payload(f"{EVENTS_SCHEMA_FILE}#/$defs/ResultEvent"),
            "bindings": _key_binding("The key of the command record."),
        },
        "AgentState": {
            "name": "AgentState",
            "title": "Agent state",
            "summary": "An agent's status as last observed.",
            "contentType": headers.JSON_CONTENT_TYPE,
            "headers": {"$ref": "#/components/schemas/AgentStateHeaders"},
            "payload": _payload(f"{EVENTS_SCHEMA_FILE}#/$defs/AgentStateEvent"),
            "bindings": _key_binding("The agent id."),
        },
        "DeadLetter": {
            "name": "DeadLetter",
            "title": "Dead-lettered command",
            "summary": "The original record: key, value and headers unchanged.",
            "description": (
                "The value is whatever the producer wrote (it may not even be JSON); the "
                "original headers are kept and the Kafka Connect error context is appended."
            ),
            "contentType": "application/octet-stream",
            "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
            "payload": {},
            "bindings": _key_binding("The key of the original record."),
        },
    }


def _payload(ref: str) -> Document:
    return {"schemaFormat": _SCHEMA_FORMAT, "schema": {"$ref": ref}}


def _key_binding(description: str) -> Document:
    return {
        "kafka": {
            "key": {"type": "string", "description": description},
            "bindingVersion": _KAFKA_BINDING_VERSION,
        }
    }


def _header_schemas() -> Document:
    return {
        "CommandResultHeaders": _cloudevent_headers(headers.COMMAND_RESULT_EVENT_TYPE),
        "AgentStateHeaders": _cloudevent_headers(headers.AGENT_STATE_EVENT_TYPE),
        "DeadLetterHeaders": _dead_letter_headers(),
    }


def _cloudevent_headers(event_type: str) -> Document:
    text = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "description": "CloudEvents Kafka binding, binary mode.",
        "properties": {
            headers.CE_SPECVERSION: {"const": headers.CLOUDEVENTS_SPECVERSION},
            headers.CE_ID: {**text, "description": "Unique per source."},
            headers.CE_SOURCE: {**text, "description": "The publishing worker."},
            headers.CE_TYPE: {"const": event_type},
            headers.CE_TIME: {"type": "string", "format": "date-time"},
            headers.CE_SUBJECT: {**text, "description": "The agent id, when there is one."},
            headers.CONTENT_TYPE: {"const": headers.JSON_CONTENT_TYPE},
        },
        "required": [
            headers.CE_SPECVERSION,
            headers.CE_ID,
            headers.CE_SOURCE,
            headers.CE_TYPE,
            headers.CE_TIME,
            headers.CONTENT_TYPE,
        ],
    }


def _dead_letter_headers() -> Document:
    text = {"type": "string"}
    integer_text = {"type": "string", "pattern": "^-?[0-9]+$"}
    return {
        "type": "object",
        "description": "Kafka Connect dead-letter context headers, after the original headers.",
        "properties": {
            headers.DLQ_ORIGINAL_TOPIC: text,
            headers.DLQ_ORIGINAL_PARTITION: integer_text,
            headers.DLQ_ORIGINAL_OFFSET: integer_text,
            headers.DLQ_CONNECTOR_NAME: text,
            headers.DLQ_TASK_ID: integer_text,
            headers.DLQ_STAGE: {"enum": [headers.STAGE_DECODE, headers.STAGE_EXECUTE]},
            headers.DLQ_CLASS_NAME: text,
            headers.DLQ_EXCEPTION_CLASS_NAME: text,
            headers.DLQ_EXCEPTION_MESSAGE: text,
            headers.DLQ_EXCEPTION_STACKTRACE: text,
        },
        "required": [
            headers.DLQ_ORIGINAL_TOPIC,
            headers.DLQ_ORIGINAL_PARTITION,
            headers.DLQ_ORIGINAL_OFFSET,
            headers.DLQ_STAGE,
            headers.DLQ_EXCEPTION_CLASS_NAME,
            headers.DLQ_EXCEPTION_MESSAGE,
        ],
    }
