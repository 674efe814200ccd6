"""QIDO-RS reads: studies, series and instances matching a search, from the stored headers.

Study and series searches match against each series' own header (the attributes all its
instances share, ``series.header``); instance searches against each instance's header.
UIDs, PatientID and Modality go to the indexed columns of the catalog; other exact values
on PostgreSQL are JSONB containment (``header @> {...}``), which the GIN index on
``series.header`` answers; wildcards and ranges are checked on the rows the other keys
select. Every read is scoped to the collections the caller may see.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.domain.qido import Kind, Match, Search, like_pattern
from services.catalog.models import instances, series
from services.catalog.queries.access import Visible
from services.common.dicom_json import Header, tag

STUDY_UID, SERIES_UID, SOP_UID = (
    tag("StudyInstanceUID"),
    tag("SeriesInstanceUID"),
    tag("SOPInstanceUID"),
)
PATIENT_ID, MODALITY = tag("PatientID"), tag("Modality")
MODALITIES_IN_STUDY = tag("ModalitiesInStudy")


class _Params:
    """Bound parameter names unique within one statement."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"qido_{self.n}"


def _json_condition(dialect: str, column: str, m: Match, name: _Params) -> Any:
    """The condition for ``m`` on the JSON header column ``column`` (e.g. ``series.header``)."""
    path_pg = f"{column} -> '{m.tag}' -> 'Value'"
    if dialect == "postgresql":
        if m.kind in (Kind.SINGLE, Kind.UIDS) and not m.person_name:
            binds = {name(): json.dumps({m.tag: {"Value": [v]}}) for v in m.values}
            return or_(
                *(
                    text(f"{column} @> CAST(:{p} AS jsonb)").bindparams(**{p: v})
                    for p, v in binds.items()
                )
            )
        value = "(e ->> 'Alphabetic')" if m.person_name else "(e #>> '{}')"
        array = f"CASE WHEN jsonb_typeof({path_pg}) = 'array' THEN {path_pg} ELSE '[]'::jsonb END"
        source = f"jsonb_array_elements({array}) AS e"
    else:
        value = "json_extract(e.value, '$.Alphabetic')" if m.person_name else "e.value"
        source = f"json_each({column}, '$.\"{m.tag}\".Value') AS e"
    where, binds = _value_condition(dialect, value, m, name)
    return text(f"EXISTS (SELECT 1 FROM {source} WHERE {where})").bindparams(**binds)


def _value_condition(
    dialect: str, value: str, m: Match, name: _Params
) -> tuple[str, dict[str, Any]]:
    if m.kind is Kind.RANGE:
        low, high = m.values
        parts, binds = [], {}
        if low is not None:
            p = name()
            parts.append(f"{value} >= :{p}")
            binds[p] = low
        if high is not None:
            p = name()
            # a range's upper bound takes in every value starting with it (20200131 takes
            # in 20200131120000 for DT)
            parts.append(f"{value} <= :{p}")
            binds[p] = high + "\uffff" if m.vr != "DA" else high
        return " AND ".join(parts) or "1 = 1", binds
    if m.kind is Kind.WILDCARD:
        p = name()
        if m.person_name or dialect != "postgresql":
            op = "ILIKE" if dialect == "postgresql" else "LIKE"
            if dialect != "postgresql" and not m.person_name:
                # SQLite's LIKE ignores case; GLOB does not and speaks * and ? itself
                return f"{value} GLOB :{p}", {p: m.values[0].replace("[", "[[]")}
            return f"{value} {op} :{p} ESCAPE '\\'", {p: like_pattern(m.values[0])}
        return f"{value} LIKE :{p} ESCAPE '\\'", {p: like_pattern(m.values[0])}
    if m.person_name:
        p = name()
        return f"lower({value}) = lower(:{p})", {p: m.values[0]}
    binds = {name(): v for v in m.values}
    if dialect == "postgresql":
        cast = "numeric" if isinstance(m.values[0], (int, float)) else "text"
        return " OR ".join(f"CAST({value} AS {cast}) = :{p}" for p in binds), binds
    return " OR ".join(f"{value} = :{p}" for p in binds), binds


def _conditions(
    dialect: str, header: str, matches: Sequence[Match], columns: dict[str, Any]
) -> list[Any]:
    """Conditions for ``matches``: on an indexed column where one holds the attribute
    (``columns``: tag → column, for exact values and UID lists), else on the header."""
    name = _Params()
    out: list[Any] = []
    for m in matches:
        column = columns.get(m.tag)
        if column is not None and m.kind in (Kind.SINGLE, Kind.UIDS):
            out.append(column.in_(m.values))
        else:
            out.append(_json_condition(dialect, header, m, name))
    return out


