"""The Helm chart helm/imarc: lint, schema-valid manifests, and the properties operators rely on.

Every ci/*-values.yaml is rendered once per session (see conftest.py) and checked against the
Kubernetes schemas of two versions (kubernetes-validate, strict) and, for the operator kinds
the chart renders, against the CRD schemas stored in crd-schemas/ (with unknown fields
forbidden, so a misspelt field fails).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .conftest import CHART, CI_VALUES, KUBE_VERSIONS, Manifest, template_args

pytestmark = pytest.mark.helm

CI_IDS = [p.name for p in CI_VALUES]
SERVICES = ("intake", "deid", "qc", "catalog", "download", "auth", "gateway")
API_FACING = ("gateway", "catalog", "download", "intake")
BUCKET_ZONES = ("quarantine", "curation", "public")
SUBMISSION = "/api/intake/v1/submissions"
READ_PATHS = (
    "/nbia-api/services/v1/getCollectionValues",
    "/nbia-api/services/v4/getSeries",
    "/nbia-api/oauth/token",
    "/api/catalog/collections",
)

# Operator kinds the chart may render, validated against the stored CRD schemas instead.
CRD_SCHEMAS = {
    (doc["group"] + "/" + doc["version"], doc["kind"]): doc
    for doc in (
        json.loads(p.read_text()) for p in (Path(__file__).parent / "crd-schemas").glob("*.json")
    )
}
ALLOWED_CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("rabbitmq.com/v1beta1", "Federation"),
    ("rabbitmq.com/v1beta1", "Policy"),
    ("rabbitmq.com/v1beta1", "Exchange"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
}

# What a credential looks like in a manifest.
CREDENTIAL_KEY = re.compile(
    r"(?i)^(password|passwd|secret|token|access_?key|secret_?(access_?)?key|api_?key|private_?key)$"
)
CREDENTIAL_ENV = re.compile(r"(?i)(password|passwd|secret|token|_key)$")
URL_WITH_LITERAL_CREDENTIALS = re.compile(r"://(?!\$\()[^/@\s]+:(?!\$\()[^/@\s]+@")


# ---------------------------------------------------------------------------------------------
# helpers over rendered manifests


def of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Manifest], kind: str, suffix: str) -> Manifest:
    [doc] = [d for d in of_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    return doc


def pod_specs(docs: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload: Deployments, Jobs (hooks too) and bare Pods."""
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in ("Deployment", "Job"):
            yield name, d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield name, d["spec"]


def pod_labels(doc: Manifest) -> dict[str, str]:
    meta = doc["metadata"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]
    return dict(meta.get("labels", {}))


def workloads(docs: list[Manifest]) -> list[Manifest]:
    return [d for d in docs if d["kind"] in ("Deployment", "Job", "Pod")]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions In/NotIn/Exists)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(path, key, value) of every string leaf."""
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str):
                yield f"{path}.{k}", str(k), v
            else:
                yield from strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, str):
                yield f"{path}[{i}]", "", v
            else:
                yield from strings(v, f"{path}[{i}]")


def prefix_matches(prefix: str, path: str) -> bool:
    """Gateway API / Ingress `Prefix` matching: whole path elements, not characters."""
    prefix = prefix.rstrip("/")
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def route_backend(route: Manifest, path: str) -> str | None:
    """Name of the backend an HTTPRoute sends `path` to (longest matching prefix wins)."""
    best: tuple[int, str] | None = None
    for rule in route["spec"]["rules"]:
        for match in rule.get("matches", [{"path": {"type": "PathPrefix", "value": "/"}}]):
            m = match["path"]
            assert m["type"] == "PathPrefix", m
            if prefix_matches(m["value"], path) and (best is None or len(m["value"]) > best[0]):
                [backend] = rule["backendRefs"]
                best = (len(m["value"]), backend["name"])
    return best[1] if best else None


def ingress_backend(ingress: Manifest, path: str) -> str | None:
    best: tuple[int, str] | None = None
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            assert p["pathType"] == "Prefix", p
            if prefix_matches(p["path"], path) and (best is None or len(p["path"]) > best[0]):
                best = (len(p["path"]), p["backend"]["service"]["name"])
    return best[1] if best else None


def strict_crd_schema(schema: Any) -> Any:
    """Forbid fields a CRD schema does not declare (CRD schemas leave that open), and write Go's
    mid-pattern flags (`^(?i)...`) the way Python's re accepts them."""
    if isinstance(schema, dict):
        out = {k: strict_crd_schema(v) for k, v in schema.items()}
        if isinstance(out.get("pattern"), str) and "(?i)" in out["pattern"]:
            out["pattern"] = "(?i)" + out["pattern"].replace("(?i)", "")
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict_crd_schema(v) for v in schema]
    return schema


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    schema = strict_crd_schema(CRD_SCHEMAS[(api_version, kind)]["openAPIV3Schema"])
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def validate_crd(doc: Manifest) -> None:
    crd_validator(doc["apiVersion"], doc["kind"]).validate(doc)


