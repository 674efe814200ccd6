"""The `imarc` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from imarc import (
    cli_dlq,
    cli_download,
    cli_mirror,
    cli_quarantine,
    cli_report,
    cli_run,
    cli_site,
    cli_sites,
    cli_submit,
)
from imarc.cli_http import DEFAULT_URL, api_client, describe, fail, save_credentials
from imarc.local import admin_credentials_for, candidate_dirs

app = typer.Typer(
    help="imarc: run and use an open medical imaging archive.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
collections_app = typer.Typer(help="Create and list collections.", no_args_is_help=True)
qc_app = typer.Typer(help="Review and publish.", no_args_is_help=True)
deid_app = typer.Typer(
    help="De-identification profiles, ID maps and UID maps.", no_args_is_help=True
)
profile_app = typer.Typer(help="A collection's de-identification profile.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")
app.add_typer(qc_app, name="qc")
app.add_typer(deid_app, name="deid")
app.add_typer(cli_dlq.app, name="dlq")
app.add_typer(cli_report.app, name="report")
app.add_typer(cli_quarantine.app, name="quarantine")
app.add_typer(cli_sites.app, name="sites")
app.add_typer(cli_site.app, name="site")
deid_app.add_typer(profile_app, name="profile")
out = Console(soft_wrap=True)
#: How often `submit` and `qc publish` send a request the gateway could not pass on.
ATTEMPTS = 6

from imarc.cli_qc import register as _register_qc  # noqa: E402

_register_qc(qc_app)

try:  # user, licence and grant administration, when the auth commands are installed
    from imarc.cli_auth import grants_app, licences_app, users_app

    app.add_typer(users_app, name="users")
    app.add_typer(licences_app, name="licences")
    app.add_typer(grants_app, name="grants")
except ImportError:  # pragma: no cover
    pass


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar="IMARC_URL", help="Where imarc answers.")
    ] = DEFAULT_URL,
    token: Annotated[
        str | None, typer.Option(envvar="IMARC_TOKEN", help="Bearer token (else `imarc login`).")
    ] = None,
) -> None:
    ctx.obj = {"url": url, "token": token}


# -- running (imarc/cli_run.py) -------------------------------------------------------

app.command()(cli_run.up)
app.command()(cli_run.serve)
app.command()(cli_run.migrate)
app.command()(cli_run.stack)
app.command("download")(cli_download.download)
app.command("mirror")(cli_mirror.mirror)
app.command("submit")(cli_submit.submit)


# -- using -----------------------------------------------------------------------


@app.command()
def login(
    ctx: typer.Context,
    username: Annotated[str | None, typer.Option(help="User name.")] = None,
    password: Annotated[str | None, typer.Option(help="Password (prompted if omitted).")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Data dir of a local `imarc up` or `imarc stack` whose admin credentials to "
            "use (default: the one serving --url, looked for in var/ and var/stack/)."
        ),
    ] = None,
) -> None:
    """Obtain a token and keep it for later commands."""
    api = api_client(ctx)
    local = api.url.startswith(("http://127.0.0.1", "http://localhost"))
    creds_file = admin_credentials_for(api.url, candidate_dirs(data_dir)) if local else None
    if username is None and creds_file is not None:
        creds = json.loads(creds_file.read_text())
        username, password = creds["username"], creds["password"]
        out.print(f"using the admin credentials in {creds_file}")
    elif username is None and not sys.stdin.isatty():
        where = " or ".join(f"{d}/" for d in candidate_dirs(data_dir))
        fail(
            f"no admin credentials for {api.url} in {where}; pass --username and --password, "
            "or --data-dir DIR of the `imarc up` or `imarc stack` serving it"
        )
    if username is None:
        username = typer.prompt("username")
    if password is None:
        password = typer.prompt("password", hide_input=True)
    resp = api.request(
        "POST",
        "/api/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
        check=False,
    )
    if resp.status_code != 200:
        hint = (
            f"; they are the credentials in {creds_file}: if another data dir serves "
            f"{api.url}, pass --data-dir"
            if creds_file is not None
            else ""
        )
        fail(f"login as {username} refused: {describe(resp)}{hint}")
    save_credentials(api.url, resp.json())
    out.print(f"logged in to {api.url} as {username}")


@collections_app.command("create")
def collections_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Collection name, e.g. Lung-CT-2026.")],
    licence: Annotated[
        str, typer.Option("--licence", "--license", help="Licence id, e.g. CC-BY-4.0.")
    ],
    access: Annotated[str | None, typer.Option(help="public (default) or limited.")] = None,
    description: Annotated[str, typer.Option(help="What the collection holds.")] = "",
    doi: Annotated[str, typer.Option(help="Data DOI, e.g. 10.7937/xyz.")] = "",
    citation: Annotated[str, typer.Option(help="How to cite the collection.")] = "",
    data_usage_policy: Annotated[
        str, typer.Option(help="URL of the data usage policy every copy passes on.")
    ] = "",
    require_id_map: Annotated[
        bool, typer.Option(help="Hold patients missing from the ID map.")
    ] = False,
    face_reconstructable: Annotated[
        bool,
        typer.Option(help="Head/neck CT or MR a face could be rebuilt from: always limited."),
    ] = False,
) -> None:
    """Register a collection that sites can submit to."""
    if access not in (None, "public", "limited"):
        fail("--access must be public or limited")
    api = api_client(ctx)
    body: dict[str, Any] = {
        "name": name,
        "licence": licence,
        "description": description,
        "doi": doi,
        "citation": citation,
        "data_usage_policy": data_usage_policy,
        "require_id_map": require_id_map,
        "face_reconstructable": face_reconstructable,
    }
    if access is not None:
        body["access"] = access
    c = api.post("/api/intake/collections", json=body).json()
    lic = c.get("licence") or {}
    out.print(
        f"created collection {c.get('name', name)} ({c.get('access')}, "
        f"{lic.get('name') or licence})"
    )


@collections_app.command("update")
def collections_update(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Collection name.")],
    licence: Annotated[
        str | None, typer.Option("--licence", "--license", help="Licence id.")
    ] = None,
    access: Annotated[str | None, typer.Option(help="public or limited.")] = None,
    description: Annotated[str | None, typer.Option(help="What the collection holds.")] = None,
    doi: Annotated[str | None, typer.Option(help="Data DOI.")] = None,
    citation: Annotated[str | None, typer.Option(help="How to cite the collection.")] = None,
    data_usage_policy: Annotated[
        str | None, typer.Option(help="URL of the data usage policy.")
    ] = None,
    face_reconstructable: Annotated[
        bool | None,
        typer.Option(
            "--face-reconstructable/--not-face-reconstructable",
            help="Head/neck CT or MR a face could be rebuilt from (makes it limited).",
        ),
    ] = None,
) -> None:
    """Change a collection's licence, access, description, DOI, citation or flags."""
    if access not in (None, "public", "limited"):
        fail("--access must be public or limited")
    changes = {
        "licence": licence,
        "access": access,
        "description": description,
        "doi": doi,
        "citation": citation,
        "data_usage_policy": data_usage_policy,
        "face_reconstructable": face_reconstructable,
    }
    body = {k: v for k, v in changes.items() if v is not None}
    if not body:
        fail("nothing to change: give at least one option (see imarc collections update --help)")
    c = api_client(ctx).patch(f"/api/intake/collections/{name}", json=body).json()
    flags = " (face reconstructable)" if c.get("face_reconstructable") else ""
    out.print(f"updated collection {c.get('name', name)}: {c.get('access')}{flags}")


