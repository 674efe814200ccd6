"""`imarc qc inventory` and `imarc qc scan`: a collection's tag inventory and its
residual-PHI findings, as a table, CSV or JSON."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from imarc.cli_http import Api, api_client, fail

out = Console(soft_wrap=True)
#: seconds between looks at a running scan
POLL = 0.5


def register(qc_app: typer.Typer) -> None:
    qc_app.command("inventory")(inventory)
    qc_app.command("scan")(scan)


def inventory(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option(help="Collection.")],
    zone: Annotated[str, typer.Option(help="curation or public.")] = "curation",
    format: Annotated[str, typer.Option(help="table, csv or json.")] = "table",
) -> None:
    """Every value of every text, date and private element per device, with counts."""
    if zone not in ("curation", "public"):
        raise typer.BadParameter("use curation or public", param_hint="--zone")
    if format not in ("table", "csv", "json"):
        raise typer.BadParameter("use table, csv or json", param_hint="--format")
    path = f"/api/qc/collections/{collection}/inventory"
    client = api_client(ctx)
    if format == "csv":
        typer.echo(client.get(path, params={"zone": zone, "format": "csv"}).text, nl=False)
        return
    rows = client.get(path, params={"zone": zone}).json()
    if format == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("device", "section", "element", "VR", "creator", "value", "count")
    for r in rows:
        table.add_row(
            r["device"], r["section"], r["element"], r["vr"], r["creator"], r["value"],
            str(r["count"]),
        )  # fmt: skip
    out.print(table)
    out.print(f"{len(rows)} values in the {zone} inventory of {collection}")


def rescan(client: Api, collection: str, wait: float) -> None:
    """Start a scan of the collection again and follow it to its end, with progress."""
    path = f"/api/deid/collections/{collection}/scan"
    run = client.post(path).json()
    deadline = time.monotonic() + wait
    with Progress(
        TextColumn(f"[bold]scanning[/bold] {collection} again"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[findings]} finding(s)"),
        console=Console(stderr=True),
        transient=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("scan", total=run["total"], findings=0)
        while run["state"] == "running" and time.monotonic() < deadline:
            time.sleep(POLL)
            run = client.get(path).json()
            progress.update(task, completed=run["scanned"], findings=run["findings"])
    if run["state"] == "running":
        fail(
            f"the scan of {collection} is still running ({run['scanned']} of {run['total']} "
            "instances); follow it with imarc qc scan --run again, which joins it"
        )
    if run["state"] != "done":
        fail(f"the scan of {collection} {run['state']}: {run.get('error') or 'start it again'}")
    skipped = f", {run['skipped']} skipped (object gone)" if run["skipped"] else ""
    out.print(f"scanned {run['scanned']} instances of {collection} again{skipped}")


def scan(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option(help="Collection.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    run: Annotated[
        bool, typer.Option(help="Scan every instance again (after a profile change) first.")
    ] = False,
    wait: Annotated[
        float, typer.Option(help="With --run: seconds to wait for the scan to finish.")
    ] = 3600,
) -> None:
    """Residual-PHI findings: where an identifier of an original record survived, by
    series, instance, element and kind — never the value. Exit code 1 if there are any."""
    client = api_client(ctx)
    if run:
        rescan(client, collection, wait)
    rows = client.get(f"/api/qc/collections/{collection}/findings").json()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif rows:
        table = Table("series", "instance", "element", "kind")
        for r in rows:
            table.add_row(r["series_instance_uid"], r["sop_instance_uid"], r["path"], r["kind"])
        out.print(table)
        series = {r["series_instance_uid"] for r in rows}
        out.print(
            f"{len(rows)} finding(s) in {len(series)} series of {collection}: fix the profile "
            "and de-identify again, or publish with --override-findings --why TEXT"
        )
    else:
        out.print(f"no residual-PHI findings in {collection}")
    raise typer.Exit(1 if rows else 0)
