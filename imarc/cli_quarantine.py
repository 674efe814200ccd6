"""`imarc quarantine`: what is held in a collection, at intake and at de-id; its header;
release and reject, by id or by reason."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from imarc.cli_http import api_client, fail

app = typer.Typer(help="What is held, and releasing or rejecting it.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command("list")
def list_held(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option(help="Collection.")],
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    stage: Annotated[str | None, typer.Option(help="intake or deid.")] = None,
    submission: Annotated[str | None, typer.Option(help="Only this submission.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Everything held in the collection, by study and series."""
    params = {
        k: v for k, v in {"reason": reason, "stage": stage, "submission": submission}.items() if v
    }
    rows = api_client(ctx).get(f"/api/intake/collections/{collection}/quarantine", params=params)
    items: list[dict[str, Any]] = rows.json()
    if as_json:
        out.print_json(data=items)
        return
    table = Table("id", "file", "stage", "reason", "held at", "submission", title=collection)
    for i in items:
        table.add_row(
            i["id"], i["filename"], i["stage"], i["code"], i["held_at"][:19], i["submission_id"]
        )
    out.print(table)
    out.print(f"{len(items)} held")


@app.command("show")
def show(
    ctx: typer.Context, instance_id: Annotated[str, typer.Argument(help="Held instance id.")]
) -> None:
    """One held instance: where it came from, why it is held, and its header."""
    out.print_json(data=api_client(ctx).get(f"/api/intake/quarantine/{instance_id}").json())


Ids = Annotated[list[str] | None, typer.Argument(help="Held instance ids.")]
CollectionOpt = Annotated[str | None, typer.Option(help="Collection (with --reason).")]
ReasonOpt = Annotated[str | None, typer.Option(help="Every instance held for this reason.")]
Why = Annotated[str, typer.Option(help="Why (kept in the audit).")]


def _act(
    ctx: typer.Context,
    kind: str,
    ids: list[str] | None,
    collection: str | None,
    reason: str | None,
    why: str,
    purpose: str,
) -> None:
    if not why:
        fail(f"--why is required: say why these instances {purpose} (it is audited)")
    if not ids and not (collection and reason):
        fail(f"give the ids to {kind}, or --collection NAME --reason CODE")
    body: dict[str, Any] = {"why": why}
    if ids:
        body["ids"] = ids
    else:
        body.update(collection=collection, reason=reason)
    r = api_client(ctx).post(f"/api/intake/quarantine/{kind}", json=body).json()
    done, refused = r.get("done", []), r.get("refused", {})
    out.print(f"{kind}d {len(done)}" if kind == "release" else f"rejected {len(done)}")
    for iid, problem in refused.items():
        out.print(f"  not {kind}d {iid}: {problem}", highlight=False)
    if refused:
        raise typer.Exit(1)


@app.command("release")
def release(
    ctx: typer.Context,
    ids: Ids = None,
    collection: CollectionOpt = None,
    reason: ReasonOpt = None,
    why: Why = "",
) -> None:
    """Release held instances: each goes on from the stage that held it."""
    _act(ctx, "release", ids, collection, reason, why, "may go on")


@app.command("reject")
def reject(
    ctx: typer.Context,
    ids: Ids = None,
    collection: CollectionOpt = None,
    reason: ReasonOpt = None,
    why: Why = "",
) -> None:
    """Reject held instances: they are deleted from quarantine."""
    _act(ctx, "reject", ids, collection, reason, why, "are rejected")
