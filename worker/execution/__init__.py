"""Executing one decoded command: deadline, request, outcome policy, retries, reconciliation."""

from worker.execution.executor import Execution, Executor

__all__ = ["Execution", "Executor"]
