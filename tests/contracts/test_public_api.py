"""The package surface producers depend on: its exported names and its dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import contracts

EXPORTED = [
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

# Imports every module of the package while a meta path hook refuses any top-level module that
# is neither in the standard library nor msgspec.
ISOLATED_IMPORT = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    allowed = set(sys.stdlib_module_names) | {"__main__", "msgspec", "contracts"}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] not in allowed:
                raise ImportError(f"contracts must not import {name}")
            return None

    sys.meta_path.insert(0, Refuse())
    import contracts
    for module in pkgutil.walk_packages(contracts.__path__, "contracts."):
        importlib.import_module(module.name)
    print(sorted(name for name in sys.modules if name.partition(".")[0] not in allowed))
    """
)


def test_all_is_pinned() -> None:
    """Adding or removing a public name is a deliberate change of this list."""
    assert contracts.__all__ == EXPORTED


def test_every_exported_name_exists() -> None:
    """`from contracts import *` cannot fail."""
    assert [name for name in EXPORTED if not hasattr(contracts, name)] == []


def test_the_package_imports_only_the_standard_library_and_msgspec() -> None:
    """Producers can use the contracts without installing the worker's dependencies."""
    completed = subprocess.run(
        [sys.executable, "-c", ISOLATED_IMPORT],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=Path(contracts.__file__).parent.parent,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_the_package_is_typed() -> None:
    """mypy and pyright use the package's annotations (PEP 561)."""
    assert (Path(contracts.__file__).parent / "py.typed").is_file()
