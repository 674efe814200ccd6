"""Mirror throughput and feed latency: a site B mirrors site A over loopback HTTP.

Generates S series of N CT instances (512×512, 16 bit, ~526 KB each; download_bench's
corpus) in site A's public zone and publishes them there (catalog and download, embedded).
Site A is served by uvicorn on 127.0.0.1; site B (catalog and download, IMARC_SITE_ROLE=
mirror) follows A's feed in the same process and event loop. Prints:

* mirror throughput: from B starting to follow an empty cursor until B's catalog and
  download index every instance — instances/s and MB/s;
* feed latency: L one-instance series published on A, one at a time; for each, the time
  from the publication's event entering A's bus to the series being in B's catalog
  (median and max).

Both sites share this process's cores, so the figures are a floor for two machines.

    .venv/bin/python bench/mirror_bench.py                       # 20 series × 100 (~1 GB)
    .venv/bin/python bench/mirror_bench.py --series 4 --instances 50 --latency 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from download_bench import events, generate  # noqa: E402  (the same corpus)

SERVICES = ["catalog", "download"]


def settings(data: Path, **kw: Any) -> Any:
    from pydantic import SecretStr

    from services.common.settings import Settings

    return Settings(
        data_dir=data,
        store_url=f"file://{data / 'objects'}",
        store_fsync=False,
        secret=SecretStr("bench-secret"),
        admin_username="admin",
        admin_password=SecretStr("bench"),
        **kw,
    )


async def count(runtime: Any, service: str, table: str) -> int:
    from sqlalchemy import text

    async with runtime.contexts[service].db.engine.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


async def wait(check: Any, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.01)


async def run(tmp: Path, corpus: list[dict[str, Any]], probes: list[dict[str, Any]]) -> None:
    import socket

    import uvicorn

    from imarc.runtime import Runtime
    from services.catalog.models import mirror_sources, series
    from services.common.events import Event

    a = Runtime(settings(tmp / "a"), SERVICES)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            a.app("site A"),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.05)
    total = sum(len(p["instances"]) for p in corpus)
    size = sum(i["size"] for p in corpus for i in p["instances"])
    await a.bus.publish([Event.model_validate(e) for e in events(corpus)])
    await wait(lambda: _indexed(a, total))

    b = Runtime(settings(tmp / "b", site_role="mirror", site_name="site-b"), SERVICES)
    await b.start()
    try:
        t0 = time.perf_counter()
        async with b.contexts["catalog"].db.session() as s, s.begin():
            await s.execute(
                mirror_sources.insert().values(
                    url=f"http://127.0.0.1:{port}", collections=[], token="", follow=True,
                    cursor="", entries=0, instances=0, bytes=0, state="following",
                    caught_up=False, updated_at=datetime.now(UTC),
                )
            )  # fmt: skip
        follower = b.deps["catalog"].follower
        follower.wake()
        await wait(lambda: _indexed(b, total))
        took = time.perf_counter() - t0
        print(f"mirror: {total} instances, {size / 1e6:,.1f} MB in {took:.2f} s: "
              f"{total / took:,.1f} instances/s, {size / 1e6 / took:,.1f} MB/s")  # fmt: skip

        latencies = []
        for e in events(probes)[1:]:
            event = Event.model_validate(e)
            uid = event.data["series_instance_uid"]
            t = time.perf_counter()
            await a.bus.publish([event])

            async def arrived(uid: str = uid) -> bool:
                async with b.contexts["catalog"].db.engine.connect() as conn:
                    q = series.select().where(series.c.series_instance_uid == uid)
                    return (await conn.execute(q)).first() is not None

            await wait(arrived, 120)
            latencies.append(time.perf_counter() - t)
        if latencies:
            ms = sorted(x * 1000 for x in latencies)
            print(f"feed latency publish on A → in B's catalog over {len(ms)} series: "
                  f"median {statistics.median(ms):,.0f} ms, max {ms[-1]:,.0f} ms")  # fmt: skip
    finally:
        await b.stop()
        server.should_exit = True
        await serving


async def _indexed(runtime: Any, total: int) -> bool:
    return (
        await count(runtime, "catalog", "instances") >= total
        and await count(runtime, "download", "instances") >= total
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=20)
    ap.add_argument("--instances", type=int, default=100, help="instances per series")
    ap.add_argument("--latency", type=int, default=10, help="one-instance series for latency")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="mirror-bench-") as d:
        tmp = Path(d)
        corpus = generate(args.series, args.instances, tmp / "a" / "objects")
        probes = generate(args.latency, 1, tmp / "a" / "objects") if args.latency else []
        print(json.dumps({"series": args.series, "instances": args.instances}))
        asyncio.run(run(tmp, corpus, probes))


if __name__ == "__main__":
    main()
