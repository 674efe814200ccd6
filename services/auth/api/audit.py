"""The audit log, for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.auth import queries
from services.auth.api.deps import AuthDep, CallerDep
from services.auth.schemas import AuditOut
from services.auth.service.audit import require_admin

router = APIRouter(prefix="/api/auth/audit", tags=["auth"])


@router.get("", response_model=list[AuditOut])
async def audit_log(
    auth: AuthDep,
    caller: CallerDep,
    action: str = "",
    subject: str = "",
    actor: str = "",
    before: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """Newest first; page with ``before`` = the smallest id seen."""
    await require_admin(auth, caller, "read the audit log")
    return await queries.audit_log(
        auth.db, action=action, subject=subject, actor=actor, before=before, limit=limit
    )
