"""End to end in distributed mode: one `imarc serve` process per service plus the gateway,
against the real PostgreSQL and RabbitMQ and an S3 endpoint (moto) on loopback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imarc.stack import Stack
from tests.e2e.flow import COLLECTION, login, poll, run_flow
from tests.stacks import running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.s3]


@pytest.fixture
def stack(tmp_path: Path, fresh_pg_url: str, rabbit_url: str) -> Iterator[Stack]:
    run = uuid.uuid4().hex[:8]
    env = {
        "IMARC_DATABASE_URL": fresh_pg_url,
        "IMARC_BUS_URL": rabbit_url,
        "IMARC_BUS_PREFIX": f"e2e-{run}.",
        "IMARC_STORE_URL": "",
        "IMARC_BUS_RETRY_BASE_SECONDS": "0.1",
        "IMARC_REVOCATION_REFRESH_SECONDS": "0.5",
    }
    with running_stack(tmp_path / "stack", env, tail=4000) as s:
        yield s


async def test_submit_to_download_distributed(stack: Stack) -> None:
    creds = json.loads((stack.data_dir / "admin-credentials.json").read_text())
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        admin = await login(client, creds["username"], creds["password"])
        await run_flow(client, admin)

        # a logout reaches the other services' processes, not only auth's
        session = await login(client, creds["username"], creds["password"])
        status = f"/api/qc/collections/{COLLECTION}/status"
        assert (await client.get(status, headers=session)).status_code == 200
        assert (await client.post("/api/auth/logout", headers=session)).status_code == 200

        async def refused() -> bool:
            return (await client.get(status, headers=session)).status_code == 401

        assert await poll(refused, timeout=10, what="qc to refuse the logged-out token")
        assert (await client.get(status, headers=admin)).status_code == 200
