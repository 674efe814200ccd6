"""Two sites' databases on one machine: site B's PostgreSQL streams from site A's; A is
killed mid-write and `imarc site promote` turns B primary. Everything A acknowledged before
B had caught up is on B with the same checksum, B takes writes after the promotion, and the
rows A acknowledged in the last moments but B never received are counted (the RPO)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from imarc.cli import app
from tests.harness import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]
BIN = Path("/usr/lib/postgresql/15/bin")
#: rows written on A and replicated before the failover
BEFORE = 300
#: the most rows the writer sends to A while it is being killed
WRITER_MAX = 20_000
#: what a client sees when its server is killed under it
LOST_CONNECTION = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


def _as_postgres(*cmd: str) -> list[str]:
    """initdb, pg_ctl and pg_basebackup refuse to run as root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else list(cmd)


@dataclass
class Cluster:
    name: str
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(
            _as_postgres(
                str(BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                f"{self.data}.log",
                "-w",
                "-o",
                f"-p {self.port} -c cluster_name={self.name} -c listen_addresses=127.0.0.1"
                f" -c unix_socket_directories={self.data.parent}",
                "start",
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"),
                capture_output=True,
                timeout=60,
            )


@pytest.fixture
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Cluster]]:
    if not (BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.fail("PostgreSQL 15 server binaries and runuser are needed (apt postgresql-15)")
    root = tmp_path_factory.mktemp("twosite")
    os.chmod(root, 0o777)
    for parent in root.parents:  # postgres must be able to enter the directory
        if parent == Path("/"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
    a = Cluster("sitea", root / "a", free_port())
    b = Cluster("siteb", root / "b", free_port())
    subprocess.run(
        _as_postgres(str(BIN / "initdb"), "-D", str(a.data), "--auth=trust", "-U", "postgres"),
        check=True,
        capture_output=True,
        timeout=120,
        cwd=root,
    )
    with open(a.data / "postgresql.conf", "a") as conf:
        conf.write("wal_keep_size = '64MB'\nwal_log_hints = on\nfsync = off\n")
    (a.data / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        "host replication all 127.0.0.1/32 trust\n"
    )
    try:
        a.start()
        subprocess.run(
            _as_postgres(
                str(BIN / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(a.port),
                "-U",
                "postgres",
                "-D",
                str(b.data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ),
            check=True,
            capture_output=True,
            timeout=120,
            cwd=root,
        )
        b.start()
        yield a, b
    finally:
        b.stop()
        a.stop()


def checksum(rows: list[asyncpg.Record]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r['id']}:{r['body']}\n".encode())
    return h.hexdigest()


async def catch_up(a: Cluster, b: Cluster) -> None:
    pa, pb = await asyncpg.connect(a.url), await asyncpg.connect(b.url)
    try:
        target = await pa.fetchval("SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + 60
        while await pb.fetchval("SELECT pg_last_wal_replay_lsn() < $1", target):
            assert time.monotonic() < deadline, "site B did not catch up within 60 s"
            await asyncio.sleep(0.02)
    finally:
        await pa.close()
        await pb.close()


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_failover_keeps_everything_replicated_and_b_takes_writes(
    sites: tuple[Cluster, Cluster],
) -> None:
    a, b = sites

    async def before() -> tuple[int, str]:
        pa = await asyncpg.connect(a.url)
        try:
            await pa.execute("CREATE TABLE submissions (id bigserial PRIMARY KEY, body text)")
            for i in range(BEFORE):
                await pa.execute("INSERT INTO submissions(body) VALUES ($1)", f"before-{i}")
            rows = await pa.fetch("SELECT id, body FROM submissions ORDER BY id")
            return len(rows), checksum(rows)
        finally:
            await pa.close()

    count_a, sum_a = asyncio.run(before())
    asyncio.run(catch_up(a, b))
    shown = cli("site", "status", "--database", a.url, "--database", b.url)
    assert "primary" in shown and "siteb streaming" in shown and "standby" in shown

    async def write_until_killed() -> list[int]:
        """Write on A, one acknowledged row at a time, while A is killed under it."""
        acked: list[int] = []
        pa = await asyncpg.connect(a.url)
        try:
            for i in range(WRITER_MAX):
                if i == 200:
                    os.kill(a.pid(), signal.SIGKILL)  # site A dies mid-ingest
                try:
                    acked.append(
                        await pa.fetchval(
                            "INSERT INTO submissions(body) VALUES ($1) RETURNING id", f"during-{i}"
                        )
                    )
                except LOST_CONNECTION:
                    break
        finally:
            pa.terminate()
        return acked

    acked = asyncio.run(write_until_killed())
    assert 200 <= len(acked) < WRITER_MAX, "the writer should have been cut off by the kill"

    promoted = cli("site", "promote", "--database", b.url)
    assert "is the primary now" in promoted

    async def after() -> tuple[list[asyncpg.Record], int]:
        pb = await asyncpg.connect(b.url)
        try:
            await pb.execute("INSERT INTO submissions(body) VALUES ('after failover')")
            rows = await pb.fetch("SELECT id, body FROM submissions ORDER BY id")
            lost = await pb.fetchval(
                "SELECT count(*) FROM unnest($1::bigint[]) a(id)"
                " WHERE NOT EXISTS (SELECT 1 FROM submissions s WHERE s.id = a.id)",
                acked,
            )
            return rows, int(lost)
        finally:
            await pb.close()

    rows, lost = asyncio.run(after())
    replicated = [r for r in rows if r["body"].startswith("before-")]
    assert (len(replicated), checksum(replicated)) == (count_a, sum_a)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "no row twice"
    assert rows[-1]["body"] == "after failover"
    # Asynchronous replication: rows A acknowledged in its last milliseconds may be missing.
    print(f"failover: {len(acked)} rows acknowledged during the kill, {lost} not on site B")
    # B never holds a row A did not take: its rows written during the kill are the ones A
    # acknowledged, in A's order, but for the one insert in flight when A died
    during = [r["id"] for r in rows if r["body"].startswith("during-")]
    assert len(set(during) - set(acked)) <= 1
    assert [i for i in during if i in set(acked)] == acked[: len(acked) - lost]
    shown = cli("site", "status", "--database", b.url)
    assert "primary" in shown


def test_promote_refuses_a_primary(sites: tuple[Cluster, Cluster]) -> None:
    a, _ = sites
    result = CliRunner().invoke(app, ["site", "promote", "--database", a.url])
    assert result.exit_code != 0
    assert "already a primary" in result.output
