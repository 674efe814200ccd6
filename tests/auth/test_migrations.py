"""The hand-written migration creates exactly the tables of models.py, on SQLite and on
PostgreSQL; and the auth service works on PostgreSQL (its own schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from services.auth.bootstrap import spec
from services.auth.models import metadata
from services.common.db import Database
from tests.auth.conftest import ADMIN, bearer, claims_of, login, refresh, register
from tests.harness import platform


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, metadata))


async def _migrated_diff(db: Database) -> list[Any]:
    await db.migrate(spec().migrations)
    await db.migrate(spec().migrations)  # idempotent
    async with db.engine.connect() as conn:
        return await conn.run_sync(_diff)


async def test_migration_matches_the_models_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}", schema="auth")
    try:
        assert await _migrated_diff(db) == []
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_migration_matches_the_models_on_postgres(pg_url: str) -> None:
    db = Database(pg_url, schema="auth")
    try:
        assert await _migrated_diff(db) == []
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_auth_on_postgres(tmp_path: Path, pg_url: str) -> None:
    async with platform(tmp_path, services=["auth"], database_url=pg_url) as p:
        admin = bearer((await login(p.client, *ADMIN))["access_token"])
        await register(p.client, "pia", "pia-password-1")
        tokens = await login(p.client, "pia", "pia-password-1")
        await p.client.post(
            "/api/auth/me/licences/CC-BY-4.0", headers=bearer(tokens["access_token"])
        )
        r = await p.client.post(
            "/api/auth/users/pia/grants", headers=admin, json={"collection": "Lim-A"}
        )
        assert r.status_code == 201
        again = (await refresh(p.client, tokens["refresh_token"])).json()
        c = claims_of(again["access_token"])
        assert c["lic"] == ["CC-BY-4.0"] and c["grants"] == ["Lim-A"]
        assert (await refresh(p.client, tokens["refresh_token"])).status_code == 401  # reuse
        for _ in range(5):
            await p.client.post(
                "/api/auth/token",
                data={"grant_type": "password", "username": "pia", "password": "wrong-password"},
            )
        locked = await p.client.post(
            "/api/auth/token",
            data={"grant_type": "password", "username": "pia", "password": "pia-password-1"},
        )
        assert locked.status_code == 429
        last = await p.client.delete(
            "/api/auth/users/admin/roles", headers=admin, params={"role": "admin"}
        )
        assert last.status_code == 409
        kid = (await p.client.post("/api/auth/keys/rotate", headers=admin)).json()["kid"]
        assert kid in {
            k["kid"] for k in (await p.client.get("/api/auth/.well-known/jwks.json")).json()["keys"]
        }
    # a restart finds the same keys, admin and accounts in the auth schema
    async with platform(tmp_path, services=["auth"], database_url=pg_url) as p:
        tokens = await login(p.client, *ADMIN)
        assert (
            await p.client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
        ).is_success
        assert jwt.get_unverified_header(tokens["access_token"])["kid"] == kid
