"""Distributed mode under faults: while instances are submitted, each service process is
SIGKILLed in turn and started again, the broker's app is stopped and started (a RabbitMQ
node of the test's own), and the deployment's PostgreSQL connections are terminated. The
client retries what failed. Afterwards every instance is published exactly
once, nothing waits in an outbox or a dead-letter queue, every service is ready again,
the stage counts agree, and no process outlived the one that started it."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from imarc.stack import Stack
from services.common.settings import SERVICES
from tests.faults import checks, rabbit_node
from tests.faults.rabbit_node import RabbitNode
from tests.stacks import running_stack

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

N = 30


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RabbitNode]:
    if not rabbit_node.available():
        pytest.skip("needs rabbitmq-server (Debian's package) for a node of the test's own")
    n = RabbitNode(tmp_path / "rabbit")
    try:
        n.start()
        yield n
    finally:
        n.shutdown()


@pytest.fixture
def stack(tmp_path: Path, fresh_pg_url: str, node: RabbitNode) -> Iterator[Stack]:
    env = {
        "IMARC_DATABASE_URL": fresh_pg_url,
        "IMARC_BUS_URL": node.url,
        "IMARC_BUS_PREFIX": f"faults-{uuid.uuid4().hex[:8]}.",
        "IMARC_STORE_URL": f"file://{tmp_path / 'objects'}",
        "IMARC_BUS_RETRY_BASE_SECONDS": "0.1",
        "IMARC_DEID_WORKERS": "2",
    }
    with running_stack(tmp_path / "stack", env, tail=3000) as s:
        yield s


def kill_and_restart(stack: Stack, name: str) -> None:
    proc = stack.procs[name]
    children = checks.descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    checks.no_orphans(children)
    port = stack.gateway_port if name == "gateway" else stack.ports[name]
    stack._spawn(name, port)
    checks.wait_until(
        f"{name} to be ready again",
        lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200,
        timeout=90,
    )


async def terminate_connections(url: str) -> int:
    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host, port=u.port or 5432, user=u.username, database="postgres"
    )
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            u.database,
        )
        return len(rows)
    finally:
        await conn.close()


async def unsent_outbox_rows(url: str) -> int:
    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host, port=u.port or 5432, user=u.username, database=u.database
    )
    try:
        unsent = 0
        for name in SERVICES:
            query = f'SELECT COUNT(*) FROM "{name}".outbox WHERE published_at IS NULL'
            unsent += int(await conn.fetchval(query))
        return unsent
    finally:
        await conn.close()


def dead_letters(stack: Stack) -> dict[str, int]:
    """Non-empty dead-letter queues, as `imarc dlq list` shows them to the operator."""
    listing = subprocess.run(
        [sys.executable, "-m", "imarc", "dlq", "list"],
        env={**stack.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.strip("│┃ ").split("│") for line in listing.splitlines() if "│" in line]
    counts = {q.strip(): int(n) for q, n in (r for r in rows if len(r) == 2)}
    assert "deid.on_instance_received" in counts, listing
    return {q: n for q, n in counts.items() if n}


def test_services_killed_broker_stopped_and_connections_cut_mid_ingest_lose_nothing(
    stack: Stack, node: RabbitNode
) -> None:
    creds = json.loads((stack.data_dir / "admin-credentials.json").read_text())
    token = {"headers": checks.login(stack.url, creds)}
    checks.retrying(
        "creating the collection",
        lambda: httpx.post(
            f"{stack.url}/api/intake/collections",
            json={"name": checks.COLLECTION, "licence": "CC-BY-4.0"},
            headers=token["headers"],
            timeout=30,
        ),
    )
    files = checks.files(N)
    batches = [files[i : i + 5] for i in range(0, N, 5)]
    failures: list[BaseException] = []

    def client() -> None:
        try:
            for batch in batches:
                checks.submit(stack.url, lambda: token["headers"], batch)
                time.sleep(0.2)
        except BaseException as e:  # reported by the test below
            failures.append(e)

    sender = threading.Thread(target=client)
    sender.start()
    for name in ("intake", "deid", "qc", "catalog", "download", "gateway"):
        kill_and_restart(stack, name)
    node.stop_app()  # a broker outage: relays and consumers lose their connections
    time.sleep(2)
    node.start_app()
    assert asyncio.run(terminate_connections(stack.env["IMARC_DATABASE_URL"])) > 0
    kill_and_restart(stack, "auth")  # tokens are signed with keys auth keeps in its database
    token["headers"] = checks.login(stack.url, creds)
    sender.join(300)
    assert not failures, failures

    def status() -> dict[str, int]:
        return checks.status(stack.url, checks.login(stack.url, creds))

    checks.wait_until(f"all {N} instances de-identified", lambda: status()["deidentified"] == N)
    headers = checks.login(stack.url, creds)
    checks.publish_all(stack.url, headers, Path(stack.env["IMARC_STORE_URL"][len("file://") :]), N)
    final = status()
    assert final["received"] == N and final["held"] == 0 and final["published"] == N, final
    url = stack.env["IMARC_DATABASE_URL"]
    checks.wait_until("every outbox to be sent", lambda: asyncio.run(unsent_outbox_rows(url)) == 0)
    assert dead_letters(stack) == {}
    for name, port in {**stack.ports, "gateway": stack.gateway_port}.items():
        r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert r.status_code == 200, f"{name} is not ready: {r.text}"
