"""Catalog benchmark: index N instances through the series.published handler, then time
NBIA getSeries-by-collection and DICOMweb QIDO-RS series searches through the ASGI app.

    .venv/bin/python bench/catalog_bench.py                      # 100k instances, both backends
    .venv/bin/python bench/catalog_bench.py --instances 1000000 --backend postgres

Headers are pydicom's CT_small header (bulk data and private tags dropped, ~3 KB of DICOM
JSON) with fresh UIDs per instance. Each series is one event handled in one transaction
(inbox + upserts + executemany of its instances), as the consumer does it.
PostgreSQL gets a fresh database (dropped afterwards unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom import examples

from services.catalog import consumers
from services.common.events import (
    CollectionUpdated,
    Event,
    Licence,
    PublishedInstance,
    SeriesPublished,
)
from tests.harness import Platform, platform

PG_ADMIN = dict(host="127.0.0.1", port=5432, user="postgres", database="postgres")


def template() -> dict[str, Any]:
    ds = copy.deepcopy(examples.ct)
    del ds.PixelData
    ds.remove_private_tags()
    out = {**ds.file_meta.to_json_dict(), **ds.to_json_dict()}
    return {k: v for k, v in out.items() if "InlineBinary" not in v and "BulkDataURI" not in v}


def uid(prefix: str = "2.25.") -> str:
    return prefix + str(uuid.uuid4().int)


def series_event(
    base: dict[str, Any],
    coll: CollectionUpdated,
    patient: str,
    study: str,
    n: int,
    rnd: random.Random,
) -> Event:
    series = uid()
    modality = rnd.choice(["CT", "CT", "CT", "MR", "PT"])
    protocol = {"vr": "LO", "Value": [f"Protocol {rnd.randrange(50)}"]}  # ~1 series in 50
    instances = []
    for i in range(n):
        sop = uid()
        h = dict(base)  # shallow: only the per-instance elements are replaced
        h["00080018"] = {"vr": "UI", "Value": [sop]}
        h["00020003"] = {"vr": "UI", "Value": [sop]}
        h["0020000D"] = {"vr": "UI", "Value": [study]}
        h["0020000E"] = {"vr": "UI", "Value": [series]}
        h["00100020"] = {"vr": "LO", "Value": [patient]}
        h["00080060"] = {"vr": "CS", "Value": [modality]}
        h["00200013"] = {"vr": "IS", "Value": [i + 1]}
        h["00181030"] = protocol
        instances.append(
            PublishedInstance(
                sop_instance_uid=sop, key=f"{coll.name}/{study}/{series}/{sop}.dcm",
                size=525_000 + i, sha256=f"{i:064x}", header=h,
            )
        )  # fmt: skip
    return SeriesPublished(
        collection=coll, site="Bench-Site", patient_id=patient, study_instance_uid=study,
        series_instance_uid=series, released_at=datetime.now(UTC), instances=instances,
    ).event("/bench/qc", subject=series)  # fmt: skip


async def index(p: Platform, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    ctx = p.runtime.contexts["catalog"]
    base = template()
    rnd = random.Random(7)
    names = [f"Bench-{i:02d}" for i in range(args.collections)]
    colls = [
        CollectionUpdated(name=n, licence=Licence(id="cc-by-4.0", name="CC BY 4.0"), doi="10.1/x")
        for n in names
    ]
    n_series = max(1, args.instances // args.per_series)
    per_patient = 4
    start = time.perf_counter()
    build = 0.0
    done = 0
    studies = []
    for s in range(n_series):
        coll = colls[s % len(colls)]
        patient = f"{coll.name}-{(s // len(colls)) // per_patient:05d}"
        study = uid("1.2.826.0.1.3680043.10.")  # one study per series keeps it simple
        studies.append(study)
        t = time.perf_counter()
        event = series_event(base, coll, patient, study, args.per_series, rnd)
        build += time.perf_counter() - t
        await ctx.messaging.apply_once(
            "catalog.on_series_published", event,
            lambda uow, e=event: consumers.on_series_published(e, uow),
        )  # fmt: skip
        done += args.per_series
        if (s + 1) % max(1, n_series // 10) == 0:
            el = time.perf_counter() - start
            print(f"  indexed {done:>9,} instances  {done / el:8,.0f}/s  ({el:6.1f} s)", flush=True)
    elapsed = time.perf_counter() - start
    print(
        f"  indexing: {done:,} instances in {n_series:,} series: {elapsed:.1f} s "
        f"({done / elapsed:,.0f} instances/s; {build:.1f} s of it building the events, "
        f"so {done / (elapsed - build):,.0f} instances/s in the handler)"
    )
    return names, studies


async def query(
    p: Platform, names: list[str], studies: list[str], args: argparse.Namespace
) -> None:
    rnd = random.Random(11)
    nbia = "/nbia-api/services/v4/"
    for path, params in [
        (nbia + "getSeries", lambda: {"Collection": rnd.choice(names).lower()}),
        (nbia + "getSeries", lambda: {"Collection": rnd.choice(names), "Modality": "mr"}),
        (nbia + "getPatient", lambda: {"Collection": rnd.choice(names)}),
        (nbia + "getCollectionValuesAndCounts", lambda: {}),
        # QIDO-RS: a study's series; any attribute (the GIN index); a patient's series
        ("/dicomweb/studies/{study}/series", lambda: {}),
        ("/dicomweb/series", lambda: {"ProtocolName": f"Protocol {rnd.randrange(50)}"}),
        ("/dicomweb/series", lambda: {"Modality": "MR", "limit": "100"}),
        ("/dicomweb/series", lambda: {"PatientID": f"{rnd.choice(names)}-00001"}),
    ]:
        for _ in range(20):  # warm up caches and the connection pool
            await p.client.get(path.format(study=rnd.choice(studies)), params=params())
        lat = []
        size = 0
        for _ in range(args.queries):
            t = time.perf_counter()
            r = await p.client.get(path.format(study=rnd.choice(studies)), params=params())
            lat.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
            size = len(r.content)
        q = statistics.quantiles(lat, n=100)
        label = f"{path.rsplit('/', 1)[-1] if path.startswith(nbia) else path}?{'&'.join(params())}"
        print(
            f"  {label:<46} p50 {q[49]:6.2f} ms  p95 {q[94]:6.2f} ms  p99 {q[98]:6.2f} ms"
            f"  ({size / 1024:.0f} KiB per response)"
        )


async def run(backend: str, args: argparse.Namespace) -> None:
    print(f"== {backend}: {args.instances:,} instances, {args.per_series} per series, "
          f"{args.collections} collections")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="catalog-bench-") as tmp:
        overrides: dict[str, Any] = {}
        db_name = None
        if backend == "postgres":
            import asyncpg

            db_name = "imarc_bench_" + uuid.uuid4().hex[:8]
            conn = await asyncpg.connect(**PG_ADMIN)
            await conn.execute(f'CREATE DATABASE "{db_name}"')
            await conn.close()
            overrides["database_url"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db_name}"
        try:
            async with platform(Path(tmp), services=["catalog"], **overrides) as p:
                names, studies = await index(p, args)
                await query(p, names, studies, args)
        finally:
            if db_name and not args.keep:
                import asyncpg

                conn = await asyncpg.connect(**PG_ADMIN)
                await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
                await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--per-series", type=int, default=100)
    ap.add_argument("--collections", type=int, default=10)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = ap.parse_args()
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        asyncio.run(run(backend, args))


if __name__ == "__main__":
    main()
