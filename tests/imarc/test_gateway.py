"""The gateway routes each public path to the service that answers it, and an upstream that
fails is a clear answer the client can retry, never a 500 with a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from imarc.gateway import gateway_app
from imarc.stack import free_port
from services.common.contracts import service_for_path
from services.common.settings import Settings
from tests.harness import serving


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/nbia-api/services/v4/getSeries", "catalog"),
        ("/nbia-api/services/v4/getCollectionValues", "catalog"),
        ("/nbia-api/services/v1/getContentsByName", "catalog"),
        ("/nbia-api/services/v4/getImage", "download"),
        ("/nbia-api/services/v4/getSingleImage", "download"),
        ("/nbia-api/services/v4/getImageWithMD5Hash", "download"),
        ("/nbia-api/oauth/token", "auth"),
        ("/nbia-api/logout", "auth"),
        ("/api/intake/collections", "intake"),
        ("/api/deid/collections/X/profile", "deid"),
        ("/api/qc/collections/X/status", "qc"),
        ("/api/auth/.well-known/jwks.json", "auth"),
        ("/curate/", "qc"),
        ("/dicomweb/series", "catalog"),
        ("/dicomweb/instances", "catalog"),
        ("/curate/static/app.js", "qc"),
        ("/dicomweb/studies", "catalog"),
        ("/dicomweb/collections/Lung-Pilot/studies", "intake"),
        ("/dicomweb/collections/Lung-Pilot/studies/1.2", "intake"),
        ("/dicomweb/studies/1.2/series", "catalog"),
        ("/dicomweb/studies/1.2/series/1.3/instances", "catalog"),
        ("/dicomweb/studies/1.2", "download"),
        ("/dicomweb/studies/1.2/metadata", "download"),
        ("/dicomweb/studies/1.2/series/1.3", "download"),
        ("/dicomweb/studies/1.2/series/1.3/instances/1.4/frames/1,2", "download"),
        ("/dicomweb/studies/1.2/series/1.3/instances/1.4/bulkdata/7FE00010", "download"),
        ("/api/nope/x", None),
        ("/etc/passwd", None),
    ],
)
def test_routes(path: str, service: str | None) -> None:
    assert service_for_path(path) == service


# -- upstream failures ------------------------------------------------------------------


@contextmanager
def dying_upstream(mode: str) -> Iterator[int]:
    """A real upstream process that dies in the given way (see dying_upstream.py)."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("dying_upstream.py")), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


@contextmanager
def gateway_to(port: int) -> Iterator[str]:
    """A gateway whose upstreams all answer (or not) on ``port``."""
    upstream = f"http://127.0.0.1:{port}"
    settings = Settings(intake_url=upstream, download_url=upstream)
    with serving(gateway_app(settings)) as url:
        yield url


def assert_retry_later(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, resp.text
    assert int(resp.headers["retry-after"]) > 0
    detail = resp.json()["detail"]
    assert "intake" in detail and "try again" in detail
    assert "Traceback" not in resp.text


def test_an_upstream_that_dies_before_answering_is_a_502_to_retry() -> None:
    with dying_upstream("before-answer") as port, gateway_to(port) as url:
        resp = httpx.get(f"{url}/api/intake/collections", timeout=30)
    assert_retry_later(resp, 502)


def test_an_upstream_that_dies_while_reading_an_upload_is_a_502_to_retry() -> None:
    with dying_upstream("mid-upload") as port, gateway_to(port) as url:
        resp = httpx.post(
            f"{url}/api/intake/collections/C/instances",
            files=[("file", ("a.dcm", b"\0" * 2_000_000, "application/dicom"))],
            timeout=30,
        )
    assert_retry_later(resp, 502)


def test_an_unreachable_upstream_is_a_503_to_retry() -> None:
    with gateway_to(free_port()) as url:
        resp = httpx.get(f"{url}/api/intake/collections", timeout=30)
    assert_retry_later(resp, 503)


def test_an_upstream_that_dies_mid_answer_cuts_the_download() -> None:
    with dying_upstream("mid-answer") as port, gateway_to(port) as url:
        with (
            pytest.raises(httpx.TransportError),
            httpx.stream("GET", f"{url}/nbia-api/services/v4/getImage", timeout=30) as resp,
        ):
            assert resp.status_code == 200
            resp.read()  # never a clean end: a truncated zip must not look complete
        # the gateway itself is fine and says the upstream is gone
        after = httpx.get(f"{url}/api/intake/collections", timeout=30)
    assert_retry_later(after, 503)
