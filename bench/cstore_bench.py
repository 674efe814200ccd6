"""C-STORE ingest with dcmtk's storescu (one association, and four in parallel) beside the
HTTP upload of the same files, against `imarc up`: instances/s and MB/s until the last
instance is written and recorded (a C-STORE success and an HTTP answer both mean that).

    python bench/cstore_bench.py [--instances 2000] [--rows 256]

Each run sends to a collection of its own, so no run re-sends another's instances.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from submit_bench import start_embedded

from imarc.synth import corpus


def write(folder: Path, n: int, rows: int) -> int:
    size = 0
    for name, data in corpus(n, rows=rows, columns=rows):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        size += len(data)
    return size


def storescu(port: int, aec: str, folders: list[Path]) -> float:
    env = {**os.environ, "TCP_NODELAY": "1"}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["storescu", "-aet", "BENCH", "-aec", aec, "+sd", "+r", "127.0.0.1", str(port), str(f)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for f in folders
    ]
    for p in procs:
        _, err = p.communicate(timeout=3600)
        if p.returncode:
            raise SystemExit(f"storescu failed: {err.decode()[-2000:]}")
    return time.perf_counter() - start


def http(url: str, token: str, collection: str, folder: Path) -> float:
    env = {**os.environ, "IMARC_TOKEN": token, "XDG_CONFIG_HOME": str(folder.parent / "cfg")}
    argv = [sys.executable, "-m", "imarc", "--url", url, "submit", str(folder)]
    argv += ["--collection", collection, "--no-wait", "--parallel", "4"]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - start
    if "received" not in done.stdout:
        raise SystemExit(f"imarc submit failed: {done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--rows", type=int, default=256, help="rows and columns of each slice")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = work / "files"
        total = write(files, args.instances, args.rows)
        quarters = [work / f"q{i}" for i in range(4)]
        paths = sorted(p for p in files.rglob("*.dcm"))
        for i, p in enumerate(paths):
            dest = quarters[i % 4] / f"{i:06d}.dcm"
            dest.parent.mkdir(exist_ok=True)
            os.link(p, dest)
        data = work / "data"
        data.mkdir()
        url, proc = start_embedded(data)
        try:
            creds = json.loads((data / "admin-credentials.json").read_text())
            r = httpx.post(
                url + "/api/auth/token",
                data={"grant_type": "password", **creds},
                timeout=30,
            )
            token = r.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            runs = {
                "storescu, 1 association": "C1",
                "storescu, 4 in parallel": "C4",
                "HTTP (imarc submit)": "H",
            }
            for c in runs.values():
                httpx.post(
                    url + "/api/intake/collections",
                    json={"name": f"Bench-{c}", "licence": "CC-BY-4.0"},
                    headers=auth,
                    timeout=30,
                ).raise_for_status()
            for c in ("C1", "C4"):
                httpx.post(
                    url + "/api/intake/sites",
                    json={"site": "bench", "collection": f"Bench-{c}", "ae_titles": ["BENCH"]},
                    headers=auth,
                    timeout=30,
                ).raise_for_status()
            port = httpx.get(url + "/api/intake/sites", headers=auth, timeout=30).json()["port"]
            print(
                f"{args.instances} instances, {total / 1e6:.1f} MB ({args.rows}x{args.rows} CT), "
                f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
            )
            for label, c in runs.items():
                if c == "C1":
                    s = storescu(port, "Bench-C1", [files])
                elif c == "C4":
                    s = storescu(port, "Bench-C4", quarters)
                else:
                    s = http(url, token, "Bench-H", files)
                print(
                    f"{label:28s} {args.instances / s:8.1f} instances/s "
                    f"{total / 1e6 / s:8.1f} MB/s ({s:.1f} s)"
                )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
