"""`imarc users|licences|grants` against a real auth service over HTTP."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from imarc.cli import app as cli
from imarc.runtime import Runtime
from tests import harness
from tests.auth.conftest import ADMIN


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The auth service on a loopback port, in a thread of its own."""
    runtime = Runtime(harness.make_settings(tmp_path_factory.mktemp("cli")), ["auth"])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(runtime.app(), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "auth did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(15)
        sock.close()


def token(url: str, username: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{url}/nbia-api/oauth/token",
        data={"grant_type": "password", "username": username, "password": password},
    )


@pytest.fixture(scope="module")
def run(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    admin = token(server, *ADMIN).json()["access_token"]
    runner = CliRunner()
    home = tmp_path_factory.mktemp("home")

    def invoke(*args: str, as_token: str | None = None) -> tuple[int, str]:
        result = runner.invoke(
            cli,
            ["--url", server, "--token", as_token or admin, *args],
            env={"XDG_CONFIG_HOME": str(home), "COLUMNS": "250"},
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        return result.exit_code, result.output

    yield invoke


def test_users_commands(server: str, run) -> None:  # type: ignore[no-untyped-def]
    code, out = run(
        "users",
        "create",
        "zed",
        "--password",
        "zed-password-1",
        "--role",
        "curator",
        "--role",
        "submitter:Demo-CT:site-a",
    )
    assert code == 0 and "created zed" in out and "submitter:Demo-CT:site-a" in out
    code, out = run("users", "list", "-q", "zed")
    assert code == 0 and "zed" in out and "curator" in out and "active" in out
    code, out = run("users", "grant-role", "zed", "manager", "--collection", "Demo-CT")
    assert code == 0 and "now has manager:Demo-CT" in out
    code, out = run("users", "grant-role", "zed", "manager", "--collection", "Demo-CT")
    assert code == 0 and "already had" in out
    code, out = run("users", "revoke-role", "zed", "curator")
    assert code == 0

    code, out = run("users", "reset-password", "zed")
    assert code == 0 and "shown once" in out
    generated = re.search(r"\(shown once\): (\S+)", out)
    assert generated is not None
    assert token(server, "zed", "zed-password-1").status_code == 401
    zed = token(server, "zed", generated.group(1))
    assert zed.status_code == 200

    # what zed's token now says
    me = httpx.get(
        f"{server}/api/auth/me", headers={"Authorization": f"Bearer {zed.json()['access_token']}"}
    ).json()
    assert {(r["role"], r["collection"]) for r in me["roles"]} == {
        ("user", None),
        ("submitter", "Demo-CT"),
        ("manager", "Demo-CT"),
    }

    code, out = run("users", "disable", "zed")
    assert code == 0
    assert token(server, "zed", generated.group(1)).status_code == 401
    assert run("users", "enable", "zed")[0] == 0


def test_licence_and_grant_commands(server: str, run) -> None:  # type: ignore[no-untyped-def]
    run("users", "create", "yan", "--password", "yan-password-1")
    code, out = run("licences", "list")
    assert code == 0 and "CC-BY-4.0" in out and "TCIA-Restricted" in out
    code, out = run(
        "licences",
        "create",
        "Site-DUA",
        "--name",
        "Site DUA",
        "--url",
        "https://dua.example",
        "--requires-approval",
    )
    assert code == 0 and "created licence Site-DUA" in out

    yan = token(server, "yan", "yan-password-1").json()["access_token"]
    httpx.post(
        f"{server}/api/auth/me/licences/Site-DUA", headers={"Authorization": f"Bearer {yan}"}
    )
    code, out = run("licences", "requests")
    assert code == 0 and "yan" in out and "Site-DUA" in out
    code, out = run("licences", "approve", "yan", "Site-DUA", "--expires", "2099-01-01")
    assert code == 0 and "until 2099-01-01" in out and "every collection under it" in out
    code, out = run("licences", "approve", "yan", "Site-DUA", "--collection", "Nowhere")
    assert code == 1 and "Nowhere is not under the Site-DUA licence" in out

    code, out = run("grants", "add", "yan", "Lim-A", "--expires", "2099-01-01")
    assert code == 0 and "may now read Lim-A" in out
    code, out = run("users", "list", "-q", "yan")
    assert "Lim-A" in out and "Site-DUA" in out
    assert run("grants", "remove", "yan", "Lim-A")[0] == 0


def test_errors_are_one_sentence(server: str, run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("grants", "remove", "nobody-at-all", "Lim-A")
    assert code == 1 and "no account 'nobody-at-all'" in out and "Traceback" not in out
    code, out = run("users", "grant-role", "admin", "wizard")
    assert code == 1 and "role" in out
    code, out = run("licences", "approve", "admin", "CC-BY-4.0", "--expires", "soon")
    assert code == 1 and "is not a date" in out
    run("users", "create", "xia", "--password", "xia-password-1")
    xia = token(server, "xia", "xia-password-1").json()["access_token"]
    code, out = run("users", "list", as_token=xia)
    assert code == 1 and "not allowed" in out
    code, out = run("users", "list", as_token="not-a-token")
    assert code == 1 and "imarc login" in out
