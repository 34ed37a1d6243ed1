"""Helm chart invariants: values schema, settings parity, hardening, and what helm renders.

`helm lint` and the Kubernetes schema validation of every values file's manifests run in
scripts/check-deploy; the tests here render with the same helm (`tests/deploy/helm.py`) where
a promise is about what the chart produces.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Iterator
from typing import Any

import jsonschema
import msgspec
import pytest

from worker.deadlines import derive
from worker.kafka.connection import client_options
from worker.kafka.oauth import FileToken
from worker.settings import SECRET_FIELDS, Settings, load_settings

from .artifacts import CHART, CI_VALUES, REPO, load
from .helm import RenderError, kinds, render

# Settings the chart does not take in `config`, and why.
NOT_IN_CONFIG = {
    "customer_id": "read from credentials.existingSecret",
    "customer_secret": "read from credentials.existingSecret",
    "auth_token": "read from credentials.existingSecret",
    "webhook_secret": "read from credentials.existingSecret",
    "kafka_sasl_password": "read from kafkaSasl.existingSecret",
    "kafka_ssl_key_password": "PEM keys are mounted unencrypted from kafkaTls.existingSecret",
    "http_host": "probes and the Service need the pod address, i.e. the default 0.0.0.0",
    "group_instance_id": "the pod's own name, with staticMembership (a ConfigMap has one value)",
    "processes": "the top-level `processes` value: it also scales resources and KEDA's target",
}
# values.yaml `config` defaults that deliberately differ from the worker's defaults.
CHART_DEFAULTS = {
    "kafkaBootstrap": "",  # required at install time instead of the loopback default
    "topicReplicationFactor": 3,  # production clusters, not a single local broker
    "logFormat": "json",  # what `auto` resolves to without a TTY, made explicit
}


def camel(name: str) -> str:
    """`api_base_url` -> `apiBaseUrl`, the chart's spelling of a setting."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def merged(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge values files the way Helm does (maps merge, everything else replaces)."""
    result = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def value_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of every leaf in `values` (empty maps and lists count as leaves)."""
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from value_paths(value, f"{prefix}{key}.")
        else:
            yield prefix + key


@pytest.fixture
def values() -> dict[str, Any]:
    values: dict[str, Any] = load(CHART / "values.yaml")
    return values


@pytest.fixture
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(load(CHART / "values.schema.json"))


class TestValuesSchema:
    def test_schema_is_a_valid_draft_7_schema(self):
        """values.schema.json itself conforms to the JSON Schema draft it declares."""
        jsonschema.Draft7Validator.check_schema(load(CHART / "values.schema.json"))

    def test_defaults_are_valid(self, values, validator):
        """values.yaml as shipped satisfies the schema."""
        assert list(validator.iter_errors(values)) == []

    @pytest.mark.parametrize("path", CI_VALUES, ids=lambda p: p.name)
    def test_ci_values_over_defaults_are_valid(self, path, values, validator):
        """Each CI values file, merged over the defaults as Helm does, satisfies the schema."""
        assert list(validator.iter_errors(merged(values, load(path)))) == []

    @pytest.mark.parametrize(
        "override",
        [
            pytest.param({"replicaCount": "2"}, id="a string for an integer"),
            pytest.param({"config": {"httpPort": "8080"}}, id="a string for a port"),
            pytest.param({"config": {"maxInFlight": 0}}, id="below the worker's minimum"),
            pytest.param({"config": {"partitionResumeRatio": 1}}, id="outside (0, 1)"),
            pytest.param({"config": {"logLevel": "TRACE"}}, id="not a level the worker knows"),
            pytest.param({"config": {"kafkaBootsrap": "k:9092"}}, id="a misspelt setting"),
            pytest.param(
                {"credentials": {"customerSecret": "s3cret"}}, id="a secret in clear text"
            ),
            pytest.param({"keda": {"enabled": "true"}}, id="a string for a boolean"),
            pytest.param({"keda": {"maxReplicaCount": 0}}, id="no replicas"),
            pytest.param({"image": {"pullPolicy": "Sometimes"}}, id="an unknown pull policy"),
            pytest.param({"image": {"digest": "latest"}}, id="a digest that is not sha256"),
            pytest.param(
                {"podDisruptionBudget": {"maxUnavailable": "50"}}, id="a percentage without %"
            ),
            pytest.param({"kafkaTopics": {"enabled": True}}, id="topics without a Strimzi cluster"),
            pytest.param({"replicas": 3}, id="an unknown top-level key"),
            pytest.param({"ingress": {"enabled": "yes"}}, id="a string for ingress.enabled"),
            pytest.param({"ingress": {"path": "/"}}, id="an ingress path (only the webhook)"),
            pytest.param(
                {"config": {"kafkaSaslMechanism": "GSSAPI"}}, id="an unknown SASL mechanism"
            ),
            pytest.param({"extraContainers": [{"name": "proxy"}]}, id="a sidecar without image"),
            pytest.param({"extraVolumeMounts": [{"name": "v"}]}, id="a mount without a path"),
        ],
    )
    def test_wrong_values_are_rejected(self, override, values, validator):
        """Values the worker or Kubernetes would refuse fail validation before anything renders."""
        assert not validator.is_valid(merged(values, override))


class TestConfigMatchesSettings:
    """`config` is the worker's Settings in the chart's camelCase; drift breaks pods at start."""

    def test_config_accepts_exactly_the_non_secret_settings(self):
        """Every setting is configurable except those listed in NOT_IN_CONFIG, and nothing else."""
        fields = {field.name for field in msgspec.structs.fields(Settings)}
        schema_keys = set(load(CHART / "values.schema.json")["properties"]["config"]["properties"])
        assert NOT_IN_CONFIG.keys() <= fields
        assert schema_keys == {camel(name) for name in fields - NOT_IN_CONFIG.keys()}

    def test_config_types_and_bounds_are_at_least_as_strict_as_settings(self):
        """Each `config` property has the setting's JSON type, enum and bounds (or tighter)."""
        properties = load(CHART / "values.schema.json")["properties"]["config"]["properties"]
        expected = msgspec.json.schema(Settings)["$defs"]["Settings"]["properties"]
        for name, setting in expected.items():
            if name in NOT_IN_CONFIG:
                continue
            prop = properties[camel(name)]
            # msgspec gives Literal settings only an enum; theirs are all strings.
            assert prop["type"] == setting.get("type", "string"), name
            assert prop.get("enum") == setting.get("enum"), name
            assert prop.get("minimum", -1e9) >= setting.get("minimum", -1e9), name
            assert prop.get("maximum", 1e9) <= setting.get("maximum", 1e9), name
            for exclusive in ("exclusiveMinimum", "exclusiveMaximum"):
                assert prop.get(exclusive) == setting.get(exclusive), name

    def test_config_defaults_are_the_worker_defaults(self, values):
        """values.yaml repeats the worker's defaults, apart from the deliberate CHART_DEFAULTS."""
        defaults = {camel(k): v for k, v in msgspec.structs.asdict(Settings()).items()}
        for key, value in values["config"].items():
            assert value == CHART_DEFAULTS.get(key, defaults[key]), key

    def test_every_secret_setting_is_mounted_as_a_file(self):
        """Each secret setting (and the customer id) is read from a mounted Secret through its
        `CONVOAI_<NAME>_FILE` variable; no secret is given as an environment value."""
        helpers = (CHART / "templates" / "_helpers.tpl").read_text()
        pod = (CHART / "templates" / "_pod.tpl").read_text()
        referenced = set(re.findall(r'"CONVOAI_([A-Z_]+)_FILE"', helpers))
        expected = {*SECRET_FIELDS, "customer_id"} - {"kafka_ssl_key_password"}
        assert referenced == {name.upper() for name in expected}
        assert "secretKeyRef" not in pod


