"""A local, stateful emulator of the Agora ConvoAI REST API (`convoai-worker emulator`).

Tests, the demo and benchmarks run against it; the official SDK cannot tell it from the real
service for the 19 operations the worker uses. `worker.emulator.app.build_app` builds the
aiohttp application.
"""
