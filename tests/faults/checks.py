"""What the fault tests check after the dust settles, as an operator would: every instance
published exactly once, nothing stuck, nothing left running.

The client side retries what failed, as `imarc submit` does: a refused or failed upload is
sent again (an instance re-sent replaces itself: its quarantine key derives from its UIDs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from imarc.synth import corpus

COLLECTION = "Faults-CT"


def files(n: int) -> list[tuple[str, bytes]]:
    """``n`` small CT slices in a few series (64×64 keeps the tests quick)."""
    return list(corpus(n, per_series=max(1, n // 3), rows=64, columns=64, patients=2))


def login(url: str, creds: dict[str, str], *, timeout: float = 120) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = httpx.post(
                f"{url}/api/auth/token",
                data={"grant_type": "password", **creds},
                timeout=10,
            )
            if r.status_code == 200:
                return {"Authorization": f"Bearer {r.json()['access_token']}"}
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("could not log in: the platform did not come back")
        time.sleep(0.5)


def retrying(what: str, call: Callable[[], httpx.Response], timeout: float = 120) -> httpx.Response:
    """Call until it answers 2xx (a bounded loop, as a client would)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = call()
            if r.status_code < 300:
                return r
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.5)
    raise AssertionError(f"{what} kept failing for {timeout:.0f}s: {last}")


def submit(url: str, headers: Callable[[], dict[str, str]], batch: list[tuple[str, bytes]]) -> None:
    parts = [("file", (name, data, "application/dicom")) for name, data in batch]
    retrying(
        "an upload",
        lambda: httpx.post(
            f"{url}/api/intake/collections/{COLLECTION}/instances",
            files=parts,
            headers=headers(),
            timeout=60,
        ),
    )


def status(url: str, headers: dict[str, str]) -> dict[str, int]:
    r = httpx.get(f"{url}/api/qc/collections/{COLLECTION}/status", headers=headers, timeout=10)
    r.raise_for_status()
    body: dict[str, int] = r.json()
    return body


def wait_until(what: str, check: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen in {timeout:.0f}s")


def published_instances(url: str) -> list[str]:
    """SOP Instance UIDs the public catalog lists for the collection (with repeats)."""
    series = httpx.get(
        f"{url}/nbia-api/services/v4/getSeries", params={"Collection": COLLECTION}, timeout=30
    )
    if not series.content.strip():
        return []
    uids: list[str] = []
    for s in series.json():
        r = httpx.get(
            f"{url}/nbia-api/services/v4/getSOPInstanceUIDs",
            params={"SeriesInstanceUID": s["SeriesInstanceUID"]},
            timeout=30,
        )
        uids += [row["SOPInstanceUID"] for row in r.json()] if r.content.strip() else []
    return uids


def public_objects(objects: Path) -> list[Path]:
    return sorted((objects / "public" / COLLECTION).rglob("*.dcm"))


def publish_all(url: str, headers: dict[str, str], objects: Path, n: int) -> None:
    """Publish the collection (retrying what the gateway could not pass on) and check that
    the catalog lists each of the ``n`` instances exactly once, with ``n`` public objects
    under ``objects``."""
    retrying(
        "publishing",
        lambda: httpx.post(
            f"{url}/api/qc/collections/{COLLECTION}/publish",
            json={"series": []},
            headers=headers,
            timeout=120,
        ),
    )
    wait_until("the catalog to list every instance", lambda: len(published_instances(url)) >= n)
    uids = published_instances(url)
    assert len(uids) == n and len(set(uids)) == n, "each instance is listed exactly once"
    assert len(public_objects(objects)) == n


def descendants(pid: int) -> set[int]:
    """Every process started (directly or not) by ``pid``, while it lives."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                kids = [int(c) for c in task.read_text().split()]
            except OSError:
                continue
            out.update(kids)
            todo += kids
    return out


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (zombies count as gone)."""
    out = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(p)
    return out


def no_orphans(pids: set[int], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(pids), f"processes outlived the service that started them: {alive(pids)}"
