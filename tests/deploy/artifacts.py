"""Paths of the deployment files under test and a loader for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "convoai-worker"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
RULES = CHART / "files" / "prometheus-rules.yaml"
COMPOSE = REPO / "compose.yaml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"


def load(path: Path) -> Any:
    """The parsed YAML or JSON file."""
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