# ---------------------------------------------------------------------------------------------
# lint and schema validity


@pytest.mark.parametrize("values", CI_VALUES, ids=CI_IDS)
def test_lint_strict(run_helm, values: Path) -> None:
    proc = run_helm(
        "lint", "--strict", str(CHART), "-f", str(values), "--kube-version", KUBE_VERSIONS[-1]
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    # `helm lint` reports a template `fail` only at INFO level; treat it as the error it is.
    assert "funcMap fail" not in output, output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", CI_VALUES, ids=CI_IDS)
def test_manifests_are_valid_kubernetes(render, rendered, values: Path, kube_version: str) -> None:
    # `rendered` is rendered for the newest version; render again only for the others
    docs = (
        rendered[values.name]
        if kube_version == KUBE_VERSIONS[-1]
        else render([values], kube_version=kube_version)
    )
    problems = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            key = (doc["apiVersion"], doc["kind"])
            if key not in ALLOWED_CRD_KINDS:
                problems.append(f"{where}: no schema for {key} and not an allow-listed CRD kind")
                continue
            try:
                validate_crd(doc)
            except jsonschema.ValidationError as e:
                problems.append(f"{where}: {e.message} at {list(e.absolute_path)}")
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{where}: {e.message} at {list(e.path)}")
    assert not problems, "\n".join(problems)


def test_crd_validation_catches_a_misspelt_field(rendered) -> None:
    [cluster] = of_kind(rendered["site-b-values.yaml"], "Cluster")
    validate_crd(cluster)
    broken = json.loads(json.dumps(cluster))
    broken["spec"]["replica"]["primery"] = broken["spec"]["replica"].pop("primary")
    with pytest.raises(jsonschema.ValidationError):
        validate_crd(broken)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("site.role=tertiary", "/site/role"),
        ("services.intake.replicas=0", "/services/intake/replicas"),
        ("containerSecurityContext.runAsUser=0", "/containerSecurityContext/runAsUser"),
        ("podSecurityContext.runAsNonRoot=false", "/podSecurityContext/runAsNonRoot"),
        ("services.qc.bogus=1", "bogus"),
    ],
)
def test_schema_rejects_bad_values(run_helm, setting: str, message: str) -> None:
    values = CHART / "ci" / "default-values.yaml"
    for command in (["lint", "--strict", str(CHART), "-f", str(values)], template_args([values])):
        proc = run_helm(*command, "--set", setting)
        assert proc.returncode != 0, f"{command[0]} accepted {setting}"
        assert message in proc.stdout + proc.stderr


def test_every_service_block_has_the_same_shape() -> None:
    services = yaml.safe_load((CHART / "values.yaml").read_text())["services"]
    assert set(services) == set(SERVICES)

    def shape(node: Any) -> Any:
        return (
            {k: shape(v) for k, v in node.items()}
            if isinstance(node, dict) and node
            else type(node).__name__
        )

    # env, podAnnotations and friends are free-form; compare the structure of everything else
    free = {"env", "podAnnotations", "podLabels", "nodeSelector", "tolerations", "affinity"}
    shapes = {
        name: {k: shape(v) for k, v in block.items() if k not in free}
        for name, block in services.items()
    }
    assert all(set(block) == set(services["gateway"]) for block in services.values())
    assert len({json.dumps(s, sort_keys=True) for s in shapes.values()}) == 1, shapes


