"""Failed-attempt counters (per hashed account name, per address), shared by every auth
replica through the database; the rules of how they lock are in ``domain``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.domain import ThrottlePolicy, failures_after_one_more, lockout_seconds
from services.auth.models import LoginFailure


def throttle_key(kind: str, value: str) -> str:
    """Keys are hashed: a password typed into the username field must not be stored."""
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:40]}"


async def locked_until(s: AsyncSession, keys: Sequence[str], now: datetime) -> datetime | None:
    """The latest lockout among ``keys`` that is still running, if any."""
    rows = await s.scalars(
        select(LoginFailure.locked_until).where(
            LoginFailure.key.in_(keys), LoginFailure.locked_until > now
        )
    )
    return max((r for r in rows if r is not None), default=None)


async def record_failure(s: AsyncSession, key: str, policy: ThrottlePolicy, now: datetime) -> None:
    row = await s.get(LoginFailure, key)
    if row is None:
        row = LoginFailure(key=key, failures=0)
        s.add(row)
    row.failures = failures_after_one_more(policy, row.failures, row.last_failure_at, now)
    row.last_failure_at = now
    lock = lockout_seconds(policy, row.failures)
    row.locked_until = now + timedelta(seconds=lock) if lock else None


async def clear_failures(s: AsyncSession, key: str) -> None:
    await s.execute(delete(LoginFailure).where(LoginFailure.key == key))
