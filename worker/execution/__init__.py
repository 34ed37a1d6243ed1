"""Executing one decoded command: deadline, request, outcome policy, retries, reconciliation."""

from worker.execution.executor import Execution, Executor
from worker.execution.names import InMemoryNames, NameDirectory

__all__ = ["Execution", "Executor", "InMemoryNames", "NameDirectory"]
