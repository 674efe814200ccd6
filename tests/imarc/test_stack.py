"""`make up` (`imarc stack`) against a database another deployment left behind (another
checkout, or a deleted var/stack/): it says what to run instead of crashing, and
`imarc stack --reset` starts afresh."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from imarc.runtime import Runtime
from imarc.stack import (
    Stack,
    StackError,
    database_mark,
    fingerprint,
    free_port,
    mark_database,
)
from services.common.settings import SERVICES
from tests import harness

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def run_auth(data_dir: Path, database_url: str, secret: str) -> None:
    """Start and stop the auth service of a deployment whose secret is ``secret``."""
    settings = harness.make_settings(data_dir, database_url=database_url, secret=SecretStr(secret))

    async def once() -> None:
        runtime = Runtime(settings, ["auth"])
        await runtime.start()
        await runtime.stop()

    asyncio.run(once())


def stack_on(tmp_path: Path, database_url: str, rabbit_url: str, *, reset: bool = False) -> Stack:
    env = {
        "IMARC_DATABASE_URL": database_url,
        "IMARC_BUS_URL": rabbit_url,
        "IMARC_BUS_PREFIX": f"{tmp_path.name}.",
        "IMARC_STORE_URL": f"file://{tmp_path / 'objects'}",
        "IMARC_DEID_WORKERS": "1",
    }
    ports = {name: free_port() for name in SERVICES}
    return Stack(tmp_path / "stack", env=env, ports=ports, gateway_port=free_port(), reset=reset)


def test_a_database_of_another_deployment_is_named_with_what_to_run(
    tmp_path: Path, fresh_pg_url: str, rabbit_url: str
) -> None:
    run_auth(tmp_path / "other", fresh_pg_url, "the-other-checkouts-secret-0123456789")

    stack = stack_on(tmp_path, fresh_pg_url, rabbit_url)
    try:
        with pytest.raises(StackError) as refused:
            stack.start(timeout=60)
    finally:
        stack.stop()
    message = str(refused.value)
    assert "holds the data of another imarc deployment" in message
    assert "imarc stack --reset" in message and "IMARC_DATABASE_URL" in message
    assert "Traceback" not in message


def test_a_marked_database_is_refused_before_anything_starts(
    tmp_path: Path, fresh_pg_url: str, rabbit_url: str
) -> None:
    asyncio.run(mark_database(fresh_pg_url, fingerprint("another-deployments-secret")))
    stack = stack_on(tmp_path, fresh_pg_url, rabbit_url)
    try:
        with pytest.raises(StackError, match="imarc stack --reset"):
            stack.start(timeout=60)
        assert stack.procs == {}, "nothing is started against another deployment's data"
    finally:
        stack.stop()


def test_reset_deletes_the_other_deployments_data(
    tmp_path: Path, fresh_pg_url: str, rabbit_url: str
) -> None:
    run_auth(tmp_path / "other", fresh_pg_url, "the-other-checkouts-secret-0123456789")
    asyncio.run(mark_database(fresh_pg_url, fingerprint("the-other-checkouts-secret-0123456789")))

    stack = stack_on(tmp_path, fresh_pg_url, rabbit_url, reset=True)
    try:
        stack.prepare()
    finally:
        stack.stop()
    assert asyncio.run(database_mark(fresh_pg_url)) is None
    # this deployment's auth starts on the emptied database with its own secret
    run_auth(tmp_path / "ours", fresh_pg_url, stack.env["IMARC_SECRET"])
