"""Fixtures for the servers the integration tests talk to (all on 127.0.0.1).

Outside CI a missing server skips the tests that need it (with the reason); with
CI=true it is an error, so a skipped integration test never passes for a real one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import uuid
from collections.abc import Iterator

import asyncpg
import hypothesis  # noqa: F401  (imported early: its plugin's late import can fail)
import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
RABBIT_URL = os.environ.get("IMARC_TEST_BUS_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _need(host: str, port: int, what: str) -> None:
    if _reachable(host, port):
        return
    msg = f"{what} is not reachable on {host}:{port}"
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI needs it: .ci/run starts it)")
    pytest.skip(msg)


def need_tool(command: str, package: str) -> None:
    """A program from the system's packages that a test runs (dcmtk, tesseract, chromium):
    skipped with the reason outside CI, a failure in CI (`make test` installs them)."""
    if shutil.which(command):
        return
    msg = f"{command} is not installed (apt-get install {package}; `make test` does it)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL database for tests (created if missing); each test uses fresh schemas."""
    _need(PG_HOST, PG_PORT, "PostgreSQL")

    async def ensure() -> None:
        conn = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", database="postgres"
        )
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname='imarc_test'"):
                await conn.execute("CREATE DATABASE imarc_test")
        finally:
            await conn.close()

    # may be requested from inside a running event loop: create it from a thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, ensure()).result()
    return f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/imarc_test"


def admin_sql(sql: str) -> None:
    """Run one statement on the server's maintenance database (from any thread or loop)."""

    async def run() -> None:
        conn = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", database="postgres"
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def _fresh_database(postgres_url: str) -> Iterator[str]:
    name = "imarc_t_" + uuid.uuid4().hex[:12]
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pg_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own for one test module (services keep fixed schemas)."""
    yield from _fresh_database(postgres_url)


@pytest.fixture
def fresh_pg_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own for one test."""
    yield from _fresh_database(postgres_url)


@pytest.fixture
def unique() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    _need("127.0.0.1", 5672, "RabbitMQ")
    return RABBIT_URL


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 endpoint on loopback (moto server), as ``host:port``."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_url(s3_endpoint: str, unique: str) -> str:
    """A store URL with a fresh bucket prefix per test."""
    return f"s3://test:test@{s3_endpoint}?secure=false&prefix={unique}-&region=us-east-1"