class TestChartInvariants:
    def test_app_version_is_the_project_version(self):
        """The chart deploys the image of the version pyproject.toml declares."""
        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
        assert load(CHART / "Chart.yaml")["appVersion"] == project["version"]

    @pytest.mark.parametrize(
        ("rebalance", "heartbeat", "drain"), [(30, 3, 25), (60, 3, 40), (7, 1, 5), (600, 10, 300)]
    )
    def test_the_termination_grace_is_the_workers_shutdown_bound(
        self, rebalance: float, heartbeat: float, drain: float
    ):
        """The pod's grace period is derived from the settings as the worker derives its own
        shutdown bound (worker/deadlines.py): the kubelet's SIGKILL never cuts a drain short."""
        settings = {
            "config.kafkaBootstrap": "kafka:9092",
            "config.kafkaRebalanceTimeoutSeconds": rebalance,
            "config.kafkaHeartbeatIntervalSeconds": heartbeat,
            "config.kafkaSessionTimeoutSeconds": heartbeat * 3,
            "config.drainGraceSeconds": drain,
        }
        (deployment,) = kinds(render(**settings), "Deployment")
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace == derive(rebalance, heartbeat, drain).termination_grace

    def test_a_termination_grace_shorter_than_the_shutdown_bound_is_refused(self):
        """A grace period that would SIGKILL a draining worker fails the rendering, as do
        group timings that leave no revoke grace (the worker refuses them too)."""
        with pytest.raises(RenderError, match="shorter than the worker's shutdown bound"):
            render(**{"config.kafkaBootstrap": "kafka:9092", "terminationGracePeriodSeconds": 40})
        with pytest.raises(RenderError, match=r"leaves .* of revoke grace"):
            render(
                **{"config.kafkaBootstrap": "kafka:9092", "config.kafkaRebalanceTimeoutSeconds": 5}
            )

    def test_the_chart_names_its_repository(self):
        """`home` and `sources` lead to the code; the alerts' runbook links are derived from it
        (tests/deploy/test_observability.py)."""
        chart = load(CHART / "Chart.yaml")
        assert chart["home"].startswith("https://")
        assert chart["sources"] == [chart["home"]]

    def test_the_worker_waits_for_kafka_as_long_as_the_startup_probe_allows(self, values):
        """A broker restart during a deploy: the wait and the probe's window end together."""
        probe = values["startupProbe"]
        window = probe["periodSeconds"] * probe["failureThreshold"]
        assert values["config"]["startupTimeoutSeconds"] == window
        assert Settings().startup_timeout_seconds == window

    def test_pod_runs_as_the_image_user_on_the_image_port(self, values):
        """runAsUser/runAsGroup and the container port match the Dockerfile's USER and EXPOSE."""
        dockerfile = (REPO / "Dockerfile").read_text()
        declared = dict(
            re.findall(r"^(ARG UID|ARG GID|EXPOSE)[= ](\d+)$", dockerfile, re.MULTILINE)
        )
        assert values["podSecurityContext"]["runAsUser"] == int(declared["ARG UID"])
        assert values["podSecurityContext"]["runAsGroup"] == int(declared["ARG GID"])
        assert values["config"]["httpPort"] == int(declared["EXPOSE"]) == Settings().http_port

    def test_defaults_are_least_privilege(self, values):
        """Non-root, read-only root, no escalation/capabilities, seccomp, no token, memory cap."""
        pod, container = values["podSecurityContext"], values["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["readOnlyRootFilesystem"] is True
        assert container["allowPrivilegeEscalation"] is False
        assert container["capabilities"] == {"drop": ["ALL"]}
        assert values["serviceAccount"]["automountToken"] is False
        assert values["resources"]["limits"]["memory"]

    def test_probes_use_the_worker_health_endpoints(self, values):
        """Liveness and startup ask /livez, readiness asks /readyz, all on the named port."""
        paths = {
            probe: values[probe]["httpGet"]
            for probe in ("livenessProbe", "startupProbe", "readinessProbe")
        }
        assert paths == {
            "livenessProbe": {"path": "/livez", "port": "http"},
            "startupProbe": {"path": "/livez", "port": "http"},
            "readinessProbe": {"path": "/readyz", "port": "http"},
        }

    @pytest.mark.parametrize("path", [CHART / "values.yaml", *CI_VALUES], ids=lambda p: p.name)
    def test_keda_never_scales_beyond_the_partitions(self, path, values):
        """maxReplicaCount x processes <= partitions in every shipped values set (the template
        enforces it)."""
        effective = merged(values, load(path))
        members = effective["keda"]["maxReplicaCount"] * effective["processes"]
        assert members <= effective["config"]["topicPartitions"]

    def test_readme_documents_every_value(self, values):
        """The README's values table covers every value and has no row for a value that is gone."""
        readme = (CHART / "README.md").read_text()
        rows = set(re.findall(r"^\| `([\w.]+)` \|", readme, re.MULTILINE))
        paths = set(value_paths(values))

        def covers(row: str, path: str) -> bool:
            return path == row or path.startswith(row + ".")

        assert {p for p in paths if not any(covers(r, p) for r in rows)} == set()
        assert {r for r in rows if not any(covers(r, p) for p in paths)} == set()

    def test_static_membership_is_a_statefulset_whose_pod_names_are_the_instance_ids(self):
        """Stable names, the session timeout for a restart, KEDA scaling the StatefulSet."""
        manifests = render(CHART / "ci" / "static-membership-values.yaml")
        assert kinds(manifests, "Deployment") == []
        [workload] = kinds(manifests, "StatefulSet")
        [container] = workload["spec"]["template"]["spec"]["containers"]
        [instance_id] = [e for e in container["env"] if e["name"] == "CONVOAI_GROUP_INSTANCE_ID"]
        assert instance_id["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        [config] = kinds(manifests, "ConfigMap")
        assert config["data"]["CONVOAI_KAFKA_SESSION_TIMEOUT_SECONDS"] == "180"
        [scaled] = kinds(manifests, "ScaledObject")
        assert scaled["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
        assert "replicas" not in workload["spec"]

    def test_a_deployment_has_no_instance_ids_and_the_sticky_assignor(self):
        """Pod names change with every rollout: no static membership, sticky assignment."""
        manifests = render(**{"config.kafkaBootstrap": "kafka:9092"})
        [workload] = kinds(manifests, "Deployment")
        [container] = workload["spec"]["template"]["spec"]["containers"]
        assert "CONVOAI_GROUP_INSTANCE_ID" not in str(container)
        [config] = kinds(manifests, "ConfigMap")
        assert config["data"]["CONVOAI_KAFKA_PARTITION_ASSIGNOR"] == "sticky"
        assert config["data"]["CONVOAI_KAFKA_SESSION_TIMEOUT_SECONDS"] == "15"

    def test_uninstall_keeps_the_topics(self):
        """Strimzi deletes a topic with its KafkaTopic: the resources outlive the release, and
        the README says how to remove them on purpose."""
        topics = kinds(render(CHART / "ci" / "keda-strimzi-values.yaml"), "KafkaTopic")
        assert len(topics) == 4
        for topic in topics:
            assert topic["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        readme = (CHART / "README.md").read_text()
        assert "kubectl --namespace <kafkaTopics.namespace> delete kafkatopics" in readme

    def test_the_helm_test_hook_asks_the_service_for_readyz(self, values):
        """`helm test` fails unless the release's Service answers /readyz with 200."""
        template = (CHART / "templates" / "tests" / "readyz.yaml").read_text()
        assert "helm.sh/hook: test" in template
        assert (
            'http://{{ include "convoai-worker.fullname" . }}:{{ .Values.service.port }}/readyz'
            in template
        )
        assert values["readinessProbe"]["httpGet"]["path"] == "/readyz"


KAFKA = {"config.kafkaBootstrap": "kafka:9092"}


def workload(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The worker container of the release's one workload."""
    [deployment] = kinds(manifests, "Deployment") + kinds(manifests, "StatefulSet")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


class TestProcesses:
    def test_one_process_renders_as_the_values_say(self, values):
        """`processes: 1` (the default) adds no setting and scales nothing: a release renders as
        it did before the value existed (no new ConfigMap, so no rollout on upgrade)."""
        manifests = render(**KAFKA, **{"keda.enabled": True})
        [config] = kinds(manifests, "ConfigMap")
        assert "CONVOAI_PROCESSES" not in config["data"]
        assert workload(manifests)["resources"] == values["resources"]
        [scaled] = kinds(manifests, "ScaledObject")
        lag = scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"]
        assert lag == str(values["keda"]["lagThreshold"])

    def test_processes_multiply_the_resources_and_the_lag_target_per_pod(self):
        """Resources and keda.lagThreshold are one process's: the pod gets N times them, and
        the worker is told N."""
        manifests = render(
            **KAFKA, processes=2, **{"keda.enabled": True, "keda.maxReplicaCount": 6}
        )
        [config] = kinds(manifests, "ConfigMap")
        assert config["data"]["CONVOAI_PROCESSES"] == "2"
        assert workload(manifests)["resources"] == {
            "requests": {"cpu": "400m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "1024Mi"},
        }
        [scaled] = kinds(manifests, "ScaledObject")
        assert scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] == "400"

    @pytest.mark.parametrize(
        ("given", "processes", "expected"),
        [
            ({"cpu": "250m", "memory": "256Mi"}, 4, {"cpu": "1", "memory": "1024Mi"}),
            ({"cpu": "0.1", "memory": "1.5Gi"}, 3, {"cpu": "300m", "memory": "4.5Gi"}),
            ({"cpu": 1.5, "memory": 536870912}, 3, {"cpu": "4500m", "memory": "1610612736"}),
            ({"cpu": "2", "nvidia.com/gpu": 1}, 2, {"cpu": "4", "nvidia.com/gpu": 1}),
        ],
    )
    def test_quantities_are_multiplied_in_their_own_units(self, given, processes, expected):
        """Millicores or cores, a memory unit or bytes: each stays a quantity Kubernetes reads
        (`scripts/check-deploy` validates them), and what is neither cpu nor memory is kept."""
        manifests = render(**KAFKA, processes=processes, resources={"limits": given})
        limits = workload(manifests)["resources"]["limits"]
        assert {name: limits[name] for name in given} == expected

    def test_more_group_members_than_partitions_are_refused(self):
        """With KEDA, every process of every pod is a member: beyond the partitions they idle."""
        with pytest.raises(RenderError, match=r"times processes \(2\) must not exceed"):
            render(**KAFKA, processes=2, **{"keda.enabled": True, "keda.maxReplicaCount": 7})

    def test_the_parent_waits_within_the_termination_grace(self):
        """The pod's grace period does not change with processes, and the parent's bound (each
        process's shutdown bound and its margin) ends before it, so the kubelet's SIGKILL never
        cuts a drain short."""
        manifests = render(**KAFKA, processes=4)
        grace = kinds(manifests, "Deployment")[0]["spec"]["template"]["spec"]
        deadlines = derive(30, 3, 25)
        assert grace["terminationGracePeriodSeconds"] == deadlines.termination_grace
        assert deadlines.processes_bound < deadlines.termination_grace


STRIMZI_USER = {"existingSecret": "convoai-worker", "passwordKey": "password"}
STRIMZI_CA = {"caSecret": "events-cluster-ca-cert", "caKey": "ca.crt"}
STRIMZI_CLIENT = {"clientSecret": "convoai-worker", "certKey": "user.crt", "keyKey": "user.key"}
USERNAME = {"parameter": "username", "name": "test-convoai-worker"}
PASSWORD = {"parameter": "password", "name": "convoai-worker", "key": "password"}
CA = {"parameter": "ca", "name": "events-cluster-ca-cert", "key": "ca.crt"}
CERT = {"parameter": "cert", "name": "convoai-worker", "key": "user.crt"}
KEY = {"parameter": "key", "name": "convoai-worker", "key": "user.key"}


@pytest.mark.parametrize(
    ("protocol", "mechanism", "tls", "metadata", "secrets"),
    [
        pytest.param("PLAINTEXT", "PLAIN", {}, {"tls": "disable"}, None, id="plaintext"),
        pytest.param("SSL", "PLAIN", {}, {"tls": "enable"}, None, id="tls-system-cas"),
        pytest.param("SSL", "PLAIN", STRIMZI_CA, {"tls": "enable"}, [CA], id="tls-own-ca"),
        pytest.param(
            "SSL",
            "PLAIN",
            {**STRIMZI_CA, **STRIMZI_CLIENT},
            {"tls": "enable"},
            [CA, CERT, KEY],
            id="mutual-tls",
        ),
        pytest.param(
            "SASL_PLAINTEXT",
            "PLAIN",
            {},
            {"sasl": "plaintext", "tls": "disable"},
            [PASSWORD],
            id="sasl-plain",
        ),
        pytest.param(
            "SASL_SSL",
            "SCRAM-SHA-256",
            {},
            {"sasl": "scram_sha256", "tls": "enable"},
            [PASSWORD],
            id="scram-256-system-cas",
        ),
        pytest.param(
            "SASL_SSL",
            "SCRAM-SHA-512",
            STRIMZI_CA,
            {"sasl": "scram_sha512", "tls": "enable"},
            [PASSWORD, CA],
            id="scram-512-own-ca",
        ),
        pytest.param(
            "SASL_SSL",
            "SCRAM-SHA-512",
            {**STRIMZI_CA, **STRIMZI_CLIENT},
            {"sasl": "scram_sha512", "tls": "enable"},
            [PASSWORD, CA, CERT, KEY],
            id="scram-512-mutual-tls",
        ),
    ],
)
def test_keda_connects_to_kafka_as_the_worker_does(
    protocol: str,
    mechanism: str,
    tls: dict[str, str],
    metadata: dict[str, str],
    secrets: list[dict[str, str]] | None,
) -> None:
    """Every security combination: the scaler's SASL and TLS come from the worker's settings,
    the user name from the worker's ConfigMap, the password and TLS files from the same Secrets
    the worker mounts (Strimzi's layout)."""
    sasl = protocol.startswith("SASL_")
    manifests = render(
        **{
            "config.kafkaBootstrap": "events-kafka-bootstrap.kafka:9093",
            "config.kafkaSecurityProtocol": protocol,
            "config.kafkaSaslMechanism": mechanism,
            "config.kafkaSaslUsername": "convoai-worker" if sasl else "",
            "kafkaSasl": STRIMZI_USER if sasl else {"existingSecret": ""},
            "kafkaTls": tls,
            "keda.enabled": True,
        }
    )
    [scaled] = kinds(manifests, "ScaledObject")
    [trigger] = scaled["spec"]["triggers"]
    assert {k: v for k, v in trigger["metadata"].items() if k in {"sasl", "tls"}} == metadata
    authentications = kinds(manifests, "TriggerAuthentication")
    if secrets is None:
        assert (authentications, "authenticationRef" in trigger) == ([], False)
        return
    [authentication] = authentications
    assert trigger["authenticationRef"] == {"name": authentication["metadata"]["name"]}
    assert authentication["spec"]["secretTargetRef"] == secrets
    [config] = kinds(manifests, "ConfigMap")
    usernames = authentication["spec"].get("configMapTargetRef", [])
    assert usernames == ([{**USERNAME, "key": "CONVOAI_KAFKA_SASL_USERNAME"}] if sasl else [])
    for reference in usernames:
        assert config["metadata"]["name"] == reference["name"]
        assert config["data"][reference["key"]] == "convoai-worker"


def test_keda_on_sasl_needs_the_workers_password_secret() -> None:
    """Without it KEDA could not read the lag: rendering fails and says why."""
    with pytest.raises(RenderError, match=r"needs kafkaSasl\.existingSecret"):
        render(
            **{
                "config.kafkaBootstrap": "kafka:9093",
                "config.kafkaSecurityProtocol": "SASL_SSL",
                "config.kafkaSaslUsername": "convoai-worker",
                "keda.enabled": True,
            }
        )


MSK_IAM = {
    "config.kafkaBootstrap": "b-1.events.kafka.eu-west-1.amazonaws.com:9098",
    "config.kafkaSecurityProtocol": "SASL_SSL",
    "config.kafkaSaslMechanism": "AWS_MSK_IAM",
    "config.kafkaAwsRegion": "eu-west-1",
    "keda.enabled": True,
}
OAUTH = {
    "config.kafkaBootstrap": "events-kafka-bootstrap.kafka:9093",
    "config.kafkaSecurityProtocol": "SASL_SSL",
    "config.kafkaSaslMechanism": "OAUTHBEARER",
}
TOKEN_FILE = "/etc/convoai/kafka-oauth/token"


def test_keda_reads_the_lag_of_an_msk_iam_cluster_with_its_aws_identity() -> None:
    """The scaler signs its own MSK IAM tokens for the worker's region, as KEDA's AWS pod
    identity (the operator's, or the role it is told to assume); no password is involved."""
    role = "arn:aws:iam::123456789012:role/keda-convoai"
    manifests = render(**MSK_IAM, **{"keda.awsRoleArn": role})
    [scaled] = kinds(manifests, "ScaledObject")
    [trigger] = scaled["spec"]["triggers"]
    wanted = {"sasl", "saslTokenProvider", "awsRegion", "tls"}
    assert {k: v for k, v in trigger["metadata"].items() if k in wanted} == {
        "sasl": "oauthbearer",
        "saslTokenProvider": "aws_msk_iam",
        "awsRegion": "eu-west-1",
        "tls": "enable",
    }
    [authentication] = kinds(manifests, "TriggerAuthentication")
    assert trigger["authenticationRef"] == {"name": authentication["metadata"]["name"]}
    assert authentication["spec"] == {"podIdentity": {"provider": "aws", "roleArn": role}}


def test_keda_on_oauthbearer_uses_a_trigger_authentication_of_ones_own() -> None:
    """KEDA cannot read the worker's token file: without the escape hatch rendering fails and
    says why; with it the chart renders no TriggerAuthentication and points the trigger at it."""
    values = {**OAUTH, "kafkaOAuth.serviceAccountTokenAudience": "kafka", "keda.enabled": True}
    with pytest.raises(RenderError, match=r"needs keda\.authenticationRef\.name"):
        render(**values)
    manifests = render(**values, **{"keda.authenticationRef.name": "convoai-kafka-oauth"})
    assert kinds(manifests, "TriggerAuthentication") == []
    [scaled] = kinds(manifests, "ScaledObject")
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["authenticationRef"] == {
        "name": "convoai-kafka-oauth",
        "kind": "TriggerAuthentication",
    }
    assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == ("oauthbearer", "enable")


@pytest.mark.parametrize(
    ("values", "source"),
    [
        pytest.param(
            {"kafkaOAuth.serviceAccountTokenAudience": "kafka"},
            {
                "serviceAccountToken": {
                    "audience": "kafka",
                    "expirationSeconds": 3600,
                    "path": "token",
                }
            },
            id="service-account-token",
        ),
        pytest.param(
            {"kafkaOAuth.existingSecret": "kafka-token"},
            {"secret": {"name": "kafka-token", "items": [{"key": "token", "path": "token"}]}},
            id="secret",
        ),
    ],
)
def test_the_oauth_token_is_mounted_where_the_worker_reads_it_at_each_connection(
    values: dict[str, str], source: dict[str, Any]
) -> None:
    """A projected volume the kubelet keeps current, read-only, and the variable naming it: the
    rendered settings load in the worker as a token file source."""
    manifests = render(**OAUTH, **values)
    [workload] = kinds(manifests, "Deployment")
    pod = workload["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "kafka-oauth"]
    assert volume["projected"]["sources"] == [source]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "kafka-oauth"]
    assert (mount["mountPath"], mount["readOnly"]) == (TOKEN_FILE.rsplit("/", 1)[0], True)
    [variable] = [e for e in container["env"] if e["name"] == "CONVOAI_KAFKA_SASL_OAUTH_TOKEN_FILE"]
    assert variable["value"] == TOKEN_FILE
    [config] = kinds(manifests, "ConfigMap")
    environ = {**config["data"], variable["name"]: variable["value"], "CONVOAI_ENV_FILE": ""}
    provider = client_options(load_settings(environ))["sasl_oauth_token_provider"]
    assert isinstance(provider, FileToken)


@pytest.mark.parametrize(
    "sources",
    [
        pytest.param({}, id="none"),
        pytest.param(
            {
                "kafkaOAuth.existingSecret": "kafka-token",
                "config.kafkaSaslOauthTokenCommand": "get-token",
            },
            id="two",
        ),
    ],
)
def test_oauthbearer_needs_exactly_one_token_source(sources: dict[str, str]) -> None:
    with pytest.raises(RenderError, match="needs exactly one token source"):
        render(**OAUTH, **sources)
