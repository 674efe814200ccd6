"""Who may call which auth endpoint: one table, persona × endpoint → status.

Personas: anonymous, a registered user, the manager of collection ``Coll-M`` (whose
licence is TCIA-Restricted), an admin. Each persona acts on its own target account so
that one row's effect (a disable, a reset) cannot change another row's answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.auth.conftest import ADMIN, bearer, collection_known, login, register
from tests.harness import Platform, platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

PERSONAS = ("anonymous", "user", "manager", "admin")


@dataclass
class World:
    p: Platform
    headers: dict[str, dict[str, str]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with platform(tmp_path_factory.mktemp("auth"), services=["auth"]) as p:
        await collection_known(p, "Coll-M", "TCIA-Restricted")
        admin = bearer((await login(p.client, *ADMIN))["access_token"])
        for name in ("plain", "boss", *(f"target-{x}" for x in PERSONAS)):
            await register(p.client, name, f"{name}-password-1")
        r = await p.client.post(
            "/api/auth/users/boss/roles",
            headers=admin,
            json={"role": "manager", "collection": "Coll-M"},
        )
        assert r.status_code == 201
        headers = {
            "anonymous": {},
            "user": bearer((await login(p.client, "plain", "plain-password-1"))["access_token"]),
            "manager": bearer((await login(p.client, "boss", "boss-password-1"))["access_token"]),
            "admin": admin,
        }
        yield World(p, headers)


# (method, path, json body, {persona: status}); {t} is the persona's target account,
# {n} a name unique to the persona.
A, U, M, D = PERSONAS
TABLE: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/api/auth/.well-known/jwks.json", None, {A: 200, U: 200, M: 200, D: 200}),
    ("GET", "/api/auth/licences", None, {A: 200, U: 200, M: 200, D: 200}),
    ("GET", "/api/auth/policy", None, {A: 200, U: 200, M: 200, D: 200}),
    ("GET", "/api/auth/me", None, {A: 401, U: 200, M: 200, D: 200}),
    ("GET", "/api/auth/me/licences", None, {A: 401, U: 200, M: 200, D: 200}),
    ("POST", "/api/auth/me/licences/CC-BY-4.0", None, {A: 401, U: 200, M: 200, D: 200}),
    (
        "POST",
        "/api/auth/users",
        {"username": "{n}", "password": "long-password-1", "roles": [{"role": "curator"}]},
        {A: 403, U: 403, M: 403, D: 201},
    ),
    ("GET", "/api/auth/users", None, {A: 401, U: 403, M: 403, D: 200}),
    ("GET", "/api/auth/users/{t}", None, {A: 401, U: 403, M: 403, D: 200}),
    ("POST", "/api/auth/users/{t}/password", None, {A: 401, U: 403, M: 403, D: 200}),
    (
        "POST",
        "/api/auth/users/{t}/roles",
        {"role": "submitter", "collection": "Coll-M"},
        {A: 401, U: 403, M: 201, D: 201},
    ),
    (
        "POST",
        "/api/auth/users/{t}/roles",
        {"role": "curator", "collection": "Other"},
        {A: 401, U: 403, M: 403, D: 201},
    ),
    (
        "POST",
        "/api/auth/users/{t}/roles",
        {"role": "manager", "collection": "Coll-M"},
        {A: 401, U: 403, M: 403, D: 201},
    ),
    ("POST", "/api/auth/users/{t}/roles", {"role": "admin"}, {A: 401, U: 403, M: 403, D: 201}),
    (
        "DELETE",
        "/api/auth/users/{t}/roles?role=submitter&collection=Coll-M",
        None,
        {A: 401, U: 403, M: 204, D: 204},
    ),
    (
        "POST",
        "/api/auth/users/{t}/grants",
        {"collection": "Coll-M"},
        {A: 401, U: 403, M: 201, D: 201},
    ),
    (
        "POST",
        "/api/auth/users/{t}/grants",
        {"collection": "Other"},
        {A: 401, U: 403, M: 403, D: 201},
    ),
    ("DELETE", "/api/auth/users/{t}/grants/Coll-M", None, {A: 401, U: 403, M: 204, D: 204}),
    ("GET", "/api/auth/licence-requests", None, {A: 401, U: 403, M: 200, D: 200}),
    (
        "POST",
        "/api/auth/users/{t}/licences/TCIA-Restricted/approve",
        None,
        {A: 401, U: 403, M: 200, D: 200},
    ),
    (
        "POST",
        "/api/auth/users/{t}/licences/NCTN-Data-Archive/approve",
        None,
        {A: 401, U: 403, M: 403, D: 200},
    ),
    (
        "POST",
        "/api/auth/licences",
        {"id": "{n}", "name": "A licence"},
        {A: 401, U: 403, M: 403, D: 201},
    ),
    (
        "PATCH",
        "/api/auth/licences/CC-BY-3.0",
        {"text": "new text"},
        {A: 401, U: 403, M: 403, D: 200},
    ),
    ("DELETE", "/api/auth/licences/NCTN-Data-Archive", None, {A: 401, U: 403, M: 403, D: 409}),
    ("POST", "/api/auth/clients", {"name": "tool"}, {A: 401, U: 403, M: 403, D: 201}),
    ("GET", "/api/auth/clients", None, {A: 401, U: 403, M: 403, D: 200}),
    ("GET", "/api/auth/keys", None, {A: 401, U: 403, M: 403, D: 200}),
    ("GET", "/api/auth/audit", None, {A: 401, U: 403, M: 403, D: 200}),
    ("POST", "/api/auth/users/{t}/disable", None, {A: 401, U: 403, M: 403, D: 200}),
    ("POST", "/api/auth/users/{t}/enable", None, {A: 401, U: 403, M: 403, D: 200}),
    ("POST", "/api/auth/keys/rotate", None, {A: 401, U: 403, M: 403, D: 200}),
]

CASES = [
    pytest.param(
        method,
        path,
        body,
        persona,
        want[persona],
        id=f"{persona}:{method} {path}" + (f" {body}" if body else ""),
    )
    for method, path, body, want in TABLE
    for persona in PERSONAS
]


def _fill(value: Any, persona: str) -> Any:
    if isinstance(value, str):
        return value.replace("{t}", f"target-{persona}").replace("{n}", f"new-{persona}")
    if isinstance(value, dict):
        return {k: _fill(v, persona) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, persona) for v in value]
    return value


@pytest.mark.parametrize(("method", "path", "body", "persona", "status"), CASES)
async def test_auth_endpoint_permissions(
    world: World, method: str, path: str, body: Any, persona: str, status: int
) -> None:
    r = await world.p.client.request(
        method,
        _fill(path, persona),
        json=_fill(body, persona),
        headers=world.headers[persona],
    )
    assert r.status_code == status, r.text
    if status in (401, 403):
        assert r.json()["detail"].endswith(("again", "access", "token")), r.json()
