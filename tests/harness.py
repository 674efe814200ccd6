"""Runs services in-process for tests, with the same wiring as `imarc up`.

``platform()`` starts a Runtime on a temporary data dir (embedded adapters unless URLs
are given) and yields an httpx client on its app; ``mint()`` signs tokens with a test key
when the auth service is not part of the run.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from prometheus_client import generate_latest
from pydantic import SecretStr

from imarc.runtime import Runtime
from services.common.security import StaticKeys
from services.common.settings import SERVICES, Settings

TEST_KID = "test-key"


@cache
def _test_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def static_jwks() -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(_test_key().public_key(), as_dict=True)
    jwk.update(kid=TEST_KID, use="sig", alg="RS256")
    return {"keys": [jwk]}


def mint(
    sub: str = "tester",
    *,
    roles: Sequence[str] = (),
    coll: dict[str, list[str]] | None = None,
    lic: Sequence[str] = (),
    grants: Sequence[str] = (),
    sites: Sequence[str] = (),
    ttl: int = 3600,
    **extra: Any,
) -> str:
    """A token signed with the test key (valid when the run has no auth service)."""
    now = int(time.time())
    claims = {
        "sub": sub,
        "iss": "imarc",
        "aud": "imarc",
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "typ": "access",
        "roles": list(roles),
        "coll": coll or {},
        "lic": list(lic),
        "grants": list(grants),
        "sites": list(sites),
        **extra,
    }
    return jwt.encode(claims, _test_key(), algorithm="RS256", headers={"kid": TEST_KID})


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_headers() -> dict[str, str]:
    return auth_header(mint("admin", roles=["admin"]))


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        data_dir=data_dir,
        secret=SecretStr("test-secret-0123456789abcdef"),
        admin_username="admin",
        admin_password=SecretStr("admin-test-password"),
        store_fsync=False,
        bus_retry_base_seconds=0.05,
        bus_max_attempts=3,
        deid_workers=1,
    )
    base.update(overrides)
    return Settings(**base)


@dataclass
class Platform:
    runtime: Runtime
    client: httpx.AsyncClient
    settings: Settings

    async def wait_until(
        self, check: Callable[[], Awaitable[bool]], timeout: float = 30, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    @staticmethod
    def metrics() -> str:
        """What Prometheus would scrape from this process (on IMARC_METRICS_PORT)."""
        return generate_latest().decode()


def runtime_app(settings: Settings, services: Sequence[str]) -> tuple[Runtime, Any]:
    """A Runtime of ``services`` and its app (not started). Without the auth service, tokens
    come from :func:`mint`."""
    runtime = Runtime(settings, services)
    if "auth" not in services:
        runtime.verifier.keys = StaticKeys(static_jwks)
    app = runtime.app()
    if "auth" not in services:
        app.state.is_revoked = None  # no auth service to follow
    return runtime, app


@asynccontextmanager
async def platform(
    data_dir: Path, services: Sequence[str] = SERVICES, **overrides: Any
) -> AsyncIterator[Platform]:
    settings = make_settings(data_dir, **overrides)
    runtime, app = runtime_app(settings, services)
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://imarc.test") as client:
            yield Platform(runtime, client, settings)
    finally:
        await runtime.stop()


def free_port() -> int:
    """A loopback port no one listens on now (for a server the test starts itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Any, port: int = 0) -> Iterator[str]:
    """Serve an ASGI app on a loopback port (``port``, or a free one) in a thread of its own,
    with its lifespan, for tests that need a real socket; yields its base URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(30)
        sock.close()
