"""Several worker processes in one pod (`convoai-worker run --processes N`), one per core.

A worker is one asyncio loop, so it uses one core. With `--processes N` (`CONVOAI_PROCESSES`)
the command starts a small parent instead (`parent`) that runs N full workers as child
processes, each with its own consumer, producer and event loop, all members of the same
consumer group (`children`). The parent restarts a process that dies, and gives up on one that
keeps dying (`supervisor`), passes SIGTERM/SIGINT on, and alone serves the pod's ops port:
/metrics merged from every process, /livez and /readyz from theirs, the NCS webhooks handed to
one of them (`ops`, `metrics`). With N = 1 (the default) none of this runs: the command is the
worker itself.
"""
