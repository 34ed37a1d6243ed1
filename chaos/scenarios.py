"""The seven failure scenarios. Each produces its backlog, runs workers, injects its faults at
seeded moments, and returns its judged figures (see `chaos.judge` for the definitions)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.judge import EXHAUSTED, Figures
from chaos.stage import Run, Stage, setup_of, slug
from devtools.measure import cpu_seconds
from devtools.workload import lifecycles, with_poison
from worker.settings import Settings

RSS_BOUND_MIB = 512  # the Helm chart's memory limit (helm/convoai-worker/values.yaml)
KILLS = 3  # scenario 1
# scenario 7: a new member starts SURGE_AFTER_S after the old one's SIGTERM; speaks take the
# API SPEAK_S to answer (about 50 in flight); short lifecycles (start, speak, call, speak, stop)
SURGE_AFTER_S = 0.3
SPEAK_S = 6.0
DEPLOY_PER_KEY = 5
DEPLOY_RATE = 20.0
# the outcomes a scenario allows (`chaos.judge`); a poison record's is always `rejected`
SUCCEEDED = frozenset({"succeeded"})
OR_UNKNOWN = SUCCEEDED | {"unknown"}  # speaks and calls whose fate the worker cannot know


@dataclass(frozen=True)
class Size:
    """How big a run is: `make chaos` or its short form."""

    keys: int  # agents per scenario (scenarios 1-5)
    per_key: int  # commands per agent
    rate: float  # records produced per second in scenarios 1, 2 and 4 (live traffic)
    churn_rate: float  # the same in scenario 3, whose changes take longer
    backlog_keys: int  # scenario 6
    backlog_per_key: int
    outage_s: float  # scenario 2
    storm_s: float  # scenario 4
    changes: int  # scenario 3: joins and leaves
    deploys: int  # scenario 7: rolling deploys
    deploy_keys: int  # its agents


FULL = Size(
    keys=1000,
    per_key=10,
    rate=150,
    churn_rate=90,
    backlog_keys=1000,
    backlog_per_key=100,
    outage_s=20,
    storm_s=30,
    changes=10,
    deploys=10,
    deploy_keys=400,
)
QUICK = Size(
    keys=200,
    per_key=10,
    rate=50,
    churn_rate=40,
    backlog_keys=1000,
    backlog_per_key=10,
    outage_s=10,
    storm_s=10,
    changes=10,
    deploys=4,
    deploy_keys=120,
)


def moments(rng: random.Random, count: int) -> list[float]:
    """`count` seeded fractions of the production time, one in each of `count` equal windows
    of 10-85 %."""
    width = 0.75 / count
    return [round(0.1 + width * (n + rng.uniform(0.1, 0.9)), 3) for n in range(count)]


def live(
    run: Run,
    size: Size,
    name: str,
    *,
    keys: int | None = None,
    per_key: int | None = None,
    rate: float | None = None,
    latency_ms: float = 40,
    allowed: frozenset[str],
    **settings: Any,
) -> Stage:
    """A stage whose `size.keys` agent lifecycles of `size.per_key` commands (or `keys`,
    `per_key`) come as live traffic (`size.rate` a second unless `rate`), run by workers with an
    in-flight limit of 20 unless `settings` say else; `allowed`: the outcomes it allows."""
    sent = lifecycles(f"s{slug(name)}", keys or size.keys, per_key or size.per_key)
    settings = {"max_in_flight": 20, **settings}
    return Stage(
        run,
        name,
        sent,
        rate=rate or size.rate,
        latency_ms=latency_ms,
        settings=settings,
        within=180,
        allowed=allowed,
    )


async def sigkill(run: Run, size: Size) -> Figures:
    """One worker SIGKILLed three times at seeded moments (at the earliest once the group has
    recovered from the previous one), restarted at once each time."""
    fractions = moments(random.Random(run.seed + 1), KILLS)
    stage = live(run, size, f"1: worker SIGKILLed {KILLS} times", allowed=SUCCEEDED)
    async with stage:
        await stage.join()
        for fraction in fractions:
            await stage.at(fraction)
            await stage.recovered()
            await stage.mid_stream("a SIGKILL")
            await stage.stop(stage.group.members[-1], "SIGKILL")
            stage.fault_ended("SIGKILL", killed=True)  # restarted at once
            await stage.join()
        stage.figures.setup = setup_of(stage, kills_at_fractions_of_production=fractions)
        return await stage.finish()


async def broker_outage(run: Run, size: Size) -> Figures:
    """The broker stopped for `outage_s` mid-run and started again on the same data; the worker
    keeps running (same pid) and recovers on its own. The producer buffers meanwhile."""
    stage = live(run, size, f"2: broker down {size.outage_s:g} s", allowed=SUCCEEDED)
    async with stage:
        worker = await stage.join()
        pid = worker.process.pid
        await stage.at(0.25)
        await stage.mid_stream("the broker stop")
        await stage.close_tails()  # aiokafka consumers spin while the broker is away
        asked, cpu, logged = time.monotonic(), cpu_seconds(pid), worker.log.stat().st_size
        await run.broker.stop()
        try:
            await asyncio.sleep(size.outage_s)
        finally:
            await run.broker.start()
        stage.fault_ended("broker serving again")
        unavailable = time.monotonic() - asked
        cpu, logged = cpu_seconds(pid) - cpu, worker.log.stat().st_size - logged
        await stage.open_tails()
        figures = await stage.finish()
    same = worker.exit_code == 0 and len(stage.group.members) == 1
    figures.require(same, f"the worker (pid {pid}) did not survive the outage")
    figures.setup = setup_of(
        stage, broker_stopped_s=size.outage_s, unavailable_s=round(unavailable, 1), worker_pid=pid
    )
    figures.notes |= {
        "same worker pid": same,
        "worker CPU s while the broker was unavailable": round(cpu, 1),
        "worker log MiB while the broker was unavailable": round(logged / 2**20, 1),
    }
    return figures


async def membership(run: Run, size: Size) -> Figures:
    """Three workers in one group; at seeded moments (at the earliest once the group has
    recovered from the previous change) a member leaves and another joins, `changes` times in
    all. Every third leave (the 2nd, the 5th) is a SIGKILL, the others are SIGTERMs."""
    rng = random.Random(run.seed + 3)
    fractions = moments(rng, size.changes)
    name = f"3: group of 3, {size.changes} joins and leaves"
    stage = live(
        run,
        size,
        name,
        rate=size.churn_rate,
        latency_ms=60,
        allowed=OR_UNKNOWN,  # a speak or call still running when a leave's grace runs out
        max_in_flight=10,
    )
    plan: list[str] = []
    async with stage:
        group = stage.group
        for _ in range(3):
            await stage.join()
        for n, fraction in enumerate(fractions):
            await stage.at(fraction)
            await stage.recovered()
            if n % 2:
                await stage.mid_stream("a join")
                joined = await stage.join()
                stage.fault_ended(f"{joined.name} joined (ready)")
                plan.append(f"join {joined.name}")
                continue
            victim = rng.choice([m for m in group.members if m.running])
            how = "SIGKILL" if (n // 2) % 3 == 1 else "SIGTERM"
            await stage.mid_stream(f"{how} to {victim.name}")
            plan.append(f"{how} {victim.name}")
            await stage.stop(victim, how)
            killed = how == "SIGKILL"
            stage.fault_ended(f"{how} {victim.name}" + ("" if killed else " exited"), killed=killed)
        stage.figures.setup = setup_of(stage, members_at_start=3, changes=plan, at=fractions)
        return await stage.finish()


async def api_storm(run: Run, size: Size) -> Figures:
    """For `storm_s`: every 5 s a burst of 429s with Retry-After (three for each command in
    flight), and meanwhile 10 % 5xx, connections dropped after the operation ran, and responses
    delayed past the client timeout."""
    api_timeout, in_flight = 2.0, 20
    name = f"4: API storm for {size.storm_s:g} s"
    # a speak or call met by a 5xx, a dropped connection or a timeout ends `unknown`; an unlucky
    # idempotent command can meet refusals until it runs out of attempts
    allowed = OR_UNKNOWN | {f"failed ({EXHAUSTED})"}
    stage = live(
        run,
        size,
        name,
        allowed=allowed,
        max_in_flight=in_flight,
        api_timeout_seconds=api_timeout,
    )
    rules: list[dict[str, Any]] = [
        {"status": 429, "count": 3 * in_flight, "retry_after": 1},  # renewed every 5 s
        {"status": 503, "rate": 0.10},
        {"action": "drop", "execute": True, "rate": 0.02},
        {"action": "delay", "delay_ms": (api_timeout + 1) * 1000, "rate": 0.02},
    ]
    async with stage:
        await stage.join()
        await stage.at(0.2)
        await stage.mid_stream("the storm")
        end = time.monotonic() + size.storm_s
        while time.monotonic() < end:
            await stage.api_faults(rules)
            await stage.pause(min(5.0, end - time.monotonic()))
        await stage.api_faults()
        stage.fault_ended("storm over")
        stage.figures.setup = setup_of(stage, storm_s=size.storm_s, rules=rules)
        return await stage.finish()


async def poison(run: Run, size: Size) -> Figures:
    """1 % poison records of every kind among the lifecycles."""
    sent = with_poison(lifecycles("poison", size.keys, size.per_key), 0.01, run.seed + 5)
    stage = Stage(
        run,
        "5: 1 % poison records",
        sent,
        latency_ms=20,
        settings={"max_in_flight": 50},
        within=120,
        allowed=SUCCEEDED,
    )
    async with stage:
        await stage.join()
        stage.figures.setup = setup_of(stage, seed=run.seed + 5)
        return await stage.finish()


async def backlog(run: Run, size: Size) -> Figures:
    """A backlog of `backlog_keys * backlog_per_key` commands with the API slowed to 1 s: peak
    RSS of the worker (the kernel's VmHWM) stays under the Helm chart's memory limit."""
    sent = lifecycles("backlog", size.backlog_keys, size.backlog_per_key)
    # one connection per command in flight (the default pool, 256, would set the pace)
    settings = {"api_max_connections": Settings().max_in_flight}
    stage = Stage(
        run,
        f"6: backlog of {len(sent):,}, API at 1 s",
        sent,
        latency_ms=1000,
        jitter_ms=0,
        settings=settings,
        within=600,
        allowed=SUCCEEDED,
    )
    async with stage:
        worker = await stage.join()
        await stage.reach(1.0, within=stage.within)
        peak = vm_hwm_mib(worker.process.pid)
        figures = await stage.finish()
    figures.require(peak < RSS_BOUND_MIB, f"peak RSS {peak:.0f} MiB (bound {RSS_BOUND_MIB})")
    figures.notes["peak RSS MiB"] = round(peak, 1)
    figures.setup = setup_of(
        stage,
        api_max_connections=stage.settings.api_max_connections,
        partition_buffer=stage.settings.partition_buffer,
        rss_bound_mib=RSS_BOUND_MIB,
    )
    return figures


async def rolling_deploys(run: Run, size: Size) -> Figures:
    """One worker, replaced `deploys` times over live traffic as a rolling deploy replaces a
    pod: SIGTERM, and a new member starts `SURGE_AFTER_S` later, so the rebalance of its join
    meets the leaver's drain. A new worker starts and joins in 1.5-2.5 s, and the leaver hears
    of the rebalance at its next heartbeat (2-3 s), hence speaks that take the API `SPEAK_S`:
    at 2 s every drain was over before the join, at 4 s one deploy in four overlapped. Each
    deploy comes at a seeded moment, at the earliest once the previous one's member is ready:
    a rollout does not wait for the traffic to recover."""
    fractions = moments(random.Random(run.seed + 7), size.deploys)
    name = f"7: {size.deploys} rolling deploys, speaks at {SPEAK_S:g} s"
    stage = live(
        run,
        size,
        name,
        keys=size.deploy_keys,
        per_key=DEPLOY_PER_KEY,
        rate=DEPLOY_RATE,
        allowed=OR_UNKNOWN,  # a speak still running when a drain's or a revocation's grace ends
        max_in_flight=100,
    )
    slow_speaks = [{"action": "delay", "operation": "agent.speak", "delay_ms": SPEAK_S * 1000}]
    plan: list[str] = []
    async with stage:
        await stage.api_faults(slow_speaks)
        member = await stage.join()
        for fraction in fractions:
            await stage.at(fraction)
            await stage.mid_stream(f"the deploy replacing {member.name}")
            began = time.time()
            new = await stage.replace(member, after=SURGE_AFTER_S)
            stage.fault_ended(f"{member.name} replaced by {new.name}", began=began)
            plan.append(f"{member.name} → {new.name}")
            member = new
        stage.figures.setup = setup_of(
            stage, speak_s=SPEAK_S, surge_after_s=SURGE_AFTER_S, deploys=plan, at=fractions
        )
        return await stage.finish()


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


Scenario = Callable[[Run, Size], Awaitable[Figures]]
SCENARIOS: list[Scenario] = [
    sigkill,
    broker_outage,
    membership,
    api_storm,
    poison,
    backlog,
    rolling_deploys,
]
