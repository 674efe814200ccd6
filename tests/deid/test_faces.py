"""Recognisable faces: the engine's decision is recorded as a hold with the code
recognizable_features; a held instance keeps its place in the UID map; a profile with a
defacing step for the modality lets faces through."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from services.common.events import InstanceDeidentified, InstanceHeld
from tests.deid import dicom
from tests.deid.helpers import curator_headers, deid_platform, manager_headers

C = "Faces"
VL_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4"


def face(patient_id: str, n: int = 1) -> list[bytes]:
    out = []
    for raw in dicom.ct_series(patient_id, "Smith^Jane", n=n):
        ds = dicom.read(raw)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = VL_PHOTO
        ds.Modality = "XC"
        ds.RecognizableVisualFeatures = "YES"
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


async def test_a_face_is_held_keeps_its_place_and_a_curator_can_release_it(
    tmp_path: Path,
) -> None:
    photo = face("PAT-F1")[0]
    original = dicom.read(photo)
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        iid = (await d.publish_received(C, photo)).data["instance_id"]
        held = await d.wait_for(InstanceHeld, instance_id=iid)
        assert held.reason.lower().startswith("recognizable visual features")
        listing = await d.client.get(f"/api/deid/collections/{C}/held", headers=curator_headers(C))
        assert [(h["instance_id"], h["code"]) for h in listing.json()] == [
            (iid, "recognizable_features")
        ]
        # the UIDs it will get are in the UID map already
        r = await d.client.get(
            f"/api/deid/collections/{C}/maps/uids.csv", headers=manager_headers(C)
        )
        uids = dict(list(csv.reader(io.StringIO(r.text)))[1:])
        assert original.SOPInstanceUID in uids

        r = await d.client.post(
            f"/api/deid/collections/{C}/held/{iid}/release", headers=curator_headers(C)
        )
        assert r.status_code == 200 and r.json()["outcome"] == "deidentified", r.text
        done = await d.wait_for(InstanceDeidentified, instance_id=iid, fail_on_hold=False)
        assert done.sop_instance_uid == uids[original.SOPInstanceUID]


async def test_a_profile_that_defaces_the_modality_lets_faces_through(tmp_path: Path) -> None:
    url = f"/api/deid/collections/{C}/profile"
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        r = await d.client.put(
            url, json={"defacing_modalities": ["XC"]}, headers=manager_headers(C)
        )
        assert r.status_code == 200, r.text
        assert r.json()["defacing_modalities"] == ["XC"] and r.json()["version"] == 2
        iid = (await d.publish_received(C, face("PAT-F2")[0])).data["instance_id"]
        done = await d.wait_for(InstanceDeidentified, instance_id=iid)
        assert done.profile_version == 2
