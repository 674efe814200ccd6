"""Submit → published throughput, end to end, through the real HTTP API.

Generates N synthetic 512×512 CT instances (deterministic, ~526 KB each), starts the
platform (embedded: `imarc up`; distributed: one process per service against PostgreSQL,
RabbitMQ and an S3 stand-in), uploads them in parallel multipart batches, publishes the
collection once every instance is de-identified, and waits until the catalog lists every instance.
Prints instances/s and MB/s per phase and for the whole run, and what each instance cost
(bench/costs.py): CPU ms per instance of every server process (in embedded mode also of
every service on the shared event loop), peak RSS per process, SQL statements and
transactions per instance and bytes of event JSON per instance, per service.

    python bench/submit_bench.py --instances 2000 --mode embedded
    python bench/submit_bench.py --instances 500 --mode distributed            # file store
    python bench/submit_bench.py --instances 500 --mode distributed --store s3 # S3 stand-in

With ``--record`` the result is kept in bench/results/ and README's performance table of
this benchmark is written again from every kept result (with its date, the machine's core
count and the load average seen).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from costs import ProcessWatch, difference, report, scrape  # noqa: E402

from imarc.stack import Stack, drop_database, free_port  # noqa: E402
from imarc.synth import corpus  # noqa: E402
from services.common.settings import SERVICES  # noqa: E402

COLLECTION = "Bench-CT"
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- submit_bench results -->", "<!-- /submit_bench results -->"


def generate(n: int, out: Path) -> tuple[list[Path], int]:
    files, total = [], 0
    for name, data in corpus(n):
        p = out / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files.append(p)
        total += len(data)
    return files, total


def start_embedded(
    data: Path, metrics_port: int = 0, account_cpu: bool = False
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    log = open(data / "imarc.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imarc",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--no-demo",
        ],
        stdout=log,
        stderr=log,
        env={
            **os.environ,
            "IMARC_LOG_LEVEL": "WARNING",
            "IMARC_DICOM_PORT": "0",
            "IMARC_METRICS_PORT": str(metrics_port),
            "IMARC_ACCOUNT_CPU": "1" if account_cpu else "",
        },
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"imarc did not start; see {data / 'imarc.log'}")


class Meter:
    """The processes and metrics ports of the platform under test."""

    def __init__(self, pids: dict[str, int], metrics: list[str]) -> None:
        self.watch = ProcessWatch(pids).start()
        self.metrics = metrics

    def counters(self) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for url in self.metrics:
            for k, v in scrape(url).items():
                out[k] = out.get(k, 0.0) + v
        return out

    def begin(self) -> None:
        self.cpu0, self.counters0 = self.watch.baseline(), self.counters()

    def end(self, n: int) -> dict[str, object]:
        counters = difference(self.counters(), self.counters0)
        return report(n, self.watch.stop(), self.cpu0, counters)


def run(
    url: str,
    creds: dict[str, str],
    files: list[Path],
    total_bytes: int,
    parallel: int,
    batch: int,
    meter: Meter | None = None,
) -> dict[str, object]:
    url_base = url
    http = httpx.Client(base_url=url, timeout=600)
    tok = http.post("/api/auth/token", data={"grant_type": "password", **creds}).json()
    http.headers["Authorization"] = f"Bearer {tok['access_token']}"
    http.post("/api/intake/collections", json={"name": COLLECTION, "licence": "CC-BY-4.0"})
    n = len(files)
    batches = [files[i : i + batch] for i in range(0, n, batch)]

    token = http.headers["Authorization"]
    curl = shutil.which("curl")

    def send(chunk: list[Path]) -> int:
        url = f"{url_base}/api/intake/collections/{COLLECTION}/instances"
        if curl:  # a C client keeps the 2-core machine's CPU for the server being measured
            cmd = [curl, "-sS", "--fail-with-body", "-H", f"Authorization: {token}", url]
            for p in chunk:
                cmd += ["-F", f"file=@{p};type=application/dicom"]
            out = subprocess.run(cmd, capture_output=True, check=True).stdout
            return int(json.loads(out)["accepted_count"])
        parts = [("file", (p.name, p.read_bytes(), "application/dicom")) for p in chunk]
        r = http.post(f"/api/intake/collections/{COLLECTION}/instances", files=parts)
        r.raise_for_status()
        return int(r.json()["accepted_count"])

    if meter is not None:
        meter.begin()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        accepted = sum(pool.map(send, batches))
    t_upload = time.perf_counter() - t0
    assert accepted == n, f"only {accepted} of {n} accepted"

    t_deid = None
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        status = http.get(f"/api/qc/collections/{COLLECTION}/status").json()
        if status["deidentified"] + status["held"] >= n:
            t_deid = time.perf_counter() - t0
            break
        time.sleep(0.5)
    # a curator signs the collection off once everything is de-identified
    r = http.post(f"/api/qc/collections/{COLLECTION}/publish", json={"series": []})
    if r.status_code != 200:
        raise SystemExit(f"publish failed: {r.status_code} {r.text}")
    # the catalog lists them: sum of ImageCount over the collection
    while time.monotonic() < deadline:
        r = http.get("/nbia-api/services/v4/getSeries", params={"Collection": COLLECTION})
        if r.content.strip() and sum(s["ImageCount"] for s in r.json()) >= n:
            break
        time.sleep(0.1)
    t_all = time.perf_counter() - t0
    mb = total_bytes / 1e6
    costs = meter.end(n) if meter is not None else {}
    return {
        "instances": n,
        "MB": round(mb, 1),
        "upload_s": round(t_upload, 2),
        "upload_inst_per_s": round(n / t_upload, 1),
        "deidentified_s": round(t_deid or t_all, 2),
        "submit_to_deidentified_inst_per_s": round(n / (t_deid or t_all), 1),
        "published_s": round(t_all, 2),
        "end_to_end_inst_per_s": round(n / t_all, 1),
        "end_to_end_MB_per_s": round(mb / t_all, 1),
        **costs,
    }


def _name(result: dict[str, object]) -> str:
    store = f"-{result['store']}" if result.get("store") else ""
    deid = f"-deid{result['deid_processes']}" if result.get("deid_processes", 1) != 1 else ""
    return f"submit-{result['mode']}{store}{deid}.json"


def _row(r: dict[str, Any]) -> str:
    procs: dict[str, dict[str, float]] = r.get("processes", {})
    cpu = sum(p["cpu_ms_per_instance"] for p in procs.values())
    rss = ", ".join(
        f"{name} {p['peak_rss_mb']:.0f}" for name, p in procs.items() if p["peak_rss_mb"] >= 20
    )
    mode = r["mode"]
    if r.get("store"):
        mode += f" ({r['store']} store, {r.get('deid_processes', 1)} de-id process(es))"
    sql = r.get("sql_statements_per_instance", {}).get("total", "–")
    txn = r.get("sql_transactions_per_instance", {}).get("total", "–")
    event_bytes = r.get("event_bytes_per_instance", {}).get("total", "–")
    return (
        f"| {r['date']} | {r['cores']} | {r.get('load_average_1m_at_start', '–')} → "
        f"{r['load_average_1m_at_end']} | {mode} | "
        f"{r['instances']} | **{r['end_to_end_inst_per_s']}** | {r['upload_inst_per_s']} | "
        f"{cpu:.1f} | {sql} / {txn} | {event_bytes} | {rss} |"
    )


def record(result: dict[str, object]) -> None:
    """Keep the result and write README's table of this benchmark from every kept one."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / _name(result)).write_text(json.dumps(result, indent=2) + "\n")
    rows = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("submit-*.json"))]
    table = "\n".join(
        [
            BEGIN,
            "| date | cores | load (1 min, start → end) | mode | instances | submit → published /s "
            "| upload /s | CPU ms per instance (all processes) | SQL statements / "
            "transactions per instance | event bytes per instance | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *map(_row, rows),
            END,
        ]
    )
    text = README.read_text()
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + table + text[text.index(END) + len(END) :]
    else:
        text = text.replace("## Performance\n", f"## Performance\n\n{table}\n", 1)
    README.write_text(text)


