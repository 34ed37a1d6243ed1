"""The Grafana dashboard and the alert rules query only series the worker exports.

Both files ship in helm/convoai-worker/files/ and are loaded as they are by the chart and by
compose. Rule behaviour (what fires when) is unit-tested with promtool in scripts/check-deploy.
Two exceptions, listed below: Prometheus' own `up`, and the kube-state-metrics series an alert
needs for what the worker cannot report about itself (whether Kubernetes counts its pod ready).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from worker.metrics import METRIC_NAMES, Metrics

from .artifacts import CHART, DASHBOARD, REPO, RULES, load

# docs/runbook.md in the chart's repository; prometheusRule.runbookBaseUrl replaces it
RUNBOOK_BASE = load(CHART / "Chart.yaml")["home"] + "/blob/main/docs/runbook.md"
THRESHOLD = re.compile(r"([0-9][0-9.]*)\s*# threshold: (\w+)$", re.MULTILINE)
# Series Prometheus itself attaches to every scrape target.
PROMETHEUS_SERIES = frozenset({"up"})
# Series of kube-state-metrics (kube-prometheus-stack installs it): Kubernetes' view of the
# worker's pods. Alert rules only, and only joined on (namespace, pod) to the worker's `up`, so
# that no other workload's pods are judged (TestAlertRules checks both).
KUBE_STATE_METRICS_SERIES = frozenset({"kube_pod_status_ready"})
WORKER_PODS_JOIN = re.compile(r'up\{job="convoai-worker"\}.*\band on \(namespace, pod\)', re.S)
# The dashboard's variables, in order, and the matcher each puts into every selector.
FILTERS = {
    "cluster": 'cluster=~"$cluster"',
    "job": 'job="$job"',
    "namespace": 'namespace=~"$namespace"',
    "pod": 'pod=~"$pod"',
}
# Series that describe one worker process: meaningless summed over pods.
PER_PROCESS = frozenset(
    {
        "convoai_commands_in_flight",
        "convoai_buffered_bytes",
        "convoai_event_loop_lag_seconds",
        "convoai_webhooks_in_flight",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    }
)
# PromQL keywords that can stand without parentheses and so look like metric names.
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "group_left", "group_right"})


def histogram_series() -> frozenset[str]:
    """`_bucket`, `_sum` and `_count` of every histogram in `METRIC_NAMES`."""
    families = Metrics(CollectorRegistry()).registry.collect()
    return frozenset(
        f"{family.name}{suffix}"
        for family in families
        if family.type == "histogram"
        for suffix in ("_bucket", "_sum", "_count")
    )


QUERYABLE = METRIC_NAMES | histogram_series() | PROMETHEUS_SERIES


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a small lexer, enough for our queries)."""
    expr = re.sub(r"#[^\n]*", "", expr)  # comments
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w:.$])([A-Za-z_:][\w:]*)\b(?!\s*\()", expr)
    return {name for name in names if name not in KEYWORDS}


def base_name(series: str) -> str:
    """The `METRIC_NAMES` entry a series belongs to (histogram series map to the histogram)."""
    return re.sub(r"_(bucket|sum|count)$", "", series) if series in histogram_series() else series


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["query"]["query"])
            assert query, variable["name"]
            yield f"variable {variable['name']}", query[1]


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        rule for group in load(RULES)["groups"] for rule in group["rules"]
    ]
    return rules


class TestMetricNameLexer:
    def test_selects_metrics_but_not_functions_labels_or_grouping(self):
        """Functions, label names, grouping labels, durations and Grafana variables are skipped."""
        expr = (
            'histogram_quantile(0.95, sum by (le, op) (rate(a_bucket{job="$job", x=~"y|z"}'
            "[$__rate_interval]))) / on (instance) group_left b_total unless c > 0.5"
        )
        assert metric_names(expr) == {"a_bucket", "b_total", "c"}


class TestDashboard:
    @pytest.fixture
    def dashboard(self) -> dict[str, Any]:
        dashboard: dict[str, Any] = load(DASHBOARD)
        return dashboard

    def test_queries_only_exported_series(self, dashboard):
        """Every series a panel or variable queries is exported by the worker (or is `up`)."""
        for where, expr in dashboard_queries(dashboard):
            names = metric_names(expr)
            assert names, where
            assert names <= QUERYABLE, f"{where}: {sorted(names - QUERYABLE)}"

    def test_shows_every_exported_metric(self, dashboard):
        """No worker metric is left off the dashboard."""
        used = {
            base_name(n) for _, expr in dashboard_queries(dashboard) for n in metric_names(expr)
        }
        assert sorted(METRIC_NAMES - used) == []

    def test_selects_the_prometheus_datasource_through_a_variable(self, dashboard):
        """All panels and queries use `${datasource}`, so the dashboard imports anywhere."""
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        expected = {"type": "prometheus", "uid": "${datasource}"}
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == expected, panel["title"]
            assert all(t["datasource"] == expected for t in panel["targets"]), panel["title"]

    def test_variables_narrow_cluster_job_namespace_pod_in_turn(self, dashboard):
        """Each variable offers only the values under the ones chosen before it."""
        variables = [v for v in dashboard["templating"]["list"] if v["type"] == "query"]
        assert [v["name"] for v in variables] == list(FILTERS)
        for index, variable in enumerate(variables):
            chosen = set(re.findall(r'(\w+)=~?"\$\w+"', variable["query"]["query"]))
            assert chosen == set(list(FILTERS)[:index]), variable["name"]

    def test_every_query_is_filtered_by_the_variables_and_none_by_instance(self, dashboard):
        """Every selector narrows to the chosen cluster, job, namespace and pods; workers are
        pods, never `instance` (a pod's address, new at every restart)."""
        for where, expr in dashboard_queries(dashboard):
            if where.startswith("variable"):
                continue
            selectors = re.findall(r"\{([^}]*)\}", expr)
            assert selectors, where
            for selector in selectors:
                assert set(FILTERS.values()) <= {m.strip() for m in selector.split(",")}, where
            assert "instance" not in expr, where

    def test_per_process_series_are_shown_per_pod(self, dashboard):
        """A series that describes one worker process is plotted one line per pod."""
        for where, expr in dashboard_queries(dashboard):
            if metric_names(expr) & PER_PROCESS:
                assert re.search(r"\bby \((?:\w+, )*pod\b", expr), where

    def test_panels_have_unique_ids_and_do_not_overlap(self, dashboard):
        """Grafana keeps every panel where the layout puts it: ids unique, no shared grid cells."""
        panels = dashboard["panels"]
        assert len({p["id"] for p in panels}) == len(panels)
        cells: dict[tuple[int, int], str] = {}
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


