"""Curation rules of the qc service: instance stages, series review states, what a
publish takes and how a published copy is checked. Pure: no I/O.

A submitted instance moves through stages received → (held | deidentified) → published
(TCIA's submission → quarantine → QC → release flow). Counts are per distinct
``instance_id`` (intake derives it from PatientID and SOPInstanceUID, PS3.3 C.7.1.1 and
C.12.1), so a re-sent instance replaces its record rather than being counted twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from services.common.app import Conflict, Forbidden, NotFound
from services.common.dicom_json import Header, integer, number, text

__all__ = ["Conflict", "Forbidden", "NotFound"]

# stage_at of a record created only to be updated in the same transaction
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Stage(StrEnum):
    RECEIVED = "received"
    HELD = "held"
    DEIDENTIFIED = "deidentified"
    PUBLISHED = "published"


class ReviewState(StrEnum):
    """A curator's decision on a series, named as NBIA's QC tool names visibility.

    ``Visible`` means approved for release; ``Not Visible`` means rejected (or withdrawn);
    ``To Be Deleted`` marks a series the curator wants removed from curation.
    """

    NOT_REVIEWED = "Not Reviewed"
    VISIBLE = "Visible"
    NOT_VISIBLE = "Not Visible"
    TO_BE_DELETED = "To Be Deleted"


_ALIASES = {
    "approved": ReviewState.VISIBLE,
    "approve": ReviewState.VISIBLE,
    "rejected": ReviewState.NOT_VISIBLE,
    "reject": ReviewState.NOT_VISIBLE,
    **{s.value.lower(): s for s in ReviewState},
}
BLOCKED = (ReviewState.NOT_VISIBLE, ReviewState.TO_BE_DELETED)


def parse_review_state(text: str) -> ReviewState:
    """The review state named by ``text`` (case-insensitive; Approved/Rejected accepted)."""
    state = _ALIASES.get(text.strip().lower())
    if state is None:
        names = ", ".join(f"'{s.value}'" for s in ReviewState)
        raise ValueError(f"unknown review state {text!r}; use one of {names}")
    return state


def supersedes(event_time: datetime, stage_at: datetime) -> bool:
    """Whether an event may set an instance's stage.

    Each consumer queue is independent, so the ``instance.received`` of a re-sent file
    may arrive after the ``instance.deidentified`` that followed it. The event that
    happened last wins; an older one arriving late is ignored. Publishing keeps the
    time of the de-identification it published, so any later re-send supersedes it.
    """
    return event_time > stage_at


def same_object(key: str | None, sha256: str | None, new_key: str, new_sha256: str) -> bool:
    """A de-identified instance identical to the one already recorded (a re-emitted
    event, or a re-sent file that de-identifies to the same bytes) changes nothing."""
    return key == new_key and sha256 == new_sha256


@dataclass(frozen=True)
class SeriesSummary:
    """What a publish needs to know about one series in curation."""

    series_instance_uid: str
    collection: str
    review_state: ReviewState
    awaiting: int  # de-identified instances not yet published
    publishable: int  # instances with a curation object (awaiting or already published)
    findings: int = 0  # residual-PHI findings of deid's scan in its instances
    approved: bool = False  # the submitter approved it (when the collection asks for that)
    face: str | None = None  # why it could be reconstructed into a face (head/neck CT, MR)


def default_selection(series: Iterable[SeriesSummary]) -> list[str]:
    """The series a publish without a list takes: those with instances awaiting review,
    except the ones a curator rejected or marked for deletion."""
    return sorted(
        s.series_instance_uid for s in series if s.awaiting > 0 and s.review_state not in BLOCKED
    )


def check_requested(
    collection: str, requested: Sequence[str], known: dict[str, SeriesSummary]
) -> list[str]:
    """Validate an explicit list of series to publish in ``collection``.

    Unknown series and series of another collection get the same answer, so a manager
    of one collection learns nothing about another's.
    """
    out: list[str] = []
    for uid in dict.fromkeys(requested):
        s = known.get(uid)
        if s is None or s.collection != collection:
            raise NotFound(
                f"series {uid} is not in curation for collection {collection}; "
                f"list its series with GET /api/qc/collections/{collection}/series"
            )
        if s.review_state in BLOCKED:
            raise Conflict(
                f"series {uid} is marked '{s.review_state.value}' by a curator; "
                "set its review state to 'Visible' before publishing it"
            )
        if s.publishable == 0:
            raise Conflict(
                f"series {uid} has no de-identified instances to publish; "
                "check the held instances of the collection"
            )
        out.append(uid)
    return out


def publish_blockers(
    series: Iterable[SeriesSummary],
    *,
    override_findings: bool,
    approval_required: bool,
    public: bool = False,
) -> dict[str, str]:
    """The series of a selection that must not be published yet, each with the sentence
    that says why and what to do. ``public``: the collection is open to anyone."""
    out: dict[str, str] = {}
    for s in series:
        if public and s.face:
            out[s.series_instance_uid] = (
                f"series {s.series_instance_uid} is head or neck imaging that could be "
                f"reconstructed into a face ({s.face}), and {s.collection} is public: such "
                "series are limited access; mark the collection face_reconstructable "
                f"(imarc collections update {s.collection} --face-reconstructable) first"
            )
        elif s.findings and not override_findings:
            out[s.series_instance_uid] = (
                f"series {s.series_instance_uid} has {s.findings} residual-PHI finding(s); "
                "fix the profile and de-identify it again, or publish it with "
                "--override-findings --why TEXT"
            )
        elif approval_required and not s.approved:
            out[s.series_instance_uid] = (
                f"series {s.series_instance_uid} waits for the submitter's approval; the "
                "submitting site approves it with POST /api/qc/collections/{collection}/approve"
            ).replace("{collection}", s.collection)
    return out


#: What a collection's curation can be, as a manager sets it.
CURATION_STATUSES = ("active", "inactive", "complete")


@dataclass(frozen=True)
class SeriesFilter:
    """A selection of a collection's series for bulk review (every field optional)."""

    states: tuple[ReviewState, ...] = ()
    modality: str = ""
    flagged: bool | None = None  # with residual-PHI findings (True) or without (False)
    series: tuple[str, ...] = ()

    def matches(self, state: ReviewState, modality: str, findings: int, uid: str) -> bool:
        return (
            (not self.states or state in self.states)
            and (not self.modality or modality.upper() == self.modality.upper())
            and (self.flagged is None or bool(findings) == self.flagged)
            and (not self.series or uid in self.series)
        )


