"""Default Kafka topic names; deployments may override each one (`CONVOAI_TOPIC_*`)."""

from __future__ import annotations

COMMANDS_TOPIC = "convoai.commands"
"""Commands from producers, keyed by agent name or id, or by phone number."""

RESULTS_TOPIC = "convoai.results"
"""One final `ResultEvent` per command, keyed like the command."""

AGENT_STATE_TOPIC = "convoai.agent-state"
"""`AgentStateEvent`s keyed by agent id; log-compacted, so it holds every agent's last state."""

DLQ_TOPIC = "convoai.commands.dlq"
"""Command records that could not be decoded or ran out of retries, unchanged, with
`__connect.errors.*` context headers."""
