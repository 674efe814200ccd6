"""Throughput of the deid service (prints, never asserts).

    .venv/bin/python -m tests.deid.throughput [N] [ROWS]

Quarantines N generated CT instances (ROWS x ROWS, 16-bit; default 200 x 512), publishes
their ``instance.received`` events at once and times until every ``instance.deidentified``
has been emitted, with the process pool at its default size (one worker per core). Beside
it: the engine alone in this process, and a plain pydicom read + write of the same files.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from pydicom import dcmread

from services.common.metrics import INSTANCES_DEIDENTIFIED
from services.deid.domain import initial_profile
from services.deid.engine import Keys, Request, deidentify
from tests.deid import dicom
from tests.deid.helpers import deid_platform


def corpus(n: int, rows: int) -> list[bytes]:
    out: list[bytes] = []
    patient = 0
    while len(out) < n:
        patient += 1
        out += dicom.ct_series(f"BENCH-{patient:03d}", f"Bench^{patient}", n=50, rows=rows)
    return out[:n]


async def service_rate(files: list[bytes]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        workers = os.cpu_count() or 1
        async with deid_platform(
            Path(tmp), with_intake=False, record=False, deid_workers=workers
        ) as d:
            await d.create_collection("Bench-CT")
            deid = d.p.runtime.contexts["deid"]
            before = INSTANCES_DEIDENTIFIED.labels("Bench-CT")._value.get()
            start = time.perf_counter()
            for i, raw in enumerate(files):
                await d.publish_received("Bench-CT", raw, instance_id=f"{i:032x}")

            # Counted at deid's commit, then until its outbox has relayed every event: the
            # time includes quarantine writes, store reads/writes, DB commits and the relay.
            async def all_done() -> bool:
                done = INSTANCES_DEIDENTIFIED.labels("Bench-CT")._value.get() - before
                return done >= len(files) and await deid.messaging.pending() == 0

            await d.p.wait_until(all_done, timeout=600, what="every instance de-identified")
            return len(files) / (time.perf_counter() - start)


def engine_rate(files: list[bytes]) -> float:
    keys = Keys(b"bench-secret-0123456789", "2.25")
    profile = initial_profile(False)
    start = time.perf_counter()
    for raw in files:
        deidentify(Request(raw, "Bench-CT", "Bench-CT-0001", keys, profile, -400))
    return len(files) / (time.perf_counter() - start)


def floor_rate(files: list[bytes]) -> float:
    start = time.perf_counter()
    for raw in files:
        ds = dcmread(io.BytesIO(raw))
        ds.save_as(io.BytesIO(), enforce_file_format=True)
    return len(files) / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    files = corpus(n, rows)
    mb = sum(map(len, files)) / n / 1e6
    print(f"{n} CT instances of {rows}x{rows} ({mb:.2f} MB each), {os.cpu_count()} cores")
    rate = asyncio.run(service_rate(files))
    print(f"deid service, end to end: {rate:7.1f} instances/s  {rate * mb:6.1f} MB/s")
    one = engine_rate(files)
    print(f"engine alone, one core:   {one:7.1f} instances/s")
    floor = floor_rate(files)
    print(f"pydicom read+write floor: {floor:7.1f} instances/s (one core)")


if __name__ == "__main__":
    main()
