"""`imarc users|licences|grants`: account, licence and access administration.

Each command is a thin client of the auth service's HTTP API (``/api/auth/...``);
``api_client`` supplies the URL and token and turns failed requests into one sentence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from imarc.cli_http import api_client, fail

out = Console()

users_app = typer.Typer(
    help="Accounts and their roles (admins; managers for roles).", no_args_is_help=True
)
licences_app = typer.Typer(help="Licences and their approval.", no_args_is_help=True)
grants_app = typer.Typer(help="Access to limited collections.", no_args_is_help=True)

ROLE_SPEC = "ROLE[:COLLECTION[:SITE]], e.g. curator or submitter:Demo-CT:site-a"


def _u(name: str) -> str:
    return quote(name, safe="")


def _role(spec: str) -> dict[str, str]:
    role, _, rest = spec.partition(":")
    collection, _, site = rest.partition(":")
    if not role:
        fail(f"a role is {ROLE_SPEC}")
    body = {"role": role.strip()}
    if collection:
        body["collection"] = collection.strip()
    if site:
        body["site"] = site.strip()
    return body


def _when(value: str | None) -> str | None:
    """An ISO date or date-time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{value!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _roles_text(roles: list[dict[str, Any]]) -> str:
    return ", ".join(
        ":".join(x for x in (r["role"], r.get("collection") or "", r.get("site") or "") if x)
        for r in roles
    )


# -- users -----------------------------------------------------------------------------


@users_app.command("list")
def users_list(
    ctx: typer.Context,
    query: Annotated[str, typer.Option("--query", "-q", help="Part of the name.")] = "",
    clients: Annotated[bool, typer.Option(help="List API clients instead of people.")] = False,
) -> None:
    """List accounts with their roles, grants and licences."""
    rows = (
        api_client(ctx)
        .get("/api/auth/users", params={"q": query, "kind": "client" if clients else "user"})
        .json()
    )
    table = Table("username", "roles", "grants", "licences", "policy", "status")
    for u in rows:
        table.add_row(
            u["username"],
            _roles_text(u["roles"]),
            ", ".join(g["collection"] for g in u["grants"] if g["active"]),
            ", ".join(_licence_text(lic) for lic in u["licences"]),
            "accepted" if u["policy_accepted_at"] else "-",
            "disabled" if u["disabled"] else "active",
        )
    out.print(table)


def _licence_text(lic: dict[str, Any]) -> str:
    """``TCIA-Restricted``, ``TCIA-Restricted for Lim-Z`` (a scoped approval), or with the
    status when it does not count."""
    text = lic["licence_id"]
    if lic.get("collections"):
        text += " for " + "+".join(lic["collections"])
    return text if lic["active"] else f"{text} ({lic['status']})"


@users_app.command("create")
def users_create(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="Login name.")],
    password: Annotated[
        str | None, typer.Option(help="Initial password (prompted if omitted).")
    ] = None,
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
    name: Annotated[str, typer.Option(help="Full name.")] = "",
    role: Annotated[list[str] | None, typer.Option(help=f"A role: {ROLE_SPEC}.")] = None,
) -> None:
    """Create an account (every account has the user role; admins may add others)."""
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    body = {
        "username": username,
        "password": password,
        "email": email,
        "name": name,
        "roles": [_role(r) for r in role or []],
    }
    u = api_client(ctx).post("/api/auth/users", json=body).json()
    out.print(f"created {u['username']} ({_roles_text(u['roles'])})")


@users_app.command("disable")
def users_disable(ctx: typer.Context, username: str) -> None:
    """Disable an account: it cannot log in and its tokens stop working."""
    api_client(ctx).post(f"/api/auth/users/{_u(username)}/disable")
    out.print(f"disabled {username}")


@users_app.command("enable")
def users_enable(ctx: typer.Context, username: str) -> None:
    """Enable a disabled account again."""
    api_client(ctx).post(f"/api/auth/users/{_u(username)}/enable")
    out.print(f"enabled {username}")


@users_app.command("reset-password")
def users_reset_password(
    ctx: typer.Context,
    username: str,
    password: Annotated[
        str | None, typer.Option(help="The new password (generated if omitted).")
    ] = None,
) -> None:
    """Set a new password; the account's sessions end. A generated one is shown once."""
    body = {"password": password} if password else None
    r = api_client(ctx).post(f"/api/auth/users/{_u(username)}/password", json=body).json()
    if r.get("password"):
        out.print(f"new password for {username} (shown once): {r['password']}", highlight=False)
    else:
        out.print(f"password of {username} changed")


@users_app.command("grant-role")
def users_grant_role(
    ctx: typer.Context,
    username: str,
    role: Annotated[str, typer.Argument(help="admin, manager, curator, submitter or user.")],
    collection: Annotated[str | None, typer.Option(help="The collection it applies to.")] = None,
    site: Annotated[str | None, typer.Option(help="The submitter's site.")] = None,
) -> None:
    """Give a role (managers: submitter and curator on their collections)."""
    body = {"role": role, "collection": collection, "site": site}
    resp = api_client(ctx).post(f"/api/auth/users/{_u(username)}/roles", json=body)
    what = ":".join(x for x in (role, collection or "", site or "") if x)
    out.print(f"{username} {'now has' if resp.status_code == 201 else 'already had'} {what}")


