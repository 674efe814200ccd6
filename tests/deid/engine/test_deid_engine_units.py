"""Keyed pseudonyms, date shifting, descriptor scrubbing and the pinned tables."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.deid.engine import TABLE_EDITION, Keys, date_offset_days, new_uid
from services.deid.engine.dates import shift_da, shift_dt, shift_multi
from services.deid.engine.keys import is_valid_uid
from services.deid.engine.scrub import Scrubber
from services.deid.engine.tables import annex_e_rows, cid_7050, private_rules

KEYS = Keys(secret=b"k" * 32, uid_root="2.25")
ORG = Keys(secret=b"k" * 32, uid_root="1.3.6.1.4.1.14519.5.2.1.9999.9999")


@given(st.text(alphabet="0123456789.", min_size=1, max_size=64))
def test_new_uid_valid_and_deterministic(original: str) -> None:
    for keys in (KEYS, ORG):
        uid = new_uid(keys, original)
        assert is_valid_uid(uid), uid
        assert uid.startswith(keys.uid_root + ".")
        assert uid == new_uid(keys, original)


def test_new_uid_is_keyed_not_an_unkeyed_hash() -> None:
    original = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    a = new_uid(KEYS, original)
    b = new_uid(Keys(secret=b"j" * 32, uid_root="2.25"), original)
    assert a != b
    md5 = str(int(hashlib.md5(original.encode()).hexdigest(), 16))  # CTP @hashuid
    assert md5 not in a and md5[:20] not in a
    assert new_uid(KEYS, original) != new_uid(KEYS, original + "1")


def test_keys_refuse_weak_secrets_and_bad_roots() -> None:
    with pytest.raises(ValueError):
        Keys(secret=b"short", uid_root="2.25")
    with pytest.raises(ValueError):
        Keys(secret=b"k" * 32, uid_root="1.02.3")
    assert "kkkk" not in repr(KEYS)


def test_date_offsets() -> None:
    offsets = {date_offset_days(KEYS, "C", f"P{i}", "patient") for i in range(200)}
    assert all(-3650 <= o <= -366 for o in offsets)
    assert len(offsets) > 150  # patients are not linked by a shared offset
    assert date_offset_days(KEYS, "C", "P1", "patient") == date_offset_days(
        KEYS, "C", "P1", "patient"
    )
    assert date_offset_days(KEYS, "C", "P1", "collection") == date_offset_days(
        KEYS, "C", "P2", "collection"
    )
    assert date_offset_days(KEYS, "C", "P1", "patient") != date_offset_days(
        KEYS, "D", "P1", "patient"
    ) or date_offset_days(KEYS, "E", "P1", "patient") != date_offset_days(
        KEYS, "C", "P1", "patient"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200315", "20200215"),
        ("2020.03.15", "20200215"),
        ("20200329", "20200228"),  # across Feb 29 of a leap year
        ("20200229", "20200131"),
        ("2020", "2020"),  # year only: from mid-year, precision kept
        ("202003", "202002"),
        ("", ""),
        ("not a date", None),
    ],
)
def test_shift_da(value: str, expected: str | None) -> None:
    assert shift_da(value, -29 if value != "20200329" else -30) == expected


def test_shift_dt_keeps_time_zone_and_precision() -> None:
    assert shift_dt("20200315235959.123456+0100", -1) == "20200314235959.123456+0100"
    assert shift_dt("2020031523", -1) == "2020031423"
    assert shift_dt("2020+0100", -1) == "2020+0100"
    assert shift_dt("20200315235959.123456+0100", -1, keep_zone=False) == "20200314235959.123456"
    assert shift_multi("20200101-0500\\2020", -1, "DT", keep_zone=False) == "20191231\\2020"
    assert shift_dt("20200315xx", -1) is None
    assert shift_multi("20200101\\20200201", -1, "DA") == "20191231\\20200131"


@given(
    st.dates(dt.date(1850, 1, 1), dt.date(2100, 12, 31)),
    st.dates(dt.date(1850, 1, 1), dt.date(2100, 12, 31)),
    st.integers(-3650, -366),
)
def test_shift_preserves_intervals(a: dt.date, b: dt.date, days: int) -> None:
    sa = shift_da(a.strftime("%Y%m%d"), days)
    sb = shift_da(b.strftime("%Y%m%d"), days)
    assert sa and sb
    delta = dt.datetime.strptime(sb, "%Y%m%d") - dt.datetime.strptime(sa, "%Y%m%d")
    assert delta.days == (b - a).days
    assert (dt.datetime.strptime(sa, "%Y%m%d").date() - a).days == days


def test_scrubber_removes_only_the_records_identifiers() -> None:
    s = Scrubber(["SMITH^JOHN^Q^DR"], ["MRN123456", "ACC-778899"], ["20190314"])
    assert s.clean("CT CHEST SMITH 03/14/2019") == "CT CHEST"
    assert s.clean("smith, john: f/u 2019-03-14") == "f/u"
    assert s.clean("Mar 14, 2019 review") == "review"
    assert s.clean("14.03.2019 MRN123456 ACC778899") == ""
    assert s.clean("DR view of the SMITHSONIAN") == "DR view of the SMITHSONIAN"
    assert s.clean("CT 03/15/2019") == "CT 03/15/2019"
    assert s.clean("JOHNSON") == "JOHNSON"
    assert s.contains("xxSMITHxx") is False and s.contains("x SMITH x")


def test_pinned_tables_load() -> None:
    rows = annex_e_rows()
    assert TABLE_EDITION == "2024b"
    assert len(rows) == 617  # 621 rows less the four wildcard rows handled in code
    assert cid_7050()["113100"] == "Basic Application Confidentiality Profile"
    rules = private_rules()
    assert rules[(0x0009, "GEMS_PETD_01", 0x05)].action == "date"
    assert rules[(0x0009, "GEMS_PETD_01", 0x07)].action == "uid"
    assert rules[(0x7053, "Philips PET Private Group", 0x00)].action == "keep"
