"""Builds services and wires them: all in one process (embedded) or one per process.

The same ``ServiceSpec`` of each service is wired the same way in both modes; only the
adapters differ (SQLite or PostgreSQL, the embedded bus or RabbitMQ, a directory or S3).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import multiprocessing
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI
from pydantic import SecretStr

from services.common.accounting import (
    OWNER,
    OwnerMiddleware,
    cpu_accounting_requested,
    install_loop_accounting,
)
from services.common.app import Probe, create_app, provide
from services.common.bus import EXCHANGE, Bus
from services.common.db import Database
from services.common.embedded_bus import EmbeddedBus
from services.common.events import Event
from services.common.messaging import Messaging
from services.common.metrics import EVENTS_CONSUMED, EVENTS_PUBLISHED, OUTBOX_PENDING
from services.common.security import (
    JwksClient,
    KeySource,
    RevocationClient,
    TokenVerifier,
)
from services.common.service import (
    Consumer,
    RevocationCheck,
    ServiceContext,
    ServiceSpec,
    TokenPorts,
)
from services.common.settings import SERVICES, Settings
from services.common.store import ObjectStore, open_store

log = logging.getLogger("imarc.runtime")
D = TypeVar("D")
JWKS_PATH = "/api/auth/.well-known/jwks.json"


def _worker_init(service_pid: int) -> None:
    """A CPU worker ends with the service process that started the pool, however that one
    ends (SIGKILL included).

    The parent-death signal cannot do it: a worker's parent is the forkserver, not the
    service, and the forkserver outlives the service as long as any worker holds its
    "alive" pipe. So each worker watches the service's pidfd, which becomes readable when
    the service exits, and exits too; once the workers are gone the forkserver and the
    resource tracker see their pipes close and exit by themselves.
    """
    import select
    import threading

    from services.common.logs import hide_dicom_values

    hide_dicom_values()

    try:
        pidfd = os.pidfd_open(service_pid)
    except ProcessLookupError:  # the service is already gone
        os._exit(1)

    def watch() -> None:
        select.select([pidfd], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="service-watch", daemon=True).start()


def cpu_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of CPU worker processes that end with this process."""
    # forkserver, not fork: this process has threads (bus, stores), and a forked copy of a
    # threaded process can deadlock.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )


def open_bus(settings: Settings, *, owner: bool = True) -> Bus:
    """The deployment's bus: RabbitMQ when ``IMARC_BUS_URL`` is set, else the embedded bus
    in the data directory (``owner=False`` for an operator's tool beside a running one)."""
    if settings.embedded_bus:
        return EmbeddedBus(
            settings.data_dir.resolve() / "db" / "bus.sqlite",
            max_attempts=settings.bus_max_attempts,
            retry_base=settings.bus_retry_base_seconds,
            owner=owner,
        )
    from services.common.rabbit_bus import RabbitBus

    return RabbitBus(
        settings.bus_url,
        max_attempts=settings.bus_max_attempts,
        retry_base=settings.bus_retry_base_seconds,
        exchange=settings.bus_prefix + EXCHANGE,
        queue_prefix=settings.bus_prefix,
    )


def load_spec(name: str) -> ServiceSpec:
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; choose one of {', '.join(SERVICES)}")
    spec: ServiceSpec = importlib.import_module(f"services.{name}.bootstrap").spec()
    return spec


