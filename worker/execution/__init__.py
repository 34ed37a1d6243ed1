"""Executing one decoded command: deadline, request, outcome policy, retries, reconciliation."""

from worker.execution.executor import Execution, Executor
from worker.execution.names import AgentDirectory, NameDirectory

__all__ = ["AgentDirectory", "Execution", "Executor", "NameDirectory"]
