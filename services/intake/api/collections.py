"""Collections: create, list, read and change them (each change announced as
collection.updated)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.common.app import Conflict
from services.common.security import AuthenticatedPrincipal, forbid
from services.intake import domain, queries
from services.intake.api.deps import IntakeDep, collection_or_404, may_see, no_collection
from services.intake.models import Collection
from services.intake.schemas import CollectionCreate, CollectionOut, CollectionPatch
from services.intake.service import collections, licences

router = APIRouter(prefix="/api/intake", tags=["intake"])


@router.post("/collections", status_code=201, response_model=CollectionOut)
async def create_collection(
    body: CollectionCreate, intake: IntakeDep, principal: AuthenticatedPrincipal
) -> CollectionOut:
    if not principal.can_manage():
        raise forbid("create collections")
    try:
        access = domain.access_with_face_policy(
            body.access, body.face_reconstructable, asked="access" in body.model_fields_set
        )
    except ValueError as e:
        raise Conflict(str(e)) from None
    try:
        async with intake.uow() as tx:
            c = await collections.register_collection(
                tx,
                intake.source,
                name=body.name,
                licence=await licences.licence_for(tx.session, body.licence),
                access=access,
                description=body.description,
                doi=body.doi,
                require_id_map=body.require_id_map,
                citation=body.citation,
                data_usage_policy=body.data_usage_policy,
                face_reconstructable=body.face_reconstructable,
                by=principal.subject,
            )
    except (collections.CollectionExists, IntegrityError):
        raise Conflict(f"collection {body.name} already exists") from None
    return CollectionOut.of(c)


@router.get("/collections", response_model=list[CollectionOut])
async def list_collections(
    intake: IntakeDep, principal: AuthenticatedPrincipal
) -> list[CollectionOut]:
    """The collections the caller may see: public ones, and limited ones they may read or
    submit to."""
    async with intake.db.session() as s:
        rows = await s.scalars(select(Collection).order_by(Collection.name))
        return [CollectionOut.of(c) for c in rows if may_see(principal, c)]


@router.get("/collections/{name}", response_model=CollectionOut)
async def get_collection(
    name: str, intake: IntakeDep, principal: AuthenticatedPrincipal
) -> CollectionOut:
    c = await collection_or_404(intake, name)
    if not may_see(principal, c):
        raise no_collection(name)  # as if it did not exist: no existence oracle
    return CollectionOut.of(c)


@router.patch("/collections/{name}", response_model=CollectionOut)
async def patch_collection(
    name: str, body: CollectionPatch, intake: IntakeDep, principal: AuthenticatedPrincipal
) -> CollectionOut:
    await collection_or_404(intake, name)
    if not principal.can_manage(name):
        raise forbid(f"change collection {name}")
    async with intake.uow() as tx:
        c = await queries.get_collection(tx.session, name)
        if c is None:
            raise no_collection(name)
        licence = None
        if body.licence is not None:
            licence = await licences.licence_for(tx.session, body.licence)
        try:
            c = await collections.update_collection(
                tx,
                intake.source,
                c,
                licence=licence,
                access=body.access,
                description=body.description,
                doi=body.doi,
                require_id_map=body.require_id_map,
                citation=body.citation,
                data_usage_policy=body.data_usage_policy,
                face_reconstructable=body.face_reconstructable,
            )
        except ValueError as e:  # nothing of the change is kept (the transaction rolls back)
            raise Conflict(str(e)) from None
    return CollectionOut.of(c)