class TestAlertRules:
    def test_query_only_exported_series(self):
        """Every series an alert expression selects is exported by the worker, is `up`, or is
        one of the allowed kube-state-metrics series."""
        allowed = QUERYABLE | KUBE_STATE_METRICS_SERIES
        for rule in alert_rules():
            names = metric_names(rule["expr"])
            assert names, rule["alert"]
            assert names <= allowed, f"{rule['alert']}: {sorted(names - allowed)}"

    def test_read_kube_state_metrics_only_for_the_workers_own_pods(self):
        """A rule that reads kube-state-metrics keeps the worker's scraped pods (`up` of the
        worker's job, which the chart scopes to the release's namespace) and nothing else."""
        readers = [r for r in alert_rules() if metric_names(r["expr"]) & KUBE_STATE_METRICS_SERIES]
        assert readers
        for rule in readers:
            assert WORKER_PODS_JOIN.search(rule["expr"]), rule["alert"]

    def test_cover_the_failure_modes_on_call_needs(self):
        """Down, absent or not ready, stalled, lagging, dead-lettering, API errors, rate
        limiting and latency, failing/unknown/expiring commands, saturation, rebalances,
        commits, produces failing or refused, contained bugs, partitions that cannot be opened,
        restarting tasks, a late event loop, webhooks."""
        assert {rule["alert"] for rule in alert_rules()} == {
            "ConvoAIWorkerDown",
            "ConvoAIWorkerAbsent",
            "ConvoAIPodNotReady",
            "ConvoAIConsumerStalled",
            "ConvoAIConsumerLagHigh",
            "ConvoAIDeadLetters",
            "ConvoAIApiErrorRate",
            "ConvoAIApiRateLimited",
            "ConvoAIApiSlow",
            "ConvoAICommandsFailing",
            "ConvoAICommandsUnknown",
            "ConvoAICommandsExpiring",
            "ConvoAIInFlightSaturated",
            "ConvoAIRebalanceStorm",
            "ConvoAICommitFailures",
            "ConvoAIProduceFailing",
            "ConvoAIProduceRejected",
            "ConvoAIInternalErrors",
            "ConvoAIPartitionsNotOpened",
            "ConvoAIBackgroundTaskRestarts",
            "ConvoAIEventLoopLag",
            "ConvoAIWebhookSignatureFailures",
            "ConvoAIWebhookAppMismatch",
        }

    def test_carry_severity_summary_description_and_runbook_url(self):
        """Each alert tells the on-call engineer how bad it is, what happened and where the
        runbook section for it is (docs/runbook.md has a heading per alert)."""
        headings = re.findall(r"^## (\w+)$", (REPO / "docs" / "runbook.md").read_text(), re.M)
        for rule in alert_rules():
            name = rule["alert"]
            assert rule["labels"]["severity"] in {"critical", "warning"}, name
            annotations = rule["annotations"]
            assert set(annotations) == {"summary", "description", "runbook_url"}, name
            assert all(text.strip() for text in annotations.values()), name
            assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{name.lower()}"
            assert name in headings, name
        assert len(headings) == len(alert_rules())

    def test_every_alert_is_seen_firing_in_a_promtool_test(self):
        """deploy/prometheus/rules.test.yaml expects each alert to fire at least once."""
        tests = load(REPO / "deploy" / "prometheus" / "rules.test.yaml")["tests"]
        fired = {
            case["alertname"]
            for test in tests
            for case in test["alert_rule_test"]
            if case["exp_alerts"]
        }
        assert fired == {rule["alert"] for rule in alert_rules()}


class TestThresholds:
    """Numbers marked `# threshold: NAME` are chart values; the chart rewrites them."""

    def test_each_marked_threshold_is_a_value_with_the_same_default(self):
        marked = {
            name: float(number)
            for rule in alert_rules()
            for number, name in THRESHOLD.findall(rule["expr"])
        }
        values = load(CHART / "values.yaml")["prometheusRule"]["thresholds"]
        assert marked == {name: float(value) for name, value in values.items()}

    def test_each_threshold_appears_once(self):
        names = [name for rule in alert_rules() for _, name in THRESHOLD.findall(rule["expr"])]
        assert len(names) == len(set(names))
