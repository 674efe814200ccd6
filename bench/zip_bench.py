"""getImage throughput and memory: a series zip streamed through a real HTTP server.

Generates one CT series of N instances (512×512, 16 bit, ~526 KB each; deterministic)
into a FilesystemStore public zone, then for two series sizes (N/4 and N) starts the
download service alone under uvicorn on 127.0.0.1 in a fresh process, indexes the
series through its own ``series.published`` consumer, and downloads getImage with
httpx (streamed, discarded). Prints MB/s per request and the server's resident memory
(before the download, and its peak) so that you can see memory stay flat as the series
grows.

    .venv/bin/python bench/zip_bench.py                 # 100 and 400 instances
    .venv/bin/python bench/zip_bench.py --instances 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLLECTION = "Bench-CT"
V4 = "/nbia-api/services/v4"


# -- data ------------------------------------------------------------------------------


def generate(n: int, objects: Path) -> list[dict[str, object]]:
    """N instances of one series in the public zone; returns their published records."""
    import numpy as np
    import pydicom
    import pydicom.examples
    from pydicom.uid import generate_uid

    from services.common.store import FilesystemStore

    store = FilesystemStore(objects, fsync=False)
    template = pydicom.examples.ct
    rng = np.random.default_rng(20261121)
    pixels = rng.integers(0, 2000, size=(512, 512), dtype=np.uint16)
    template.Rows = template.Columns = 512
    template.PixelData = pixels.tobytes()
    study, series = generate_uid(), generate_uid()
    out = []

    async def put_all() -> None:
        await store.ensure_zones()
        for i in range(n):
            ds = copy.deepcopy(template)
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.InstanceNumber, ds.AcquisitionNumber = i + 1, 1
            buf = io.BytesIO()
            pydicom.dcmwrite(buf, ds, enforce_file_format=True)
            key = f"{COLLECTION}/{study}/{series}/{ds.SOPInstanceUID}.dcm"
            obj = await store.put("public", key, buf.getvalue())
            out.append(
                {
                    "sop_instance_uid": str(ds.SOPInstanceUID),
                    "key": key,
                    "size": obj.size,
                    "sha256": obj.sha256,
                    "crc32": obj.crc32,
                    "header": {
                        "00200013": {"vr": "IS", "Value": [i + 1]},
                        "00200012": {"vr": "IS", "Value": [1]},
                    },
                }
            )

    asyncio.run(put_all())
    return out


# -- server (a child process) ----------------------------------------------------------


def serve(data_dir: Path, objects: Path, port: int, events_file: Path) -> None:
    """Run the download service under uvicorn; index the series, then print READY."""
    import logging

    import uvicorn
    from pydantic import SecretStr
    from sqlalchemy import func, select

    from imarc.runtime import Runtime
    from services.common.events import Event
    from services.common.settings import Settings
    from services.download.models import Instance

    logging.basicConfig(level=logging.WARNING)
    settings = Settings(
        data_dir=data_dir,
        store_url=f"file://{objects}",
        store_fsync=False,
        secret=SecretStr("bench-secret"),
        admin_username="admin",
        admin_password=SecretStr("bench"),
    )
    runtime = Runtime(settings, ["download"])
    app = runtime.app("zip bench")
    events = [Event.model_validate(e) for e in json.loads(events_file.read_text())]
    expected = sum(len(e.data.get("instances", ())) for e in events)

    async def main() -> None:
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                access_log=False,
                lifespan="on",
            )
        )
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.05)
        await runtime.bus.publish(events)
        db = runtime.contexts["download"].db
        while True:
            async with db.session() as s:
                if await s.scalar(select(func.count()).select_from(Instance)) == expected:
                    break
            await asyncio.sleep(0.1)
        print("READY", flush=True)
        await task

    asyncio.run(main())


# -- client ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def published_events(instances: list[dict[str, object]], n: int) -> list[dict[str, object]]:
    from pydicom.uid import generate_uid

    from services.common.events import CollectionUpdated, Licence, SeriesPublished

    coll = CollectionUpdated(
        name=COLLECTION,
        licence=Licence(
            id="cc-by-4.0", name="CC BY 4.0", url="https://creativecommons.org/licenses/by/4.0/"
        ),
    )
    series = SeriesPublished.model_validate(
        {
            "collection": coll.model_dump(),
            "patient_id": "BENCH-0001",
            "study_instance_uid": generate_uid(),
            "series_instance_uid": generate_uid(),
            "released_at": datetime.now(UTC),
            "instances": instances[:n],
        }
    )
    return [
        coll.event("/bench/qc").model_dump(mode="json"),
        series.event("/bench/qc", subject=series.series_instance_uid).model_dump(mode="json"),
    ]


def run_size(work: Path, objects: Path, instances: list[dict[str, object]], n: int) -> None:
    events = published_events(instances, n)
    uid = events[1]["data"]["series_instance_uid"]  # type: ignore[index]
    data_dir = work / f"server-{n}"
    data_dir.mkdir()
    events_file = data_dir / "events.json"
    events_file.write_text(json.dumps(events))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            str(data_dir),
            str(objects),
            str(port),
            str(events_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise SystemExit("the bench server did not start")
        idle = rss_kib(proc.pid, "VmRSS")
        dicom = sum(int(i["size"]) for i in instances[:n])  # type: ignore[call-overload]
        for label, params in (
            ("getImage", {}),
            ("getImage NewFileNames+IncludeMD5", {"NewFileNames": "Yes", "IncludeMD5": "Yes"}),
        ):
            got = 0
            cpu = cpu_seconds(proc.pid)
            client_cpu = time.process_time()
            start = time.perf_counter()
            with (
                httpx.Client(timeout=120) as client,
                client.stream(
                    "GET",
                    f"http://127.0.0.1:{port}{V4}/getImage",
                    params={"SeriesInstanceUID": uid, **params},
                ) as r,
            ):
                r.raise_for_status()
                for block in r.iter_raw():
                    got += len(block)
            secs = time.perf_counter() - start
            cpu = cpu_seconds(proc.pid) - cpu
            client_cpu = time.process_time() - client_cpu
            # MB per server CPU-second: what one free core would sustain, whatever else
            # is competing for this machine's cores
            print(
                f"{n:6d} instances  {dicom / 1e6:8.1f} MB DICOM  {label:34s} "
                f"{got / 1e6 / secs:7.1f} MB/s  ({secs:.2f} s; server CPU {cpu:.2f} s "
                f"= {got / 1e6 / max(cpu, 1e-3):.0f} MB per CPU-s; client CPU {client_cpu:.2f} s)",
                flush=True,
            )
        peak = rss_kib(proc.pid, "VmHWM")
        print(
            f"{n:6d} instances  server RSS before {idle / 1024:6.1f} MiB, peak "
            f"{peak / 1024:6.1f} MiB (+{(peak - idle) / 1024:.1f} MiB while streaming)",
            flush=True,
        )
    finally:
        proc.send_signal(signal.SIGINT)
        _, _, usage = os.wait4(proc.pid, 0)
        # ru_maxrss of this child alone (KiB on Linux); confirms the /proc reading
        print(f"{n:6d} instances  server ru_maxrss {usage.ru_maxrss / 1024:6.1f} MiB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--instances", type=int, default=400, help="the larger series (default 400)")
    ap.add_argument(
        "--serve", nargs=4, metavar=("DATA", "OBJECTS", "PORT", "EVENTS"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.serve:
        data, objects, port, events = args.serve
        with contextlib.suppress(KeyboardInterrupt):  # the parent stops us with SIGINT
            serve(Path(data), Path(objects), int(port), Path(events))
        return
    with tempfile.TemporaryDirectory(prefix="zip-bench-") as tmp:
        work = Path(tmp)
        objects = work / "objects"
        t = time.perf_counter()
        instances = generate(args.instances, objects)
        total = sum(int(i["size"]) for i in instances)  # type: ignore[call-overload]
        print(
            f"generated {len(instances)} instances, {total / 1e6:.1f} MB, "
            f"{total / len(instances) / 1e3:.0f} KB each, in {time.perf_counter() - t:.1f} s"
        )
        for n in sorted({max(1, args.instances // 4), args.instances}):
            run_size(work, objects, instances, n)
    client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bench client ru_maxrss {client_rss:.1f} MiB")


if __name__ == "__main__":
    main()
