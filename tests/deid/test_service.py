"""The deid service end to end: submitted through intake, de-identified into curation."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

import pydicom.examples
from pydicom.data import get_testdata_file

from services.common.events import InstanceDeidentified, InstanceHeld, InstanceReceived
from services.deid.domain import CHECKSUM_MISMATCH, NO_ID_MAP_ENTRY
from services.deid.engine import OPTIONS
from tests.deid import dicom
from tests.deid.helpers import (
    Deid,
    curator_headers,
    deid_platform,
    manager_headers,
    submitter_headers,
)
from tests.harness import admin_headers, auth_header, mint

C = "Demo-CT"


def sample(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None
    return Path(path).read_bytes()


async def curated(d: Deid, done: InstanceDeidentified) -> bytes:
    return await d.p.runtime.store.get("curation", done.object.key)


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_instances_are_pseudonymised_re_uided_and_written_to_curation(
    tmp_path: Path,
) -> None:
    # MR_small.dcm is DERIVED\\SECONDARY, which the pixel screen holds: a second patient
    # comes from the generator instead.
    ct, other = sample("CT_small.dcm"), dicom.ct_series("PAT-002", "Jones^Ann", n=1)[0]
    series = dicom.ct_series("PAT-001", "Smith^Jane", n=3)
    structures = dicom.rt_structure_set(series)
    async with deid_platform(tmp_path) as d:
        await d.create_collection(C)
        outputs = []
        for raw in (ct, other, *series, structures):
            iid = await d.submit(C, raw)
            done = await d.wait_for(InstanceDeidentified, instance_id=iid)
            outputs.append((raw, done, dicom.read(await curated(d, done))))

        expected_ids = [f"{C}-0001", f"{C}-0002"] + [f"{C}-0003"] * 4
        for (raw, done, ds), pseudonym in zip(outputs, expected_ids, strict=True):
            original = dicom.read(raw)
            assert str(ds.PatientName) == ds.PatientID == done.patient_id == pseudonym
            assert ds.PatientIdentityRemoved == "YES"
            for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                assert ds[kw].value != original[kw].value
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert done.sop_instance_uid == ds.SOPInstanceUID
            assert done.object.key == (
                f"{C}/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
            )
            assert done.header["00100020"]["Value"] == [pseudonym]
            # no original UID, name or ID is left anywhere in the bytes
            data = await curated(d, done)
            for value in dicom.uid_values(original) - dicom.uid_values(ds):
                assert value.encode() not in data
            assert str(original.PatientName).encode() not in data
            assert str(original.PatientID).encode() not in data

        # references between the generated files resolve to the new UIDs
        slices = [ds for _, _, ds in outputs[2:5]]
        rt = outputs[5][2]
        assert len({s.SeriesInstanceUID for s in slices}) == 1
        assert len({s.FrameOfReferenceUID for s in slices}) == 1
        assert rt.StudyInstanceUID == slices[0].StudyInstanceUID
        frame = rt.ReferencedFrameOfReferenceSequence[0]
        assert frame.FrameOfReferenceUID == slices[0].FrameOfReferenceUID
        study = frame.RTReferencedStudySequence[0]
        assert study.ReferencedSOPInstanceUID == slices[0].StudyInstanceUID
        ref_series = study.RTReferencedSeriesSequence[0]
        assert ref_series.SeriesInstanceUID == slices[0].SeriesInstanceUID
        assert [i.ReferencedSOPInstanceUID for i in ref_series.ContourImageSequence] == [
            s.SOPInstanceUID for s in slices
        ]

        # a re-sent instance is re-run and replaces: same id, same key, same pseudonym
        again = await d.submit(C, ct)
        assert again == outputs[0][1].instance_id

        async def redone_twice() -> bool:
            return len(d.recorder.of(InstanceDeidentified, instance_id=again)) >= 2

        await d.p.wait_until(redone_twice, what="the re-sent instance to be de-identified")
        await d.settle()
        redone = d.recorder.of(InstanceDeidentified, instance_id=again)
        assert len(redone) == 2
        assert redone[1].object.key == redone[0].object.key
        assert redone[1].patient_id == f"{C}-0001"

        metrics = d.p.metrics()
        assert f'imarc_instances_deidentified_total{{collection="{C}"}}' in metrics


async def test_a_redelivered_event_has_exactly_one_effect(tmp_path: Path) -> None:
    async with deid_platform(tmp_path) as d:
        await d.create_collection(C)
        iid = await d.submit(C, bytes(pydicom.examples.get_path("ct").read_bytes()))
        await d.wait_for(InstanceDeidentified, instance_id=iid)
        received = next(
            e
            for e in d.recorder.events
            if e.type == InstanceReceived.TYPE and e.data["instance_id"] == iid
        )
        await d.p.runtime.bus.publish([received])
        await d.p.runtime.bus.publish([received])
        await d.settle()
        assert len(d.recorder.of(InstanceDeidentified, instance_id=iid)) == 1


async def test_a_quarantine_copy_that_fails_its_checksum_is_held(tmp_path: Path) -> None:
    async with deid_platform(tmp_path) as d:
        await d.create_collection(C)
        event = await d.publish_received(C, sample("CT_small.dcm"), sha256="0" * 64)
        iid = event.data["instance_id"]
        held = await d.wait_for(InstanceHeld, instance_id=iid)
        assert held.stage == "deid" and held.reason == CHECKSUM_MISMATCH
        r = await d.client.get(f"/api/deid/collections/{C}/held", headers=curator_headers(C))
        assert [(h["instance_id"], h["reason"]) for h in r.json()] == [(iid, CHECKSUM_MISMATCH)]
        assert not d.recorder.of(InstanceDeidentified, instance_id=iid)


async def test_the_uploaded_id_map_gives_the_pseudonym(tmp_path: Path) -> None:
    async with deid_platform(tmp_path) as d:
        await d.create_collection(C)
        r = await d.client.post(
            f"/api/deid/collections/{C}/idmap",
            content="id_old,id_new\n1CT1,LUNG-A-17\nOTHER,LUNG-A-18\n",
            headers={**manager_headers(C), "Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"loaded": 2}
        iid = await d.submit(C, sample("CT_small.dcm"))
        done = await d.wait_for(InstanceDeidentified, instance_id=iid)
        ds = dicom.read(await curated(d, done))
        assert ds.PatientID == str(ds.PatientName) == done.patient_id == "LUNG-A-17"
        # an unmapped patient still gets a generated pseudonym (the map is not required)
        iid2 = await d.submit(C, dicom.ct_series("4MR1", "Jones^Ann", n=1)[0])
        assert (await d.wait_for(InstanceDeidentified, instance_id=iid2)).patient_id == (
            f"{C}-0001"
        )

        r = await d.client.get(
            f"/api/deid/collections/{C}/maps/patients.csv", headers=manager_headers(C)
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = parse_csv(r.text)
        assert rows[0] == ["id_old", "id_new"]
        assert sorted(map(tuple, rows[1:])) == [("1CT1", "LUNG-A-17"), ("4MR1", f"{C}-0001")]

        # the patient is now de-identified as LUNG-A-17: their pseudonym cannot change
        r = await d.client.post(
            f"/api/deid/collections/{C}/idmap",
            content="id_old,id_new\n1CT1,LUNG-A-99\n",
            headers={**manager_headers(C), "Content-Type": "text/csv"},
        )
        assert r.status_code == 400
        assert "line 2" in r.json()["detail"] and "LUNG-A-17" in r.json()["detail"]


async def test_a_bad_id_map_is_refused_with_its_line(tmp_path: Path) -> None:
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        url = f"/api/deid/collections/{C}/idmap"
        headers = {**manager_headers(C), "Content-Type": "text/csv"}
        cases = {
            "patient,new\nA,B\n": "header must be exactly id_old,id_new",
            "id_old,id_new\nA,X1\nB\n": "line 3: expected 2 values",
            "id_old,id_new\nA,X1\nB,X2\nA,X3\n": "line 4: id_old on line 2 appears again",
            "id_old,id_new\nA,X1\nB,X1\n": "line 3: id_new 'X1' is already given",
            "id_old,id_new\nA,\n": "line 2: id_new is empty",
            "id_old,id_new\nA,Bad^Name\n": "line 2: id_new contains",
        }
        for body, message in cases.items():
            r = await d.client.post(url, content=body, headers=headers)
            assert r.status_code == 400, (body, r.text)
            assert message in r.json()["detail"], (body, r.json())
        r = await d.client.post(url, content="id_old,id_new\nA,X1\n", headers=manager_headers(C))
        assert r.status_code == 415
        # nothing of the refused uploads was kept
        r = await d.client.get(f"/api/deid/collections/{C}/maps/patients.csv", headers=headers)
        assert parse_csv(r.text) == [["id_old", "id_new"]]


async def test_require_id_map_holds_an_unmapped_patient_until_the_map_arrives(
    tmp_path: Path,
) -> None:
    async with deid_platform(tmp_path) as d:
        await d.create_collection(C, require_id_map=True)
        profile = (
            await d.client.get(f"/api/deid/collections/{C}/profile", headers=manager_headers(C))
        ).json()
        assert profile["require_id_map"] is True

        iid = await d.submit(C, sample("CT_small.dcm"))
        held = await d.wait_for(InstanceHeld, instance_id=iid)
        assert held.stage == "deid" and held.reason == NO_ID_MAP_ENTRY
        listing = await d.client.get(f"/api/deid/collections/{C}/held", headers=curator_headers(C))
        assert [h["instance_id"] for h in listing.json()] == [iid]

        release = f"/api/deid/collections/{C}/held/{iid}/release"
        r = await d.client.post(release, headers=curator_headers(C))
        assert r.status_code == 200 and r.json()["outcome"] == "held"
        assert r.json()["reason"] == NO_ID_MAP_ENTRY

        r = await d.client.post(
            f"/api/deid/collections/{C}/idmap",
            content="id_old,id_new\r\n1CT1,TRIAL-042\r\n",
            headers={**manager_headers(C), "Content-Type": "text/csv; charset=utf-8"},
        )
        assert r.status_code == 200, r.text
        r = await d.client.post(release, headers=curator_headers(C))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["outcome"] == "deidentified" and body["object"]["zone"] == "curation"
        done = await d.wait_for(InstanceDeidentified, instance_id=iid, fail_on_hold=False)
        assert done.patient_id == "TRIAL-042"
        assert dicom.read(await curated(d, done)).PatientID == "TRIAL-042"
        listing = await d.client.get(f"/api/deid/collections/{C}/held", headers=curator_headers(C))
        assert listing.json() == []
        r = await d.client.post(release, headers=curator_headers(C))
        assert r.status_code == 404


async def test_possible_burned_in_phi_is_held_and_a_curator_can_release_it(
    tmp_path: Path,
) -> None:
    raw = dicom.burned_in()
    async with deid_platform(tmp_path) as d:
        await d.create_collection(C)
        iid = await d.submit(C, raw)
        held = await d.wait_for(InstanceHeld, instance_id=iid)
        assert held.reason.startswith("possible burned-in PHI")
        assert not d.recorder.of(InstanceDeidentified, instance_id=iid)

        release = f"/api/deid/collections/{C}/held/{iid}/release"
        r = await d.client.post(release, headers=submitter_headers(C))
        assert r.status_code == 403
        r = await d.client.post(release, headers=curator_headers("Other-Collection"))
        assert r.status_code == 403
        r = await d.client.post(release, headers=curator_headers(C))
        assert r.status_code == 200, r.text
        assert r.json()["outcome"] == "deidentified"

        done = await d.wait_for(InstanceDeidentified, instance_id=iid, fail_on_hold=False)
        ds = dicom.read(await curated(d, done))
        assert ds.PixelData == dicom.read(raw).PixelData  # reviewed pixels are kept as they are
        assert ds.PatientID == f"{C}-0001"
        audit = await d.client.get(f"/api/deid/instances/{iid}/audit", headers=curator_headers(C))
        assert audit.status_code == 200
        assert audit.json()["released_by"] == "cur"


async def test_a_profile_change_makes_a_new_version_that_output_records(tmp_path: Path) -> None:
    url = f"/api/deid/collections/{C}/profile"
    async with deid_platform(tmp_path) as d:
        await d.create_collection(C)
        first = (await d.client.get(url, headers=manager_headers(C))).json()
        assert first["version"] == 1
        assert "retain_institution_identity" not in first["options"]
        assert {"retain_safe_private", "clean_descriptors"} <= set(first["options"])

        r = await d.client.put(url, json={"options": ["no_such_option"]}, headers=admin_headers())
        assert r.status_code == 400
        assert "no_such_option" in r.json()["detail"]
        assert all(o in r.json()["detail"] for o in OPTIONS)
        bad = {"blank_rectangles": [{"rectangles": [[0, 0, 0, 5]]}]}
        r = await d.client.put(url, json=bad, headers=admin_headers())
        assert r.status_code == 400 and "rectangle" in r.json()["detail"]

        options = [*first["options"], "retain_institution_identity"]
        r = await d.client.put(url, json={"options": options}, headers=manager_headers(C))
        assert r.status_code == 200, r.text
        second = r.json()
        assert second["version"] == 2 and second["digest"] != first["digest"]
        assert "retain_institution_identity" in second["options"]
        assert second["require_id_map"] is False  # partial: untouched fields are kept
        # the same content again is not a new version
        r = await d.client.put(url, json={"options": options}, headers=manager_headers(C))
        assert r.json()["version"] == 2
        versions = (await d.client.get(url + "/versions", headers=manager_headers(C))).json()
        assert [v["version"] for v in versions] == [1, 2]

        raw = dicom.ct_series(n=1)[0]
        iid = await d.submit(C, raw)
        done = await d.wait_for(InstanceDeidentified, instance_id=iid)
        assert done.profile_version == 2
        assert dicom.read(await curated(d, done)).InstitutionName == "Springfield General"
        audit = (
            await d.client.get(f"/api/deid/instances/{iid}/audit", headers=curator_headers(C))
        ).json()
        assert audit["profile_version"] == 2 and audit["profile_digest"] == second["digest"]
        actions = {(e["keyword"], e["action"]) for e in audit["entries"]}
        assert ("PatientName", "replaced") in actions or ("PatientName", "dummy") in actions
        assert ("StudyDate", "shifted") in actions
        assert "Smith" not in str(audit)  # paths and actions, never values

        # a device rule sends this manufacturer's images to pixel review
        rule = {"manufacturer": "acme", "reason": "burns in the patient name"}
        r = await d.client.put(url, json={"pixel_rules": [rule]}, headers=manager_headers(C))
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 3 and r.json()["pixel_rules"][0]["manufacturer"] == "acme"
        iid = await d.submit(C, dicom.ct_series(n=1)[0])
        held = await d.wait_for(InstanceHeld, instance_id=iid)
        assert held.reason.startswith("possible burned-in PHI")


async def test_maps_export_has_every_changed_uid(tmp_path: Path) -> None:
    series = dicom.ct_series(n=3)
    originals = [*series, dicom.rt_structure_set(series), sample("CT_small.dcm")]
    async with deid_platform(tmp_path) as d:
        await d.create_collection(C)
        outputs = []
        for raw in originals:
            iid = await d.submit(C, raw)
            done = await d.wait_for(InstanceDeidentified, instance_id=iid)
            outputs.append(dicom.read(await curated(d, done)))
        r = await d.client.get(
            f"/api/deid/collections/{C}/maps/uids.csv", headers=manager_headers(C)
        )
        assert r.status_code == 200
        rows = parse_csv(r.text)
        assert rows[0] == ["id_old", "id_new"]
        mapping = dict(rows[1:])
        assert len(mapping) == len(rows) - 1

        inverse = {new: old for old, new in mapping.items()}
        for raw, out in zip(originals, outputs, strict=True):
            original = dicom.read(raw)
            before, after = dicom.uid_values(original), dicom.uid_values(out)
            introduced = after - before
            assert introduced, "some UIDs must have changed"
            for new in introduced:  # every UID the output carries in place of another
                assert new in inverse, f"new UID {new} is missing from uids.csv"
                assert inverse[new] in before
            for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                assert mapping[original[kw].value] == out[kw].value


async def test_only_the_right_roles_may_use_the_api(tmp_path: Path) -> None:
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        outsider = auth_header(mint("someone", coll={"Other": ["manager"]}))
        submitter = submitter_headers(C)
        curator = curator_headers(C)
        csv_body = {"content": "id_old,id_new\nA,B\n"}
        manager_only = [
            ("GET", f"/api/deid/collections/{C}/profile", {}),
            ("PUT", f"/api/deid/collections/{C}/profile", {"json": {"require_id_map": True}}),
            ("GET", f"/api/deid/collections/{C}/profile/versions", {}),
            ("POST", f"/api/deid/collections/{C}/idmap", csv_body),
            ("GET", f"/api/deid/collections/{C}/maps/patients.csv", {}),
            ("GET", f"/api/deid/collections/{C}/maps/uids.csv", {}),
        ]
        curator_too = [
            ("GET", f"/api/deid/collections/{C}/held", {}),
            ("POST", f"/api/deid/collections/{C}/held/abc/release", {}),
        ]
        for method, url, kw in manager_only + curator_too:
            r = await d.client.request(method, url, **kw)
            assert r.status_code == 401, (method, url)
            for headers in (outsider, submitter):
                r = await d.client.request(method, url, headers=headers, **kw)
                assert r.status_code == 403, (method, url, r.text)
                assert "ask a manager" in r.json()["detail"]
        for method, url, kw in manager_only:
            r = await d.client.request(method, url, headers=curator, **kw)
            assert r.status_code == 403, (method, url)
        r = await d.client.get(f"/api/deid/collections/{C}/held", headers=curator)
        assert r.status_code == 200
        r = await d.client.get("/api/deid/collections/Nope/profile", headers=admin_headers())
        assert r.status_code == 404 and "not known" in r.json()["detail"]
        r = await d.client.get("/api/deid/instances/nope/audit", headers=curator)
        assert r.status_code == 404


async def test_the_same_file_in_two_collections_gets_unlinkable_uids(tmp_path: Path) -> None:
    raw = bytes(pydicom.examples.get_path("ct").read_bytes())
    async with deid_platform(tmp_path) as d:
        await d.create_collection("Coll-A")
        await d.create_collection("Coll-B")
        a = await d.wait_for(InstanceDeidentified, instance_id=await d.submit("Coll-A", raw))
        b = await d.wait_for(InstanceDeidentified, instance_id=await d.submit("Coll-B", raw))
        assert a.sop_instance_uid != b.sop_instance_uid
        assert a.series_instance_uid != b.series_instance_uid
        assert a.study_instance_uid != b.study_instance_uid
        assert a.patient_id.startswith("Coll-A-") and b.patient_id.startswith("Coll-B-")


class CountingStore:
    """The platform's store, counting the reads of each object."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads: Counter[tuple[str, str]] = Counter()

    async def get(self, zone: str, key: str) -> bytes:
        self.reads[(zone, key)] += 1
        data: bytes = await self.inner.get(zone, key)
        return data

    def get_sync(self, zone: str, key: str) -> bytes:
        self.reads[(zone, key)] += 1
        data: bytes = self.inner.get_sync(zone, key)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_each_quarantined_object_is_fetched_once(tmp_path: Path) -> None:
    series = dicom.ct_series("PAT-1", "Smith^Jane", n=3)
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        deid = d.p.runtime.deps["deid"]
        store = CountingStore(deid.store)
        deid.store = store
        events = [await d.publish_received(C, raw) for raw in series]
        for e in events:
            await d.wait_for(InstanceDeidentified, instance_id=e.data["instance_id"])
        keys = [("quarantine", e.data["object"]["key"]) for e in events]
        assert [store.reads[k] for k in keys] == [1, 1, 1]
        assert set(store.reads) == set(keys)


async def test_an_audit_answers_alike_for_an_unknown_instance_and_one_out_of_reach(
    tmp_path: Path,
) -> None:
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        event = await d.publish_received(C, dicom.ct_series(n=1)[0])
        iid = event.data["instance_id"]
        await d.wait_for(InstanceDeidentified, instance_id=iid)
        r = await d.client.get(f"/api/deid/instances/{iid}/audit", headers=curator_headers(C))
        assert r.status_code == 200
        answers = []
        for instance_id in (iid, "0" * 32):
            r = await d.client.get(
                f"/api/deid/instances/{instance_id}/audit", headers=curator_headers("Other")
            )
            answers.append((r.status_code, r.json()["detail"].replace(instance_id, "ID")))
        assert answers[0] == answers[1]
        assert answers[0][0] == 404 and C not in answers[0][1]
