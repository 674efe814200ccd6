"""deploy/: the image recipe and the single-machine compose file (checked statically: no
container engine is needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .conftest import ROOT

pytestmark = pytest.mark.helm

DEPLOY = ROOT / "deploy"
SERVICES = ("intake", "deid", "qc", "catalog", "download", "auth")
# compose-spec's JSON schema, stored (its source and commit are in $comment)
COMPOSE_SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
INTERPOLATED_REQUIRED = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]*\}$")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, heredoc bodies skipped."""
    out: list[tuple[str, str]] = []
    lines = iter((DEPLOY / "Dockerfile").read_text().splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\"):
            line = line[:-1] + " " + next(lines).strip()
        word, _, args = line.strip().partition(" ")
        out.append((word.upper(), args.strip()))
        heredoc = re.search(r"<<-?'?([A-Z]+)'?", args)
        if heredoc:
            for body in lines:
                if body.strip() == heredoc.group(1):
                    break
    return out


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    steps = dockerfile_instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    runtime = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    users = [a for w, a in runtime if w == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    assert ("ENTRYPOINT", '["imarc"]') in runtime
    cmd = json.loads(next(a for w, a in runtime if w == "CMD"))
    assert cmd[0] == "up"


def test_dockerfile_installs_dependencies_before_copying_the_source() -> None:
    steps = dockerfile_instructions()
    copies = [(i, a) for i, (w, a) in enumerate(steps) if w == "COPY" and "--from" not in a]
    deps = next(i for i, a in copies if "pyproject.toml" in a and "constraints.txt" in a)
    source = next(i for i, a in copies if a.split()[0] in ("services", "imarc", "."))
    installs = [i for i, (w, a) in enumerate(steps) if w == "RUN" and "pip install" in a]
    assert deps < installs[0] < source, "the dependency layer must not depend on the source"
    assert "-c constraints.txt" in steps[installs[0]][1]


def test_compose_file_follows_the_compose_specification() -> None:
    jsonschema.Draft7Validator(COMPOSE_SCHEMA).validate(compose())
    broken = compose()
    broken["services"]["intake"]["read_onyl"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(COMPOSE_SCHEMA).validate(broken)


def test_compose_runs_one_container_per_service_plus_gateway_and_migrate() -> None:
    services = compose()["services"]
    assert {"postgres", "rabbitmq", "minio"} <= set(services)
    for name in (*SERVICES, "gateway"):
        assert services[name]["command"] == ["serve", name]
    assert services["migrate"]["command"] == ["migrate", "all"]
    for name in SERVICES:
        after = services[name]["depends_on"]["migrate"]["condition"]
        assert after == "service_completed_successfully", name
    gateway_env = services["gateway"]["environment"]
    for name in ("intake", "deid", "qc", "catalog", "download"):
        assert gateway_env[f"IMARC_{name.upper()}_URL"] == f"http://{name}:8080"
    assert not {"IMARC_DATABASE_URL", "IMARC_SECRET"} & set(gateway_env), (
        "gateway needs no credentials"
    )
    assert services["gateway"]["ports"] == ["${IMARC_GATEWAY_PORT:-8080}:8080"]


def test_compose_containers_are_hardened() -> None:
    services = compose()["services"]
    for name in (*SERVICES, "gateway", "migrate"):
        s = services[name]
        assert s["user"] == "10001:10001", name
        assert s["read_only"] is True, name
        assert s["cap_drop"] == ["ALL"], name
        assert any(t.startswith("/tmp") for t in s["tmpfs"]), name


def test_compose_takes_every_credential_from_the_environment() -> None:
    secret_word = re.compile(r"(?i)(password|pass|secret|access_key|secret_key)$")
    for name, service in compose()["services"].items():
        for var, value in (service.get("environment") or {}).items():
            value = str(value)
            if secret_word.search(var):
                assert INTERPOLATED_REQUIRED.match(value), f"{name}: {var} must be ${{VAR:?...}}"
            for user_info in re.findall(r"://(.*?)@[a-z]", value):
                # the password in a URL is a required ${VAR:?...} and nothing else
                assert all(
                    INTERPOLATED_REQUIRED.match(v) for v in re.findall(r"\$\{[^}]*\}", user_info)
                )
                literal = re.sub(r"\$\{[^}]*\}", "", user_info)
                assert literal.partition(":")[2] == "", f"{name}: {var} has a literal password"
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()
