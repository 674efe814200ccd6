"""Quarantine management through the CLI, against intake, de-id and qc over a real socket:
one view of what is held at intake and at de-id (file, submission, stage, reason, study
and series), a held header for curators only, release back into the stage that held it,
reject, one by one or by reason, each audited with who and why."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner, Result

from imarc.cli import app
from tests.harness import mint
from tests.intake.helpers import ct_dataset, encode, served_pipeline

pytestmark = pytest.mark.slow


@dataclass
class Served:
    url: str
    curator: str
    submitter: str

    def imarc(self, *args: str, token: str | None = None) -> Result:
        argv = ["--url", self.url, "--token", token or self.curator, *args]
        return CliRunner().invoke(app, argv, env={"XDG_CONFIG_HOME": "/nonexistent"})

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token or self.curator}"}
        return httpx.get(self.url + path, headers=auth)

    def until(self, path: str, check: object, what: str) -> object:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = self.get(path).json()
            if check(found):  # type: ignore[operator]
                return found
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("quarantine")
    with served_pipeline(data_dir, {"Q-CT": False, "Q-Mapped": True}) as url:
        roles = {"Q-CT": ["curator", "submitter"], "Q-Mapped": ["curator", "submitter"]}
        yield Served(
            url,
            mint("curator-1", coll=roles),
            mint("site-user", coll={"Q-CT": ["submitter"], "Q-Mapped": ["submitter"]}),
        )


def write(folder: Path, patient: str, study: str, n: int, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ds = ct_dataset()
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study, generate_uid()
    for i in range(n):
        ds.SOPInstanceUID = generate_uid()
        (folder / f"{prefix}{i}.dcm").write_bytes(encode(ds))


def test_held_at_intake_listed_inspected_rejected_and_released(
    served: Served, tmp_path: Path
) -> None:
    study = generate_uid()
    write(tmp_path / "a", "PAT-A", study, 2, "a")
    first = served.imarc("submit", str(tmp_path / "a"), "--collection", "Q-CT", "--wait")
    assert first.exit_code == 0, first.output
    write(tmp_path / "b", "PAT-B", study, 1, "b")
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    second = served.imarc(
        "submit", str(tmp_path / "b"), "--collection", "Q-CT", "--no-wait",
        token=served.submitter,
    )  # fmt: skip
    assert second.exit_code == 1 and "held at intake: 1 patient_conflict" in second.output

    listed = served.imarc("quarantine", "list", "--collection", "Q-CT", "--json")
    assert listed.exit_code == 0, listed.output
    held = json.loads(listed.output)
    by_file = {h["filename"]: h for h in held}
    assert sorted(by_file) == ["a/a0.dcm", "a/a1.dcm", "b/b0.dcm", "b/notes.txt"]
    assert {h["stage"] for h in held} == {"intake"}
    assert by_file["b/notes.txt"]["code"] == "not_part10"
    assert by_file["a/a0.dcm"]["code"] == "patient_conflict"  # the study is held as a whole
    assert by_file["a/a0.dcm"]["study_instance_uid"] == study
    table = served.imarc("quarantine", "list", "--collection", "Q-CT", "--reason", "not_part10")
    assert "notes.txt" in table.output and "a0.dcm" not in table.output

    # the header, for curators only
    wrong = by_file["b/b0.dcm"]["id"]
    shown = served.imarc("quarantine", "show", wrong)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["header"]["00100020"]["Value"] == ["PAT-B"]
    refused = served.get(f"/api/intake/quarantine/{wrong}", token=served.submitter)
    assert refused.status_code == 403

    gone = served.imarc("quarantine", "reject", wrong, "--why", "sent under the wrong patient")
    assert gone.exit_code == 0 and "rejected 1" in gone.output
    released = served.imarc(
        "quarantine", "release", "--collection", "Q-CT", "--reason", "patient_conflict",
        "--why", "PAT-A is right",
    )  # fmt: skip
    assert released.exit_code == 0 and "released 2" in released.output, released.output
    unreadable = served.imarc("quarantine", "release", by_file["b/notes.txt"]["id"], "--why", "try")
    assert unreadable.exit_code == 1 and "not a readable DICOM instance" in unreadable.output

    # released, the study's instances go on to de-id
    served.until(
        f"/api/intake/submissions/{first.output.split()[1]}",
        lambda c: c["deidentified"] == 2,
        "the released instances to be de-identified",
    )
    status = served.imarc("status", "--collection", "Q-CT")
    assert "held at intake: 1 not_part10" in status.output
    assert "patient_conflict" not in status.output
    trail = served.get("/api/intake/collections/Q-CT/audit").json()
    actions = sorted((a["action"], a["actor"]) for a in trail)
    assert actions == [
        ("rejected", "curator-1"),
        ("released", "curator-1"),
        ("released", "curator-1"),
    ]
    assert any("sent under the wrong patient" in a["detail"] for a in trail)


def test_held_at_deid_is_released_back_into_deid(served: Served, tmp_path: Path) -> None:
    write(tmp_path / "m", "PAT-M", generate_uid(), 2, "m")
    sub = served.imarc("submit", str(tmp_path / "m"), "--collection", "Q-Mapped", "--wait")
    assert "held at deid: 2 no_id_map_entry" in sub.output, sub.output
    listed = json.loads(
        served.imarc(
            "quarantine", "list", "--collection", "Q-Mapped", "--json", "--reason",
            "no_id_map_entry",
        ).output
    )  # fmt: skip
    assert len(listed) == 2 and {h["stage"] for h in listed} == {"deid"}
    idmap = tmp_path / "map.csv"
    idmap.write_text("id_old,id_new\nPAT-M,Q-0001\n")
    manager = mint("manager-1", coll={"Q-Mapped": ["manager"]})
    loaded = served.imarc("deid", "idmap", str(idmap), "--collection", "Q-Mapped", token=manager)
    assert loaded.exit_code == 0, loaded.output
    released = served.imarc(
        "quarantine", "release", "--collection", "Q-Mapped", "--reason", "no_id_map_entry",
        "--why", "the ID map is loaded",
    )  # fmt: skip
    assert "released 2" in released.output, released.output
    served.until(
        f"/api/intake/submissions/{sub.output.split()[1]}",
        lambda c: c["deidentified"] == 2 and c["held_total"] == 0,
        "de-id to take the released instances",
    )
