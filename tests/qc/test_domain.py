"""Pure curation rules: review states, event ordering, publish selection, copy checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.qc.domain import (
    EPOCH,
    Conflict,
    CopyRecord,
    NotFound,
    ReviewState,
    SeriesSummary,
    check_requested,
    copy_mismatch,
    default_selection,
    parse_review_state,
    same_object,
    supersedes,
)


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("Visible", ReviewState.VISIBLE),
        ("approved", ReviewState.VISIBLE),
        ("Rejected", ReviewState.NOT_VISIBLE),
        ("not visible", ReviewState.NOT_VISIBLE),
        ("To Be Deleted", ReviewState.TO_BE_DELETED),
        (" Not Reviewed ", ReviewState.NOT_REVIEWED),
    ],
)
def test_review_states_by_name_or_alias(text: str, state: ReviewState) -> None:
    assert parse_review_state(text) is state


def test_unknown_review_state_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'Visible'"):
        parse_review_state("maybe")


def test_later_event_supersedes_and_older_or_equal_does_not() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert supersedes(t, EPOCH)
    assert supersedes(t + timedelta(microseconds=1), t)
    assert not supersedes(t, t)
    assert not supersedes(t - timedelta(seconds=1), t)


def test_same_object_needs_same_key_and_hash() -> None:
    assert same_object("a/b.dcm", "x", "a/b.dcm", "x")
    assert not same_object("a/b.dcm", "x", "a/b.dcm", "y")
    assert not same_object(None, None, "a/b.dcm", "x")


def _s(
    uid: str,
    state: ReviewState = ReviewState.NOT_REVIEWED,
    awaiting: int = 1,
    publishable: int = 1,
    collection: str = "C",
) -> SeriesSummary:
    return SeriesSummary(uid, collection, state, awaiting, publishable)


def test_default_selection_takes_awaiting_series_a_curator_did_not_reject() -> None:
    series = [
        _s("1.3"),
        _s("1.1", ReviewState.VISIBLE),
        _s("1.2", ReviewState.NOT_VISIBLE),
        _s("1.4", ReviewState.TO_BE_DELETED),
        _s("1.5", awaiting=0),
    ]
    assert default_selection(series) == ["1.1", "1.3"]


def test_explicit_selection_rejects_unknown_and_foreign_series_alike() -> None:
    known = {"1.1": _s("1.1"), "2.1": _s("2.1", collection="Other")}
    assert check_requested("C", ["1.1", "1.1"], known) == ["1.1"]
    for uid in ("9.9", "2.1"):
        with pytest.raises(NotFound, match=f"series {uid} is not in curation for collection C"):
            check_requested("C", [uid], known)


def test_explicit_selection_refuses_rejected_or_empty_series() -> None:
    with pytest.raises(Conflict, match="'Not Visible'"):
        check_requested("C", ["1"], {"1": _s("1", ReviewState.NOT_VISIBLE)})
    with pytest.raises(Conflict, match="no de-identified instances"):
        check_requested("C", ["1"], {"1": _s("1", awaiting=0, publishable=0)})


def test_copy_mismatch_reports_size_then_hash() -> None:
    rec = CopyRecord("k.dcm", 10, "ab")
    assert copy_mismatch(rec, 10, "ab") is None
    assert "11 bytes, expected 10" in (copy_mismatch(rec, 11, "ab") or "")
    assert "SHA-256 (none)" in (copy_mismatch(rec, 10, "") or "")
