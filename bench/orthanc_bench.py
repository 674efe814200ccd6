"""imarc beside Orthanc on the same files: ingest + anonymize, instances/s and the ratio.

Generates N synthetic 512×512 CT instances (imarc/synth.py), then, one after the other on
a quiet machine and inside a private loopback-only network namespace (Orthanc binds every
interface, so it never runs outside one):

* Orthanc (Debian's package, SQLite index, no compression, no plugins): REST upload of
  every file with two clients, then ``/studies/{id}/anonymize`` of every study;
* imarc (embedded, `imarc up`): bench/submit_bench.py's submit → de-identify → publish.

Prints both rates and imarc / Orthanc (the goal is ≥ 1.2).

    python bench/orthanc_bench.py [--instances 2000]

Needs root for the namespace (`unshare -n`), and `apt-get install orthanc curl`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from submit_bench import generate, run, start_embedded

IN_NAMESPACE = "IMARC_BENCH_NETNS"


def enter_namespace() -> None:
    """Run this script again in a new network namespace with only loopback, up."""
    if os.environ.get(IN_NAMESPACE) == "1":
        return
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not unshare or not ip:
        raise SystemExit("needs unshare (util-linux) and ip (iproute2)")
    script = " ".join(map(_quote, [sys.executable, *sys.argv]))
    code = subprocess.call(
        [unshare, "-n", "--", "sh", "-c", f"{ip} link set lo up && exec {script}"],
        env={**os.environ, IN_NAMESPACE: "1"},
    )
    raise SystemExit(code)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def orthanc(files: list[Path], work: Path, clients: int = 2) -> dict[str, float]:
    binary = shutil.which("Orthanc")
    curl = shutil.which("curl")
    if not binary or not curl:
        raise SystemExit("apt-get install orthanc curl")
    port = _free_port()
    db = work / "orthanc-db"
    config = work / "orthanc.json"
    config.write_text(
        json.dumps(
            {
                "Name": "bench",
                "StorageDirectory": str(db),
                "IndexDirectory": str(db),
                "StorageCompression": False,
                "HttpPort": port,
                "DicomServerEnabled": False,
                "RemoteAccessAllowed": False,
                "AuthenticationEnabled": False,
                "HttpThreadsCount": 50,
                "ConcurrentJobs": 2,
                "Plugins": [],
            }
        )
    )
    log = open(work / "orthanc.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([binary, str(config)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/system", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"Orthanc did not start; see {work / 'orthanc.log'}")

        def upload(chunk: list[Path]) -> None:
            # one curl per client, every file on one kept-alive connection (a C client
            # leaves the cores to the server being measured)
            cmd = [curl, "-sS", "--fail"]
            for i, p in enumerate(chunk):
                if i:
                    cmd.append("--next")
                cmd += ["-o", "/dev/null", "-X", "POST", "--data-binary", f"@{p}",
                        f"{url}/instances"]  # fmt: skip
            subprocess.run(cmd, check=True)

        chunks = [files[i::clients] for i in range(clients)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(upload, chunks))
        t_ingest = time.perf_counter() - t0
        http = httpx.Client(base_url=url, timeout=3600)
        stats = http.get("/statistics").json()
        assert int(stats["CountInstances"]) == len(files), stats
        studies = http.get("/studies").json()

        def anonymize(study: str) -> int:
            r = http.post(f"/studies/{study}/anonymize", json={})
            r.raise_for_status()
            return 1

        t1 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(anonymize, studies))
        t_anon = time.perf_counter() - t1
        assert int(http.get("/statistics").json()["CountInstances"]) == 2 * len(files)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    n = len(files)
    return {
        "ingest_s": round(t_ingest, 2),
        "ingest_inst_per_s": round(n / t_ingest, 1),
        "anonymize_s": round(t_anon, 2),
        "anonymize_inst_per_s": round(n / t_anon, 1),
        "ingest_and_anonymize_inst_per_s": round(n / (t_ingest + t_anon), 1),
    }


def imarc(files: list[Path], total: int, work: Path) -> dict[str, float]:
    data = work / "imarc"
    data.mkdir()
    url, proc = start_embedded(data)
    try:
        creds = json.loads((data / "admin-credentials.json").read_text())
        return run(url, creds, files, total, parallel=4, batch=25)
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--instances", type=int, default=2000)
    args = ap.parse_args()
    enter_namespace()
    with tempfile.TemporaryDirectory(prefix="imarc-vs-orthanc-") as tmp:
        work = Path(tmp)
        print(f"generating {args.instances} CT instances …", flush=True)
        files, total = generate(args.instances, work / "corpus")
        print("Orthanc: ingest, then anonymize every study …", flush=True)
        theirs = orthanc(files, work)
        print("imarc: submit → de-identified → published …", flush=True)
        ours = imarc(files, total, work)
    ratio = ours["end_to_end_inst_per_s"] / theirs["ingest_and_anonymize_inst_per_s"]
    print(
        json.dumps(
            {
                "instances": args.instances,
                "cores": os.cpu_count(),
                "orthanc": theirs,
                "imarc": ours,
                "ratio_imarc_over_orthanc": round(ratio, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
