"""The quarantine: one view of everything held in a collection, at intake and at de-id;
a held instance's header for the roles that may see the quarantine zone; release (back
into the pipeline at the stage that held it) and reject (deleted, with a reason), one by
one or by filter, every action audited."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydicom
from sqlalchemy import ColumnElement, delete, exists, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import NotFound
from services.common.db import as_utc
from services.common.dicom_json import header_json
from services.common.events import InstanceReceived, ObjectRef
from services.common.messaging import UnitOfWork
from services.common.store import ObjectStore
from services.intake.models import HeldInstance, InstanceState, ReceivedInstance
from services.intake.service import audit, stages

REJECTED = "rejected"
#: instances one bulk action takes at most
MAX_BULK = 10_000
#: the de-id hold a release takes past the pixel screen (the curator looked at the pixels)
PIXEL_HOLD = "burned_in_phi"


@dataclass(frozen=True)
class Filter:
    collection: str
    reason: str | None = None
    stage: str | None = None
    submission: str | None = None
    ids: Sequence[str] | None = None


@dataclass(frozen=True)
class Item:
    id: str
    submission_id: str
    filename: str
    site: str
    stage: str
    code: str
    reason: str
    held_at: datetime
    study_instance_uid: str
    series_instance_uid: str
    in_received: bool


def _held(f: Filter) -> Any:
    """One select over both places a held instance lives: the received instances (held at
    de-id, or at intake with their study) and the files held at intake."""
    st, r, h = InstanceState, ReceivedInstance, HeldInstance
    where: list[ColumnElement[bool]] = [st.stage == stages.HELD, st.collection == f.collection]
    if f.reason:
        where.append(st.reason_code == f.reason)
    if f.stage:
        where.append(st.held_stage == f.stage)
    if f.ids is not None:
        where.append(st.instance_id.in_(list(f.ids)))

    def place(table: Any, key: Any, in_received: bool) -> Any:
        q = (
            select(
                st.instance_id.label("id"),
                table.submission_id,
                table.filename,
                table.site,
                st.held_stage,
                st.reason_code,
                st.reason,
                st.stage_at,
                table.study_instance_uid,
                table.series_instance_uid,
                literal(in_received).label("in_received"),
            )
            .join(table, key == st.instance_id)
            .where(*where)
        )
        return q.where(table.submission_id == f.submission) if f.submission else q

    received = place(r, r.instance_id, True)
    held = place(h, h.id, False).where(~exists().where(r.instance_id == st.instance_id))
    return union_all(received, held).subquery()


async def items(
    session: AsyncSession, f: Filter, *, limit: int = 1000, offset: int = 0
) -> list[Item]:
    q = _held(f)
    rows = await session.execute(
        select(q)
        .order_by(q.c.study_instance_uid, q.c.series_instance_uid, q.c.filename, q.c.id)
        .limit(limit)
        .offset(offset)
    )
    return [
        Item(
            id=row.id,
            submission_id=row.submission_id,
            filename=row.filename,
            site=row.site,
            stage=row.held_stage,
            code=row.reason_code,
            reason=row.reason,
            held_at=as_utc(row.stage_at),
            study_instance_uid=row.study_instance_uid,
            series_instance_uid=row.series_instance_uid,
            in_received=bool(row.in_received),
        )
        for row in rows
    ]


async def counts(session: AsyncSession, collection: str) -> dict[str, dict[str, int]]:
    """Held now, by stage and reason code."""
    rows = await session.execute(
        select(InstanceState.held_stage, InstanceState.reason_code, func.count())
        .where(InstanceState.collection == collection, InstanceState.stage == stages.HELD)
        .group_by(InstanceState.held_stage, InstanceState.reason_code)
    )
    found: dict[str, dict[str, int]] = {}
    for stage, code, n in rows:
        found.setdefault(stage, {})[code] = int(n)
    return found


def not_held(instance_id: str, collection: str) -> NotFound:
    return NotFound(
        f"nothing held in {collection} has id {instance_id}; "
        f"`imarc quarantine list --collection {collection}` shows what is"
    )


async def header(
    session: AsyncSession, store: ObjectStore, f: Filter, instance_id: str
) -> dict[str, Any]:
    """The DICOM JSON header of a held instance (pixel data left out)."""
    found = await items(session, Filter(f.collection, ids=[instance_id]), limit=1)
    if not found:
        raise not_held(instance_id, f.collection)
    key = (await _keys(session, found)).get(instance_id)
    if key is None:
        return {}
    data = await store.get("quarantine", key)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        return header_json(ds)
    except Exception:
        return {}


#: ids named in one IN (...) clause
CHUNK = 500


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    return [list(ids[start : start + CHUNK]) for start in range(0, len(ids), CHUNK)]


async def _keys(session: AsyncSession, chosen: Sequence[Item]) -> dict[str, str | None]:
    """The quarantine object key of each item, by id (None: a file held with no object)."""
    found: dict[str, str | None] = {}
    for model, column, in_received in (
        (ReceivedInstance, ReceivedInstance.instance_id, True),
        (HeldInstance, HeldInstance.id, False),
    ):
        for part in _chunks([i.id for i in chosen if i.in_received is in_received]):
            rows = await session.execute(select(column, model.key).where(column.in_(part)))
            found.update({iid: key for iid, key in rows})
    return found


async def _rows(session: AsyncSession, model: Any, column: Any, ids: Sequence[str]) -> list[Any]:
    """The rows of ``model`` whose ``column`` is one of ``ids``."""
    found: list[Any] = []
    for part in _chunks(ids):
        found += await session.scalars(select(model).where(column.in_(part)))
    return found


@dataclass
class Outcome:
    done: list[str]
    refused: dict[str, str]
    #: quarantine objects to delete once the rejection is committed
    keys: list[str] = field(default_factory=list)


async def collections_of(session: AsyncSession, ids: Sequence[str]) -> dict[str, list[str]]:
    """The held ids by collection (an id held nowhere is left out)."""
    rows = await session.execute(
        select(InstanceState.collection, InstanceState.instance_id).where(
            InstanceState.instance_id.in_(list(ids)), InstanceState.stage == stages.HELD
        )
    )
    found: dict[str, list[str]] = {}
    for collection, iid in rows:
        found.setdefault(collection, []).append(iid)
    return found


async def release(uow: UnitOfWork, source: str, f: Filter, *, by: str, why: str) -> Outcome:
    """Each held instance re-enters the pipeline where it was held: an instance in
    quarantine is announced again (de-id runs it anew; a pixel hold passes the pixel
    screen), a file held at intake for a patient conflict becomes a received instance. A
    file intake could not read cannot go on: it is refused with the reason."""
    s = uow.session
    now = datetime.now(UTC)
    chosen = await items(s, f, limit=MAX_BULK)
    at_intake = [i.id for i in chosen if not i.in_received]
    held_rows = {h.id: h for h in await _rows(s, HeldInstance, HeldInstance.id, at_intake)}
    received = {
        r.instance_id: r
        for r in await _rows(
            s, ReceivedInstance, ReceivedInstance.instance_id, [i.id for i in chosen]
        )
    }
    out = Outcome([], {})
    entries: list[audit.Entry] = []
    states: list[stages.Stage] = []
    for item in chosen:
        row = received.get(item.id)
        if not item.in_received:
            held = held_rows.get(item.id)
            if held is None or not held.sop_instance_uid or held.key is None:
                out.refused[item.id] = (
                    f"{item.filename} is not a readable DICOM instance ({item.code}); reject it "
                    "and ask the site to send it again"
                )
                continue
            row = await _receive_held(s, held, row, now)
        assert row is not None
        event = InstanceReceived(
            instance_id=row.instance_id,
            collection=row.collection,
            site=row.site,
            filename=row.filename,
            object=ObjectRef(zone="quarantine", key=row.key, size=row.size, sha256=row.sha256),
            release_pixel_hold=item.stage == "deid" and item.code == PIXEL_HOLD,
        ).event(source, subject=row.instance_id)
        uow.emit(event)
        states.append(stages.Stage(item.id, f.collection, stages.RECEIVED))
        out.done.append(item.id)
        entries.append(_entry(by, "released", f.collection, item, why))
    await s.flush()
    await stages.record(s, states, now)
    await audit.record(s, entries, now)
    return out


async def _receive_held(
    s: AsyncSession, held: HeldInstance, existing: ReceivedInstance | None, now: datetime
) -> ReceivedInstance:
    """The received instance a held file becomes (``existing``: its row, if it has one)."""
    assert held.key is not None
    if existing is None:
        existing = ReceivedInstance(instance_id=held.id, first_received_at=now, times_received=1)
        s.add(existing)
    else:
        existing.times_received += 1
    for name in (
        "collection", "site", "submission_id", "filename", "key", "size", "sha256",
        "patient_id", "study_instance_uid", "series_instance_uid", "sop_instance_uid",
        "sop_class_uid", "modality",
    ):  # fmt: skip
        setattr(existing, name, getattr(held, name))
    existing.received_at = now
    await s.delete(held)
    return existing


async def reject(uow: UnitOfWork, f: Filter, *, by: str, why: str) -> Outcome:
    """Delete each held instance from quarantine, keeping who did it and why."""
    s = uow.session
    now = datetime.now(UTC)
    chosen = await items(s, f, limit=MAX_BULK)
    keys = await _keys(s, chosen)
    out = Outcome([i.id for i in chosen], {}, [k for i in chosen if (k := keys.get(i.id))])
    for part in _chunks([i.id for i in chosen if i.in_received]):
        await s.execute(delete(ReceivedInstance).where(ReceivedInstance.instance_id.in_(part)))
    for part in _chunks(out.done):
        await s.execute(delete(HeldInstance).where(HeldInstance.id.in_(part)))
    await stages.record(
        s,
        [stages.Stage(i.id, f.collection, REJECTED, i.stage, i.code, why) for i in chosen],
        now,
    )
    await audit.record(s, [_entry(by, "rejected", f.collection, i, why) for i in chosen], now)
    return out


def _entry(by: str, action: str, collection: str, item: Item, why: str) -> audit.Entry:
    return audit.Entry(
        actor=by,
        action=action,
        collection=collection,
        instance_id=item.id,
        submission_id=item.submission_id,
        detail=f"{item.stage} hold {item.code}: {why}"[:2000],
    )
