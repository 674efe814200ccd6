"""NBIA's reads: Core selects (no ORM identity map) over the indexed tables, scoped to the
collections the caller may read (``access.Visible``), returning NBIA rows. A
case-insensitive Collection filter is resolved against the caller's collection records,
so it becomes an exact match on the indexed column."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.domain import nbia
from services.catalog.domain.collections import CollectionInfo
from services.catalog.domain.dicom_tags import dicom_tag_rows
from services.catalog.domain.nbia import Record
from services.catalog.models import instances, patients, series, studies
from services.catalog.queries.access import Visible

Args = Mapping[str, Any]
Row = dict[str, Any]

# Bound parameters per statement stay well below SQLite's and asyncpg's limits.
CHUNK = 1000


def _upper_eq(column: Any, value: str) -> ColumnElement[bool]:
    # UPPER on both sides, as NBIA does; the expression indexes on upper(...) serve it.
    return func.upper(column) == func.upper(value)


def _filters(
    table: Any, args: Args, exact: Mapping[str, str], folded: Mapping[str, str]
) -> list[Any]:
    """Conditions for the given parameters: ``exact`` maps a parameter to a column matched
    as is (UIDs), ``folded`` to a column matched case-insensitively."""
    out: list[Any] = []
    for param, column in exact.items():
        if args.get(param):
            out.append(table.c[column] == args[param])
    for param, column in folded.items():
        if args.get(param):
            out.append(_upper_eq(table.c[column], args[param]))
    return out


def _scoped(stmt: Select[Any], table: Any, scope: list[str] | None) -> Select[Any]:
    return stmt if scope is None else stmt.where(table.c.collection.in_(scope))


SERIES_FILTERS = {
    "exact": {"StudyInstanceUID": "study_instance_uid", "SeriesInstanceUID": "series_instance_uid"},
    "folded": {
        "PatientID": "patient_id",
        "Modality": "modality",
        "BodyPartExamined": "body_part_examined",
        "Manufacturer": "manufacturer",
        "ManufacturerModelName": "manufacturer_model_name",
    },
}


def _series_where(args: Args) -> list[Any]:
    return _filters(series, args, SERIES_FILTERS["exact"], SERIES_FILTERS["folded"])


# -- *Values --------------------------------------------------------------------------------


async def collection_values(conn: AsyncConnection, vis: Visible) -> list[Row]:
    # A patient row exists only while it has a published series, so this lists collections
    # with something to show (as NBIA does), from the smaller table.
    stmt = _scoped(select(patients.c.collection).distinct(), patients, vis.scope())
    names = (await conn.execute(stmt.order_by(patients.c.collection))).scalars().all()
    return [{"Collection": n} for n in names]


async def distinct_values(
    conn: AsyncConnection, vis: Visible, args: Args, column: str, label: str
) -> list[Row]:
    scope = vis.scope(args.get("Collection"))
    if scope == []:
        return []
    col = series.c[column]
    stmt = select(col).distinct().where(col.is_not(None), *_series_where(args))
    stmt = _scoped(stmt, series, scope).order_by(col)
    return [{label: v} for v in (await conn.execute(stmt)).scalars().all()]


async def value_counts(
    conn: AsyncConnection, vis: Visible, args: Args, column: str, label: str, *, upper: bool = False
) -> list[Row]:
    """Distinct values with the number of distinct patients having a series with each."""
    scope = vis.scope(args.get("Collection"))
    if scope == []:
        return []
    value = func.upper(series.c[column]) if upper else series.c[column]
    inner = (
        select(value.label("value"), series.c.collection, series.c.patient_id)
        .distinct()
        .where(series.c[column].is_not(None), *_series_where(args))
    )
    sub = _scoped(inner, series, scope).subquery()
    stmt = select(sub.c.value, func.count()).group_by(sub.c.value).order_by(sub.c.value)
    return [{label: v, "Count": n, "Authorized": 1} for v, n in (await conn.execute(stmt)).all()]


async def collection_counts(conn: AsyncConnection, vis: Visible) -> list[Row]:
    stmt = select(patients.c.collection, func.count()).group_by(patients.c.collection)
    stmt = _scoped(stmt, patients, vis.scope()).order_by(patients.c.collection)
    return [
        {"Collection": c, "Count": n, "Authorized": 1} for c, n in (await conn.execute(stmt)).all()
    ]


# -- patients and studies -------------------------------------------------------------------


async def patients_(
    conn: AsyncConnection,
    vis: Visible,
    args: Args,
    released_since: datetime | None = None,
    row: Callable[[Record], Row] = nbia.patient_row,
) -> list[Row]:
    scope = vis.scope(args.get("Collection"))
    if scope == []:
        return []
    stmt = select(patients)
    if args.get("PatientId"):
        stmt = stmt.where(_upper_eq(patients.c.patient_id, args["PatientId"]))
    if released_since is not None:
        stmt = stmt.where(patients.c.last_released_at >= released_since)
    stmt = _scoped(stmt, patients, scope).order_by(patients.c.collection, patients.c.patient_id)
    return [row(r) for r in (await conn.execute(stmt)).mappings()]


async def patient_ids_by_modality(conn: AsyncConnection, vis: Visible, args: Args) -> list[Row]:
    scope = vis.scope(args.get("Collection"))
    if scope == []:
        return []
    stmt = select(series.c.patient_id).distinct().where(*_series_where(args))
    stmt = _scoped(stmt, series, scope).order_by(series.c.patient_id)
    return [{"PatientId": p, "Authorized": 1} for p in (await conn.execute(stmt)).scalars().all()]


def _of_patient(table: Any) -> ColumnElement[bool]:
    return and_(
        patients.c.collection == table.c.collection, patients.c.patient_id == table.c.patient_id
    )


_study_join = studies.join(patients, _of_patient(studies))


async def studies_(
    conn: AsyncConnection,
    vis: Visible,
    args: Args,
    released_since: datetime | None = None,
    row: Callable[[Record], Row] = nbia.study_row,
) -> list[Row]:
    scope = vis.scope(args.get("Collection"))
    if scope == []:
        return []
    stmt = select(
        studies,
        patients.c.patient_name, patients.c.patient_sex, patients.c.ethnic_group,
        patients.c.species_code, patients.c.species_description, patients.c.patient_birth_date,
    ).select_from(_study_join)  # fmt: skip
    stmt = stmt.where(
        *_filters(
            studies, args, {"StudyInstanceUID": "study_instance_uid"}, {"PatientID": "patient_id"}
        )
    )
    if released_since is not None:
        stmt = stmt.where(studies.c.last_released_at >= released_since)
    stmt = _scoped(stmt, studies, scope).order_by(
        studies.c.collection, studies.c.patient_id, studies.c.study_instance_uid
    )
    return [row(r) for r in (await conn.execute(stmt)).mappings()]


# -- series ------------------------------------------------------------------------------


async def series_(
    conn: AsyncConnection,
    vis: Visible,
    args: Args,
    released_after: datetime | None = None,
    row: Callable[[Record, CollectionInfo], Row] = nbia.series_row,
) -> list[Row] | bytes:
    """getSeries / getUpdatedSeries rows; with ``format`` json (the default), the JSON body
    itself, assembled from the parts stored with each series."""
    scope = vis.scope(args.get("Collection"))
    if scope == []:
        return []

    def listing(*columns: Any) -> Select[Any]:
        stmt = select(*columns).where(*_series_where(args))
        if released_after is not None:
            stmt = stmt.where(series.c.released_at > released_after)
        return _scoped(stmt, series, scope).order_by(
            series.c.collection, series.c.patient_id,
            series.c.study_instance_uid, series.c.series_instance_uid,
        )  # fmt: skip

    if args.get("format", "json") == "json" and row is nbia.series_row:
        c = series.c
        stmt = listing(c.collection, c.nbia_version, c.nbia_head, c.nbia_tail)
        parts = (await conn.execute(stmt)).all()
        if all(version == nbia.SERIES_JSON_VERSION for _, version, _, _ in parts):
            names = {p[0] for p in parts}
            licences = {n: nbia.licence_members(vis.info(n)) for n in names}
            return nbia.series_json((head, licences[n], tail) for n, _, head, tail in parts)
    info = vis.collections
    rows = (await conn.execute(listing(series))).mappings()
    return [row(r, info[r["collection"]]) for r in rows]


async def one_series(conn: AsyncConnection, vis: Visible, uid: str) -> nbia.Record | None:
    """A series the caller may see, or None (an unreadable series is as good as absent)."""
    row = (
        (await conn.execute(select(series).where(series.c.series_instance_uid == uid)))
        .mappings()
        .first()
    )
    if row is None or row["collection"] not in vis.collections:
        return None
    return row


async def series_size(conn: AsyncConnection, vis: Visible, uid: str) -> list[Row]:
    row = await one_series(conn, vis, uid)
    if row is None:
        return []
    return [{"TotalSizeInBytes": row["file_size"], "ObjectCount": row["image_count"]}]


def _instance_order() -> tuple[Any, ...]:
    return (instances.c.instance_number.asc().nulls_last(), instances.c.sop_instance_uid)


async def sop_instance_uids(conn: AsyncConnection, vis: Visible, uid: str) -> list[Row]:
    if await one_series(conn, vis, uid) is None:
        return []
    stmt = (
        select(instances.c.sop_instance_uid)
        .where(instances.c.series_instance_uid == uid)
        .order_by(*_instance_order())
    )
    return [{"SOPInstanceUID": s} for s in (await conn.execute(stmt)).scalars().all()]


async def dicom_tags(conn: AsyncConnection, vis: Visible, uid: str) -> list[Row]:
    """getDicomTags reads only the first image of the series, as NBIA does."""
    if await one_series(conn, vis, uid) is None:
        return []
    stmt = (
        select(instances.c.header)
        .where(instances.c.series_instance_uid == uid)
        .order_by(*_instance_order())
        .limit(1)
    )
    header = (await conn.execute(stmt)).scalar()
    return dicom_tag_rows(header) if header else []


_metadata_join = series.join(patients, _of_patient(series)).join(
    studies,
    and_(
        studies.c.collection == series.c.collection,
        studies.c.patient_id == series.c.patient_id,
        studies.c.study_instance_uid == series.c.study_instance_uid,
    ),
)


async def series_metadata(conn: AsyncConnection, vis: Visible, uids: Sequence[str]) -> list[Row]:
    scope = vis.scope()
    if scope == []:
        return []
    stmt = select(
        series,
        patients.c.patient_name, patients.c.ethnic_group, patients.c.species_code,
        patients.c.species_description, studies.c.study_id,
        studies.c.longitudinal_temporal_event_type,
        studies.c.longitudinal_temporal_offset_from_event,
    ).select_from(_metadata_join)  # fmt: skip
    stmt = _scoped(stmt, series, scope)
    found: dict[str, Row] = {}
    for i in range(0, len(uids), CHUNK):
        chunk = uids[i : i + CHUNK]
        result = await conn.execute(stmt.where(series.c.series_instance_uid.in_(chunk)))
        for r in result.mappings():
            found[r["series_instance_uid"]] = nbia.series_metadata_row(r, vis.info(r["collection"]))
    # in the order asked for
    return [found[u] for u in uids if u in found]


# -- collections ----------------------------------------------------------------------------


def collection_descriptions(vis: Visible, args: Args) -> list[Row]:
    wanted = args.get("collectionName")
    names = vis.scope(wanted) if wanted else sorted(vis.collections)
    return [nbia.collection_description_row(vis.info(n)) for n in sorted(names or ())]


async def collection_summaries(conn: AsyncConnection, vis: Visible) -> list[dict[str, Any]]:
    """Every visible collection with its counts (zero for one with nothing published)."""
    scope = vis.scope()
    if scope == []:
        return []
    per_series = _scoped(
        select(
            series.c.collection,
            func.count().label("series"),
            func.coalesce(func.sum(series.c.image_count), 0).label("images"),
            func.coalesce(func.sum(series.c.file_size), 0).label("size"),
            func.max(series.c.released_at).label("last_released_at"),
        ).group_by(series.c.collection),
        series,
        scope,
    )

    async def rows_per_collection(table: Any) -> dict[str, int]:
        stmt = select(table.c.collection, func.count()).group_by(table.c.collection)
        return {c: n for c, n in (await conn.execute(_scoped(stmt, table, scope))).all()}

    counts = {r["collection"]: r for r in (await conn.execute(per_series)).mappings()}
    people = await rows_per_collection(patients)
    studied = await rows_per_collection(studies)
    out = []
    for name in sorted(vis.collections):
        c = vis.info(name)
        n = counts.get(name, {})
        out.append(
            {
                "name": c.name,
                "description": c.description,
                "doi": c.doi,
                "access": c.access,
                "licence": {"id": c.licence_id, "name": c.licence_name, "url": c.licence_url},
                "patients": people.get(name, 0),
                "studies": studied.get(name, 0),
                "series": n.get("series", 0),
                "images": int(n.get("images", 0)),
                "size": int(n.get("size", 0)),
                "last_released_at": n.get("last_released_at"),
            }
        )
    return out


async def series_instances(
    conn: AsyncConnection, uid: str, *, headers: bool = False
) -> list[dict[str, Any]]:
    cols: Iterable[Any] = [
        instances.c.sop_instance_uid, instances.c.instance_number, instances.c.key,
        instances.c.size, instances.c.sha256,
    ]  # fmt: skip
    if headers:
        cols = [*cols, instances.c.header]
    stmt = select(*cols).where(instances.c.series_instance_uid == uid).order_by(*_instance_order())
    return [dict(r) for r in (await conn.execute(stmt)).mappings()]
