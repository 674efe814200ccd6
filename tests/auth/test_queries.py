"""Listing accounts costs a constant number of SQL statements, however many accounts
are listed (each with roles, grants and licences)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from services.auth import queries
from services.auth.bootstrap import Auth
from services.auth.models import Account, CollectionGrant, LicenceAcceptance, RoleAssignment
from services.auth.tokens import utcnow
from tests.auth.conftest import admin_token, bearer
from tests.harness import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _accounts(auth: Auth, prefix: str, n: int) -> None:
    """``n`` accounts, each with two roles, a grant and a licence."""
    now = utcnow()
    async with auth.db.session() as s, s.begin():
        for i in range(n):
            acc = Account(
                name=f"{prefix}{i:03d}",
                kind="user",
                secret_hash="-",
                created_at=now,
                secret_changed_at=now,
            )
            s.add(acc)
            await s.flush()
            s.add_all(
                [
                    RoleAssignment(account_id=acc.id, role="user", granted_by="t", granted_at=now),
                    RoleAssignment(
                        account_id=acc.id,
                        role="curator",
                        collection=f"Coll-{i}",
                        granted_by="t",
                        granted_at=now,
                    ),
                    CollectionGrant(
                        account_id=acc.id, collection="Lim-A", granted_by="t", granted_at=now
                    ),
                    LicenceAcceptance(
                        account_id=acc.id,
                        licence_id="CC-BY-4.0",
                        status="approved",
                        requested_at=now,
                    ),
                ]
            )


@contextmanager
def statements(auth: Auth) -> Iterator[list[str]]:
    """The SQL statements auth's database runs meanwhile."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "outbox" not in statement:  # the relay polls the outbox meanwhile
            seen.append(statement)

    engine = auth.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_listing_accounts_takes_the_same_statements_for_1_or_50(p: Platform) -> None:
    auth = p.runtime.deps_of(Auth)
    await _accounts(auth, "one-", 1)
    await _accounts(auth, "many-", 50)

    with statements(auth) as for_one:
        one = await queries.accounts(auth.db, kind="user", q="one-")
    with statements(auth) as for_fifty:
        fifty = await queries.accounts(auth.db, kind="user", q="many-")

    assert len(one) == 1 and len(fifty) == 50
    assert len(for_fifty) == len(for_one), for_fifty
    assert all(len(u.roles) == 2 and len(u.grants) == 1 and len(u.licences) == 1 for u in fifty)

    # what an admin sees through the API
    r = await p.client.get(
        "/api/auth/users", params={"q": "many-01"}, headers=bearer(await admin_token(p.client))
    )
    listed = {u["username"]: u for u in r.json()}
    assert len(listed) == 10
    row = listed["many-017"]
    assert row["roles"] == [
        {"role": "curator", "collection": "Coll-17", "site": None},
        {"role": "user", "collection": None, "site": None},
    ]
    assert [g["collection"] for g in row["grants"]] == ["Lim-A"]
    assert [(x["licence_id"], x["active"]) for x in row["licences"]] == [("CC-BY-4.0", True)]
