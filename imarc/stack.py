"""Distributed mode on one machine (`make up`): one `imarc serve` process per service plus
the gateway, against the local PostgreSQL and RabbitMQ and an S3 endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from imarc.local import record_serving
from imarc.runtime import admin_credentials_path, prepare_embedded
from services.common.settings import DEFAULT_PORTS, SERVICES, Settings

DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/imarc"
DEFAULT_BUS = "amqp://guest:guest@127.0.0.1:5672/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _maintenance(url: str, work: Callable[[Any, str], Awaitable[None]]) -> None:
    """Run ``work(connection, database name)`` on the server's ``postgres`` database, with the
    credentials of ``url`` (creating or dropping the database ``url`` names)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        user=u.username or "postgres",
        password=u.password,
        database="postgres",
    )
    try:
        await work(conn, str(u.database))
    finally:
        await conn.close()


async def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it is missing."""

    async def create(conn: Any, name: str) -> None:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')

    await _maintenance(url, create)


async def drop_database(url: str) -> None:
    """Drop the PostgreSQL database named in ``url`` (benchmarks clean up after themselves)."""

    async def drop(conn: Any, name: str) -> None:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    await _maintenance(url, drop)


#: Start of the comment that marks a PostgreSQL database as one deployment's.
MARK = "imarc deployment "
SEALED = "sealed with another IMARC_SECRET"


class StackError(RuntimeError):
    """Why the stack cannot start, as a sentence saying what to run."""


def fingerprint(secret: str) -> str:
    """Names a deployment's secret without revealing it."""
    return hmac.new(secret.encode(), b"imarc deployment", hashlib.sha256).hexdigest()[:32]


async def database_mark(url: str) -> str | None:
    """The deployment fingerprint the database named in ``url`` was marked with, if any."""
    found: list[str | None] = []

    async def read(conn: Any, name: str) -> None:
        comment = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname=$1", name
        )
        found.append(comment[len(MARK) :] if comment and comment.startswith(MARK) else None)

    await _maintenance(url, read)
    return found[0]


async def mark_database(url: str, mark: str) -> None:
    """Mark the database as the data of the deployment whose secret has fingerprint ``mark``."""

    async def write(conn: Any, name: str) -> None:
        await conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{MARK}{mark}'")

    await _maintenance(url, write)


