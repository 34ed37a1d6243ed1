"""What a change of the consumer group costs, by partition assignor and membership
(`make bench-rebalance`): `SEQUENCE` says what it runs, `bench.rebalance_figures` what it
measures. It writes `bench/results/rebalance.{md,json}`.

Usage: uv run python -m bench.bench_rebalance [--restarts N] [--speak-seconds S]
       [--rebalance-timeout S] [--seed N] [--only A,B] [--broker-port P] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from bench.rebalance_figures import (
    STEADY,
    ResultSeen,
    StepFigures,
    Timeline,
    Window,
    as_json,
    read_member_log,
    step_figures,
    table,
)
from bench.rebalance_figures import __doc__ as figures_doc
from chaos import report
from chaos.infra import EmulatorProcess, OwnBroker, polling
from tests.emulator.harness import start_body
from tests.kafka import create_topics
from tests.pipeline.group import Member, ResultsTail, WorkerGroup
from tests.pipeline.harness import APP_ID, make_settings, produce, scrape, total
from tests.pipeline.scenarios import speaks
from worker import deadlines
from worker.settings import Settings

PARTITIONS = 12
POLL_MS = 100
RESULTS = report.ROOT / "bench" / "results"
HEADING = "# What a group change costs (`make bench-rebalance`)"
T = TypeVar("T")
SEQUENCE = """\
On a broker of its own (free loopback ports, temporary data) and the API emulator in its own
process, worker processes serve live traffic of speaks to agents by id over 12 partitions, each
speak answered seconds late so that commands are in flight whenever the group changes. Three
configurations — A: `roundrobin` with dynamic membership (the old default); B: `sticky` with
dynamic membership (the default); C: `sticky` with static membership (a group instance id per
member, as the Helm chart's StatefulSet gives each pod its name, and a session timeout long
enough for a restart) — go through the same seeded sequence: a steady window (the control),
scale 2 → 3 → 2 → 3 (a member joins; the newest leaves by SIGTERM, as a StatefulSet or a
ReplicaSet picks it), then a rolling restart as Kubernetes performs it: a Deployment (A, B; the
chart's `maxSurge: 1, maxUnavailable: 0`) starts a new pod, waits until it is ready, then
SIGTERMs an old one; a StatefulSet (C) SIGTERMs a pod, waits until it is gone and starts it again
under its name. Each step lasts until every partition serves commands produced after the change
again, and a seeded moment more. The rolling restart replaces one pod unless `--restarts`
says more (each further pod costs about as much again)."""
# what the results file says besides the figures: the sequence and the definitions
DEFINITIONS = SEQUENCE + "\n\n" + (figures_doc or "").split("\n\n", 1)[1]


@dataclass(frozen=True)
class Configuration:
    """How the group is assembled."""

    label: str
    title: str
    assignor: str
    static: bool


CONFIGURATIONS = {
    c.label: c
    for c in (
        Configuration("A", "roundrobin, dynamic membership (the old default)", "roundrobin", False),
        Configuration("B", "sticky, dynamic membership (the default)", "sticky", False),
        Configuration("C", "sticky, static membership", "sticky", True),
    )
}


@dataclass(frozen=True)
class Size:
    """How big a run is: small enough for a few minutes on two shared cores."""

    restarts: int  # pods the rolling restart replaces (1 to 3)
    speak_s: float  # how late the API answers a speak
    rebalance_timeout_s: float  # the group's; the revoke grace is what it leaves (docs)
    rate: float = 20  # speaks produced per second
    settle_s: tuple[float, float] = (1, 2)  # a step lasts this much longer than its recovery
    static_session_s: float = 15  # the session timeout of static members (C): a restart fits
    recover_within_s: float = 45  # beyond the session timeout: a step that takes longer fails

    @property
    def agents(self) -> int:
        """Three times the speaks in flight: an agent's next speak comes long after its last
        was answered, so no command waits behind another of its key."""
        return round(3 * self.rate * self.speak_s)


class Bench:
    """One configuration's run: topics, agents, traffic, members, and the changes."""

    def __init__(
        self,
        broker: OwnBroker,
        emulator: EmulatorProcess,
        config: Configuration,
        *,
        size: Size,
        seed: int,
        log_dir: Path,
    ) -> None:
        self.broker = broker
        self.emulator = emulator
        self.config = config
        self.size = size
        self.rng = random.Random(seed)  # noqa: S311 - seeded choices, not secrets
        name = f"rebalance.{config.label}.{uuid.uuid4().hex[:8]}"
        self.topics = {kind: f"{name}.{kind}" for kind in ("commands", "results", "state", "dlq")}
        group: dict[str, Any] = {
            "kafka_partition_assignor": config.assignor,
            "kafka_rebalance_timeout_seconds": size.rebalance_timeout_s,
        }
        if config.static:
            group["kafka_session_timeout_seconds"] = size.static_session_s
        defaults = Settings()
        self.settings = make_settings(
            broker.bootstrap,
            self.topics,
            emulator.api_url,
            log_level="INFO",  # the partitions_assigned / partitions_released lines
            drain_grace_seconds=defaults.drain_grace_seconds,
            api_backoff_base_seconds=defaults.api_backoff_base_seconds,
            api_backoff_max_seconds=defaults.api_backoff_max_seconds,
            **group,
        )
        self.log_dir = log_dir / config.label
        self.log_dir.mkdir(parents=True)
        self.group = WorkerGroup(self.settings, self.log_dir)
        self.slots: dict[int, Member] = {}  # running members by pod ordinal
        self.owners: dict[str, str] = {}  # process name -> group member (instance id or itself)
        self.produced: dict[str, float] = {}  # command id -> when it was produced
        self.latest: dict[int, float] = {}  # partition -> production time of its newest result
        self.seen = 0  # results already folded into `latest`
        self.stop_producing = asyncio.Event()
        self.results: ResultsTail
        self.steps: list[tuple[StepFigures, float]] = []  # with the moment each step began

    # ------------------------------------------------------------------ setting up
    async def prepare(self) -> None:
        """Fresh topics, agents started directly in the emulator, speaks made slow."""
        bootstrap = self.broker.bootstrap
        await create_topics(bootstrap, [self.topics["commands"]], partitions=PARTITIONS)
        await create_topics(
            bootstrap,
            [self.topics["results"]],
            partitions=PARTITIONS,
            configs={"message.timestamp.type": "LogAppendTime"},  # the broker's clock
        )
        await create_topics(
            bootstrap, [self.topics["state"]], configs={"cleanup.policy": "compact"}
        )
        await create_topics(bootstrap, [self.topics["dlq"]])
        await self.emulator.reset()
        self.agents = await self._start_agents()
        delay = {"action": "delay", "operation": "agent.speak", "delay_ms": self.size.speak_s * 1e3}
        await self.emulator.faults({"latency_ms": 20, "latency_jitter_ms": 20, "rules": [delay]})
        self.results = await ResultsTail(bootstrap, self.topics["results"]).__aenter__()

    async def _start_agents(self) -> list[str]:
        ids = []
        url = f"{self.emulator.api_url}/v2/projects/{APP_ID}/join"
        async with aiohttp.ClientSession() as session:
            for n in range(self.size.agents):
                name = f"{self.config.label}-agent-{n}"
                async with session.post(url, json=start_body(name, name)) as response:
                    response.raise_for_status()
                    ids.append((await response.json())["agent_id"])
        self.rng.shuffle(ids)
        return ids

    def traffic(self) -> Iterator[dict[str, Any]]:
        """Speaks to every agent in turn (each agent's next one comes long after its last is
        answered), until told to stop."""
        per_agent = 20_000 // self.size.agents
        for command in speaks(self.config.label, self.agents, per_agent):
            if self.stop_producing.is_set():
                return
            self.produced[command["id"]] = time.time()
            yield command
        raise RuntimeError("the run outlasted its traffic")

    # ------------------------------------------------------------------ members
    async def join(self, slot: int) -> Member:
        """Start the member of pod ordinal `slot`, once it is ready."""
        instance = f"worker-{slot}" if self.config.static else ""
        member = await self.meanwhile(self.group.join(group_instance_id=instance))
        self.slots[slot] = member
        self.owners[member.name] = instance or member.name
        return member

    async def leave(self, slot: int) -> None:
        """SIGTERM the member of `slot` and wait for its exit."""
        member = self.slots.pop(slot)
        await self.meanwhile(self.group.terminate(member))

    async def scale_up(self) -> None:
        await self.join(max(self.slots, default=-1) + 1)

    async def scale_down(self) -> None:
        await self.leave(max(self.slots))

    def restart(self, slot: int) -> Callable[[], Awaitable[None]]:
        """A rollout's step for `slot`: a StatefulSet stops the pod, then starts it again under
        its name; a Deployment starts a new pod, and stops the old one once it is ready."""

        async def replace() -> None:
            if self.config.static:
                await self.leave(slot)
                await self.join(slot)
                return
            old = self.slots[slot]
            await self.join(slot)
            await self.meanwhile(self.group.terminate(old))

        return replace

    # ------------------------------------------------------------------ following
    async def meanwhile(self, work: Awaitable[T]) -> T:
        """Await `work` while following the results (`polling`)."""
        return await polling(work, self.poll)

    async def poll(self) -> None:
        self.group.check()
        await self.results.poll(POLL_MS)
        new = zip(self.results.records[self.seen :], self.results.results[self.seen :], strict=True)
        for record, result in new:
            produced = self.produced.get(result.command_id, 0.0)
            self.latest[record.partition] = max(self.latest.get(record.partition, 0.0), produced)
        self.seen = len(self.results.records)

    async def until(self, condition: Callable[[], bool], within: float, what: str) -> None:
        end = time.monotonic() + within
        while not condition():
            if time.monotonic() > end:
                raise RuntimeError(f"{self.config.label}: not within {within:g} s: {what}")
            await self.poll()

    async def pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await self.poll()

    def serving_since(self, since: float) -> bool:
        """Every partition has a result of a command produced after `since`."""
        return all(self.latest.get(p, 0.0) > since for p in range(PARTITIONS))

    async def in_flight(self) -> int:
        """Commands executing in the group now (the members' /metrics)."""
        counts = []
        for member in self.slots.values():
            samples = await scrape(member.settings.http_port)
            counts.append(total(samples, "convoai_commands_in_flight"))
        return int(sum(counts))

    # ------------------------------------------------------------------ the run
    async def step(self, name: str, change: Callable[[], Awaitable[None]] | None) -> None:
        """Make one change, then follow until every partition serves new commands again and
        a seeded moment more."""
        began = time.time()
        in_flight = await self.in_flight()
        if change is not None:
            await change()
        changed = time.time()
        within = self.size.recover_within_s + self.size.static_session_s
        await self.until(lambda: self.serving_since(changed), within, f"{name}: every partition")
        recovered = time.time()
        await self.pause(self.rng.uniform(*self.size.settle_s))
        figures = StepFigures(
            name,
            seconds=round(time.time() - began, 1),
            change_s=round(changed - began, 1),
            recovered_s=round(recovered - changed, 1),
            members_after=len(self.slots),
            in_flight=in_flight,
        )
        self.steps.append((figures, began))
        print(
            f"  {self.config.label} {name}: the change {figures.change_s:.1f} s, every partition "
            f"served again {figures.recovered_s:.1f} s later",
            flush=True,
        )

    async def run(self) -> list[StepFigures]:
        """The whole sequence; the figures of every step."""
        await self.prepare()
        producing = asyncio.create_task(
            produce(
                self.broker.bootstrap, self.topics["commands"], self.traffic(), rate=self.size.rate
            )
        )
        try:
            for _ in range(2):
                await self.scale_up()
            started = time.time()
            await self.until(lambda: self.serving_since(started), 60, "the first results")
            await self.step(STEADY, self.pause_for_settle)
            await self.step("scale 2 → 3", self.scale_up)
            await self.step("scale 3 → 2 (SIGTERM)", self.scale_down)
            await self.step("scale 2 → 3", self.scale_up)
            for slot in sorted(self.slots, reverse=True)[
                : self.size.restarts
            ]:  # a StatefulSet's order
                await self.step(f"restart worker-{slot}", self.restart(slot))
            finished = time.time()
            self.stop_producing.set()
            await self.meanwhile(producing)
            await self.until(
                lambda: len(self.results.per_command) >= len(self.produced), 60, "every result"
            )
            await self.group.stop_all()
            await self.results.catch_up()
            return await self.figures(finished)
        finally:
            producing.cancel()
            await self.group.stop_all()
            await self.results.__aexit__()

    async def pause_for_settle(self) -> None:
        await self.pause(self.rng.uniform(*self.size.settle_s))

    async def figures(self, finished: float) -> list[StepFigures]:
        begins = [began for _, began in self.steps]
        windows = [
            Window(f.step, began, end)
            for (f, began), end in zip(self.steps, [*begins[1:], finished], strict=True)
        ]
        logs = [read_member_log(m.log, m.name, self.owners[m.name]) for m in self.group.members]
        results = [
            ResultSeen(result.command_id, result.outcome, record.partition, record.timestamp / 1000)
            for record, result in zip(self.results.records, self.results.results, strict=True)
        ]
        speaks_seen = [
            (r["body"]["text"], r["timestamp"])
            for r in await self.emulator.request_log()
            if r["operation"] == "agent.speak" and isinstance(r["body"], dict)
        ]
        missing = len(set(self.produced) - set(self.results.per_command))
        if missing:
            raise RuntimeError(f"{self.config.label}: {missing} commands without a result")
        base = [f for f, _ in self.steps]
        return step_figures(base, Timeline(windows), logs, results, speaks_seen)


async def bench(args: argparse.Namespace) -> int:
    size = Size(args.restarts, args.speak_seconds, args.rebalance_timeout)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-rebalance-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOAI_")}
    started, machine = time.monotonic(), report.machine()
    outcome: list[tuple[Configuration, list[StepFigures]]] = []
    try:
        async with (
            OwnBroker(args.broker_port) as broker,
            EmulatorProcess(env, log_dir / "emulator.log", request_log_size=100_000) as emulator,
        ):
            for label in args.only:
                config = CONFIGURATIONS[label]
                print(f"bench-rebalance: {label}: {config.title} ...", flush=True)
                run = Bench(broker, emulator, config, size=size, seed=args.seed, log_dir=log_dir)
                outcome.append((config, await run.run()))
    except BaseException:
        print(f"bench-rebalance: failed; the worker and emulator logs: {log_dir}", flush=True)
        raise
    shutil.rmtree(log_dir)
    setup = describe(size, args, machine, round(time.monotonic() - started))
    rows = [(f"{c.label}: {c.title}", steps) for c, steps in outcome]
    text = f"{setup_line(setup)}\n\n{table(rows)}\n"
    out = args.out or RESULTS / "rebalance.md"
    out.write_text(f"{HEADING}\n\n{text}\n{DEFINITIONS}")
    report.write_json(
        out.with_suffix(".json"),
        setup | {"configurations": {c.label: as_json(steps) for c, steps in outcome}},
    )
    print(f"\n{text}\nWritten: {out} and {out.with_suffix('.json').name}")
    return 0


def describe(
    size: Size, args: argparse.Namespace, machine: dict[str, Any], seconds: int
) -> dict[str, Any]:
    """What the figures depend on."""
    defaults = Settings()
    return {
        "restarts": size.restarts,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": seconds,
        "seed": args.seed,
        "machine": machine | {"load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "packages": {p: version(p) for p in ("aiokafka", "aiohttp")},
        "partitions": PARTITIONS,
        "agents": size.agents,
        "speaks_per_s": size.rate,
        "speak_answered_after_s": size.speak_s,
        "expected_in_flight": round(size.rate * size.speak_s),
        "max_in_flight_per_member": defaults.max_in_flight,
        "session_timeout_s": {
            "dynamic": defaults.kafka_session_timeout_seconds,
            "static": size.static_session_s,
        },
        "heartbeat_s": defaults.kafka_heartbeat_interval_seconds,
        "rebalance_timeout_s": size.rebalance_timeout_s,
        "revoke_grace_s": round(
            deadlines.derive(
                size.rebalance_timeout_s, defaults.kafka_heartbeat_interval_seconds, 0.0
            ).revoke_grace,
            1,
        ),
        "drain_grace_s": defaults.drain_grace_seconds,
    }


def setup_line(setup: dict[str, Any]) -> str:
    m = setup["machine"]
    return (
        f"Setup: {setup['partitions']} partitions, {setup['agents']} agents, "
        f"{setup['speaks_per_s']:g} speaks/s each answered {setup['speak_answered_after_s']:g} s "
        f"late (about {setup['expected_in_flight']} in flight), 2-3 worker processes (session "
        f"timeout {setup['session_timeout_s']['dynamic']:g} s, static members "
        f"{setup['session_timeout_s']['static']:g} s; heartbeat {setup['heartbeat_s']:g} s; "
        f"rebalance timeout {setup['rebalance_timeout_s']:g} s, leaving a revoke grace of "
        f"{setup['revoke_grace_s']:g} s; SIGTERM drain grace {setup['drain_grace_s']:g} s), "
        f"{setup['restarts']} pod(s) restarted; seed {setup['seed']}; Kafka {m['kafka']} "
        f"(one local broker), Python {m['python']}, aiokafka {setup['packages']['aiokafka']}; "
        f"{m['cpu']}, "
        f"{m['cores']} cores, load average {m['load_average_1m_at_start']} at the start and "
        f"{m['load_average_1m_at_end']} at the end; {setup['seconds']} s in all."
    )


def main() -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_rebalance", description=(__doc__ or "").split(":", 1)[0]
    )
    parser.add_argument(
        "--restarts", type=int, choices=(1, 2, 3), default=1, help="pods the rollout replaces"
    )
    parser.add_argument(
        "--speak-seconds", type=float, default=2.0, help="how late the API answers a speak"
    )
    parser.add_argument(
        "--rebalance-timeout", type=float, default=Settings().kafka_rebalance_timeout_seconds,
        help="the group's rebalance timeout (a speak longer than its revoke grace ends unknown)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=23, help="seeds the traffic and the moments")
    parser.add_argument(
        "--only", type=lambda text: text.upper().split(","), default=list(CONFIGURATIONS),
        help="configurations, e.g. B,C",
    )  # fmt: skip
    parser.add_argument(
        "--broker-port", type=int, help="the broker's port (the controller's is the next)"
    )
    parser.add_argument("--out", type=Path, help="the Markdown file (the JSON goes beside it)")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(bench(parser.parse_args()))
    return 130


if __name__ == "__main__":
    sys.exit(main())
