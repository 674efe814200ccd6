"""Machine clients (API keys), managed by admins."""

from __future__ import annotations

from fastapi import APIRouter

from services.auth import queries
from services.auth.api.deps import AuthDep, CallerDep
from services.auth.schemas import ClientCreate, ClientCreated, UserOut
from services.auth.service import clients
from services.auth.service.audit import require_admin

router = APIRouter(prefix="/api/auth/clients", tags=["auth"])


@router.post("", response_model=ClientCreated, status_code=201)
async def create_client(body: ClientCreate, auth: AuthDep, caller: CallerDep) -> ClientCreated:
    """An API key for a machine client (a mirror, a submitter's tool): the secret is
    shown once and stored hashed; the client gets its own roles, grants, licences."""
    return await clients.create(
        auth,
        caller,
        name=body.name,
        roles=[(r.role, r.collection, r.site) for r in body.roles],
        grants=body.grants,
        licences=body.licences,
    )


@router.get("", response_model=list[UserOut])
async def list_clients(auth: AuthDep, caller: CallerDep) -> list[UserOut]:
    await require_admin(auth, caller, "list API clients")
    return await queries.accounts(auth.db, kind="client")


@router.delete("/{client_id}", status_code=204)
async def delete_client(client_id: str, auth: AuthDep, caller: CallerDep) -> None:
    """Revoke an API key: the client is disabled and its tokens stop working."""
    await clients.revoke(auth, caller, client_id)
