"""`imarc submit` and `imarc qc publish` send again what the gateway could not pass on (a
service restarting), so a client run outlives a service restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydicom.data import get_testdata_file

from imarc.gateway import gateway_app
from imarc.stack import free_port
from services.common.settings import SERVICES, Settings
from tests.harness import auth_header, make_settings, mint, runtime_app, serving

pytestmark = pytest.mark.slow
COLLECTION = "Retry-CT"


def imarc(url: str, token: str, tmp: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "config")}
    return subprocess.Popen(
        [sys.executable, "-m", "imarc", "--url", url, "--token", token, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def until_retrying(proc: subprocess.Popen[str]) -> str:
    """Read the command's messages until it says it is retrying (its first try failed)."""
    assert proc.stderr is not None
    seen = ""
    while "retrying" not in seen:
        line = proc.stderr.readline()
        assert line, f"the command ended without retrying: {seen}"
        seen += line
    return seen


def test_submit_and_publish_outlive_a_service_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    services = [s for s in SERVICES if s != "auth"]
    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    gateway = gateway_app(Settings(**{f"{s}_url": upstream for s in services}))
    admin = mint("admin", roles=["admin"])
    ct = tmp_path / "ct.dcm"
    ct.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())

    def services_up() -> object:
        return serving(runtime_app(settings, services)[1], port)

    with serving(gateway) as url:
        with services_up():
            created = httpx.post(
                f"{url}/api/intake/collections",
                json={"name": COLLECTION, "licence": "CC-BY-4.0", "access": "public"},
                headers=auth_header(admin),
                timeout=30,
            )
            assert created.status_code == 201, created.text

        # the services are down when the upload starts and back while it retries
        submit = imarc(url, admin, tmp_path, "submit", str(ct), "--collection", COLLECTION)
        until_retrying(submit)
        with services_up():
            out, errors = submit.communicate(timeout=120)
            assert submit.returncode == 0, out + errors
            assert "sent 1, received 1 ✔" in out and "held" not in out

            status = f"{url}/api/qc/collections/{COLLECTION}/status"
            deadline = time.monotonic() + 60
            while (
                httpx.get(status, headers=auth_header(admin), timeout=30)
                .json()
                .get("awaiting_review")
                != 1
            ):
                assert time.monotonic() < deadline, "the instance was not de-identified"
                time.sleep(0.2)

        publish = imarc(url, admin, tmp_path, "qc", "publish", "--collection", COLLECTION)
        until_retrying(publish)
        with services_up():
            out, errors = publish.communicate(timeout=120)
            assert publish.returncode == 0, out + errors
            assert "published 1 series (1 instances)" in out