#: Modalities from which a face can be reconstructed (surface rendering of CT or MR).
FACE_MODALITIES = frozenset({"CT", "MR"})
#: Words of BodyPartExamined (PS3.16 Annex L) and descriptions that name the head or neck.
HEAD_AND_NECK = frozenset(
    [
        "HEAD",
        "NECK",
        "HEADNECK",
        "BRAIN",
        "SKULL",
        "FACE",
        "FACIAL",
        "SINUS",
        "SINUSES",
        "PARANASALSINUS",
        "ORBIT",
        "ORBITS",
        "CRANIUM",
        "CRANIAL",
        "LARYNX",
        "PHARYNX",
        "NASOPHARYNX",
        "OROPHARYNX",
        "MANDIBLE",
        "MAXILLA",
        "JAW",
        "TMJ",
        "H&N",
    ]
)


def _words(text: str | None) -> set[str]:
    return set(re.findall(r"[A-Z&]+", (text or "").upper()))


def face_reason(modality: str, header: Header) -> str | None:
    """Why a series could be reconstructed into a face (TCIA's head and neck policy), or
    None: head or neck CT/MR named by BodyPartExamined or the study or series description."""
    if modality.upper() not in FACE_MODALITIES:
        return None
    for keyword in ("BodyPartExamined", "StudyDescription", "SeriesDescription"):
        found = _words(text(header, keyword)) & HEAD_AND_NECK
        if found:
            return f"{keyword} says {sorted(found)[0]}"
    return None


def face_geometry_hint(modality: str, header: Header) -> str | None:
    """A weaker sign, for a suggestion only: thin axial slices over a head-sized field."""
    if modality.upper() not in FACE_MODALITIES:
        return None
    spacing, columns = number(header, "PixelSpacing"), integer(header, "Columns")
    thickness = number(header, "SliceThickness")
    if spacing is None or columns is None or thickness is None:
        return None
    fov = spacing * columns
    if 150 <= fov <= 260 and thickness <= 3:
        return f"a {fov:.0f} mm field of view with {thickness:g} mm slices, like a head"
    return None


@dataclass(frozen=True)
class CopyRecord:
    key: str
    size: int
    sha256: str


def copy_mismatch(expected: CopyRecord, size: int, sha256: str) -> str | None:
    """Why a published copy does not match the curation record, or None if it does.

    Every object's size and SHA-256 are recorded when it is written; the public copy
    must carry the same, or the curation object changed after qc indexed it.
    """
    if size != expected.size:
        return f"{expected.key} has {size} bytes, expected {expected.size}"
    if sha256 != expected.sha256:
        return f"{expected.key} has SHA-256 {sha256 or '(none)'}, expected {expected.sha256}"
    return None