def _scoped(stmt: Select[Any], vis: Visible) -> Select[Any] | None:
    scope = vis.scope()
    if scope == []:
        return None
    return stmt if scope is None else stmt.where(series.c.collection.in_(scope))


SERIES_COLUMNS = {
    STUDY_UID: series.c.study_instance_uid,
    SERIES_UID: series.c.series_instance_uid,
    PATIENT_ID: series.c.patient_id,
    MODALITY: series.c.modality,
}
TREE = (series.c.collection, series.c.patient_id, series.c.study_instance_uid)


def _series_matches(search: Search) -> list[Match]:
    # ModalitiesInStudy is matched against each series' Modality
    return [
        Match(MODALITY, "CS", m.kind, m.values) if m.tag == MODALITIES_IN_STUDY else m
        for m in search.matches
    ]


async def studies_(
    conn: AsyncConnection, vis: Visible, search: Search, study_uid: str | None = None
) -> list[dict[str, Any]]:
    """The studies (one per collection, patient and StudyInstanceUID) matching ``search``,
    each as its first series' header with the study's modalities and counts."""
    dialect = conn.dialect.name
    stmt = _scoped(select(*TREE).group_by(*TREE), vis)
    if stmt is None:
        return []
    conds = _conditions(dialect, "series.header", _series_matches(search), SERIES_COLUMNS)
    if study_uid is not None:
        conds.append(series.c.study_instance_uid == study_uid)
    page = (
        await conn.execute(
            stmt.where(*conds).order_by(*TREE).limit(search.limit).offset(search.offset)
        )
    ).all()
    if not page:
        return []
    keys = [tuple(r) for r in page]
    rows = (
        await conn.execute(
            select(*TREE, series.c.modality, series.c.image_count, series.c.header)
            .where(tuple_(*TREE).in_(keys))
            .order_by(*TREE, series.c.series_instance_uid)
        )
    ).all()
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for coll, patient, study, modality, images, header in rows:
        s = found.setdefault(
            (coll, patient, study),
            {"header": header, "modalities": [], "series": 0, "instances": 0},
        )
        if modality and modality not in s["modalities"]:
            s["modalities"].append(modality)
        s["series"] += 1
        s["instances"] += images
    return [found[k] for k in keys if k in found]


async def series_(
    conn: AsyncConnection,
    vis: Visible,
    search: Search,
    study_uid: str | None = None,
) -> list[tuple[Header, int]]:
    """The series matching ``search``: (series header, number of instances)."""
    dialect = conn.dialect.name
    stmt = _scoped(select(series.c.header, series.c.image_count), vis)
    if stmt is None:
        return []
    conds = _conditions(dialect, "series.header", _series_matches(search), SERIES_COLUMNS)
    if study_uid is not None:
        conds.append(series.c.study_instance_uid == study_uid)
    stmt = stmt.where(*conds).order_by(*TREE, series.c.series_instance_uid)
    result = await conn.execute(stmt.limit(search.limit).offset(search.offset))
    return [(header or {}, images) for header, images in result.all()]


INSTANCE_COLUMNS = {
    STUDY_UID: series.c.study_instance_uid,
    SERIES_UID: instances.c.series_instance_uid,
    SOP_UID: instances.c.sop_instance_uid,
    PATIENT_ID: series.c.patient_id,
}


async def instances_(
    conn: AsyncConnection,
    vis: Visible,
    search: Search,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> list[Header]:
    """The instances matching ``search``, each its header."""
    dialect = conn.dialect.name
    joined = instances.join(series, series.c.series_instance_uid == instances.c.series_instance_uid)
    stmt = _scoped(select(instances.c.header).select_from(joined), vis)
    if stmt is None:
        return []
    conds = _conditions(dialect, "instances.header", search.matches, INSTANCE_COLUMNS)
    if study_uid is not None:
        conds.append(series.c.study_instance_uid == study_uid)
    if series_uid is not None:
        conds.append(instances.c.series_instance_uid == series_uid)
    stmt = stmt.where(*conds).order_by(
        *TREE, instances.c.series_instance_uid,
        instances.c.instance_number.asc().nulls_last(), instances.c.sop_instance_uid,
    )  # fmt: skip
    result = await conn.execute(stmt.limit(search.limit).offset(search.offset))
    return list(result.scalars().all())
