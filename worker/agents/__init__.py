"""Agent state: what the worker knows of each agent, from every source, and what it publishes.

`lifecycle` is the model of one agent's life (phases, which observation wins); `directory` keeps
every agent by (App ID, agent id) and each name's live agent per App ID; `records` feeds it from
the compacted agent-state topic; `webhooks` (with `ncs`, Agora's callbacks, and `signed_body`,
which reads their bodies) and `reconcile` (the API, periodically) are the other sources;
`state_sink` publishes what changed and `housekeeping` tombstones stopped agents, both through
`ports.StatePublisher`, the package's only way to Kafka.
"""
