"""Failed-attempt counters, shared by every auth replica through the database: per account
from an address, per address, per account (see ``domain.throttle`` for how they lock).
Keys are hashed: a password typed into the username field must not be stored."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.domain import (
    PER_ACCOUNT,
    PER_ACCOUNT_ADDRESS,
    PER_ADDRESS,
    ThrottlePolicy,
    failures_after_one_more,
    lockout_seconds,
)
from services.auth.models import KnownAddress, LoginFailure


def throttle_key(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:40]}"


@dataclass(frozen=True)
class Attempt:
    """Someone trying the secret of account ``name`` (``kind`` user or client) from ``ip``."""

    kind: str
    name: str
    ip: str

    @property
    def account(self) -> str:
        return throttle_key(self.kind, self.name)

    @property
    def address(self) -> str:
        return throttle_key("ip", self.ip)

    @property
    def pair(self) -> str:
        return throttle_key(f"{self.kind}@ip", f"{self.name}\n{self.ip}")

    def counters(self) -> tuple[tuple[str, ThrottlePolicy], ...]:
        return (
            (self.pair, PER_ACCOUNT_ADDRESS),
            (self.address, PER_ADDRESS),
            (self.account, PER_ACCOUNT),
        )


async def locked_until(s: AsyncSession, attempt: Attempt, now: datetime) -> datetime | None:
    """The latest lockout that holds for this attempt, if any. The account-wide one does
    not hold at an address the account logged in from before."""
    keys = [attempt.pair, attempt.address]
    if await s.get(KnownAddress, attempt.pair) is None:
        keys.append(attempt.account)
    rows = await s.scalars(
        select(LoginFailure.locked_until).where(
            LoginFailure.key.in_(keys), LoginFailure.locked_until > now
        )
    )
    return max((r for r in rows if r is not None), default=None)


async def record_failure(s: AsyncSession, attempt: Attempt, now: datetime) -> None:
    for key, policy in attempt.counters():
        row = await s.get(LoginFailure, key)
        if row is None:
            row = LoginFailure(key=key, failures=0)
            s.add(row)
        row.failures = failures_after_one_more(policy, row.failures, row.last_failure_at, now)
        row.last_failure_at = now
        lock = lockout_seconds(policy, row.failures)
        row.locked_until = now + timedelta(seconds=lock) if lock else None


async def record_success(s: AsyncSession, attempt: Attempt, now: datetime) -> None:
    """The right secret: this pair's count starts over (not the address's: one good login
    must not reset a spray over other accounts; nor the account's: its owner logging in
    must not hand an attacker elsewhere a fresh run of guesses), and the address becomes
    one the account is known to log in from."""
    await s.execute(delete(LoginFailure).where(LoginFailure.key == attempt.pair))
    known = await s.get(KnownAddress, attempt.pair)
    if known is None:
        s.add(KnownAddress(key=attempt.pair, last_login_at=now))
    else:
        known.last_login_at = now
