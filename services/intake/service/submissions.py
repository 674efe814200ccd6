"""Submissions: one id for everything a site sends in one go (HTTP requests, a DICOM
association, STOW-RS calls), and the counts a submitter checks it against."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import Conflict, Forbidden, NotFound
from services.common.persistence import insert_ignore
from services.common.security import Principal
from services.intake.models import (
    HeldInstance,
    InstanceState,
    ReceivedInstance,
    Submission,
    SubmissionMember,
)
from services.intake.service import stages

#: (SOPInstanceUID, sha256) pairs asked about at once
MAX_PRESENT = 10_000


def not_found(submission_id: str) -> NotFound:
    return NotFound(
        f"no submission {submission_id}; `imarc submit` prints the id of each submission it makes"
    )


async def open_submission(
    session: AsyncSession,
    *,
    collection: str,
    site: str,
    by: str,
    sent: int | None = None,
    via: str = "http",
    submission_id: str | None = None,
) -> Submission:
    """A new submission, empty; ``submission_id`` names it (by default a fresh id)."""
    now = datetime.now(UTC)
    s = Submission(
        id=submission_id or uuid.uuid4().hex,
        collection=collection,
        site=site,
        submitted_by=by,
        received_at=now,
        updated_at=now,
        accepted_count=0,
        held_count=0,
        sent=sent,
        files=0,
        via=via,
    )
    session.add(s)
    await session.flush()
    return s


async def visible(session: AsyncSession, submission_id: str, principal: Principal) -> Submission:
    """The submission, if the principal sent it or curates or submits to its collection."""
    s = await session.get(Submission, submission_id)
    if s is None:
        raise not_found(submission_id)
    if not (
        s.submitted_by == principal.subject
        or principal.can_curate(s.collection)
        or principal.can_submit(s.collection, s.site)
    ):
        raise Forbidden(f"you may not see submission {submission_id}; ask its submitter")
    return s


async def for_upload(
    session: AsyncSession, submission_id: str, collection: str | None, principal: Principal
) -> Submission:
    """The submission more files may join: same collection (any when None), same
    submitter (or a manager)."""
    s = await session.get(Submission, submission_id)
    if s is None:
        raise not_found(submission_id)
    collection = s.collection if collection is None else collection
    if s.collection != collection:
        raise Conflict(
            f"submission {submission_id} is for collection {s.collection}, not {collection}; "
            "start a new submission for this collection"
        )
    if s.submitted_by != principal.subject and not principal.can_manage(collection):
        raise Forbidden(f"submission {submission_id} was started by someone else; start your own")
    return s


async def add_files(
    session: AsyncSession,
    submission_id: str,
    *,
    files: int,
    accepted: int,
    held: int,
    members: Sequence[tuple[str, str]],
) -> None:
    """Count a request's files into its submission and remember which instances it sent."""
    await session.execute(
        update(Submission)
        .where(Submission.id == submission_id)
        .values(
            files=Submission.files + files,
            accepted_count=Submission.accepted_count + accepted,
            held_count=Submission.held_count + held,
            updated_at=datetime.now(UTC),
        )
    )
    rows = [
        {"submission_id": submission_id, "instance_id": iid, "filename": name}
        for iid, name in members
    ]
    await insert_ignore(session, SubmissionMember, rows, key=["submission_id", "instance_id"])


async def present(
    session: AsyncSession, sub: Submission, pairs: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Which of the (SOPInstanceUID, sha256) pairs the collection already holds, byte for
    byte (received, or held at intake: a file held is not lost either). Those found join
    this submission, so a resumed submission's counts cover what an earlier run sent."""
    if len(pairs) > MAX_PRESENT:
        raise Conflict(f"ask about at most {MAX_PRESENT} files at once; split the list")
    found: dict[tuple[str, str], tuple[str, str]] = {}
    with_uid = [(u, h) for u, h in pairs if u]
    for start in range(0, len(with_uid), 500):
        chunk = with_uid[start : start + 500]
        rows = await session.execute(
            select(
                ReceivedInstance.sop_instance_uid,
                ReceivedInstance.sha256,
                ReceivedInstance.instance_id,
                ReceivedInstance.filename,
            ).where(
                ReceivedInstance.collection == sub.collection,
                tuple_(ReceivedInstance.sop_instance_uid, ReceivedInstance.sha256).in_(chunk),
            )
        )
        for uid, sha, iid, name in rows:
            found[(uid, sha)] = (iid, name)
    hashes = sorted({h for u, h in pairs if (u, h) not in found})
    by_hash: dict[str, tuple[str, str]] = {}
    for start in range(0, len(hashes), 500):
        held = await session.execute(
            select(HeldInstance.sha256, HeldInstance.id, HeldInstance.filename).where(
                HeldInstance.collection == sub.collection,
                HeldInstance.sha256.in_(hashes[start : start + 500]),
            )
        )
        for sha, iid, name in held:
            by_hash[sha] = (iid, name)
    known: list[tuple[str, str]] = []
    members: list[tuple[str, str]] = []
    for pair in pairs:
        hit = found.get(pair) or by_hash.get(pair[1])
        if hit is not None:
            known.append(pair)
            members.append(hit)
    if members:
        await add_files(session, sub.id, files=len(members), accepted=0, held=0, members=members)
    return known


@dataclass
class Counts:
    submission_id: str
    collection: str
    site: str
    via: str
    sent: int | None
    files: int
    received: int = 0
    awaiting_deid: int = 0
    deidentified: int = 0
    published: int = 0
    held: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def held_total(self) -> int:
        return sum(sum(v.values()) for v in self.held.values())


async def counts(session: AsyncSession, sub: Submission) -> Counts:
    c = Counts(sub.id, sub.collection, sub.site, sub.via, sub.sent, sub.files)
    rows = await session.execute(
        select(
            InstanceState.stage,
            InstanceState.held_stage,
            InstanceState.reason_code,
            func.count(),
        )
        .join(SubmissionMember, SubmissionMember.instance_id == InstanceState.instance_id)
        .where(SubmissionMember.submission_id == sub.id)
        .group_by(InstanceState.stage, InstanceState.held_stage, InstanceState.reason_code)
    )
    for stage, held_stage, code, n in rows:
        c.received += n
        if stage == stages.HELD:
            by_reason = c.held.setdefault(held_stage, {})
            by_reason[code] = by_reason.get(code, 0) + n
        elif stage == stages.RECEIVED:
            c.awaiting_deid += n
        elif stage == stages.DEIDENTIFIED:
            c.deidentified += n
        elif stage == stages.PUBLISHED:
            c.deidentified += n
            c.published += n
    return c


@dataclass(frozen=True)
class HeldMember:
    instance_id: str
    filename: str
    stage: str
    code: str
    reason: str


async def held(session: AsyncSession, sub: Submission, limit: int = 1000) -> list[HeldMember]:
    """The submission's instances held now, at any stage, with the file names it sent."""
    rows = await session.execute(
        select(
            InstanceState.instance_id,
            SubmissionMember.filename,
            InstanceState.held_stage,
            InstanceState.reason_code,
            InstanceState.reason,
        )
        .join(SubmissionMember, SubmissionMember.instance_id == InstanceState.instance_id)
        .where(SubmissionMember.submission_id == sub.id, InstanceState.stage == stages.HELD)
        .order_by(SubmissionMember.filename)
        .limit(limit)
    )
    return [HeldMember(*r) for r in rows]
