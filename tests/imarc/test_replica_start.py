"""A replica site started on an empty database says what is wrong instead of crashing:
embedded (SQLite, which nothing replicates) it refuses to start; on PostgreSQL it waits for
the primary's replicated tables and keys, then serves them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imarc.cli import app
from imarc.runtime import Runtime
from tests.harness import make_settings


def test_an_embedded_replica_refuses_to_start(tmp_path: Path) -> None:
    env = {"IMARC_SITE_ROLE": "replica", "IMARC_DATABASE_URL": ""}
    result = CliRunner().invoke(app, ["up", "--data-dir", str(tmp_path), "--no-demo"], env=env)
    assert result.exit_code == 1
    assert "set IMARC_DATABASE_URL to its standby" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["serve", "auth"], env=env)
    assert result.exit_code == 1 and "streaming replication" in result.output


@pytest.mark.postgres
async def test_a_replica_waits_for_the_primary_database(
    tmp_path: Path, fresh_pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    replica = Runtime(
        make_settings(tmp_path / "b", database_url=fresh_pg_url, site_role="replica"), ["auth"]
    )
    caplog.set_level(logging.WARNING, logger="imarc.auth")
    starting = asyncio.create_task(replica.start())
    try:
        for _ in range(200):  # bounded: until it has said what it waits for
            if "has no signing keys table" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert "IMARC_DATABASE_URL must name the standby" in caplog.text
        assert not starting.done()
        # the primary (on the database the replica reads) migrates and makes its key
        primary = Runtime(make_settings(tmp_path / "a", database_url=fresh_pg_url), ["auth"])
        await primary.start()
        await primary.stop()
        await asyncio.wait_for(starting, 60)
        jwks = replica.deps["auth"].keyring.jwks()
        assert len(jwks["keys"]) == 1
    finally:
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await replica.stop()