class Stack:
    """The processes of a distributed deployment on loopback."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        ports: dict[str, int] | None = None,
        gateway_port: int = 8080,
        reset: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.reset = reset
        self.env = {**os.environ, **(env or {})}
        self.ports = ports or dict(DEFAULT_PORTS)
        self.gateway_port = gateway_port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.s3: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def prepare(self) -> None:
        env = self.env
        env.setdefault("IMARC_DATABASE_URL", DEFAULT_DB)
        env.setdefault("IMARC_BUS_URL", DEFAULT_BUS)
        if not env.get("IMARC_STORE_URL"):
            from moto.server import ThreadedMotoServer

            port = free_port()
            self.s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            self.s3.start()
            env["IMARC_STORE_URL"] = (
                f"s3://imarc:imarc-local@127.0.0.1:{port}?secure=false&region=us-east-1"
            )
        settings = prepare_embedded(Settings(data_dir=self.data_dir))
        for name, value in (
            ("IMARC_SECRET", settings.secret.get_secret_value()),
            ("IMARC_ADMIN_USERNAME", settings.admin_username),
            ("IMARC_ADMIN_PASSWORD", settings.admin_password.get_secret_value()),
        ):
            env[name] = env.get(name) or value
        env["IMARC_DATA_DIR"] = str(self.data_dir)
        env["IMARC_AUTH_URL"] = f"http://127.0.0.1:{self.ports['auth']}"
        # the services believe the gateway's X-Forwarded-For (it runs on loopback here)
        env.setdefault("IMARC_TRUSTED_PROXIES", "127.0.0.1")
        for name in SERVICES:
            env[f"IMARC_{name.upper()}_URL"] = f"http://127.0.0.1:{self.ports[name]}"
        if self.reset:
            self.delete_data()
        if env["IMARC_DATABASE_URL"].startswith("postgresql"):
            asyncio.run(ensure_database(env["IMARC_DATABASE_URL"]))
            mark = asyncio.run(database_mark(env["IMARC_DATABASE_URL"]))
            if mark is not None and mark != fingerprint(env["IMARC_SECRET"]):
                raise StackError(self.foreign_database())

    def foreign_database(self) -> str:
        from sqlalchemy.engine import make_url

        u = make_url(self.env["IMARC_DATABASE_URL"])
        return (
            f"the database {u.database} on {u.host}:{u.port or 5432} holds the data of another "
            f"imarc deployment (made with another IMARC_SECRET than {self.data_dir}/secret.key, "
            "e.g. by `make up` in another checkout). To delete that data and start afresh run "
            "`imarc stack --reset` (or `make up UP_ARGS=--reset`); to keep it, start with that "
            "deployment's IMARC_SECRET or set IMARC_DATABASE_URL to another database."
        )

    def delete_data(self) -> None:
        """Drop the deployment's database and broker objects; keep its secret and login."""
        url = self.env["IMARC_DATABASE_URL"]
        if url.startswith("postgresql"):
            asyncio.run(drop_database(url))
        self.destroy_broker_objects()
        (self.data_dir / "demo-loaded").unlink(missing_ok=True)

    def _spawn(self, name: str, port: int) -> None:
        cmd = [sys.executable, "-m", "imarc", "serve", name, "--port", str(port)]
        log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log)

    def start(self, timeout: float = 90) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        # auth first: the others fetch its JWKS
        self._spawn("auth", self.ports["auth"])
        self._wait(f"http://127.0.0.1:{self.ports['auth']}/readyz", timeout, "auth")
        url = self.env["IMARC_DATABASE_URL"]
        if url.startswith("postgresql"):  # auth unsealed its keys: the data is ours
            asyncio.run(mark_database(url, fingerprint(self.env["IMARC_SECRET"])))
        for name in SERVICES:
            if name != "auth":
                self._spawn(name, self.ports[name])
        self._spawn("gateway", self.gateway_port)
        self._wait(self.url + "/readyz", timeout, "the gateway and every service")

    def _wait(self, url: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    log = self.data_dir / f"{name}.log"
                    if name == "auth" and SEALED in log.read_text(errors="replace")[-20000:]:
                        raise StackError(self.foreign_database())
                    raise StackError(f"{name} exited with {p.returncode}; see {log}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise StackError(
            f"{what} did not become ready in {timeout:.0f}s; see {self.data_dir}/*.log"
        )

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()
        if self.s3 is not None:
            self.s3.stop()
            self.s3 = None

    def destroy_broker_objects(self) -> None:
        """Delete the queues and exchange this deployment declared (tests, benchmarks)."""
        from imarc.runtime import Runtime
        from services.common.bus import EXCHANGE
        from services.common.rabbit_bus import RabbitBus

        url, prefix = self.env.get("IMARC_BUS_URL", ""), self.env.get("IMARC_BUS_PREFIX", "")
        if not url:
            return
        # engines of the Runtime below are never connected: it only names the consumers
        unused_db = "postgresql+asyncpg://unused@127.0.0.1/unused"
        runtime = Runtime(
            Settings(bus_url=url, bus_prefix=prefix, database_url=unused_db), SERVICES
        )
        queues = [c.queue for s in runtime.specs for c in s.consumers(runtime.deps[s.name])]

        async def delete() -> None:
            bus = RabbitBus(url, exchange=prefix + EXCHANGE, queue_prefix=prefix)
            try:
                await bus.delete_queues(queues, exchange=True)
            finally:
                await bus.close()
                for ctx in runtime.contexts.values():
                    await ctx.db.dispose()

        asyncio.run(delete())


def run_stack(data_dir: Path, reset: bool = False) -> None:
    from imarc.demo import start_demo_loader

    stack = Stack(data_dir, reset=reset)
    try:
        stack.start()
    except StackError as e:
        stack.stop()
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    record_serving(data_dir, stack.url)
    print(f"imarc (distributed) on {stack.url}; logs in {data_dir}/*.log")
    print(f"admin credentials: {admin_credentials_path(Settings(data_dir=data_dir))}")
    print("log in with: imarc login")
    settings = prepare_embedded(Settings(data_dir=data_dir))
    start_demo_loader(stack.url, settings)
    try:
        while all(p.poll() is None for p in stack.procs.values()):
            time.sleep(1)
        print("a service exited; stopping", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
