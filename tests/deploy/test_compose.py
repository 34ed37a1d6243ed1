"""compose.yaml wires Kafka, the emulator, the worker, Prometheus and Grafana together.

No Docker engine runs here, so this checks structure: the services exist, their addresses and
ports agree with each other, every mounted file exists, and the worker gets only settings it
knows. scripts/check-deploy also validates the file against the Compose specification schema.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest

from worker.settings import PREFIX, Settings

from .artifacts import (
    COMPOSE,
    DASHBOARD,
    GRAFANA_PROVISIONING,
    PROMETHEUS_CONFIG,
    REPO,
    RULES,
    load,
)


@pytest.fixture
def services() -> dict[str, Any]:
    services: dict[str, Any] = load(COMPOSE)["services"]
    return services


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository-relative host path of the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        mounts[container] = host
    return mounts


def seconds(duration: str) -> int:
    """A compose duration such as `40s` or `1m30s` in seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts, duration
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


def test_the_stack_has_the_five_services(services):
    """Kafka, the emulator, the worker, Prometheus and Grafana, nothing else."""
    assert set(services) == {"kafka", "emulator", "worker", "prometheus", "grafana"}


def test_images_are_pinned(services):
    """Pulled images name a version, never `latest`; the project image is built locally."""
    for name, service in services.items():
        if "build" in service:
            continue
        _, _, tag = service["image"].rpartition(":")
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), name


def test_kafka_is_a_single_kraft_node_of_the_official_image(services):
    """apache/kafka as broker and controller in one process, internal topics with one replica."""
    kafka = services["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


def test_worker_reaches_kafka_on_an_advertised_listener(services):
    """The bootstrap address is what the broker advertises, so metadata answers stay reachable."""
    env = services["kafka"]["environment"]
    advertised = {
        urlsplit(listener).netloc for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    assert services["worker"]["environment"]["CONVOAI_KAFKA_BOOTSTRAP"] in advertised


def flag(command: list[str], name: str) -> str:
    """The value following `name` in an exec-form command."""
    return command[command.index(name) + 1]


def test_worker_calls_the_emulator_on_the_port_it_listens_on(services):
    """CONVOAI_API_BASE_URL points at the emulator service and the API's real path prefix."""
    emulator = services["emulator"]
    command = emulator["command"]
    assert command[0] == "emulator"
    assert flag(command, "--host") == "0.0.0.0"  # noqa: S104 - reached by the worker
    port = flag(command, "--port")
    base_url = services["worker"]["environment"]["CONVOAI_API_BASE_URL"]
    assert base_url == f"http://emulator:{port}/api/conversational-ai-agent"
    assert f"http://127.0.0.1:{port}/" in " ".join(emulator["healthcheck"]["test"])


def test_emulator_sends_webhooks_the_worker_accepts(services):
    """Emulated NCS events go to the worker's webhook path, signed with the worker's secret."""
    command = services["emulator"]["command"]
    env = services["worker"]["environment"]
    webhook_url = f"http://worker:{env['CONVOAI_HTTP_PORT']}/webhooks/agora"
    assert flag(command, "--webhook-url") == webhook_url
    assert flag(command, "--webhook-secret") == env["CONVOAI_WEBHOOK_SECRET"]


def test_worker_environment_holds_only_known_settings(services):
    """Every CONVOAI_* variable names a Settings field (a typo would be silently ignored)."""
    fields = {PREFIX + field.name.upper() for field in msgspec.structs.fields(Settings)}
    assert set(services["worker"]["environment"]) <= fields


def test_worker_is_hardened_like_the_chart(services):
    """Read-only root with a /tmp tmpfs, no capabilities, drain grace below the stop grace."""
    worker = services["worker"]
    assert worker["read_only"] is True
    assert "/tmp" in worker["tmpfs"]  # noqa: S108 - the tmpfs mount point, not a temp file
    assert worker["cap_drop"] == ["ALL"]
    drain = worker["environment"]["CONVOAI_DRAIN_GRACE_SECONDS"]
    assert seconds(worker["stop_grace_period"]) > drain


def test_worker_health_check_asks_readyz_on_its_port(services):
    """The compose health check uses the worker's own readiness endpoint and port."""
    worker = services["worker"]
    port = worker["environment"]["CONVOAI_HTTP_PORT"]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(worker["healthcheck"]["test"])
    assert f"127.0.0.1:{port}:{port}" in worker["ports"]


def test_mounted_files_exist(services):
    """Every bind mount refers to a file or directory of the repository."""
    for name, service in services.items():
        for host in bind_mounts(service).values():
            assert (REPO / host).exists(), f"{name}: {host}"


def test_prometheus_scrapes_the_worker_and_loads_the_chart_rules(services):
    """Job `convoai-worker` scrapes worker:<port> as pod `worker` (the dashboard's per-pod
    panels); rule_files matches the mounted chart rules."""
    config = load(PROMETHEUS_CONFIG)
    mounts = bind_mounts(services["prometheus"])
    [job] = config["scrape_configs"]
    assert job["job_name"] == "convoai-worker"  # what the dashboard and the rules select
    port = services["worker"]["environment"]["CONVOAI_HTTP_PORT"]
    assert job["static_configs"] == [{"targets": [f"worker:{port}"], "labels": {"pod": "worker"}}]
    rules_in_container = [path for path, host in mounts.items() if REPO / host == RULES]
    assert len(rules_in_container) == 1
    assert any(fnmatch.fnmatch(rules_in_container[0], glob) for glob in config["rule_files"])
    assert REPO / mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG


def test_grafana_provisions_the_chart_dashboard_and_prometheus(services):
    """The dashboard file is in the provider's folder; the datasource is the compose Prometheus."""
    mounts = bind_mounts(services["grafana"])
    assert REPO / mounts["/etc/grafana/provisioning"] == GRAFANA_PROVISIONING
    [provider] = load(GRAFANA_PROVISIONING / "dashboards" / "convoai-worker.yaml")["providers"]
    [dashboard_path] = [path for path, host in mounts.items() if REPO / host == DASHBOARD]
    assert PurePosixPath(dashboard_path).parent == PurePosixPath(provider["options"]["path"])
    [datasource] = load(GRAFANA_PROVISIONING / "datasources" / "prometheus.yaml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["isDefault"] is True
    assert datasource["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
