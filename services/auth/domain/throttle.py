"""How password guessing is slowed down: failures in a row lock a key for a time that
doubles with each further failure (a backoff, never a CAPTCHA). Three keys count:

* an account *from* an address: a few tries, then that pair waits;
* an address, whatever the accounts: more tries, as many people may share one NAT;
* an account, whatever the addresses (guessing spread over many): this lock holds only for
  addresses the account has never logged in from, so nobody can lock its owner out — the
  admin logs in from where they did before, whatever an attacker does elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ThrottlePolicy:
    """After ``threshold`` failures in a row, each further failure doubles the lockout
    (``base`` seconds, at most ``cap``); a quiet ``forget_after`` seconds starts over."""

    threshold: int
    base: float = 30.0
    cap: float = 900.0
    forget_after: float = 3600.0


PER_ACCOUNT_ADDRESS = ThrottlePolicy(threshold=5)
PER_ADDRESS = ThrottlePolicy(threshold=20)
PER_ACCOUNT = ThrottlePolicy(threshold=20)
#: how long a successful login makes its address one the account is known to use
KNOWN_ADDRESS_DAYS = 90


def lockout_seconds(policy: ThrottlePolicy, failures: int) -> float:
    if failures < policy.threshold:
        return 0.0
    return float(min(policy.cap, policy.base * 2 ** (failures - policy.threshold)))


def failures_after_one_more(
    policy: ThrottlePolicy, failures: int, last_failure: datetime | None, now: datetime
) -> int:
    if last_failure is None or (now - last_failure).total_seconds() > policy.forget_after:
        return 1
    return failures + 1


def retry_after(locked_until: datetime, now: datetime) -> int:
    """Whole seconds for a ``Retry-After`` header (never 0 while locked)."""
    return max(1, math.ceil((locked_until - now).total_seconds()))
