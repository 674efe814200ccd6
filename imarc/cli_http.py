"""HTTP plumbing for the `imarc` command: one client, one way to fail.

Every command talks HTTP to ``--url`` with a token from ``--token``, ``IMARC_TOKEN`` or
the credentials saved by ``imarc login``; errors are one clear sentence, not a traceback.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

err = Console(stderr=True)
DEFAULT_URL = "http://127.0.0.1:8080"


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def credentials_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "imarc" / "credentials.json"


def load_credentials() -> dict[str, Any]:
    path = credentials_file()
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def save_credentials(url: str, tokens: dict[str, Any]) -> None:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = load_credentials()
    data[url.rstrip("/")] = {
        "access_token": tokens["access_token"],
        "refresh_token": tokens.get("refresh_token"),
        "expires_at": time.time() + float(tokens.get("expires_in", 3600)),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)


def _saved_token(url: str) -> str | None:
    entry = load_credentials().get(url.rstrip("/"))
    if not entry:
        return None
    if entry.get("expires_at", 0) > time.time() + 30:
        return str(entry["access_token"])
    refresh = entry.get("refresh_token")
    if not refresh:
        return None
    try:
        resp = httpx.post(
            url.rstrip("/") + "/api/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh},
            timeout=30,
        )
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    save_credentials(url, resp.json())
    return str(resp.json()["access_token"])


def describe(resp: httpx.Response) -> str:
    """The server's one-sentence explanation of a failed request."""
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return text or f"the server answered {resp.status_code} {resp.reason_phrase}"
    if isinstance(body, dict):
        for key in ("detail", "error_description", "message", "error"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value)
    return f"the server answered {resp.status_code} {resp.reason_phrase}"


#: Answers of a gateway whose upstream failed or was unreachable: worth another try.
RETRYABLE = frozenset({502, 503, 504})


def _wait(state: RetryCallState) -> float:
    """The server's ``Retry-After`` when it gave one (capped), else exponential backoff."""
    outcome = state.outcome
    if outcome is not None and not outcome.failed:
        given = outcome.result().headers.get("retry-after", "")
        if given.isdigit():
            return min(float(given), 30.0)
    return float(wait_exponential(multiplier=0.5, max=8)(state))


def _retrying(attempts: int) -> Retrying:
    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=_wait,
        retry=retry_if_result(lambda r: r.status_code in RETRYABLE)
        | retry_if_exception_type(httpx.TransportError),
        before_sleep=lambda state: err.print(
            f"imarc did not answer (attempt {state.attempt_number} of {attempts}); retrying",
            highlight=False,
        ),
        retry_error_callback=_last_outcome,
    )


def _last_outcome(state: RetryCallState) -> httpx.Response:
    """After the last attempt, its answer (or its exception) as if not retried."""
    assert state.outcome is not None
    return state.outcome.result()


class Api(httpx.Client):
    """An httpx.Client whose failures end the command with one clear sentence."""

    def __init__(self, url: str, token: str | None, timeout: float = 600) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        super().__init__(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self.url = url.rstrip("/")

    def request(
        self, method: str, url: Any, *, check: bool = True, attempts: int = 1, **kwargs: Any
    ) -> httpx.Response:
        """Send a request; with ``check`` (the default) a failure ends the command.

        With ``attempts`` > 1 a request the gateway could not pass on (502, 503, 504) or a
        connection that broke is sent again, up to that many times in all: for commands
        whose requests may safely be repeated (an upload replaces the same objects, a
        publish of what is published publishes nothing more).
        """
        send = super().request
        try:
            if attempts > 1:
                resp = _retrying(attempts)(send, method, url, **kwargs)
            else:
                resp = send(method, url, **kwargs)
        except httpx.ConnectError:
            fail(f"cannot reach imarc at {self.url}: is it running? (start it with `make run`)")
        except httpx.TimeoutException:
            fail(f"imarc at {self.url} did not answer in time; try again")
        except httpx.TransportError as e:
            fail(
                f"the connection to imarc at {self.url} broke ({e or type(e).__name__}); try again"
            )
        if not check:
            return resp
        if resp.status_code == 401:
            fail(f"not logged in or the token was refused ({describe(resp)}); run `imarc login`")
        if resp.status_code >= 400:
            fail(describe(resp))
        return resp


def api_client(ctx: typer.Context) -> Api:
    """The client for this invocation (``--url`` / ``--token`` of the root command)."""
    obj = ctx.find_root().obj or {}
    url = obj.get("url") or os.environ.get("IMARC_URL") or DEFAULT_URL
    token = obj.get("token") or os.environ.get("IMARC_TOKEN") or _saved_token(url)
    return Api(url, token)
