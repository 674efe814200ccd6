"""The submitter's loop over a real socket: `imarc submit` against intake, de-id and qc
embedded: one submission id for every request, the server's count beside what was sent,
waiting for de-id's verdicts, holds at both stages listed, and a run killed half-way
finished by running it again, sending only what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner, Result

from imarc.cli import app
from tests.harness import admin_headers, mint
from tests.intake.helpers import ct_dataset, encode, served_pipeline

pytestmark = pytest.mark.slow


@dataclass
class Served:
    url: str
    token: str

    def imarc(self, *args: str) -> Result:
        argv = ["--url", self.url, "--token", self.token, *args]
        env = {"XDG_CONFIG_HOME": "/nonexistent"}
        return CliRunner().invoke(app, argv, env=env)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.token}"})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("loop")
    with served_pipeline(data_dir, {"Loop-CT": False, "Mapped-CT": True}) as url:
        token = mint("site-user", coll={c: ["submitter"] for c in ("Loop-CT", "Mapped-CT")})
        yield Served(url, token)


def folder(root: Path, n: int, *, junk: bool = False) -> Path:
    """``n`` distinct CT instances of one series (and a text file, with ``junk``)."""
    root.mkdir(parents=True)
    ds = ct_dataset()
    ds.SeriesInstanceUID = generate_uid()
    for i in range(n):
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        (root / f"IM{i:04d}.dcm").write_bytes(encode(ds))
    if junk:
        (root / "readme.txt").write_text("not an image\n")
    return root


def submission_of(result: Result) -> str:
    line = next(x for x in result.output.splitlines() if x.startswith("submission "))
    return line.split()[1]


def test_submit_prints_its_id_and_the_servers_count_and_waits_for_deid(
    served: Served, tmp_path: Path
) -> None:
    files = folder(tmp_path / "study", 5, junk=True)
    done = served.imarc(
        "submit", str(files), "--collection", "Loop-CT", "--wait", "--batch-files", "2"
    )
    assert done.exit_code == 1, done.output  # one file is held
    assert "sent 6, received 6 ✔" in done.output
    assert "held at intake: 1 not_part10" in done.output
    assert "readme.txt" in done.output and "de-identified 5" in done.output
    counts = served.get(f"/api/intake/submissions/{submission_of(done)}").json()
    assert counts["files"] == 6 and counts["received"] == 6  # three requests, one submission
    assert counts["deidentified"] == 5 and counts["complete"] is True
    assert counts["held"] == {"intake": {"not_part10": 1}}

    r = httpx.post(
        f"{served.url}/api/qc/collections/Loop-CT/publish", json={}, headers=admin_headers()
    )
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and counts["published"] < 5:
        time.sleep(0.1)
        counts = served.get(f"/api/intake/submissions/{submission_of(done)}").json()
    assert counts["published"] == 5  # intake learned it from qc's series.published

    # the very bytes of a published instance, sent again, change nothing
    again = httpx.post(
        f"{served.url}/api/intake/collections/Loop-CT/instances",
        content=(files / "IM0001.dcm").read_bytes(),
        headers={"Authorization": f"Bearer {served.token}", "Content-Type": "application/dicom"},
    )
    assert again.status_code == 200 and again.json()["accepted_count"] == 1
    resent = served.get(f"/api/intake/submissions/{again.json()['submission_id']}").json()
    assert (resent["published"], resent["awaiting_deid"]) == (1, 0), "it stays published"


def test_deid_holds_are_listed_and_fail_the_submission(served: Served, tmp_path: Path) -> None:
    files = folder(tmp_path / "study", 3)
    done = served.imarc("submit", str(files), "--collection", "Mapped-CT", "--wait")
    assert done.exit_code == 1, done.output
    assert "sent 3, received 3 ✔" in done.output
    assert "held at deid: 3 no_id_map_entry" in done.output
    assert "IM0000.dcm (deid, no_id_map_entry): no ID map entry" in done.output


def test_all_accepted_and_none_held_exits_zero(served: Served, tmp_path: Path) -> None:
    done = served.imarc(
        "submit", str(folder(tmp_path / "s", 3)), "--collection", "Loop-CT", "--wait"
    )
    assert done.exit_code == 0, done.output
    assert "sent 3, received 3 ✔" in done.output and "held" not in done.output


def test_a_run_killed_half_way_is_finished_by_running_it_again(
    served: Served, tmp_path: Path
) -> None:
    files = folder(tmp_path / "study", 120)
    argv = [sys.executable, "-m", "imarc", "--url", served.url, "--token", served.token]
    argv += ["submit", str(files), "--collection", "Loop-CT", "--no-wait"]
    argv += ["--parallel", "1", "--batch-files", "1"]
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert first.stdout is not None
    submission = first.stdout.readline().decode().split()[1]  # "submission <id>"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if served.get(f"/api/intake/submissions/{submission}").json()["files"] >= 10:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    had = served.get(f"/api/intake/submissions/{submission}").json()["files"]
    assert 10 <= had < 120, "the first run was to be cut short"

    again = served.imarc("submit", str(files), "--collection", "Loop-CT", "--wait")
    assert again.exit_code == 0, again.output
    line = next(x for x in again.output.splitlines() if x.startswith("already on the server"))
    already = int(line.split()[4])  # "already on the server: N files; sending M"
    assert already >= had and line.endswith(f"sending {120 - already}")
    assert "sent 120, received 120 ✔" in again.output
    counts = served.get(f"/api/intake/submissions/{submission_of(again)}").json()
    assert counts["received"] == 120 and counts["deidentified"] == 120


def test_a_submission_is_only_joined_by_its_submitter(served: Served) -> None:
    r = httpx.post(
        f"{served.url}/api/intake/collections/Loop-CT/submissions",
        json={"sent": 1},
        headers={"Authorization": f"Bearer {served.token}"},
    )
    sid = r.json()["submission_id"]
    other = mint("someone-else", coll={"Loop-CT": ["submitter"]})
    joined = httpx.post(
        f"{served.url}/api/intake/collections/Loop-CT/instances",
        params={"submission": sid},
        content=encode(ct_dataset()),
        headers={"Authorization": f"Bearer {other}", "Content-Type": "application/dicom"},
    )
    assert joined.status_code == 403 and "start your own" in joined.json()["detail"]
    missing = served.get("/api/intake/submissions/0123456789abcdef0123456789abcdef")
    assert missing.status_code == 404 and "imarc submit" in missing.json()["detail"]
