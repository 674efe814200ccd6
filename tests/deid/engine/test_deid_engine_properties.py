"""Property tests over random nested datasets: no PN, date or UID value survives unless kept."""

from __future__ import annotations

import io
from typing import Any

import pydicom
from deid_factories import OFFSET, base_ct, run, to_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import DicomDictionary, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from services.deid.engine import Profile, default_profile
from services.deid.engine.dates import shift_da
from services.deid.engine.rules import CLASS_UID_KEYWORDS, compile_profile


def _keywords(vr: str, limit: int = 60) -> list[str]:
    found = [
        entry[4]
        for tag, entry in sorted(DicomDictionary.items())
        if entry[0] == vr
        and entry[1] == "1"
        and not entry[3]
        and entry[4]
        and (tag >> 16) not in (0x0000, 0x0002, 0x0004)
        and entry[4] not in CLASS_UID_KEYWORDS
    ]
    step = max(1, len(found) // limit)
    return found[::step][:limit]


PN_KWS = _keywords("PN")
DA_KWS = _keywords("DA")
DT_KWS = _keywords("DT")
UI_KWS = _keywords("UI")
LO_KWS = _keywords("LO")
SQ_KWS = [
    "ReferencedImageSequence",
    "SourceImageSequence",
    "ContentSequence",
    "RequestAttributesSequence",
    "ReferencedStudySequence",
    "AnatomicRegionSequence",
    "ProcedureCodeSequence",
    "PerFrameFunctionalGroupsSequence",
    "SharedFunctionalGroupsSequence",
    "RadiopharmaceuticalInformationSequence",
    "ReferencedSeriesSequence",
    "ConceptNameCodeSequence",
]

token = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=8, max_size=10)
pn_value = st.builds(lambda a, b: f"PN{a}^{b}", token, token)
da_value = st.dates(
    min_value=__import__("datetime").date(1930, 1, 1),
    max_value=__import__("datetime").date(2025, 12, 31),
).map(lambda d: d.strftime("%Y%m%d"))
dt_value = st.tuples(da_value, st.sampled_from(["", "1230", "123045.5", "235959+0100"])).map(
    "".join
)
ui_value = st.lists(st.integers(1, 10**6), min_size=3, max_size=6).map(
    lambda parts: "1.2.999." + ".".join(str(p) for p in parts)
)


@st.composite
def element(draw: Any, depth: int) -> tuple[str, Any]:
    kinds = ["PN", "DA", "DT", "UI", "LO"] + (["SQ"] if depth < 4 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "PN":
        return draw(st.sampled_from(PN_KWS)), draw(pn_value)
    if kind == "DA":
        return draw(st.sampled_from(DA_KWS)), draw(da_value)
    if kind == "DT":
        return draw(st.sampled_from(DT_KWS)), draw(dt_value)
    if kind == "UI":
        return draw(st.sampled_from(UI_KWS)), draw(ui_value)
    if kind == "LO":
        # Neutral text: lower case, so that it never spells a planted (upper-case) name.
        return draw(st.sampled_from(LO_KWS)), "lo " + draw(token).lower()
    items = draw(st.lists(dataset(depth + 1), min_size=1, max_size=2))
    return draw(st.sampled_from(SQ_KWS)), Sequence(items)


@st.composite
def dataset(draw: Any, depth: int = 0) -> Dataset:
    ds = Dataset()
    for keyword, value in draw(st.lists(element(depth), min_size=1, max_size=6)):
        setattr(ds, keyword, value)
    return ds


def planted_values(ds: Dataset, profile: Profile) -> dict[str, set[str]]:
    """PN, DA, DT and UI values in ``ds``, less those the profile's options keep (K)."""
    kept = {t for t, action in compile_profile(profile).actions.items() if action == "K"}
    found: dict[str, set[str]] = {"PN": set(), "DA": set(), "DT": set(), "UI": set()}
    kept_values: set[str] = set()
    for elem in ds.iterall():
        if elem.VR in found and elem.value:
            if elem.tag in kept:
                kept_values.add(str(elem.value))
            else:
                found[elem.VR].add(str(elem.value))
    # A value that also sits in a kept attribute legitimately survives there.
    return {vr: values - kept_values for vr, values in found.items()}


def build(extra: Dataset, profile: Profile) -> tuple[bytes, dict[str, set[str]]]:
    ds = base_ct()
    protected = set(ds.keys())
    for tag in [e.tag for e in extra if e.tag in protected]:
        del extra[tag]  # planted only where the base instance has nothing
    for elem in extra:
        ds.add(elem)
    return to_bytes(ds), planted_values(extra, profile)


def output_values(data: bytes) -> dict[str, list[str]]:
    ds = pydicom.dcmread(io.BytesIO(data))
    out: dict[str, list[str]] = {}
    for elem in ds.iterall():
        if elem.VR in ("PN", "DA", "DT", "UI", "LO", "LT", "SH", "UT") and elem.value:
            values = elem.value if elem.VM > 1 else [elem.value]
            out.setdefault(elem.VR, []).extend(str(v) for v in values)
    return out


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(dataset())
def test_no_pn_date_or_uid_survives_the_default_profile(extra: Dataset) -> None:
    raw, planted = build(extra, default_profile())
    result = run(raw, default_profile(), release=True)
    assert result.data is not None
    text = result.data.decode("latin-1")
    for value in planted["PN"] | planted["UI"]:
        assert value not in text, value
    out = output_values(result.data)
    dates = set(out.get("DA", [])) | set(out.get("DT", []))
    # A shifted date may by chance equal another planted date: that one is not a survivor.
    shifted = {shift_da(v[:8], OFFSET) for v in planted["DA"] | planted["DT"]}
    for value in planted["DA"] | planted["DT"]:
        if value[:8] in shifted:
            continue
        assert value not in dates, value
        assert value[:8] not in {d[:8] for d in dates}
    for name in planted["PN"]:
        for part in name.split("^"):
            assert part not in text, part


@SETTINGS
@given(dataset())
def test_the_basic_profile_removes_every_date_too(extra: Dataset) -> None:
    basic = Profile(options=frozenset())
    raw, planted = build(extra, basic)
    result = run(raw, basic, release=True)
    assert result.data is not None
    text = (result.data or b"").decode("latin-1")
    for value in planted["PN"] | planted["UI"] | planted["DA"] | planted["DT"]:
        assert value not in text, value


@SETTINGS
@given(dataset())
def test_retain_uids_and_full_dates_keep_them(extra: Dataset) -> None:
    profile = Profile(options=frozenset({"retain_uids", "retain_long_full_dates"}))
    raw, planted = build(extra, profile)
    result = run(raw, profile, release=True)
    assert result.data is not None
    text = (result.data or b"").decode("latin-1")
    # A kept UID or date survives wherever its attribute survives: check the top level.
    top = pydicom.dcmread(io.BytesIO(raw))
    out = pydicom.dcmread(io.BytesIO(result.data or b""))
    for elem in top:
        if elem.VR in ("UI", "DA", "DT") and elem.tag in out and elem.value:
            assert out[elem.tag].value == elem.value, keyword_for_tag(elem.tag)
    for value in planted["PN"]:
        assert value not in text
