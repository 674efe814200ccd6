"""Registered accounts by month, for the monthly usage report (admins only)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from services.auth.models import Account
from tests.auth.conftest import admin_token, bearer, login, register
from tests.harness import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")
THIS_MONTH = datetime.now(UTC).strftime("%Y-%m")


async def test_user_accounts_registered_by_month(p: Platform) -> None:
    admin = bearer(await admin_token(p.client))
    for name in ("una", "vic", "wes"):
        await register(p.client, name)
    async with p.runtime.contexts["auth"].db.session() as s, s.begin():
        await s.execute(
            update(Account)
            .where(Account.name == "una")
            .values(created_at=datetime(2026, 3, 9, tzinfo=UTC))
        )
    r = await p.client.get("/api/auth/usage/accounts", params={"since": "2026-03"}, headers=admin)
    assert r.status_code == 200, r.text
    rows = {row["month"]: row for row in r.json()}
    assert rows["2026-03"]["registered"] == 1
    # this month: vic and wes (and the admin the deployment made, when it made it now)
    assert rows[THIS_MONTH]["registered"] >= 2
    async with p.runtime.contexts["auth"].db.session() as s:
        users = await s.scalar(select(func.count()).where(Account.kind == "user"))
    assert rows[THIS_MONTH]["total"] == users  # every user account, by the end of this month
    assert list(rows) == sorted(rows)

    user = bearer((await login(p.client, "vic", "vic-password-1"))["access_token"])
    r = await p.client.get("/api/auth/usage/accounts", headers=user)
    assert r.status_code == 403
    r = await p.client.get("/api/auth/usage/accounts", params={"since": "2026-3"}, headers=admin)
    assert r.status_code == 422
