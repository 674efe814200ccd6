"""Hostile submissions against a running platform: peak memory and /healthz latency.

Starts the platform embedded (`imarc up`, one process) and submits, one at a time, the
bombs of issue 9: a ~2 MB zip whose member inflates to 2 GiB, a ~1 MB Deflated Explicit VR
file whose dataset inflates to 1 GiB, 200 MB of zeros after a DICM prefix, sequences
nested 200 deep and a file of two million elements. For each it prints the status and
reason, the time taken, the server's peak RSS above its RSS before (VmHWM, reset before
each bomb) and /healthz latency (median and worst) sampled every 50 ms meanwhile.

    python bench/bomb_bench.py                 # the sizes above
    python bench/bomb_bench.py --scale 0.25    # a quarter of each size (older code: minutes)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from submit_bench import start_embedded  # noqa: E402

from tests.intake import bombs  # noqa: E402

COLLECTION = "Bomb-CT"


def _rss(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := current RSS
    except OSError:
        print("(could not reset the peak RSS: figures are peaks since start)")


def cases(scale: float) -> list[tuple[str, str, bytes]]:
    mib = bombs.MiB

    def size(n: int) -> int:
        return max(mib, int(n * scale) // mib * mib)

    return [
        ("zip: 2 GiB member", "application/zip", bombs.zip_bomb(size(2 * bombs.GiB))),
        ("deflated: 1 GiB dataset", "application/dicom", bombs.deflate_bomb(size(bombs.GiB))),
        ("200 MB of zeros after DICM", "application/dicom", bombs.dicm_zeros(size(200 * mib))),
        ("sequences 200 deep", "application/dicom", bombs.deep_sequences(200)),
        ("2,000,000 elements", "application/dicom", bombs.many_elements(int(2_000_000 * scale))),
    ]


def probe(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=60) as http:
        while not stop.is_set():
            t = time.perf_counter()
            http.get(url + "/healthz")
            out.append((time.perf_counter() - t) * 1000)
            stop.wait(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of each bomb's size")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="imarc-bombs-"))
    url, proc = start_embedded(data)
    try:
        creds = json.loads((data / "admin-credentials.json").read_text())
        http = httpx.Client(base_url=url, timeout=1800)
        tok = http.post("/api/auth/token", data={"grant_type": "password", **creds}).json()
        http.headers["Authorization"] = f"Bearer {tok['access_token']}"
        http.post("/api/intake/collections", json={"name": COLLECTION, "licence": "CC-BY-4.0"})
        print(f"{'bomb':30} {'sent':>9} {'status':>6} {'s':>6} {'peak MB':>8} "
              f"{'healthz ms p50/max':>19}  answer")  # fmt: skip
        for name, ctype, body in cases(args.scale):
            before = _rss(proc.pid, "VmRSS")
            _reset_peak(proc.pid)
            latencies: list[float] = []
            stop = threading.Event()
            watcher = threading.Thread(target=probe, args=(url, stop, latencies))
            watcher.start()
            t = time.perf_counter()
            r = http.post(
                f"/api/intake/collections/{COLLECTION}/instances",
                content=body,
                headers={"Content-Type": ctype},
            )
            took = time.perf_counter() - t
            stop.set()
            watcher.join()
            peak = _rss(proc.pid, "VmHWM") - before
            answer = r.json()
            if isinstance(answer, dict) and answer.get("held"):
                answer = answer["held"][0]["reason"]
            elif isinstance(answer, dict) and answer.get("accepted"):
                answer = "accepted"
            else:
                answer = answer.get("detail", answer) if isinstance(answer, dict) else answer
            p50 = statistics.median(latencies) if latencies else 0.0
            worst = max(latencies, default=0.0)
            print(
                f"{name:30} {len(body) / 1e6:7.1f}MB {r.status_code:>6} {took:6.1f} "
                f"{peak:8.0f} {p50:9.1f}/{worst:<9.1f}  {str(answer)[:110]}"
            )
        stored = sum(f.stat().st_size for f in (data / "objects").rglob("*") if f.is_file())
        print(f"bytes in the object store afterwards: {stored}")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
