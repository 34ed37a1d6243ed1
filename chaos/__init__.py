"""The chaos suite: the worker's delivery guarantees under the failures production brings.

`make chaos` (`python -m chaos`) runs seven scenarios on a broker of its own with the API emulator
and worker processes, judges the results topic, the DLQ and the emulator's request log, and
writes `chaos/results/latest.json` plus a Markdown table; `make chaos-quick` is its short form.
"""
