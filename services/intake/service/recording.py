"""Recording what a submission's files turned out to be, in one transaction: the
submission's counts, the received instances (a changed re-send replaces, audited; the very
bytes of a published instance change nothing), the held files, each instance's stage, the
integrity rules that need what the collection already holds, and the events."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import conflict_insert
from services.common.events import Event, InstanceHeld, InstanceReceived, ObjectRef
from services.common.persistence import upsert
from services.common.service import ServiceContext
from services.common.store import StoredObject
from services.intake import domain
from services.intake.models import HeldInstance, InstanceState, ReceivedInstance
from services.intake.service import audit, integrity, stages, submissions


@dataclass(frozen=True)
class FileOutcome:
    filename: str
    instance_id: str
    verdict: domain.Verdict
    obj: StoredObject | None
    #: When its object write finished; of several files with one key the last write wins.
    written: int
    #: what a held file was, had it been accepted (a patient conflict), for its release
    identity: domain.Accepted | None = None

    @property
    def accepted(self) -> domain.Accepted | None:
        return self.verdict if isinstance(self.verdict, domain.Accepted) else None


@dataclass(frozen=True)
class SubmissionResult:
    submission_id: str
    collection: str
    site: str
    files: list[FileOutcome]

    @property
    def accepted(self) -> list[FileOutcome]:
        return [f for f in self.files if f.accepted]

    @property
    def held(self) -> list[FileOutcome]:
        return [f for f in self.files if not f.accepted]


async def record(
    ctx: ServiceContext,
    result: SubmissionResult,
    submitted_by: str,
    *,
    joins: bool = False,
    via: str = "http",
) -> SubmissionResult:
    """Record ``result`` and stage its events; returns it with the files the integrity
    rules held marked as held. Unless it ``joins`` one, the submission is opened here,
    saying how its files came (``via``)."""
    secret = ctx.settings.secret.get_secret_value().encode()
    now = datetime.now(UTC)
    latest: dict[str, FileOutcome] = {}
    for f in result.accepted:
        if f.instance_id not in latest or f.written > latest[f.instance_id].written:
            latest[f.instance_id] = f
    async with ctx.messaging.transaction() as tx:
        s = tx.session
        before = await _stored_versions(s, list(latest))
        unchanged = {
            iid
            for iid, f in latest.items()
            if f.obj is not None and before.get(iid) == (f.obj.sha256, stages.PUBLISHED)
        }
        claims = []
        for iid, f in latest.items():
            a = f.accepted
            if a is None or iid in unchanged:
                continue
            patient = domain.patient_token(secret, result.collection, a.patient_key)
            claims.append(
                integrity.Claim(
                    iid, patient, a.study_instance_uid, a.series_instance_uid, a.sop_instance_uid
                )
            )
        decision = await integrity.check(s, result.collection, claims)
        last = [latest.get(f.instance_id) is f for f in result.files]
        files = [
            dataclasses.replace(f, verdict=decision.held[f.instance_id], identity=f.accepted)
            if f.instance_id in decision.held
            else f
            for f in result.files
        ]
        result = dataclasses.replace(result, files=files)
        received: list[dict[str, Any]] = []
        held_rows: list[dict[str, Any]] = []
        events: list[Event] = []
        states: list[stages.Stage] = []
        replaced: list[FileOutcome] = []
        for f, is_last in zip(result.files, last, strict=True):
            accepted = f.accepted
            if accepted is not None:
                if not is_last or f.instance_id in unchanged:
                    continue
                assert f.obj is not None
                previous = before.get(f.instance_id)
                if previous is not None and previous[0] != f.obj.sha256:
                    replaced.append(f)
                states.append(stages.Stage(f.instance_id, result.collection, stages.RECEIVED))
                received.append(_received_row(result, f, accepted, now))
                events.append(_received_event(ctx, result, f))
                continue
            assert isinstance(f.verdict, domain.Held)
            if f.identity is not None and not is_last:
                continue  # an earlier copy in this batch of an instance held once
            held_rows.append(_held_row(result, f, now))
            states.append(
                stages.Stage(
                    f.instance_id,
                    result.collection,
                    stages.HELD,
                    "intake",
                    f.verdict.code,
                    f.verdict.reason,
                )
            )
            events.append(
                _held_event(
                    ctx, result.collection, result.site, f.instance_id, f.filename, f.verdict
                )
            )
        if decision.earlier:
            rows = await s.execute(
                select(
                    ReceivedInstance.instance_id, ReceivedInstance.filename, ReceivedInstance.site
                ).where(ReceivedInstance.instance_id.in_(decision.earlier))
            )
            whole = domain.Held(integrity.CODE, integrity.WHOLE_STUDY)
            for iid, filename, site in rows:
                states.append(
                    stages.Stage(
                        iid, result.collection, stages.HELD, "intake", whole.code, whole.reason
                    )
                )
                events.append(_held_event(ctx, result.collection, site, iid, filename, whole))
        if not joins:
            await submissions.open_submission(
                s,
                collection=result.collection,
                site=result.site,
                by=submitted_by,
                via=via,
                submission_id=result.submission_id,
            )
        await submissions.add_files(
            s,
            result.submission_id,
            files=len(result.files),
            accepted=len(result.accepted),
            held=len(result.held),
            members=[(f.instance_id, f.filename) for f in result.files],
        )
        if received:
            await s.execute(_upsert_received(ctx.db.is_sqlite), received)
        await upsert(s, HeldInstance, held_rows, key=["id"])
        await stages.record(s, states, now)
        await audit.record(
            s,
            [
                audit.Entry(
                    actor=submitted_by,
                    action="replaced",
                    collection=result.collection,
                    instance_id=f.instance_id,
                    submission_id=result.submission_id,
                    detail=f"a new version arrived as {f.filename}",
                )
                for f in replaced
            ],
            now,
        )
        tx.emit(*events)
    return result


def _received_event(ctx: ServiceContext, result: SubmissionResult, f: FileOutcome) -> Event:
    assert f.obj is not None
    return InstanceReceived(
        instance_id=f.instance_id,
        collection=result.collection,
        site=result.site,
        filename=f.filename,
        object=ObjectRef(zone="quarantine", key=f.obj.key, size=f.obj.size, sha256=f.obj.sha256),
    ).event(ctx.source, subject=f.instance_id)


def _held_event(
    ctx: ServiceContext, collection: str, site: str, iid: str, filename: str, held: domain.Held
) -> Event:
    return InstanceHeld(
        instance_id=iid,
        collection=collection,
        site=site,
        filename=filename,
        stage="intake",
        reason=held.reason,
        code=held.code,
    ).event(ctx.source, subject=iid)


async def _stored_versions(
    session: AsyncSession, ids: list[str]
) -> dict[str, tuple[str, str | None]]:
    """The sha256 and stage of the version in quarantine of each of these instances."""
    found: dict[str, tuple[str, str | None]] = {}
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(ReceivedInstance.instance_id, ReceivedInstance.sha256, InstanceState.stage)
            .outerjoin(InstanceState, InstanceState.instance_id == ReceivedInstance.instance_id)
            .where(ReceivedInstance.instance_id.in_(ids[start : start + 500]))
        )
        found.update({iid: (sha, stage) for iid, sha, stage in rows})
    return found


def _received_row(
    result: SubmissionResult, f: FileOutcome, a: domain.Accepted, now: datetime
) -> dict[str, Any]:
    assert f.obj is not None
    return {
        "instance_id": f.instance_id,
        "collection": result.collection,
        "site": result.site,
        "submission_id": result.submission_id,
        "filename": f.filename,
        "key": f.obj.key,
        "size": f.obj.size,
        "sha256": f.obj.sha256,
        "patient_id": a.patient_id,
        "study_instance_uid": a.study_instance_uid,
        "series_instance_uid": a.series_instance_uid,
        "sop_instance_uid": a.sop_instance_uid,
        "sop_class_uid": a.sop_class_uid,
        "modality": a.modality,
        "first_received_at": now,
        "received_at": now,
        "times_received": 1,
    }


def _held_row(result: SubmissionResult, f: FileOutcome, now: datetime) -> dict[str, Any]:
    assert isinstance(f.verdict, domain.Held)
    a = f.identity
    return {
        "id": f.instance_id,
        "collection": result.collection,
        "site": result.site,
        "submission_id": result.submission_id,
        "filename": f.filename,
        "key": f.obj.key if f.obj else None,
        "size": f.obj.size if f.obj else 0,
        "sha256": f.obj.sha256 if f.obj else "",
        "reason": f.verdict.reason,
        "code": f.verdict.code,
        "received_at": now,
        "patient_id": a.patient_id if a else "",
        "issuer_of_patient_id": a.issuer_of_patient_id if a else "",
        "study_instance_uid": a.study_instance_uid if a else "",
        "series_instance_uid": a.series_instance_uid if a else "",
        "sop_instance_uid": a.sop_instance_uid if a else "",
        "sop_class_uid": a.sop_class_uid if a else "",
        "modality": a.modality if a else "",
    }


_REPLACED = (
    "site", "submission_id", "filename", "key", "size", "sha256", "patient_id",
    "study_instance_uid", "series_instance_uid", "sop_instance_uid", "sop_class_uid",
    "modality", "received_at",
)  # fmt: skip


def _upsert_received(is_sqlite: bool) -> Any:
    """INSERT ... ON CONFLICT (instance_id) DO UPDATE: a re-sent instance replaces its row."""
    stmt = conflict_insert("sqlite" if is_sqlite else "postgresql", ReceivedInstance)
    return stmt.on_conflict_do_update(
        index_elements=[ReceivedInstance.instance_id],
        set_={
            **{c: stmt.excluded[c] for c in _REPLACED},
            "times_received": ReceivedInstance.times_received + 1,
        },
    )
