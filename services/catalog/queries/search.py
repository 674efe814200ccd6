"""Reads behind NBIA's simple search, DOI lookup, shared carts and v1 series metadata."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.domain.search import SimpleSearch
from services.catalog.models import patients, series, shared_cart_series, shared_carts
from services.catalog.queries.access import Visible

_with_patient = series.join(
    patients,
    and_(
        patients.c.collection == series.c.collection, patients.c.patient_id == series.c.patient_id
    ),
)
TREE = (
    series.c.collection,
    series.c.patient_id,
    series.c.study_instance_uid,
    series.c.series_instance_uid,
)


def _upper_in(column: Any, values: Sequence[str]) -> Any:
    return func.upper(column).in_([v.upper() for v in values])


async def simple_search(conn: AsyncConnection, vis: Visible, s: SimpleSearch) -> list[RowMapping]:
    """The series matching the series-level criteria of a simple search, in tree order,
    with their patient's species."""
    scope = vis.scope()
    if s.collections:
        scope = [n for c in s.collections for n in vis.scope(c) or ()]
    if scope == []:
        return []
    stmt = select(*TREE, series.c.modality, series.c.body_part_examined, patients.c.species_code)
    stmt = stmt.select_from(_with_patient)
    if scope is not None:
        stmt = stmt.where(series.c.collection.in_(scope))
    if s.modalities:
        stmt = stmt.where(_upper_in(series.c.modality, s.modalities))
    if s.body_parts:
        stmt = stmt.where(_upper_in(series.c.body_part_examined, s.body_parts))
    if s.manufacturers:
        stmt = stmt.where(_upper_in(series.c.manufacturer, s.manufacturers))
    if s.patients:
        stmt = stmt.where(_upper_in(series.c.patient_id, s.patients))
    if s.species:
        stmt = stmt.where(patients.c.species_code.in_(s.species))
    if s.released_from is not None:
        stmt = stmt.where(series.c.released_at >= s.released_from)
    if s.released_before is not None:
        stmt = stmt.where(series.c.released_at < s.released_before)
    return list((await conn.execute(stmt.order_by(*TREE))).mappings().all())


async def series_of(
    conn: AsyncConnection, vis: Visible, collections: Sequence[str]
) -> list[tuple[str, str]]:
    """(collection, SeriesInstanceUID) of the visible series of some collections."""
    names = [n for n in collections if n in vis.collections]
    if not names:
        return []
    stmt = select(series.c.collection, series.c.series_instance_uid)
    stmt = stmt.where(series.c.collection.in_(names)).order_by(*TREE)
    return [(c, u) for c, u in (await conn.execute(stmt)).all()]


async def visible_series(conn: AsyncConnection, vis: Visible, uids: Sequence[str]) -> set[str]:
    """Those of ``uids`` that are published and that the caller may see."""
    scope = vis.scope()
    if scope == [] or not uids:
        return set()
    stmt = select(series.c.series_instance_uid).where(series.c.series_instance_uid.in_(uids))
    if scope is not None:
        stmt = stmt.where(series.c.collection.in_(scope))
    return set((await conn.execute(stmt)).scalars().all())


async def shared_cart(conn: AsyncConnection, vis: Visible, name: str) -> list[RowMapping] | None:
    """The series of a shared cart that the caller may see, in the cart's order; None when
    there is no cart of that name."""
    exists = await conn.scalar(select(shared_carts.c.name).where(shared_carts.c.name == name))
    if exists is None:
        return None
    joined = shared_cart_series.join(
        series, series.c.series_instance_uid == shared_cart_series.c.series_instance_uid
    )
    stmt = select(series).select_from(joined).where(shared_cart_series.c.name == name)
    scope = vis.scope()
    if scope is not None:
        stmt = stmt.where(series.c.collection.in_(scope))
    result = await conn.execute(stmt.order_by(shared_cart_series.c.position))
    return list(result.mappings().all())


async def series_with_header(conn: AsyncConnection, vis: Visible, uid: str) -> RowMapping | None:
    """One visible series row (with its shared header), or None."""
    row = (
        (await conn.execute(select(series).where(series.c.series_instance_uid == uid)))
        .mappings()
        .first()
    )
    if row is None or row["collection"] not in vis.collections:
        return None
    return row
