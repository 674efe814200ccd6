"""schemathesis over every operation of the OpenAPI, with and without a token: no answer
is a 5xx, and every answer matches the schema (body and content type)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from schemathesis.transport.requests import REQUESTS_TRANSPORT, binary_serializer

from services.common.settings import SERVICES
from tests.harness import make_settings, runtime_app, serving

pytestmark = pytest.mark.fuzz

#: Generated requests per operation and per kind of caller: bounded, so the run takes
#: about a minute on two cores (84 operations × 2 callers × this).
EXAMPLES = 4
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]

# STOW-RS bodies (multipart/related) are sent as the bytes generated, as binary bodies are.
REQUESTS_TRANSPORT.serializer("multipart/related")(binary_serializer)


def test_every_operation_answers_without_5xx_and_as_its_schema_says(tmp_path: Path) -> None:
    _, app = runtime_app(make_settings(tmp_path), SERVICES)
    with serving(app) as url:
        login = {"grant_type": "password", "username": "admin", "password": "admin-test-password"}
        token = httpx.post(f"{url}/api/auth/token", data=login, timeout=120).json()["access_token"]
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        failures: list[str] = []
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            for caller, headers in (
                ("anonymous", {}),
                ("admin", {"Authorization": f"Bearer {token}"}),
            ):
                failures += _run(operation, url, headers, caller)
        assert operations > 50
        assert not failures, "\n\n".join(failures[:20])


def _run(operation: object, url: str, headers: dict[str, str], caller: str) -> list[str]:
    found: list[str] = []

    @given(case=operation.as_strategy())  # type: ignore[attr-defined]
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        try:
            case.call_and_validate(base_url=url, headers=headers, checks=CHECKS, timeout=30)
        except (Exception, BaseExceptionGroup) as e:  # a failed check: report them all at the end
            found.append(f"{caller} {case.method} {case.formatted_path}: {str(e)[:1500]}")

    check()
    return found
