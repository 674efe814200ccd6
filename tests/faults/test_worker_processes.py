"""CPU worker processes end with the service that started them, whatever kills it."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.faults import checks

pytestmark = [pytest.mark.faults]

SERVICE = """
import os, sys, time
from imarc.runtime import cpu_pool

pool = cpu_pool(2)
list(pool.map(abs, range(8)))  # the forkserver, the tracker and the workers are running
print("ready", flush=True)
time.sleep(120)
"""


def test_workers_forkserver_and_tracker_end_when_the_service_is_sigkilled() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SERVICE], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        started = checks.descendants(proc.pid)
        assert len(started) >= 3, "a forkserver, a resource tracker and workers"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        checks.no_orphans(started)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
