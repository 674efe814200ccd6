"""`imarc report usage`: the monthly usage figures an archive reports — series downloads
and bytes by collection, distinct downloading users, registered accounts."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from imarc.cli_http import api_client

app = typer.Typer(no_args_is_help=True, help=__doc__.split("\n\n")[0] if __doc__ else None)
out = Console(soft_wrap=True)

Month = Annotated[str | None, typer.Option(help="YYYY-MM (UTC).", metavar="YYYY-MM")]


@app.command()
def usage(
    ctx: typer.Context,
    since: Month = None,
    until: Month = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Downloads by collection and month (managers: their collections), and for admins the
    distinct downloading users and the accounts registered by month."""
    client = api_client(ctx)
    params = {k: v for k, v in (("since", since), ("until", until)) if v}
    downloads: dict[str, Any] = client.get("/api/download/usage", params=params).json()
    accounts = client.request("GET", "/api/auth/usage/accounts", params=params, check=False)
    registered = accounts.json() if accounts.status_code == 200 else None
    if as_json:
        out.print_json(data={**downloads, "accounts": registered})
        return
    span = f"{downloads['since']} to {downloads['until']}"
    table = Table("month", "collection", "series downloads", "image downloads", "sent",
                  title=f"Downloads, {span}")  # fmt: skip
    for row in downloads["collections"]:
        table.add_row(row["month"], row["collection"], f"{row['series_downloads']:,}",
                      f"{row['image_downloads']:,}", decimal(row["bytes"]))  # fmt: skip
    out.print(table if downloads["collections"] else f"No downloads {span}.")
    if downloads["users"]:
        users = Table("month", "users", "anonymous downloads", title="Downloading users")
        for row in downloads["users"]:
            users.add_row(row["month"], f"{row['users']:,}", f"{row['anonymous_downloads']:,}")
        out.print(users)
    if registered:
        table = Table("month", "registered", "total", title="User accounts")
        for row in registered:
            table.add_row(row["month"], f"{row['registered']:,}", f"{row['total']:,}")
        out.print(table)
