"""`imarc sites`: the calling AE titles a site sends DICOM from, per collection."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from imarc.cli_http import api_client

app = typer.Typer(help="Sites that send by DICOM C-STORE.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command("add")
def add(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    collection: Annotated[str, typer.Option(help="Collection it sends to.")],
    ae_title: Annotated[list[str], typer.Option("--ae-title", help="Calling AE title (repeat).")],
) -> None:
    """Let SITE send to a collection by DICOM from these calling AE titles."""
    body = {"site": site, "collection": collection, "ae_titles": ae_title}
    rows = api_client(ctx).post("/api/intake/sites", json=body).json()
    titles = ", ".join(r["ae_title"] for r in rows if r["collection"] == collection)
    out.print(f"{site} sends to {collection} from {titles}", highlight=False)


@app.command("list")
def listing(ctx: typer.Context) -> None:
    """The DICOM listener and the sites registered with it."""
    found = api_client(ctx).get("/api/intake/sites").json()
    port = found.get("port") or "not running here"
    table = Table("site", "collection", "calling AE", title=f"AE {found['ae_title']}, port {port}")
    for r in found.get("sites", []):
        table.add_row(r["site"], r["collection"], r["ae_title"])
    out.print(table)
