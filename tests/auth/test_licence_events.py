"""auth announces every licence it creates, changes, deletes or seeds (licence.updated,
through its outbox); and a replica site's auth writes nothing at start."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete, select, update

from services.auth.bootstrap import Auth
from services.auth.domain import SEED_LICENCES
from services.auth.models import Licence, SigningKey, metadata, outbox
from services.auth.tokens import utcnow
from services.common.db import Database
from services.common.events import Event, LicenceUpdated
from tests.auth.conftest import ADMIN, bearer, login, register
from tests.harness import Platform, platform

LICENCES = "/api/auth/licences"
JWKS = "/api/auth/.well-known/jwks.json"


async def announced(p: Platform) -> list[LicenceUpdated]:
    """The licence.updated events auth staged in its outbox, oldest first."""
    async with p.runtime.contexts["auth"].db.session() as s:
        bodies = (await s.execute(select(outbox.c.body).order_by(outbox.c.seq))).scalars().all()
    found = [Event.model_validate(b) for b in bodies]
    return [e.payload(LicenceUpdated) for e in found if e.type == LicenceUpdated.TYPE]


async def test_seeded_licences_are_announced_once(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["auth"]) as p:
        first = await announced(p)
        assert [x.id for x in first] == [seed.id for seed in SEED_LICENCES]
        restricted = next(x for x in first if x.id == "TCIA-Restricted")
        assert restricted.requires_approval and not restricted.commercial_use
        assert restricted.name == "TCIA Restricted License" and not restricted.deleted
    async with platform(tmp_path, services=["auth"]) as p:  # a restart seeds nothing
        assert len(await announced(p)) == len(SEED_LICENCES)


async def test_created_changed_and_deleted_licences_are_announced(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["auth"]) as p:
        admin = bearer((await login(p.client, *ADMIN))["access_token"])
        seeded = len(await announced(p))
        body = {"id": "Site-DUA-1", "name": "Site DUA", "url": "https://dua.example.org/1"}
        assert (await p.client.post(LICENCES, json=body, headers=admin)).status_code == 201
        assert (await p.client.post(LICENCES, json=body, headers=admin)).status_code == 409
        r = await p.client.patch(
            f"{LICENCES}/Site-DUA-1", json={"commercial_use": True}, headers=admin
        )
        assert r.status_code == 200
        r = await p.client.delete(f"{LICENCES}/Site-DUA-1", headers=admin)
        assert r.status_code == 204
        # refused changes announce nothing: in use, unknown, not an admin
        await p.client.post("/api/auth/me/licences/CC-BY-3.0", headers=admin)
        assert (await p.client.delete(f"{LICENCES}/CC-BY-3.0", headers=admin)).status_code == 409
        assert (await p.client.patch(f"{LICENCES}/Nope", json={}, headers=admin)).status_code == 404
        await register(p.client, "ulla", "ulla-password-1")
        user = bearer((await login(p.client, "ulla", "ulla-password-1"))["access_token"])
        r = await p.client.post(LICENCES, json={**body, "id": "X"}, headers=user)
        assert r.status_code == 403

        events = (await announced(p))[seeded:]
        assert [(e.id, e.name, e.url, e.commercial_use, e.deleted) for e in events] == [
            ("Site-DUA-1", "Site DUA", "https://dua.example.org/1", False, False),
            ("Site-DUA-1", "Site DUA", "https://dua.example.org/1", True, False),
            ("Site-DUA-1", "Site DUA", "https://dua.example.org/1", True, True),
        ]


async def _dump(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of every auth table."""
    db = Database(f"sqlite+aiosqlite:///{data_dir.resolve() / 'db' / 'auth.sqlite'}", "auth")
    try:
        async with db.session() as s:
            return {
                t.name: sorted((r._asdict() for r in (await s.execute(select(t))).all()), key=repr)
                for t in metadata.sorted_tables
            }
    finally:
        await db.dispose()


async def test_a_replica_serves_the_primarys_keys_and_writes_nothing(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["auth"]) as p:
        old = (await login(p.client, *ADMIN))["access_token"]
        new_kid = (await p.client.post("/api/auth/keys/rotate", headers=bearer(old))).json()["kid"]
        current = (await login(p.client, *ADMIN))["access_token"]
        keyring = p.runtime.deps_of(Auth).keyring
        old_kid = next(k.kid for k in await keyring.keys() if k.kid != new_kid)
    # Leave work a primary would do at its next start: a previous key past its retirement
    # (retire it), no licences (seed them), and a changed admin password (rehash it).
    db = Database(f"sqlite+aiosqlite:///{tmp_path.resolve() / 'db' / 'auth.sqlite'}", "auth")
    try:
        async with db.session() as s, s.begin():
            await s.execute(
                update(SigningKey)
                .where(SigningKey.kid == old_kid)
                .values(retire_at=utcnow() - timedelta(minutes=1))
            )
            await s.execute(delete(Licence))
    finally:
        await db.dispose()
    before = await _dump(tmp_path)

    async with platform(
        tmp_path,
        services=["auth"],
        site_role="replica",
        admin_password=SecretStr("another-admin-password"),
    ) as replica:
        kids = {k["kid"] for k in (await replica.client.get(JWKS)).json()["keys"]}
        assert kids == {new_kid}
        me = await replica.client.get("/api/auth/me", headers=bearer(current))
        assert me.status_code == 200 and me.json()["username"] == "admin"
        assert (await replica.runtime.verifier.verify(current))["sub"] == "admin"
        # the retired key's token no longer verifies, though the replica did not retire it
        assert (await replica.client.get("/api/auth/me", headers=bearer(old))).status_code == 401

    after = await _dump(tmp_path)
    assert after == before
    states = {row["kid"]: row["state"] for row in after["signing_keys"]}
    assert states[old_kid] == "previous" and after["licences"] == [] and after["outbox"]
