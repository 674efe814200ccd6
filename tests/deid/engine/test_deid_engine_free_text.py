"""Leak class: identifiers echoed in free text (issue 12, class 3; leak case 18).

Kept text (ImageComments, AdditionalPatientHistory, PatientComments, descriptors, kept
private text) that repeats the record's own original UIDs, birth date or study dates, in any
written form, loses them and keeps its other words; an original UID is written as its new
UID, so the text still points at the right instance.
"""

from __future__ import annotations

import datetime as dt

from deid_factories import add_private, base_ct, read, request, submit, to_bytes
from pydicom.dataset import Dataset

from services.deid.engine import Profile, default_profile

WORDS = ["smoker", "follow-up", "contrast", "lesion", "stable"]
TEXT_KEYWORDS = [
    "ImageComments",
    "AdditionalPatientHistory",
    "PatientComments",
    "StudyDescription",
    "SeriesDescription",
]


def written_forms(value: str) -> list[str]:
    """Ways people write the date ``value`` (YYYYMMDD)."""
    d = dt.datetime.strptime(value, "%Y%m%d").date()
    return [
        value,
        d.strftime("%m/%d/%Y"),
        d.strftime("%d.%m.%Y"),
        d.strftime("%Y-%m-%d"),
        f"{d.year}-{d.month}-{d.day}",
        f"{d.month}/{d.day}/{d.year}",
        f"{d.day}.{d.month}.{d.year % 100:02d}",
        d.strftime("%d %b %Y"),
        d.strftime("%B %d, %Y"),
        d.strftime("%Y.%m.%d"),
    ]


class Patient:
    def __init__(self, n: int, birth: str, study_date: str) -> None:
        self.n = n
        self.birth = birth
        self.study_date = study_date
        self.study_uid = f"1.2.3.4.5.6.7.{800 + n}.1"

    def instance(self, series: int, number: int) -> Dataset:
        series_uid = f"{self.study_uid}.{series}"
        ds = base_ct(
            sop_uid=f"{series_uid}.{number}", study_uid=self.study_uid, series_uid=series_uid
        )
        ds.PatientID = f"PT-{self.n:04d}"
        ds.PatientBirthDate = self.birth
        ds.StudyDate = ds.SeriesDate = self.study_date
        ds.AcquisitionDateTime = f"{self.study_date}101733"
        births = written_forms(self.birth)
        studies = written_forms(self.study_date)
        uids = [ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID]
        for i, keyword in enumerate(TEXT_KEYWORDS):
            parts = [
                WORDS[i],
                f"born {births[(i + number) % len(births)]}",
                f"seen {studies[(i + 2 * number) % len(studies)]}",
                f"ref {uids[i % len(uids)]}",
                f"at {self.study_date[:4]}-{self.study_date[4:6]}-{self.study_date[6:]}T10:17",
                f"dt {self.study_date}101733",
            ]
            setattr(ds, keyword, " ".join(parts)[:64])
        ds.ImageComments = " ".join(
            [WORDS[0]] + [f"b {f}" for f in births] + [f"s {f}" for f in studies] + uids
        )
        add_private(ds, 0x0009, "GEMS_IDEN_01", 0x01, "LO", f"{WORDS[4]} {self.birth}")
        return ds


def files(patient: Patient) -> list[Dataset]:
    return [patient.instance(series, number) for series in (1, 2) for number in (1, 2)]


def check(original: Dataset, out: Dataset) -> None:
    texts = [str(out.get(k, "")) for k in TEXT_KEYWORDS]
    texts.append(str(out[out.private_block(0x0009, "GEMS_IDEN_01").get_tag(0x01)].value))
    joined = "\n".join(texts)
    for value in (original.PatientBirthDate, original.StudyDate):
        for form in written_forms(value):
            assert form not in joined, form
    for uid in (original.SOPInstanceUID, original.SeriesInstanceUID, original.StudyInstanceUID):
        assert uid not in joined
    for word in WORDS:
        assert word in joined  # the non-PHI words stay
    for keyword in ("StudyDescription", "SeriesDescription"):
        assert len(str(out.get(keyword, ""))) <= 64  # LO: a new UID that does not fit goes
    # The UIDs are written as the new ones, which the output itself carries.
    assert out.SOPInstanceUID in str(out.ImageComments)
    assert out.StudyInstanceUID in str(out.ImageComments)
    assert out.SeriesInstanceUID in str(out.ImageComments)


def test_own_uids_and_dates_leave_kept_text_in_every_written_form() -> None:
    profile = default_profile()
    first, second = Patient(1, "19510317", "20200315"), Patient(2, "19630228", "20211109")
    first_files, second_files = files(first), files(second)
    results = submit([request(to_bytes(ds), profile) for ds in first_files])
    results += submit(
        [request(to_bytes(ds), profile) for ds in second_files], separate_process=True
    )
    outputs = [read(r) for r in results]
    for original, out in zip(first_files + second_files, outputs, strict=True):
        check(original, out)
    # One study, one new UID, whichever submission wrote it into text.
    assert len({str(o.StudyInstanceUID) for o in outputs[:4]}) == 1
    assert all(str(outputs[0].StudyInstanceUID) in str(o.ImageComments) for o in outputs[:4])


def test_retain_uids_keeps_uids_in_text_but_not_dates() -> None:
    profile = Profile(options=frozenset({"clean_descriptors", "retain_uids"}))
    original = Patient(3, "19700101", "20190704").instance(1, 1)
    out = read(submit([request(to_bytes(original), profile)])[0])
    assert original.SOPInstanceUID in str(out.ImageComments)
    assert "07/04/2019" not in str(out.ImageComments)
    assert "smoker" in str(out.ImageComments)
