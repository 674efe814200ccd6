"""`imarc submit`: send a folder of DICOM as one submission, check the server's count
against what was sent, wait for de-id's verdicts and list what is held.

Resumable: before sending, it asks the server which (SOPInstanceUID, sha256) it already
holds and sends only the rest, so a run cut short is finished by running it again.
"""

from __future__ import annotations

import hashlib
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import pydicom
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from imarc.cli_http import Api, api_client, fail

out = Console(soft_wrap=True)
#: How often a request the gateway could not pass on is sent again.
ATTEMPTS = 6
#: Files asked about per request (the server's limit is 10,000).
ASK = 5_000
#: Seconds between looks at the submission while waiting for de-id.
POLL = 1.0


def walk(paths: list[Path]) -> list[tuple[Path, str]]:
    files: list[tuple[Path, str]] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    files.append((f, str(f.relative_to(p.parent))))
        elif p.is_file():
            files.append((p, p.name))
        else:
            fail(f"{p} does not exist")
    return files


def batches(
    files: list[tuple[Path, str]], max_files: int, max_bytes: int
) -> list[list[tuple[Path, str]]]:
    found: list[list[tuple[Path, str]]] = []
    cur: list[tuple[Path, str]] = []
    size = 0
    for f in files:
        n = f[0].stat().st_size
        if cur and (len(cur) >= max_files or size + n > max_bytes):
            found.append(cur)
            cur, size = [], 0
        cur.append(f)
        size += n
    if cur:
        found.append(cur)
    return found


def identify(path: Path) -> tuple[str, str]:
    """(SOPInstanceUID or "", sha256) of one file, read from its header only."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    uid = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        uid = str(ds.get("SOPInstanceUID", "") or "").strip(" \x00")[:64]
    except Exception:  # not DICOM, or damaged: the server decides; the hash still matches
        uid = ""
    return uid, digest.hexdigest()


def _present(
    api: Api, submission: str, files: list[tuple[Path, str]], ids: list[tuple[str, str]]
) -> set[int]:
    """Indexes of the files the server already holds."""
    held: set[tuple[str, str]] = set()
    for start in range(0, len(ids), ASK):
        body = {
            "files": [{"sop_instance_uid": u, "sha256": h} for u, h in ids[start : start + ASK]]
        }
        r = api.request(
            "POST", f"/api/intake/submissions/{submission}/present", json=body, attempts=ATTEMPTS
        ).json()
        held |= {(p["sop_instance_uid"], p["sha256"]) for p in r.get("present", [])}
    return {i for i, pair in enumerate(ids) if pair in held}


def _counts(api: Api, submission: str) -> dict[str, Any]:
    return api.request("GET", f"/api/intake/submissions/{submission}", attempts=ATTEMPTS).json()


def submit(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of DICOM.")],
    collection: Annotated[str, typer.Option(help="Collection to submit to.")],
    site: Annotated[str, typer.Option(help="Submitting site.")] = "",
    parallel: Annotated[int, typer.Option(help="Uploads in flight.")] = 4,
    batch_files: Annotated[int, typer.Option(help="Files per request.")] = 32,
    wait: Annotated[
        bool | None,
        typer.Option(
            "--wait/--no-wait",
            help="Wait until de-id has decided every instance (default: on at a terminal).",
        ),
    ] = None,
    wait_timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 3600.0,
) -> None:
    """Send every file under PATHS as one submission; exit 0 only if every file was
    received and none is held. Run it again after an interruption: it sends only what the
    server does not have yet."""
    api = api_client(ctx)
    files = walk(paths)
    if not files:
        fail("no files found under " + ", ".join(str(p) for p in paths))
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        ids = list(pool.map(identify, (p for p, _ in files)))
    started = api.request(
        "POST",
        f"/api/intake/collections/{collection}/submissions",
        json={"site": site, "sent": len(files)},
        attempts=ATTEMPTS,
    ).json()
    submission = started["submission_id"]
    out.print(f"submission {submission}", highlight=False)
    already = _present(api, submission, files, ids)
    todo = [f for i, f in enumerate(files) if i not in already]
    if already:
        out.print(f"already on the server: {len(already):,} files; sending {len(todo):,}")
    _upload(api, collection, submission, todo, parallel, batch_files)
    if wait is None:
        wait = sys.stdout.isatty()
    counts = _counts(api, submission)
    if wait:
        deadline = time.monotonic() + wait_timeout
        while not counts.get("complete") and time.monotonic() < deadline:
            time.sleep(POLL)
            counts = _counts(api, submission)
    raise typer.Exit(_report(api, submission, len(files), counts, waited=wait))


def _upload(
    api: Api,
    collection: str,
    submission: str,
    files: list[tuple[Path, str]],
    parallel: int,
    batch_files: int,
) -> None:
    if not files:
        return
    url = f"/api/intake/collections/{collection}/instances"

    def send(batch: list[tuple[Path, str]]) -> int:
        parts = [("file", (name, path.read_bytes(), "application/dicom")) for path, name in batch]
        api.request("POST", url, params={"submission": submission}, files=parts, attempts=ATTEMPTS)
        return sum(p.stat().st_size for p, _ in batch)

    total = sum(f[0].stat().st_size for f in files)
    with (
        Progress(
            TextColumn("[bold]uploading[/bold] {task.fields[files]} files"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=not sys.stderr.isatty(),
        ) as progress,
        ThreadPoolExecutor(max(1, parallel)) as pool,
    ):
        task = progress.add_task("upload", total=total, files=len(files))
        for size in pool.map(send, batches(files, batch_files, 64 * 1024 * 1024)):
            progress.advance(task, size)


def _report(api: Api, submission: str, sent: int, c: dict[str, Any], *, waited: bool) -> int:
    received = int(c.get("received", 0))
    mark = "✔" if received == sent else "✘"
    out.print(f"sent {sent:,}, received {received:,} {mark}")
    held = c.get("held") or {}
    for stage, reasons in sorted(held.items()):
        for code, n in sorted(reasons.items()):
            out.print(f"held at {stage}: {n:,} {code}")
    if waited:
        out.print(
            f"de-identified {int(c.get('deidentified', 0)):,}, "
            f"published {int(c.get('published', 0)):,}"
            + ("" if c.get("complete") else f", {int(c.get('awaiting_deid', 0)):,} not decided yet")
        )
    if c.get("held_total"):
        rows = api.request(
            "GET", f"/api/intake/submissions/{submission}/held", attempts=ATTEMPTS
        ).json()
        for h in rows:
            out.print(
                f"  held {h['filename']} ({h['stage']}, {h['code']}): {h['reason']}",
                highlight=False,
            )
    ok = received == sent and not c.get("held_total") and (c.get("complete") or not waited)
    return 0 if ok else 1
