"""Embedded mode: `imarc up` SIGKILLed in the middle of an ingest and started again loses
nothing, duplicates nothing and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from imarc.stack import free_port
from services.common.settings import SERVICES
from tests.faults import checks

pytestmark = [pytest.mark.faults]

N = 30


@dataclass
class Up:
    """`imarc up` on one data directory, started and killed as an operator would."""

    data: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.data.parent / "up.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imarc",
                "up",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data),
                "--no-demo",
            ],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        checks.wait_until(
            "imarc up to be ready",
            lambda: httpx.get(self.url + "/readyz", timeout=2).status_code == 200,
            timeout=120,
        )

    def kill(self) -> set[int]:
        """SIGKILL the process; returns the processes it had started."""
        assert self.proc is not None
        children = checks.descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return children

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    env = {
        **os.environ,
        "IMARC_DEID_WORKERS": "2",
        "IMARC_BUS_RETRY_BASE_SECONDS": "0.1",
        "IMARC_DICOM_PORT": "0",
    }
    running = Up(tmp_path / "var", free_port(), env)
    try:
        yield running
    finally:
        running.stop()
        log = tmp_path / "up.log"
        if log.exists() and "Traceback" in log.read_text(errors="replace"):
            print(log.read_text(errors="replace")[-5000:])


def unsent_outbox_rows(data: Path) -> int:
    total = 0
    for name in SERVICES:
        with sqlite3.connect(data / "db" / f"{name}.sqlite") as db:
            total += db.execute(
                "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL"
            ).fetchone()[0]
    return total


def dead_letters(data: Path) -> int:
    with sqlite3.connect(data / "db" / "bus.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])


def test_sigkill_mid_ingest_then_restart_publishes_every_instance_once(up: Up) -> None:
    up.start()
    creds = json.loads((up.data / "admin-credentials.json").read_text())
    headers = checks.login(up.url, creds)
    checks.retrying(
        "creating the collection",
        lambda: httpx.post(
            f"{up.url}/api/intake/collections",
            json={"name": checks.COLLECTION, "licence": "CC-BY-4.0"},
            headers=headers,
            timeout=30,
        ),
    )
    files = checks.files(N)
    batches = [files[i : i + 5] for i in range(0, N, 5)]
    for batch in batches[:3]:
        checks.submit(up.url, lambda: headers, batch)
    # killed while de-identification and the relays are at work
    checks.wait_until(
        "de-identification to start",
        lambda: checks.status(up.url, headers)["deidentified"] > 0,
    )
    orphans = up.kill()
    assert orphans, "the de-id worker pool should have been running"
    checks.no_orphans(orphans)

    up.start()
    headers = checks.login(up.url, creds)
    for batch in batches[3:]:
        checks.submit(up.url, lambda: headers, batch)
    checks.wait_until(
        f"all {N} instances to be de-identified",
        lambda: checks.status(up.url, headers)["deidentified"] == N,
    )
    checks.publish_all(up.url, headers, up.data / "objects", N)
    status = checks.status(up.url, headers)
    assert status["received"] == N and status["held"] == 0, status
    checks.wait_until("every outbox to be sent", lambda: unsent_outbox_rows(up.data) == 0)
    assert dead_letters(up.data) == 0
