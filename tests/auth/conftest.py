"""Helpers for the auth tests: log in through the real token endpoint, register users."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from services.auth import crypto
from services.auth.consumers import on_collection_updated
from services.common.events import CollectionUpdated, Licence
from tests.harness import Platform, platform

ADMIN = ("admin", "admin-test-password")


@pytest.fixture(scope="session", autouse=True)
def cheap_argon2() -> Iterator[None]:
    """Argon2id with the cheapest parameters: same algorithm and code path, without
    64 MiB and ~0.1-0.5 s per hash on a shared 2-core machine (test_domain checks the
    production parameters)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crypto, "hasher", lambda: PasswordHasher.from_parameters(CHEAPEST))
        crypto._dummy_hash.cache_clear()
        yield
    crypto._dummy_hash.cache_clear()


def from_address(ip: str) -> dict[str, str]:
    """Headers of a request relayed by the proxy on loopback for a client at ``ip``."""
    return {"X-Forwarded-For": ip}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    """The payload, unverified (the tests check what the server put in it)."""
    out: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return out


async def token_reply(
    client: httpx.AsyncClient,
    username: str,
    password: str,
    *,
    path: str = "/nbia-api/oauth/token",
    headers: dict[str, str] | None = None,
    **form: str,
) -> httpx.Response:
    return await client.post(
        path,
        headers=headers,
        data={"grant_type": "password", "username": username, "password": password, **form},
    )


async def login(client: httpx.AsyncClient, username: str, password: str, **form: str) -> dict:  # type: ignore[type-arg]
    r = await token_reply(client, username, password, **form)
    assert r.status_code == 200, r.text
    reply: dict[str, Any] = r.json()
    return reply


async def admin_token(client: httpx.AsyncClient) -> str:
    return str((await login(client, *ADMIN))["access_token"])


async def register(
    client: httpx.AsyncClient, username: str, password: str | None = None, **extra: Any
) -> dict[str, Any]:
    r = await client.post(
        "/api/auth/users",
        json={"username": username, "password": password or f"{username}-password-1", **extra},
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def refresh(client: httpx.AsyncClient, refresh_token: str, **form: str) -> httpx.Response:
    return await client.post(
        "/nbia-api/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, **form},
    )


async def collection_known(p: Platform, name: str, licence: str, access: str = "limited") -> None:
    """auth takes in intake's collection.updated for ``name`` the way its consumer does
    from the bus (inbox and all), without waiting on the bus: tests/common and tests/e2e
    cover delivery."""
    event = CollectionUpdated(name=name, licence=Licence(id=licence), access=access)  # type: ignore[arg-type]
    consume = p.runtime.contexts["auth"].messaging.idempotent(
        "auth.on_collection_updated", on_collection_updated
    )
    await consume(event.event("/test/intake", subject=name))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def p(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """The auth service alone, one per test module (modules share nothing), behind a proxy
    on loopback: tests name the client's address in X-Forwarded-For."""
    async with platform(
        tmp_path_factory.mktemp("auth"), services=["auth"], trusted_proxies="127.0.0.1"
    ) as plat:
        yield plat
