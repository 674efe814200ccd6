"""`imarc mirror`: make the site at ``--url`` a mirror of another imarc and show progress.

The mirroring itself runs in the site (its catalog follows the other site's feed and
keeps its cursor with what it applied), so it survives this command and the site being
restarted; this command starts (or changes) it and follows its progress.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Console

from imarc.cli_http import api_client, fail

out = Console()
#: seconds between two looks at the mirror's progress
POLL = 1.0


def _line(s: dict[str, Any], rate: float | None) -> str:
    mb = int(s["bytes"]) / 1e6
    text = f"{s['entries']} entries applied, {s['instances']} instances, {mb:,.1f} MB"
    if rate is not None:
        text += f" ({rate:,.1f} instances/s)"
    return f"{text} — {s['state']}"


def mirror(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--from", help="Base URL of the imarc site to mirror.")],
    collection: Annotated[
        list[str] | None,
        typer.Option("--collection", help="Only this collection (repeatable; default: all)."),
    ] = None,
    token: Annotated[
        str,
        typer.Option(
            "--token", help="A token of the mirrored site (limited collections need one)."
        ),
    ] = "",
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep following; else stop once caught up.")
    ] = False,
) -> None:
    """Make this site (`--url`, started with IMARC_SITE_ROLE=mirror) a mirror of another.

    Without --follow, exits 0 once everything published so far is here; with --follow, the
    site keeps following and this command shows progress until interrupted."""
    api = api_client(ctx)
    body = {"url": source, "collections": collection or [], "token": token, "follow": follow}
    status = api.put("/api/catalog/mirror", json=body).json()
    url = status["url"]
    out.print(f"mirroring {url} into {api.url}", highlight=False)
    last: tuple[Any, ...] = ()
    start, first = time.monotonic(), int(status["instances"])
    try:
        while True:  # until caught up (or interrupted, with --follow)
            mine = [s for s in api.get("/api/catalog/mirror").json() if s["url"] == url]
            if not mine:
                fail(f"{api.url} no longer mirrors {url}")
            s = mine[0]
            elapsed = time.monotonic() - start
            rate = (int(s["instances"]) - first) / elapsed if elapsed > 0 else None
            shown = (s["entries"], s["instances"], s["state"])
            if shown != last:
                out.print(_line(s, rate), highlight=False)
                last = shown
            if s["caught_up"] and not follow:
                out.print(f"caught up with {url}; cursor {s['cursor'] or '(start)'}")
                return
            time.sleep(POLL)
    except KeyboardInterrupt:
        out.print(f"{api.url} keeps following {url}; run this again to see its progress")