@users_app.command("revoke-role")
def users_revoke_role(
    ctx: typer.Context,
    username: str,
    role: str,
    collection: Annotated[str | None, typer.Option()] = None,
    site: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Take a role away."""
    params = {k: v for k, v in {"role": role, "collection": collection, "site": site}.items() if v}
    api_client(ctx).delete(f"/api/auth/users/{_u(username)}/roles", params=params)
    out.print(f"{username} no longer has {':'.join(params.values())}")


# -- licences --------------------------------------------------------------------------


@licences_app.command("list")
def licences_list(ctx: typer.Context) -> None:
    """List licences."""
    rows = api_client(ctx).get("/api/auth/licences").json()
    table = Table("id", "name", "commercial use", "approval", "url")
    for lic in rows:
        table.add_row(
            lic["id"],
            lic["name"],
            "yes" if lic["commercial_use"] else "no",
            "needed" if lic["requires_approval"] else "on acceptance",
            lic["url"],
        )
    out.print(table)


@licences_app.command("create")
def licences_create(
    ctx: typer.Context,
    licence_id: Annotated[str, typer.Argument(metavar="ID", help="e.g. Site-DUA-2026.")],
    name: Annotated[str, typer.Option(help="Full name.")],
    url: Annotated[str, typer.Option(help="Where the legal text is.")] = "",
    text: Annotated[str, typer.Option(help="A summary users read.")] = "",
    text_file: Annotated[Path | None, typer.Option(help="Read the text from a file.")] = None,
    commercial_use: Annotated[bool, typer.Option(help="Commercial use allowed.")] = False,
    requires_approval: Annotated[
        bool, typer.Option(help="Acceptance needs an admin's or manager's approval.")
    ] = False,
) -> None:
    """Add a licence."""
    if text_file is not None:
        try:
            text = text_file.read_text()
        except OSError as e:
            fail(f"cannot read {text_file}: {e.strerror}")
    body = {
        "id": licence_id,
        "name": name,
        "url": url,
        "text": text,
        "commercial_use": commercial_use,
        "requires_approval": requires_approval,
    }
    lic = api_client(ctx).post("/api/auth/licences", json=body).json()
    out.print(f"created licence {lic['id']} ({lic['name']})")


@licences_app.command("approve")
def licences_approve(
    ctx: typer.Context,
    username: str,
    licence_id: Annotated[str, typer.Argument(metavar="LICENCE")],
    expires: Annotated[
        str | None, typer.Option(help="Approval ends then (YYYY-MM-DD, UTC).")
    ] = None,
    collection: Annotated[
        list[str] | None,
        typer.Option(
            help="Approve it for this collection under the licence only (repeatable). A "
            "manager's approval covers the collections they manage; an admin's without "
            "--collection covers every collection under the licence."
        ),
    ] = None,
) -> None:
    """Approve a licence for an account (admins; managers for their own collections)."""
    body = {"expires_at": _when(expires), "collections": collection or []}
    a = (
        api_client(ctx)
        .post(f"/api/auth/users/{_u(username)}/licences/{_u(licence_id)}/approve", json=body)
        .json()
    )
    until = f" until {a['expires_at']}" if a.get("expires_at") else ""
    covers = ", ".join(a["collections"]) if a.get("collections") else "every collection under it"
    out.print(f"approved {licence_id} for {username} ({covers}){until}")


@licences_app.command("requests")
def licences_requests(
    ctx: typer.Context,
    status: Annotated[str, typer.Option(help="requested, approved or revoked.")] = "requested",
) -> None:
    """Licence acceptances waiting for approval."""
    rows = api_client(ctx).get("/api/auth/licence-requests", params={"status": status}).json()
    table = Table("username", "licence", "status", "requested")
    for a in rows:
        table.add_row(a["username"], a["licence_id"], a["status"], a["requested_at"])
    out.print(table)


# -- grants ----------------------------------------------------------------------------


@grants_app.command("add")
def grants_add(
    ctx: typer.Context,
    username: str,
    collection: str,
    expires: Annotated[str | None, typer.Option(help="Access ends then (YYYY-MM-DD, UTC).")] = None,
) -> None:
    """Give an account access to a limited collection."""
    body = {"collection": collection, "expires_at": _when(expires)}
    api_client(ctx).post(f"/api/auth/users/{_u(username)}/grants", json=body)
    out.print(f"{username} may now read {collection}")


@grants_app.command("remove")
def grants_remove(ctx: typer.Context, username: str, collection: str) -> None:
    """Take access to a limited collection away."""
    api_client(ctx).delete(f"/api/auth/users/{_u(username)}/grants/{_u(collection)}")
    out.print(f"{username} may no longer read {collection}")
