"""Licence approvals: the requests waiting, and an approver approving or revoking an
account's licence (admins, and managers within their collections)."""

from __future__ import annotations

from fastapi import APIRouter

from services.auth.api.deps import AuthDep, CallerDep
from services.auth.schemas import AcceptanceOut, ApproveIn
from services.auth.service import licences

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.get("/licence-requests", response_model=list[AcceptanceOut])
async def licence_requests(
    auth: AuthDep, caller: CallerDep, status: str = "requested"
) -> list[AcceptanceOut]:
    """Acceptances waiting for approval: all of them for an admin, those of the
    licences of their collections for a manager."""
    return await licences.requests(auth, caller, status)


@router.post("/users/{username}/licences/{licence_id}/approve", response_model=AcceptanceOut)
async def approve_licence(
    username: str,
    licence_id: str,
    auth: AuthDep,
    caller: CallerDep,
    body: ApproveIn | None = None,
) -> AcceptanceOut:
    """Approve a licence for an account, optionally until ``expires_at``: an admin for
    the whole licence (or the ``collections`` named), a collection's manager for the
    collections under it that they manage."""
    body = body or ApproveIn()
    return await licences.approve(
        auth, caller, username, licence_id, body.expires_at, body.collections
    )


@router.delete("/users/{username}/licences/{licence_id}", status_code=204)
async def revoke_licence(username: str, licence_id: str, auth: AuthDep, caller: CallerDep) -> None:
    await licences.revoke(auth, caller, username, licence_id)