@collections_app.command("list")
def collections_list(ctx: typer.Context) -> None:
    """List collections."""
    rows = api_client(ctx).get("/api/intake/collections").json()
    table = Table("name", "access", "licence", "description")
    for c in rows:
        lic = c.get("licence") or {}
        table.add_row(
            c["name"],
            c.get("access", ""),
            lic.get("name") or lic.get("id", ""),
            c.get("description", ""),
        )
    out.print(table)


@app.command()
def status(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option(help="Collection.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Counts per stage: received, held, de-identified, awaiting review, published."""
    api = api_client(ctx)
    s = api.get(f"/api/qc/collections/{collection}/status").json()
    if as_json:
        out.print_json(data=s)
        return
    table = Table("stage", "instances", title=f"{collection}")
    for key, label in (
        ("received", "received"),
        ("held", "held"),
        ("deidentified", "de-identified"),
        ("awaiting_review", "awaiting review"),
        ("published", "published"),
    ):
        table.add_row(label, str(s.get(key, 0)))
    out.print(table)
    held = api.get(f"/api/intake/collections/{collection}/quarantine/counts").json()
    for stage, reasons in sorted(held.items()):
        for code, n in sorted(reasons.items()):
            out.print(f"held at {stage}: {n} {code}")


@qc_app.command("publish")
def qc_publish(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option(help="Collection.")],
    series: Annotated[
        list[str] | None, typer.Option(help="Series UID (repeat); default all awaiting review.")
    ] = None,
    override_findings: Annotated[
        bool,
        typer.Option(help="Publish series with residual-PHI findings too (audited; needs --why)."),
    ] = False,
    why: Annotated[
        str, typer.Option(help="Why the findings are not PHI (kept in the audit).")
    ] = "",
) -> None:
    """Approve and publish series into the public catalog."""
    body: dict[str, Any] = {"series": series or []}
    if override_findings:
        body.update(override_findings=True, why=why)
    r = (
        api_client(ctx)
        .request("POST", f"/api/qc/collections/{collection}/publish", json=body, attempts=ATTEMPTS)
        .json()
    )
    published = r.get("published", [])
    out.print(
        f"published {len(published)} series ({r.get('instances', 0)} instances) of {collection}"
    )


@profile_app.command("show")
def profile_show(
    ctx: typer.Context, collection: Annotated[str, typer.Option(help="Collection.")]
) -> None:
    """Show the current de-identification profile."""
    out.print_json(data=api_client(ctx).get(f"/api/deid/collections/{collection}/profile").json())


@profile_app.command("set")
def profile_set(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option(help="Collection.")],
    add: Annotated[list[str] | None, typer.Option(help="Option to add (repeat).")] = None,
    remove: Annotated[list[str] | None, typer.Option(help="Option to remove (repeat).")] = None,
    date_shift_scope: Annotated[str | None, typer.Option(help="patient or collection.")] = None,
    require_id_map: Annotated[bool | None, typer.Option(help="Hold unmapped patients.")] = None,
) -> None:
    """Change the profile; every change is a new version."""
    api = api_client(ctx)
    path = f"/api/deid/collections/{collection}/profile"
    current = api.get(path).json()
    options = (set(current.get("options", [])) | set(add or [])) - set(remove or [])
    body: dict[str, Any] = {"options": sorted(options)}
    if date_shift_scope is not None:
        body["date_shift_scope"] = date_shift_scope
    if require_id_map is not None:
        body["require_id_map"] = require_id_map
    new = api.put(path, json=body).json()
    out.print(
        f"{collection}: profile version {new.get('version')} ({', '.join(new.get('options', []))})"
    )


@deid_app.command("idmap")
def deid_idmap(
    ctx: typer.Context,
    csv_file: Annotated[Path, typer.Argument(help="CSV with header id_old,id_new.")],
    collection: Annotated[str, typer.Option(help="Collection.")],
) -> None:
    """Upload a collection's patient ID map."""
    if not csv_file.is_file():
        fail(f"{csv_file} does not exist")
    r = (
        api_client(ctx)
        .post(
            f"/api/deid/collections/{collection}/idmap",
            content=csv_file.read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        .json()
    )
    out.print(f"loaded {r.get('loaded', 0)} ID map entries into {collection}")


@deid_app.command("maps")
def deid_maps(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option(help="Collection.")],
    kind: Annotated[str, typer.Option(help="uids or patients.")] = "uids",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File (default stdout).")
    ] = None,
) -> None:
    """Export the old → new UID or patient map (CSV id_old,id_new)."""
    if kind not in ("uids", "patients"):
        fail("--kind must be uids or patients")
    text = api_client(ctx).get(f"/api/deid/collections/{collection}/maps/{kind}.csv").text
    if output:
        output.write_text(text)
        out.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


def main() -> None:
    app()
