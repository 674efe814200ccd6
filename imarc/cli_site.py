"""`imarc site`: the database side of a two-site deployment (site A primary, site B a
streaming standby of A's PostgreSQL).

``status`` shows, for each database given, whether it is the primary or a standby, its WAL
position and, on a standby, how far its replay is behind what it received; on a primary,
the standbys streaming from it. ``promote`` turns a standby into the primary after its
primary was lost (unplanned failover): it promotes, waits until the database accepts
writes, writes a checkpoint (so the old primary can be rewound onto it) and forgets the
old primary's address. docs/operations.md gives the whole procedure.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from imarc.cli_http import fail

app = typer.Typer(help="Two sites: replication status and promotion.", no_args_is_help=True)
out = Console(soft_wrap=True)
#: seconds `promote` waits for the standby to leave recovery
PROMOTE_WAIT = 60.0


def _plain(url: str) -> str:
    """asyncpg takes postgresql:// URLs; accept the SQLAlchemy spelling too."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(_plain(url), timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        fail(
            f"cannot reach the database {_redact(url)} ({exc}); check the URL and that the "
            "server is running"
        )


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = _plain(url).rpartition("@")
    if not sep:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':')[0]}@{tail}"


async def _status(url: str) -> dict[str, Any]:
    conn = await _connect(url)
    try:
        standby = bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
        if standby:
            row = await conn.fetchrow(
                "SELECT pg_last_wal_receive_lsn()::text AS received,"
                " pg_last_wal_replay_lsn()::text AS replayed,"
                " coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(),"
                " pg_last_wal_replay_lsn()), 0)::bigint AS behind,"
                " (SELECT status FROM pg_stat_wal_receiver) AS receiver,"
                " (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver) AS source"
            )
            return {"url": _redact(url), "role": "standby", **dict(row)}
        lsn = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
        standbys = await conn.fetch(
            "SELECT application_name, state, sync_state, replay_lsn::text AS replayed,"
            " coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint AS behind"
            " FROM pg_stat_replication ORDER BY application_name"
        )
        return {
            "url": _redact(url),
            "role": "primary",
            "lsn": lsn,
            "standbys": [dict(s) for s in standbys],
        }
    finally:
        await conn.close()


@app.command("status")
def status(
    database: Annotated[
        list[str],
        typer.Option("--database", help="A site's database URL (repeat for each site)."),
    ],
) -> None:
    """Each site's database role, WAL position and replication lag (bytes)."""
    table = Table("database", "role", "WAL position", "replication")
    for url in database:
        s = asyncio.run(_status(url))
        if s["role"] == "standby":
            how = f"{s['receiver'] or 'not streaming'} from {s['source'] or '-'}"
            table.add_row(s["url"], "standby", s["replayed"], f"{how}, {s['behind']} bytes behind")
        else:
            rows = [
                f"{r['application_name']} {r['state']} {r['sync_state']}, "
                f"{r['behind']} bytes behind"
                for r in s["standbys"]
            ]
            table.add_row(s["url"], "primary", s["lsn"], "; ".join(rows) or "no standby")
    out.print(table)


async def _promote(url: str, wait: float) -> str:
    conn = await _connect(url)
    try:
        if not await conn.fetchval("SELECT pg_is_in_recovery()"):
            fail(f"{_redact(url)} is already a primary; nothing to promote")
        await conn.execute("SELECT pg_promote(true, $1)", max(1, int(wait)))
        deadline = time.monotonic() + wait
        while await conn.fetchval("SELECT pg_is_in_recovery()"):
            if time.monotonic() > deadline:
                fail(
                    f"{_redact(url)} did not leave recovery within {wait:.0f} s; see its server log"
                )
            await asyncio.sleep(0.05)
        # The checkpoint records the new timeline in the control file, which pg_rewind reads
        # when the old primary rejoins as this one's standby.
        await conn.execute("CHECKPOINT")
        await conn.execute("ALTER SYSTEM RESET primary_conninfo")
        await conn.execute("SELECT pg_reload_conf()")
        return str(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
    finally:
        await conn.close()


@app.command("promote")
def promote(
    database: Annotated[str, typer.Option("--database", help="The standby's database URL.")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for the promotion.")] = PROMOTE_WAIT,
) -> None:
    """Make a standby database the primary (failover: its primary is gone).

    Start this site's services with IMARC_SITE_ROLE=primary afterwards. Anything the old
    primary committed that had not reached this standby is not here (asynchronous
    replication); docs/operations.md says how to measure it."""
    lsn = asyncio.run(_promote(database, wait))
    out.print(f"{_redact(database)} is the primary now, at WAL position {lsn}", highlight=False)