def _private_file(path: os.PathLike[str] | str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def prepare_embedded(settings: Settings) -> Settings:
    """Embedded mode keeps its generated secret and admin credentials in the data dir
    (mode 0600) so that a restart finds the same pseudonyms, UIDs and login."""
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    update: dict[str, Any] = {}
    if not settings.secret.get_secret_value():
        path = data / "secret.key"
        if not path.exists():
            _private_file(path, secrets.token_hex(32))
        update["secret"] = SecretStr(path.read_text().strip())
    if not settings.admin_username or not settings.admin_password.get_secret_value():
        path = admin_credentials_path(settings)
        if not path.exists():
            _private_file(
                path,
                json.dumps({"username": "admin", "password": secrets.token_urlsafe(18)}, indent=2),
            )
        creds = json.loads(path.read_text())
        update["admin_username"] = creds["username"]
        update["admin_password"] = SecretStr(creds["password"])
    return settings.model_copy(update=update) if update else settings


def admin_credentials_path(settings: Settings) -> Any:
    return settings.data_dir.resolve() / "admin-credentials.json"


class Runtime:
    """Services of one process and the adapters they share."""

    def __init__(self, settings: Settings, names: Sequence[str]) -> None:
        self.settings = settings
        self.specs = [load_spec(n) for n in names]
        self.store: ObjectStore = open_store(
            settings.resolved_store_url(), fsync=settings.store_fsync
        )
        self.bus: Bus = open_bus(settings)
        self.executor: ProcessPoolExecutor | None = None
        self.contexts: dict[str, ServiceContext] = {}
        for spec in self.specs:
            db = Database(settings.database_url_for(spec.name), schema=spec.name)
            messaging = Messaging(
                db,
                self.bus,
                spec.metadata,
                service=spec.name,
                on_published=EVENTS_PUBLISHED.labels(spec.name).inc,
            )
            self.contexts[spec.name] = ServiceContext(
                spec.name, settings, db, self.bus, self.store, messaging
            )
        # the token ports of a service in this process that issues tokens (auth), if any
        ports: TokenPorts | None = None
        self.deps: dict[str, Any] = {}
        for spec in self.specs:
            ctx = self.contexts[spec.name]
            deps = spec.build(ctx) if spec.build is not None else ctx
            self.deps[spec.name] = deps
            if spec.tokens is not None:
                ports = spec.tokens(deps)
        keys: KeySource = (
            ports.keys if ports else JwksClient(settings.auth_url.rstrip("/") + JWKS_PATH)
        )
        self.is_revoked: RevocationCheck = (
            ports.is_revoked
            if ports
            else RevocationClient(
                settings.auth_url.rstrip("/") + "/api/auth/revocations",
                max_age=settings.revocation_refresh_seconds,
            ).is_revoked
        )
        self.verifier = TokenVerifier(
            keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
        for ctx in self.contexts.values():
            ctx.verifier = self.verifier
        self._tasks: list[asyncio.Task[None]] = []

    def cpu_executor(self) -> ProcessPoolExecutor:
        if self.executor is None:
            self.executor = cpu_pool(self.settings.cpu_workers())
        return self.executor

    async def migrate(self) -> None:
        for spec in self.specs:
            await self.contexts[spec.name].db.migrate(spec.migrations)

    def _instrument(self, queue: str, handler: Any) -> Any:
        service = queue.split(".", 1)[0]

        async def handle(event: Event) -> None:
            OWNER.set(service)  # this delivery's task works for the consuming service
            try:
                await handler(event)
            except Exception:
                EVENTS_CONSUMED.labels(queue, "error").inc()
                raise
            EVENTS_CONSUMED.labels(queue, "ok").inc()

        return handle

    def deps_of(self, cls: type[D]) -> D:
        """The dependencies object of type ``cls`` built for one of this runtime's services."""
        for deps in self.deps.values():
            if isinstance(deps, cls):
                return deps
        raise LookupError(f"no service of this runtime has {cls.__name__}")

    async def _subscribe(self, ctx: ServiceContext, consumer: Consumer) -> None:
        if consumer.handler is not None:
            handler = ctx.messaging.idempotent(consumer.queue, consumer.handler)
        elif consumer.raw is not None:
            handler = consumer.raw
        else:
            raise ValueError(f"consumer {consumer.queue} has no handler")
        await self.bus.subscribe(
            consumer.queue,
            consumer.patterns,
            self._instrument(consumer.queue, handler),
            concurrency=consumer.concurrency,
        )

    @property
    def replica(self) -> bool:
        """A replica site reads a replicated database: it migrates, consumes and relays
        nothing, and its services refuse writes (the primary's changes arrive by
        replication)."""
        return self.settings.site_role == "replica"

    async def start(self) -> None:
        if cpu_accounting_requested():
            install_loop_accounting()
        await self.store.ensure_zones()
        await self.bus.start()
        if not self.replica:
            await self.migrate()
        for spec in self.specs:
            if spec.cpu_workers:
                self.contexts[spec.name].executor = self.cpu_executor()
        # token issuers first: the others verify tokens with their keys
        for spec in sorted(self.specs, key=lambda s: s.tokens is None):
            if spec.on_start:
                await spec.on_start(self.deps[spec.name])
        if self.replica:
            return
        for spec in self.specs:
            ctx = self.contexts[spec.name]
            for consumer in spec.consumers(self.deps[spec.name]):
                await self._subscribe(ctx, consumer)
        for ctx in self.contexts.values():
            ctx.messaging.start_relay()
        self._tasks.append(asyncio.create_task(self._gauges()))

    async def _gauges(self) -> None:
        while True:
            for ctx in self.contexts.values():
                try:
                    OUTBOX_PENDING.labels(ctx.name).set(await ctx.messaging.pending())
                except Exception:  # a gauge never takes the process down
                    log.debug("outbox gauge failed", exc_info=True)
            await asyncio.sleep(15)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for ctx in self.contexts.values():
            await ctx.messaging.stop_relay()
        for spec in self.specs:
            if spec.on_stop:
                await spec.on_stop(self.deps[spec.name])
        await self.bus.close()
        for ctx in self.contexts.values():
            await ctx.db.dispose()
        if self.executor is not None:
            # wait: the workers must be gone when the process exits, never orphaned
            await asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)
            self.executor = None

    def probes(self) -> list[tuple[str, Probe]]:
        out: list[tuple[str, Probe]] = [(f"{c.name}-db", c.db.ping) for c in self.contexts.values()]
        out += [("bus", self.bus.ping), ("store", self.store.ping)]
        return out

    def app(self, title: str = "imarc") -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        service = self.specs[0].name if len(self.specs) == 1 else None
        app = create_app(title, lifespan=lifespan, probes=self.probes, service=service)
        if cpu_accounting_requested():  # only the CPU accounting reads whom a request is for
            app.add_middleware(OwnerMiddleware, service=service)
        app.state.verifier = self.verifier
        app.state.runtime = self
        # logout, revoked sessions and disabled accounts are refused by every service
        app.state.is_revoked = self.is_revoked
        for spec in self.specs:
            deps = self.deps[spec.name]
            provide(app, deps)
            for router in spec.routers:
                app.include_router(router)
        return app


def embedded_app(settings: Settings) -> FastAPI:
    return Runtime(prepare_embedded(settings), SERVICES).app("imarc (embedded)")