class MeteredStack(Stack):
    """A distributed deployment whose processes each serve metrics on a port of their own."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.metrics_ports: dict[str, int] = {}

    def _spawn(self, name: str, port: int) -> None:
        self.metrics_ports[name] = free_port()
        base, self.env = self.env, {**self.env, "IMARC_METRICS_PORT": str(self.metrics_ports[name])}
        try:
            super()._spawn(name, port)
        finally:
            self.env = base

    def add_deid(self, count: int) -> None:
        """More de-id processes: competing consumers of the same queue."""
        for i in range(2, count + 1):
            name = f"deid-{i}"
            port = free_port()
            self.metrics_ports[name] = free_port()
            env = {**self.env, "IMARC_METRICS_PORT": str(self.metrics_ports[name])}
            log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115
            cmd = [sys.executable, "-m", "imarc", "serve", "deid", "--port", str(port)]
            self.procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
            self._wait(f"http://127.0.0.1:{port}/readyz", 120, name)

    def meter(self) -> Meter:
        return Meter(
            {name: p.pid for name, p in self.procs.items()},
            [f"http://127.0.0.1:{port}/metrics" for port in self.metrics_ports.values()],
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    ap.add_argument("--store", choices=["file", "s3"], default="file", help="distributed mode")
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--record", action="store_true", help="keep the result; update README")
    ap.add_argument(
        "--deid-processes", type=int, default=1, help="distributed mode: de-id processes"
    )
    ap.add_argument(
        "--no-cpu-by-service",
        dest="cpu_by_service",
        action="store_false",
        help="embedded mode: do not time the event loop's callbacks per service",
    )
    args = ap.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="imarc-bench-") as tmp:
        work = Path(tmp)
        print(f"generating {args.instances} CT instances …", flush=True)
        files, total = generate(args.instances, work / "corpus")
        data = work / "data"
        data.mkdir()
        result: dict[str, object]
        if args.mode == "embedded":
            metrics_port = free_port()
            url, proc = start_embedded(data, metrics_port, args.cpu_by_service)
            try:
                creds = json.loads((data / "admin-credentials.json").read_text())
                meter = Meter({"imarc up": proc.pid}, [f"http://127.0.0.1:{metrics_port}/metrics"])
                result = run(url, creds, files, total, args.parallel, args.batch, meter)
            except BaseException:
                print((data / "imarc.log").read_text()[-6000:], file=sys.stderr)
                raise
            finally:
                proc.terminate()
                proc.wait(30)
        else:
            run_id = os.urandom(4).hex()
            env = {
                "IMARC_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/imarc_bench_{run_id}",
                "IMARC_BUS_PREFIX": f"bench-{run_id}.",
                "IMARC_LOG_LEVEL": "WARNING",
            }
            if args.store == "file":  # shared by the processes of this one machine
                env["IMARC_STORE_URL"] = f"file://{data / 'objects'}"
            stack = MeteredStack(
                data, env=env, ports={s: free_port() for s in SERVICES}, gateway_port=free_port()
            )
            stack.start(timeout=120)
            try:
                stack.add_deid(args.deid_processes)
                creds = json.loads((data / "admin-credentials.json").read_text())
                result = run(
                    stack.url, creds, files, total, args.parallel, args.batch, stack.meter()
                )
            finally:
                stack.stop()
                stack.destroy_broker_objects()
                asyncio.run(drop_database(stack.env["IMARC_DATABASE_URL"]))
            result["store"] = args.store
            result["deid_processes"] = args.deid_processes
        result["mode"] = args.mode
        result["cores"] = os.cpu_count() or 0
        result["load_average_1m_at_start"] = load_at_start
        result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
        result["date"] = time.strftime("%Y-%m-%d")
        print(json.dumps(result, indent=2))
        if args.record:
            record(result)


if __name__ == "__main__":
    main()
