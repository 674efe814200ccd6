"""Downloads at scale: `imarc download` of a many-series manifest, and many getImage
clients at once, against the download service under uvicorn on 127.0.0.1.

Generates S series of N CT instances (512×512, 16 bit, ~526 KB each; deterministic) in
a FilesystemStore public zone, starts the download service alone in a fresh process and
indexes the series through its own ``series.published`` consumer. Then prints:

* `imarc download MANIFEST --parallel P` (a subprocess, as a user runs it) for P = 1 and
  4: MB/s over the whole run;
* the same with 4 streams killed (SIGKILL) half-way, then run again: how long the re-run
  takes to check what is there and fetch the rest;
* C concurrent clients each streaming getImage of a series: aggregate MB/s and the
  server's resident memory before and at its peak.

    .venv/bin/python bench/download_bench.py                    # 20 series × 100 (~1 GB)
    .venv/bin/python bench/download_bench.py --series 4 --instances 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from zip_bench import rss_kib, serve  # noqa: E402  (the same server and memory reading)

COLLECTION = "Bench-CT"
V4 = "/nbia-api/services/v4"


def generate(series: int, n: int, objects: Path) -> list[dict[str, object]]:
    """``series`` published series of ``n`` instances each; their series.published data."""
    import numpy as np
    import pydicom
    import pydicom.examples
    from pydicom.uid import generate_uid

    from services.common.store import FilesystemStore

    store = FilesystemStore(objects, fsync=False)
    template = pydicom.examples.ct
    rng = np.random.default_rng(20261204)
    template.Rows = template.Columns = 512
    template.PixelData = rng.integers(0, 2000, size=(512, 512), dtype=np.uint16).tobytes()
    published = []

    async def put_all() -> None:
        await store.ensure_zones()
        for s in range(series):
            study, uid = generate_uid(), generate_uid()
            instances = []
            for i in range(n):
                ds = copy.deepcopy(template)
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                ds.StudyInstanceUID, ds.SeriesInstanceUID = study, uid
                ds.PatientID = f"BENCH-{s:04d}"
                ds.InstanceNumber, ds.AcquisitionNumber = i + 1, 1
                buf = io.BytesIO()
                pydicom.dcmwrite(buf, ds, enforce_file_format=True)
                key = f"{COLLECTION}/{study}/{uid}/{ds.SOPInstanceUID}.dcm"
                obj = await store.put("public", key, buf.getvalue())
                instances.append(
                    {
                        "sop_instance_uid": str(ds.SOPInstanceUID),
                        "key": key,
                        "size": obj.size,
                        "sha256": obj.sha256,
                        "crc32": obj.crc32,
                        "header": {
                            "00200013": {"vr": "IS", "Value": [i + 1]},
                            "00200012": {"vr": "IS", "Value": [1]},
                            "00080060": {"vr": "CS", "Value": ["CT"]},
                        },
                    }
                )
            published.append(
                {
                    "patient_id": f"BENCH-{s:04d}",
                    "study_instance_uid": study,
                    "series_instance_uid": uid,
                    "instances": instances,
                }
            )

    asyncio.run(put_all())
    return published


def events(published: list[dict[str, object]]) -> list[dict[str, object]]:
    from services.common.events import CollectionUpdated, Licence, SeriesPublished

    coll = CollectionUpdated(
        name=COLLECTION,
        licence=Licence(id="cc-by-4.0", name="CC BY 4.0", url="https://example.org/by/4.0/"),
        citation="Bench (2026). Bench-CT.",
        doi="10.99999/bench-ct",
    )
    out = [coll.event("/bench/intake").model_dump(mode="json")]
    for p in published:
        sp = SeriesPublished.model_validate(
            {"collection": coll.model_dump(), "released_at": datetime.now(UTC), **p}
        )
        out.append(sp.event("/bench/qc", subject=sp.series_instance_uid).model_dump(mode="json"))
    return out


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.dcm*") if p.is_file())


def imarc(url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": "/nonexistent"}
    env.pop("IMARC_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, "-m", "imarc", "--url", url, "download", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def run_download(url: str, manifest: Path, out: Path, parallel: int, total: int) -> None:
    start = time.perf_counter()
    proc = imarc(url, str(manifest), "--out", str(out), "--parallel", str(parallel))
    stdout, _ = proc.communicate()
    secs = time.perf_counter() - start
    print(
        f"imarc download, {parallel} stream(s): {total / 1e6:.0f} MB in {secs:.1f} s = "
        f"{total / 1e6 / secs:.0f} MB/s (exit {proc.returncode}; whole command, incl. start-up)",
        flush=True,
    )
    if proc.returncode != 0:
        print(stdout)


def run_resume(url: str, manifest: Path, out: Path, total: int) -> None:
    proc = imarc(url, str(manifest), "--out", str(out), "--parallel", "4")
    while proc.poll() is None and tree_bytes(out) < total / 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    had = tree_bytes(out)
    start = time.perf_counter()
    again = imarc(url, str(manifest), "--out", str(out), "--parallel", "4")
    stdout, _ = again.communicate()
    secs = time.perf_counter() - start
    print(
        f"killed at {had / 1e6:.0f} of {total / 1e6:.0f} MB; the re-run checked that and "
        f"fetched the rest in {secs:.1f} s (exit {again.returncode})",
        flush=True,
    )
    print("  " + stdout.strip().splitlines()[0], flush=True)


def run_clients(url: str, uids: list[str], clients: int, pid: int) -> None:
    idle = rss_kib(pid, "VmRSS")
    got = [0] * clients

    def one(i: int) -> None:
        with (
            httpx.Client(timeout=300) as c,
            c.stream(
                "GET", f"{url}{V4}/getImage", params={"SeriesInstanceUID": uids[i % len(uids)]}
            ) as r,
        ):
            r.raise_for_status()
            for block in r.iter_raw():
                got[i] += len(block)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - start
    peak = rss_kib(pid, "VmHWM")
    print(
        f"{clients} concurrent getImage clients: {sum(got) / 1e6:.0f} MB in {secs:.1f} s = "
        f"{sum(got) / 1e6 / secs:.0f} MB/s aggregate; server RSS {idle / 1024:.0f} MiB before, "
        f"peak {peak / 1024:.0f} MiB",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--series", type=int, default=20)
    ap.add_argument("--instances", type=int, default=100, help="per series")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        data, objects, port, evs = args.serve
        with contextlib.suppress(KeyboardInterrupt):
            serve(Path(data), Path(objects), int(port), Path(evs))
        return
    from imarc.stack import free_port
    from services.download.manifest import manifest_lines

    with tempfile.TemporaryDirectory(prefix="download-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        published = generate(args.series, args.instances, work / "objects")
        total = sum(int(i["size"]) for p in published for i in p["instances"])  # type: ignore[attr-defined]
        print(
            f"generated {args.series} series × {args.instances} instances, {total / 1e6:.0f} MB, "
            f"in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        (work / "server").mkdir()
        (work / "events.json").write_text(json.dumps(events(published)))
        uids = [str(p["series_instance_uid"]) for p in published]
        manifest = work / "bench.tcia"
        manifest.write_text("".join(manifest_lines(uids, server_url="x", basket_id="bench")))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(work / "server"), str(work / "objects"),
             str(port), str(work / "events.json")],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "READY":
                raise SystemExit("the bench server did not start")
            for parallel in (1, 4):
                run_download(url, manifest, work / f"out-{parallel}", parallel, total)
            run_resume(url, manifest, work / "out-resume", total)
            run_clients(url, uids, args.clients, server.pid)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait()


if __name__ == "__main__":
    main()
