"""Decode + validate cost of one command record, per operation.

Measures `contracts.decode_command` (JSON parse, validation of every documented field, the
`rest` payload) on three record values: a typical `agent.speak`, an `agent.start` that sets
every documented `properties` object, and a speak with a type error (the rejection path). Each
figure is the best of `--repeat` runs of `--number` calls, in microseconds per call; the median
run is shown next to it. Targets: speak <= 5 us, full agent.start <= 30 us.

Usage: uv run python bench/bench_contracts.py [--number 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

import msgspec

from contracts import CommandDecodeError, decode_command

SPEAK = msgspec.json.encode(
    {
        "command": "agent.speak",
        "id": "c-17",
        "agent_id": "1NT29X10YHxxxxxWJOXLYHNYB",
        "text": "Your order 1182 shipped yesterday and arrives on Friday.",
        "priority": "INTERRUPT",
        "interruptable": False,
    }
)

INVALID_SPEAK = msgspec.json.encode(
    {"command": "agent.speak", "id": "c-18", "agent_id": "A42", "text": 42}
)

FULL_START = msgspec.json.encode(
    {
        "command": "agent.start",
        "id": "start-7f3a",
        "app_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "expires_at": "2026-03-01T12:00:30Z",
        "correlation_id": "support-call-4411",
        "name": "support-4411",
        "preset": "deepgram_nova_3",
        "properties": {
            "channel": "support-4411",
            "token": "007eJxTYBBYa" + "x" * 180,
            "agent_rtc_uid": "1001",
            "remote_rtc_uids": ["2002"],
            "enable_string_uid": False,
            "idle_timeout": 120,
            "geofence": {"area": "GLOBAL", "exclude_area": "INDIA"},
            "advanced_features": {"enable_rtm": True, "enable_sal": True, "enable_tools": True},
            "asr": {"vendor": "deepgram", "language": "en-US", "params": {"model": "nova-3"}},
            "llm": {
                "url": "https://api.openai.com/v1/chat/completions",
                "api_key": "sk-" + "k" * 48,
                "vendor": "openai",
                "style": "openai",
                "system_messages": [
                    {"role": "system", "content": "You are a concise, friendly support agent."}
                ],
                "params": {"model": "gpt-4o-mini", "max_tokens": 512, "temperature": 0.3},
                "max_history": 32,
                "input_modalities": ["text"],
                "output_modalities": ["text"],
                "greeting_message": "Hi, how can I help?",
                "failure_message": "Sorry, something went wrong.",
                "greeting_configs": {"mode": "single_every", "delay_ms": 500},
                "template_variables": {"customer": "Ada", "plan": "pro"},
                "mcp_servers": [
                    {
                        "name": "crm",
                        "endpoint": "https://mcp.example.com/crm",
                        "transport": "streamable_http",
                        "headers": {"Authorization": "Bearer t"},
                        "allowed_tools": ["lookup_order"],
                        "timeout_ms": 5000,
                    }
                ],
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "order_status",
                            "description": "Status of an order",
                            "parameters": {
                                "type": "object",
                                "properties": {"order_id": {"type": "string"}},
                                "required": ["order_id"],
                            },
                        },
                        "execution": {"mode": "sync"},
                        "server": {
                            "method": "GET",
                            "url": "https://api.example.com/orders/{{args.order_id}}",
                            "headers": {"X-Key": "k"},
                            "timeout_ms": 10000,
                        },
                    }
                ],
                "headers": {"X-Tenant": "acme"},
            },
            "tts": {
                "vendor": "elevenlabs",
                "params": {"key": "el", "voice_id": "pNInz6obpgDQGcFmaJgB", "sample_rate": 24000},
                "skip_patterns": [3, 4],
            },
            "avatar": {"enable": False, "vendor": "heygen", "params": {"avatar_id": "a"}},
            "turn_detection": {
                "mode": "default",
                "language": "en-US",
                "config": {
                    "speech_threshold": 0.5,
                    "start_of_speech": {
                        "mode": "vad",
                        "vad_config": {
                            "interrupt_duration_ms": 160,
                            "speaking_interrupt_duration_ms": 160,
                            "prefix_padding_ms": 800,
                        },
                    },
                    "end_of_speech": {
                        "mode": "semantic",
                        "semantic_config": {
                            "silence_duration_ms": 320,
                            "max_wait_ms": 3000,
                            "pause_state_enabled": True,
                        },
                    },
                },
            },
            "interruption": {
                "enable": True,
                "mode": "keywords",
                "keywords_config": {"trigger_keywords": ["stop", "wait"]},
            },
            "sal": {"sal_mode": "locking", "sample_urls": {"ada": "https://x/ada.pcm"}},
            "labels": {"team": "support", "ticket": "4411"},
            "rtc": {"encryption_key": "k", "encryption_mode": 6},
            "filler_words": {
                "enable": True,
                "trigger": {"mode": "fixed_time", "fixed_time_config": {"response_wait_ms": 1500}},
                "content": {
                    "mode": "static",
                    "static_config": {
                        "phrases": ["One moment.", "Let me check."],
                        "selection_rule": "shuffle",
                    },
                },
            },
            "parameters": {
                "silence_config": {"timeout_ms": 10000, "action": "speak", "content": "Hello?"},
                "farewell_config": {"graceful_enabled": True, "graceful_timeout_seconds": 30},
                "data_channel": "rtm",
                "enable_metrics": True,
                "enable_error_message": True,
                "audio_scenario": "default",
            },
        },
    }
)


def decode_rejected(data: bytes) -> None:
    try:
        decode_command(data)
    except CommandDecodeError:
        return
    raise AssertionError("the invalid record was accepted")


def measure(call: Callable[[], object], number: int, repeat: int) -> tuple[float, float]:
    """(best, median) microseconds per call."""
    call()  # warm up caches before timing
    runs = [t / number * 1e6 for t in timeit.repeat(call, number=number, repeat=repeat)]
    return min(runs), statistics.median(runs)


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per timed run")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per case")
    args = parser.parse_args()

    python = f"{sys.implementation.name} {platform.python_version()}"
    print(f"{python}, msgspec {msgspec.__version__}")
    print(
        f"machine: {platform.machine()}, {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()}"
    )
    print(f"method: best and median of {args.repeat} runs x {args.number} calls\n")
    cases = [
        ("agent.speak", len(SPEAK), lambda: decode_command(SPEAK), 5.0),
        ("agent.start (full)", len(FULL_START), lambda: decode_command(FULL_START), 30.0),
        ("agent.speak rejected", len(INVALID_SPEAK), lambda: decode_rejected(INVALID_SPEAK), None),
    ]
    print(f"{'case':<22}{'bytes':>7}{'best us/op':>12}{'median':>10}{'target':>9}")
    for name, size, call, target in cases:
        best, median = measure(call, args.number, args.repeat)
        verdict = "" if target is None else f"<= {target:g} {'ok' if best <= target else 'MISSED'}"
        print(f"{name:<22}{size:>7}{best:>12.2f}{median:>10.2f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