# ---------------------------------------------------------------------------------------------
# workloads


@pytest.mark.parametrize("values", CI_IDS)
def test_every_container_is_hardened(rendered, values: str) -> None:
    docs = rendered[values]
    seen = set()
    for name, spec in pod_specs(docs):
        pod = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, name
        tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in containers(spec):
            where = f"{name} container {c['name']}"
            sc = {**pod, **c.get("securityContext", {})}
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("runAsUser", 0) >= 10000, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged", False) is False, where
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert any(
                m["mountPath"] == "/tmp" and m["name"] in tmp_volumes
                for m in c.get("volumeMounts", [])
            ), where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(kind, {})), (
                    f"{where} {kind}"
                )
            seen.add(name.split("/")[0])
    if values == "default-values.yaml":  # services, the migration hook, the helm test pod
        assert seen == {"Deployment", "Job", "Pod"}


@pytest.mark.parametrize("values", CI_IDS)
def test_every_deployment_has_probes(rendered, values: str) -> None:
    deployments = of_kind(rendered[values], "Deployment")
    assert len(deployments) == len(SERVICES)
    for d in deployments:
        for c in d["spec"]["template"]["spec"]["containers"]:
            where = f"{d['metadata']['name']}/{c['name']}"
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", where
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", where
            assert c["startupProbe"]["httpGet"]["path"] == "/healthz", where
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports == {"http": 8080, "metrics": 9090}, where
            assert env_of(c)["IMARC_PORT"]["value"] == "8080", where


@pytest.mark.parametrize("values", CI_IDS)
def test_pdb_exactly_for_deployments_with_more_than_one_replica(rendered, values: str) -> None:
    docs = rendered[values]
    hpa_min = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["minReplicas"]
        for h in of_kind(docs, "HorizontalPodAutoscaler")
    }
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for d in of_kind(docs, "Deployment"):
        name = d["metadata"]["name"]
        replicas = d["spec"].get("replicas", hpa_min.get(name, 1))
        if "replicas" not in d["spec"]:
            assert name in hpa_min, f"{name} has no replicas and no HPA"
        covering = [p for p in pdbs if selects(p["spec"]["selector"], pod_labels(d))]
        assert len(covering) == (1 if replicas > 1 else 0), (
            f"{name}: {replicas} replicas, {len(covering)} PDBs"
        )
    assert len(pdbs) == sum(
        1
        for d in of_kind(docs, "Deployment")
        if d["spec"].get("replicas", hpa_min.get(d["metadata"]["name"], 1)) > 1
    )


def test_pdb_branches_are_both_exercised(rendered) -> None:
    assert of_kind(rendered["default-values.yaml"], "PodDisruptionBudget")
    assert not of_kind(rendered["small-ingress-values.yaml"], "PodDisruptionBudget")


def test_hpa_for_the_api_facing_services_by_default(rendered) -> None:
    targets = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in of_kind(rendered["default-values.yaml"], "HorizontalPodAutoscaler")
    }
    assert targets == {f"imarc-{s}" for s in (*API_FACING, "deid")}
    for h in of_kind(rendered["default-values.yaml"], "HorizontalPodAutoscaler"):
        assert h["apiVersion"] == "autoscaling/v2"
        assert h["spec"]["minReplicas"] <= h["spec"]["maxReplicas"]


