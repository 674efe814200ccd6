"""Usage figures of the accounts: user accounts registered by month, for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.auth import queries
from services.auth.api.deps import AuthDep, CallerDep
from services.auth.schemas import AccountsMonth
from services.auth.service.audit import require_admin
from services.common.reporting import MONTH, months

router = APIRouter(prefix="/api/auth/usage", tags=["auth"])


@router.get("/accounts", response_model=list[AccountsMonth])
async def accounts(
    auth: AuthDep,
    caller: CallerDep,
    since: Annotated[str | None, Query(pattern=MONTH, description="first month, YYYY-MM")] = None,
    until: Annotated[str | None, Query(pattern=MONTH, description="last month, YYYY-MM")] = None,
) -> list[AccountsMonth]:
    """User accounts registered in each month, and how many there were at its end."""
    await require_admin(auth, caller, "see how many accounts were registered")
    span = months(since, until)
    rows = await queries.accounts_by_month(auth.db, span.start, span.end)
    return [AccountsMonth(month=m, registered=n, total=t) for m, n, t in rows]