def test_deid_scales_on_the_depth_of_its_queue_as_well_as_cpu(rendered) -> None:
    (hpa,) = [
        h
        for h in of_kind(rendered["default-values.yaml"], "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == "imarc-deid"
    ]
    kinds = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    external = kinds["External"]["external"]
    assert external["metric"]["selector"]["matchLabels"] == {"queue": "deid.on_instance_received"}
    assert external["target"]["type"] == "AverageValue"
    assert int(external["target"]["averageValue"]) > 0


@pytest.mark.parametrize("values", CI_IDS)
def test_pods_spread_over_zones_and_nodes(rendered, values: str) -> None:
    for d in of_kind(rendered[values], "Deployment"):
        spec = d["spec"]["template"]["spec"]
        keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for c in spec["topologySpreadConstraints"]:
            assert selects(c["labelSelector"], pod_labels(d))
        [term] = spec["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert selects(term["podAffinityTerm"]["labelSelector"], pod_labels(d))


@pytest.mark.parametrize("values", CI_IDS)
def test_each_service_runs_its_own_command_and_finds_its_peers(rendered, values: str) -> None:
    docs = rendered[values]
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    for name in SERVICES:
        d = deployments[f"imarc-{name}"]
        [c] = d["spec"]["template"]["spec"]["containers"]
        assert c["args"] == ["serve", name]
        env = env_of(c)
        assert env["IMARC_HOST"]["value"] == "0.0.0.0"
        urls = {
            k: v["value"]
            for k, v in env.items()
            if re.fullmatch(r"IMARC_(AUTH|INTAKE|DEID|QC|CATALOG|DOWNLOAD)_URL", k)
        }
        if name == "gateway":
            assert set(urls) == {f"IMARC_{s.upper()}_URL" for s in SERVICES if s != "gateway"}
        for url in urls.values():
            match = re.fullmatch(r"http://([-a-z0-9]+):(\d+)", url)
            assert match, url
            host, port = match.group(1), int(match.group(2))
            # the Service of that name exists, on that port, in front of that service's pods
            assert host in services and port == services[host]["spec"]["ports"][0]["port"], url
            selector = {"matchLabels": services[host]["spec"]["selector"]}
            assert selects(selector, pod_labels(deployments[host])), url


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(rendered) -> None:
    job = named(rendered["default-values.yaml"], "Job", "-migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert job["spec"]["backoffLimit"] >= 1
    [c] = job["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["migrate", "all"]
    assert "IMARC_DATABASE_URL" in env_of(c)


@pytest.mark.parametrize("values", ["site-b-values.yaml", "small-ingress-values.yaml"])
def test_a_replica_does_not_migrate_its_read_only_database(rendered, values: str) -> None:
    assert not [d for d in rendered[values] if d["metadata"]["name"].endswith("-migrate")]


def test_helm_test_pod_checks_the_gateway_readiness(rendered) -> None:
    [pod] = of_kind(rendered["default-values.yaml"], "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    [c] = pod["spec"]["containers"]
    assert "http://imarc-gateway:8080/readyz" in c["args"]
    assert pod["spec"]["restartPolicy"] == "Never"


def test_mirror_worker_is_not_yet_available(run_helm) -> None:
    proc = run_helm(
        *template_args([CHART / "ci" / "default-values.yaml"], sets=["mirror.enabled=true"])
    )
    assert proc.returncode != 0
    assert "mirror worker" in proc.stderr


# ---------------------------------------------------------------------------------------------
# network policies


def dependency_ports(values: str) -> set[int]:
    """Ports of the database, broker and S3 endpoint a ci values file configures."""
    given = yaml.safe_load((CHART / "ci" / values).read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return {
        given.get(dep, {}).get("port", defaults[dep]["port"])
        for dep in ("database", "bus", "store")
    }


@pytest.mark.parametrize("values", CI_IDS)
def test_network_policies_default_deny_and_allow_what_each_pod_needs(rendered, values: str) -> None:
    docs = rendered[values]
    policies = of_kind(docs, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ]
    assert len(deny) == 1, "one default-deny policy"
    for w in workloads(docs):
        labels = pod_labels(w)
        assert selects(deny[0]["spec"]["podSelector"], labels), (
            f"{w['metadata']['name']} escapes the default deny"
        )
        allows = [
            p for p in policies if p is not deny[0] and selects(p["spec"]["podSelector"], labels)
        ]
        assert allows, f"{w['metadata']['name']} has no allow policy"
        egress_ports = {
            port["port"]
            for p in allows
            for rule in p["spec"].get("egress", [])
            for port in rule.get("ports", [])
        }
        assert 53 in egress_ports, f"{w['metadata']['name']} cannot resolve names"

    def policy(component: str) -> Manifest:
        return named(docs, "NetworkPolicy", f"-{component}")

    gateway = pod_labels(named(docs, "Deployment", "-gateway"))
    for name in ("intake", "deid", "qc", "catalog", "download"):
        sources = [
            peer for rule in policy(name)["spec"]["ingress"] for peer in rule.get("from", [{}])
        ]
        assert any(
            "podSelector" in p
            and "namespaceSelector" not in p
            and selects(p["podSelector"], gateway)
            for p in sources
        )
        # only the gateway (and Prometheus, on the same port) reaches a backend
        for p in sources:
            if "namespaceSelector" not in p:
                assert selects(p["podSelector"], gateway), (name, p)
        egress = {port["port"] for rule in policy(name)["spec"]["egress"] for port in rule["ports"]}
        assert dependency_ports(values) <= egress, name
    # the gateway talks to the backends, never to the database
    gw_egress = {
        port["port"] for rule in policy("gateway")["spec"]["egress"] for port in rule["ports"]
    }
    assert gw_egress == {53, 8080}


# ---------------------------------------------------------------------------------------------
# secrets


@pytest.mark.parametrize("values", CI_IDS)
def test_no_secret_value_in_any_rendered_manifest(rendered, values: str) -> None:
    docs = rendered[values]
    assert not of_kind(docs, "Secret"), (
        "the chart renders no Secret: credentials live in existing Secrets"
    )
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        for path, key, value in strings(doc):
            assert not CREDENTIAL_KEY.match(key), f"{where}{path} holds a literal credential"
            assert not URL_WITH_LITERAL_CREDENTIALS.search(value), (
                f"{where}{path} has credentials in a URL"
            )
    for name, spec in pod_specs(docs):
        for c in containers(spec):
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    # every Secret reference is one the values named (ci-secretref-*)
                    assert ref["name"].startswith("ci-secretref-"), (
                        f"{name}: {var['name']} from {ref['name']}"
                    )
                if CREDENTIAL_ENV.search(var["name"]):
                    assert ref, f"{name}: {var['name']} is not read from a Secret"
                if "://" in var.get("value", ""):
                    # URLs with credentials are assembled from secret-sourced variables only
                    assert "@" not in var["value"] or "$(" in var["value"].split("@")[0], (
                        f"{name}: {var['name']}"
                    )


@pytest.mark.parametrize(
    "values",
    [
        {"database": {"password": "hunter2-literal"}},
        {"appSecret": {"secret": "hunter2-literal"}},
        {
            "services": {
                "auth": {"env": [{"name": "IMARC_ADMIN_PASSWORD", "value": "hunter2-literal"}]}
            }
        },
        {"config": {"extraEnv": [{"name": "IMARC_SECRET", "value": "hunter2-literal"}]}},
        {
            "config": {
                "extraEnv": [
                    {"name": "IMARC_BUS_URL", "value": "amqp://imarc:hunter2-literal@mq:5672/"}
                ]
            }
        },
        {"services": {"gateway": {"podAnnotations": {"password": "hunter2-literal"}}}},
        {"httpRoute": {"annotations": {"example.org/token": "x", "token": "hunter2-literal"}}},
    ],
    ids=[
        "schema-key",
        "schema-secret",
        "env-password",
        "env-secret",
        "url-credentials",
        "annotation",
        "token",
    ],
)
def test_a_plain_credential_in_values_stops_the_render(
    run_helm, tmp_values, values: dict[str, Any]
) -> None:
    proc = run_helm(*template_args([CHART / "ci" / "default-values.yaml", tmp_values(values)]))
    assert proc.returncode != 0, "rendered a manifest from a plain-text credential"
    assert "hunter2-literal" not in proc.stdout + proc.stderr, (
        "the error message repeats the credential"
    )


def test_secret_references_in_values_are_accepted(run_helm, tmp_values) -> None:
    ref = {
        "name": "IMARC_ADMIN_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "ci-secretref-other", "key": "pw"}},
    }
    proc = run_helm(
        *template_args(
            [
                CHART / "ci" / "default-values.yaml",
                tmp_values({"services": {"auth": {"env": [ref]}}}),
            ]
        )
    )
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------------------
# two sites


def imarc_containers(docs: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in pod_specs(docs):
        for c in spec["containers"]:
            if "IMARC_SITE_ROLE" in env_of(c):
                yield name, c


@pytest.mark.parametrize(
    ("values", "site", "role"),
    [
        ("default-values.yaml", "site-a", "primary"),
        ("site-a-values.yaml", "site-a", "primary"),
        ("site-b-values.yaml", "site-b", "replica"),
        ("small-ingress-values.yaml", "lab", "replica"),
    ],
)
def test_every_imarc_container_knows_its_site(rendered, values: str, site: str, role: str) -> None:
    found = list(imarc_containers(rendered[values]))
    assert len(found) >= len(SERVICES)
    for name, c in found:
        env = env_of(c)
        assert (env["IMARC_SITE_NAME"]["value"], env["IMARC_SITE_ROLE"]["value"]) == (site, role), (
            name
        )


def test_every_imarc_container_believes_forwarding_headers_only_from_the_proxies(
    rendered,
) -> None:
    from services.common.proxies import client_address, trusted_networks

    for name, c in imarc_containers(rendered["default-values.yaml"]):
        trusted = trusted_networks(env_of(c)["IMARC_TRUSTED_PROXIES"]["value"])
        # a pod (the gateway, the ingress controller) relays the client's address ...
        assert client_address("10.42.0.7", ["198.51.100.4"], trusted) == "198.51.100.4", name
        # ... a client that connects by itself cannot claim another one
        assert client_address("198.51.100.4", ["10.9.9.9"], trusted) == "198.51.100.4", name


@pytest.mark.parametrize("values", ["site-b-values.yaml", "small-ingress-values.yaml"])
def test_the_replica_refuses_submissions(rendered, values: str) -> None:
    docs = rendered[values]
    # 1. the application refuses them: intake runs as a replica
    [intake] = named(docs, "Deployment", "-intake")["spec"]["template"]["spec"]["containers"]
    assert env_of(intake)["IMARC_SITE_ROLE"]["value"] == "replica"
    # 2. the edge never forwards them to a pod: they go to a Service that selects no pod
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    [edge] = of_kind(docs, "HTTPRoute") or of_kind(docs, "Ingress")
    resolve = route_backend if edge["kind"] == "HTTPRoute" else ingress_backend
    submission_paths = (
        yaml.safe_load((CHART / "ci" / values).read_text())
        .get("site", {})
        .get("submissionPaths", ["/api/intake"])
    )
    for prefix in submission_paths:
        for path in (prefix, prefix + "/v1/submissions"):
            backend = resolve(edge, path)
            assert backend in services, path
            assert "selector" not in services[backend]["spec"], (
                f"{path} reaches pods through {backend}"
            )
    # 3. reads still reach the gateway
    for path in READ_PATHS:
        assert resolve(edge, path) == "imarc-gateway", path
    assert resolve(edge, "/api/intakes-report") == "imarc-gateway"  # prefix is per path element


def test_the_primary_accepts_submissions(rendered) -> None:
    docs = rendered["site-a-values.yaml"]
    [route] = of_kind(docs, "HTTPRoute")
    assert route_backend(route, SUBMISSION) == "imarc-gateway"
    assert not [s for s in of_kind(docs, "Service") if "selector" not in s["spec"]]


def test_replication_resources_only_when_enabled(rendered) -> None:
    kinds = {"Cluster", "ScheduledBackup", "Federation", "Policy", "Exchange"}
    assert not [d for d in rendered["default-values.yaml"] if d["kind"] in kinds]
    assert not [
        d
        for d in rendered["default-values.yaml"]
        if d["metadata"]["name"].endswith("bucket-replication")
    ]
    for values in ("site-a-values.yaml", "site-b-values.yaml"):
        assert kinds <= {d["kind"] for d in rendered[values]}


@pytest.mark.parametrize(
    ("values", "this", "peer", "is_primary"),
    [
        ("site-a-values.yaml", "site-a", "site-b", True),
        ("site-b-values.yaml", "site-b", "site-a", False),
    ],
)
def test_replication_between_the_sites(
    rendered, values: str, this: str, peer: str, is_primary: bool
) -> None:
    docs = rendered[values]
    # PostgreSQL: CloudNativePG distributed topology, the same primary named at both sites
    [cluster] = of_kind(docs, "Cluster")
    replica = cluster["spec"]["replica"]
    assert replica["self"] == cluster["metadata"]["name"] == f"imarc-pg-{this}"
    assert replica["primary"] == "imarc-pg-site-a"
    assert replica["source"] == f"imarc-pg-{peer}"
    assert (replica["primary"] == replica["self"]) is is_primary
    assert {c["name"] for c in cluster["spec"]["externalClusters"]} == {
        "imarc-pg-site-a",
        "imarc-pg-site-b",
    }
    assert ("initdb" if is_primary else "pg_basebackup") in cluster["spec"]["bootstrap"]
    [archiver] = [p for p in cluster["spec"]["plugins"] if p["isWALArchiver"]]
    [backup] = of_kind(docs, "ScheduledBackup")
    assert backup["spec"]["cluster"]["name"] == replica["self"]
    assert backup["spec"]["pluginConfiguration"]["name"] == archiver["name"]
    # RabbitMQ: the peer's imarc.events federated into imarc.events.<peer>, not into imarc.events
    [federation] = of_kind(docs, "Federation")
    [policy] = of_kind(docs, "Policy")
    assert federation["spec"]["exchange"] == "imarc.events"
    assert federation["spec"]["ackMode"] == "on-confirm"
    assert policy["spec"]["definition"] == {"federation-upstream": federation["spec"]["name"]}
    assert policy["spec"]["applyTo"] == "exchanges"
    assert re.search(policy["spec"]["pattern"], f"imarc.events.{peer}")
    assert not re.search(policy["spec"]["pattern"], "imarc.events")
    assert not re.search(policy["spec"]["pattern"], f"imarcXevents.{peer}")
    [exchange] = of_kind(docs, "Exchange")
    assert (exchange["spec"]["name"], exchange["spec"]["type"]) == (f"imarc.events.{peer}", "topic")
    # S3: one `mc replicate add` rule per bucket, to the peer
    script = named(docs, "ConfigMap", "-bucket-replication")["data"]["replicate.sh"]
    assert "mc replicate add" in script and "--remote-bucket" in script
    job = named(docs, "Job", "-bucket-replication")
    [c] = job["spec"]["template"]["spec"]["containers"]
    env = env_of(c)
    assert env["ZONES"]["value"].split() == list(BUCKET_ZONES)
    assert env["PREFIX"]["value"] == "imarc-"
    assert f"minio.{peer}.example.org" in env["MC_HOST_peer"]["value"]


def test_a_cluster_restored_from_backup(render) -> None:
    docs = render(
        [CHART / "ci" / "site-a-values.yaml"],
        sets=[
            "replication.postgres.bootstrap.method=recovery",
            "replication.postgres.bootstrap.recovery.objectStore=imarc-pg-site-a-backups",
            "replication.postgres.bootstrap.recovery.targetTime=2026-11-20 14:00:00+00",
            "replication.postgres.backup.serverName=imarc-pg-site-a-r1",
        ],
    )
    [cluster] = of_kind(docs, "Cluster")
    validate_crd(cluster)
    recovery = cluster["spec"]["bootstrap"]["recovery"]
    origins = {c["name"]: c for c in cluster["spec"]["externalClusters"]}
    origin = origins[recovery["source"]]["plugin"]["parameters"]
    assert origin == {
        "barmanObjectName": "imarc-pg-site-a-backups",
        "serverName": "imarc-pg-site-a",
    }
    assert recovery["recoveryTarget"] == {"targetTime": "2026-11-20 14:00:00+00"}
    [archiver] = cluster["spec"]["plugins"]
    assert archiver["parameters"]["serverName"] == "imarc-pg-site-a-r1"  # a fresh WAL folder


@pytest.mark.parametrize(
    ("role", "primary"), [("replica", "imarc-pg-site-b"), ("primary", "imarc-pg-site-a")]
)
def test_site_role_and_database_primary_must_agree(run_helm, role: str, primary: str) -> None:
    proc = run_helm(
        *template_args(
            [CHART / "ci" / "site-b-values.yaml"],
            sets=[f"site.role={role}", f"replication.postgres.primary={primary}"],
        )
    )
    assert proc.returncode != 0
    assert "change both together" in proc.stderr


# ---------------------------------------------------------------------------------------------
# monitoring


def test_monitoring_needs_the_operator_api_and_the_flag(render) -> None:
    values = [CHART / "ci" / "default-values.yaml"]
    kinds = {"ServiceMonitor", "PrometheusRule"}
    with_api = {d["kind"] for d in render(values)}
    without_api = {d["kind"] for d in render(values, api_versions=())}
    flag_off = {
        d["kind"]
        for d in render(
            values,
            sets=["metrics.serviceMonitor.enabled=false", "metrics.prometheusRule.enabled=false"],
        )
    }
    assert kinds <= with_api
    assert not kinds & without_api
    assert not kinds & flag_off


def test_service_monitor_scrapes_every_service(rendered) -> None:
    docs = rendered["default-values.yaml"]
    [monitor] = of_kind(docs, "ServiceMonitor")
    scraped = {
        s["metadata"]["name"]
        for s in of_kind(docs, "Service")
        if selects(monitor["spec"]["selector"], s["metadata"]["labels"])
    }
    assert scraped == {f"imarc-{s}" for s in SERVICES}
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [
        ("metrics", "/metrics")
    ]
    for service in of_kind(docs, "Service"):
        if selects(monitor["spec"]["selector"], service["metadata"]["labels"]):
            ports = {p["name"]: p for p in service["spec"]["ports"]}
            assert ports["metrics"]["targetPort"] == "metrics", service["metadata"]["name"]


@pytest.mark.parametrize("values", CI_IDS)
def test_metrics_are_served_on_their_own_port_that_only_prometheus_reaches(
    rendered, values: str
) -> None:
    docs = rendered[values]
    for w in of_kind(docs, "Deployment"):
        [c] = [
            c for c in containers(w["spec"]["template"]["spec"]) if "IMARC_SITE_ROLE" in env_of(c)
        ]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["metrics"] == int(env_of(c)["IMARC_METRICS_PORT"]["value"]) != ports["http"]
    given = yaml.safe_load((CHART / "ci" / values).read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    scrapers = given.get("networkPolicy", {}).get(
        "metricsFrom", defaults["networkPolicy"]["metricsFrom"]
    )
    for policy in of_kind(docs, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            names = {port["port"] for port in rule.get("ports", [])}
            if "metrics" in names:
                assert names == {"metrics"} and rule["from"] == scrapers, policy["metadata"]
    # clients reach the gateway's http port only
    for route in of_kind(docs, "HTTPRoute"):
        for r in route["spec"]["rules"]:
            assert all(b["port"] == 8080 for b in r["backendRefs"])
    for ingress in of_kind(docs, "Ingress"):
        for r in ingress["spec"]["rules"]:
            for p in r["http"]["paths"]:
                assert p["backend"]["service"]["port"] == {"name": "http"}


def test_alerts_use_the_application_metrics(rendered) -> None:
    [rule] = of_kind(rendered["default-values.yaml"], "PrometheusRule")
    exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    for metric in (
        "imarc_http_requests_total",
        "imarc_http_request_duration_seconds_bucket",
        "imarc_outbox_pending",
        "imarc_events_consumed_total",
        "imarc_instances_held_total",
    ):
        assert metric in exprs


def test_dashboard_shows_the_pipeline(rendered) -> None:
    [cm] = [
        d
        for d in of_kind(rendered["default-values.yaml"], "ConfigMap")
        if d["metadata"]["name"].endswith("-dashboard")
    ]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["imarc-overview.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    text = " ".join(exprs)
    for metric in (
        "imarc_instances_received_total",
        "imarc_instances_held_total",
        "imarc_instances_deidentified_total",
        "imarc_series_published_total",
        "imarc_events_consumed_total",
        "imarc_outbox_pending",
        "imarc_downloads_total",
        "imarc_download_bytes_total",
        "imarc_http_requests_total",
        "imarc_http_request_duration_seconds_bucket",
        "rabbitmq_detailed_queue_messages_ready",
    ):
        assert metric in text, metric
    assert any("by (collection)" in e and "imarc_downloads_total" in e for e in exprs)
