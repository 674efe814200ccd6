"""`imarc up|serve|migrate|stack`: running the platform (registered on the `imarc` app in
imarc/cli.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from imarc.cli_http import fail
from services.common.settings import DEFAULT_PORTS, SERVICES, Settings

out = Console(soft_wrap=True)


#: Where `imarc serve dicom` answers its health and readiness probes.
DICOM_HTTP_PORT = 8090


def up(
    host: Annotated[
        str, typer.Option(envvar="IMARC_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="IMARC_PORT", help="Port to listen on.")] = 8080,
    data_dir: Annotated[
        Path, typer.Option(envvar="IMARC_DATA_DIR", help="Where data is kept.")
    ] = Path("var"),
    demo: Annotated[bool, typer.Option(help="Load the demo collection on first start.")] = True,
) -> None:
    """Run the whole platform in one process (embedded mode)."""

    from imarc.demo import start_demo_loader
    from imarc.local import record_serving
    from imarc.runtime import admin_credentials_path, embedded_app, prepare_embedded
    from services.common.logs import configure

    settings = Settings(data_dir=data_dir, host=host, port=port)
    if "IMARC_DICOM_ENABLED" not in os.environ:  # embedded, the DICOM listener runs too
        settings = settings.model_copy(update={"dicom_enabled": True})
    refuse_unreplicated(settings)
    configure(settings.log_level, settings.log_json)
    settings = prepare_embedded(settings)
    base = f"http://{host}:{port}"
    record_serving(data_dir, base)
    out.print(f"[bold]imarc[/bold] (embedded) on {base}  data: {settings.data_dir.resolve()}")
    out.print(f"  NBIA API:  {base}/nbia-api/services/v4/getCollectionValues")
    out.print(f"  API docs:  {base}/docs")
    out.print(f"  metrics:   {metrics_where(settings)}")
    if settings.dicom_enabled:
        out.print(
            f"  DICOM:     AE {settings.dicom_ae_title} on port {settings.dicom_port} "
            "(imarc sites add … to admit a sender)"
        )
    out.print(f"  admin credentials: {admin_credentials_path(settings)} (mode 0600)")
    out.print("  log in with: imarc login")
    if demo:
        start_demo_loader(base, settings)
    serve_app(embedded_app(settings), settings, host, port)


def refuse_unreplicated(settings: Settings) -> None:
    """A replica reads the primary's database as PostgreSQL streams it; a SQLite file (an
    embedded site's) is nobody's replica, and the site would only find empty tables."""
    if settings.site_role == "replica" and not settings.database_url.startswith("postgresql"):
        fail(
            "IMARC_SITE_ROLE=replica reads the primary site's database through PostgreSQL "
            "streaming replication: set IMARC_DATABASE_URL to its standby "
            "(postgresql+asyncpg://...); an embedded site's SQLite files are not replicated"
        )


def metrics_where(settings: Settings) -> str:
    if settings.metrics_port:
        return f"http://{settings.host}:{settings.metrics_port}/metrics"
    return "not served (set IMARC_METRICS_PORT to serve Prometheus metrics on a port of their own)"


def serve_app(application: object, settings: Settings, host: str, port: int) -> None:
    """Serve ``application`` and, when ``IMARC_METRICS_PORT`` is set, the process's metrics
    on that port (never on the public one)."""
    import uvicorn

    if settings.metrics_port:
        from services.common.metrics import start_metrics_server

        start_metrics_server(settings.metrics_port, settings.metrics_host or host)
    from services.common.accounting import cpu_accounting_requested

    # timing callbacks per service needs asyncio's own loop (see services/common/accounting.py)
    loop = "asyncio" if cpu_accounting_requested() else "auto"
    # No proxy_headers: who the client is behind a proxy is decided in one place, from
    # IMARC_TRUSTED_PROXIES (services/common/proxies.py), not by uvicorn's own default.
    uvicorn.run(
        application,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="warning",
        loop=loop,
        proxy_headers=False,
    )


def serve(
    service: Annotated[
        str, typer.Argument(help=f"One of: {', '.join((*SERVICES, 'gateway', 'dicom'))}.")
    ],
    host: Annotated[str | None, typer.Option(help="Address (default IMARC_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default IMARC_PORT or the service's).")
    ] = None,
) -> None:
    """Run one service (or the gateway) in distributed mode, configured from the environment."""
    from fastapi import FastAPI

    from services.common.logs import configure

    settings = Settings()
    if service != "gateway":
        refuse_unreplicated(settings)
    configure(settings.log_level, settings.log_json)
    application: FastAPI
    if service == "gateway":
        from imarc.gateway import gateway_app

        application = gateway_app(settings)
        default_port = 8080
    elif service == "dicom":  # intake with its C-STORE listener; HTTP for probes
        from imarc.runtime import Runtime

        settings = settings.model_copy(update={"dicom_enabled": True})
        application = Runtime(settings, ["intake"]).app("imarc dicom")
        default_port = DICOM_HTTP_PORT
    elif service in SERVICES:
        from imarc.runtime import Runtime

        application = Runtime(settings, [service]).app(f"imarc {service}")
        default_port = DEFAULT_PORTS[service]
    else:
        names = ", ".join((*SERVICES, "gateway", "dicom"))
        fail(f"unknown service {service!r}; choose one of {names}")
    chosen = port or (int(os.environ["IMARC_PORT"]) if "IMARC_PORT" in os.environ else default_port)
    serve_app(application, settings, host or settings.host, chosen)


def migrate(
    service: Annotated[str, typer.Argument(help="A service, or 'all'.")] = "all",
) -> None:
    """Apply database migrations and exit (the Helm chart runs this as a hook)."""
    import asyncio

    from imarc.runtime import load_spec
    from services.common.db import Database

    settings = Settings()
    names = SERVICES if service == "all" else (service,)

    async def run() -> None:
        for name in names:
            spec = load_spec(name)
            db = Database(settings.database_url_for(name), schema=name)
            try:
                await db.migrate(spec.migrations)
            finally:
                await db.dispose()
            out.print(f"{name}: migrated")

    try:
        asyncio.run(run())
    except ValueError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot reach the database: {e}")


def stack(
    data_dir: Annotated[Path, typer.Option(help="Where local state is kept.")] = Path("var/stack"),
    reset: Annotated[
        bool,
        typer.Option(
            help="Delete the deployment's database and queues first (keeps its secret and login)."
        ),
    ] = False,
) -> None:
    """Distributed mode on one machine: one process per service plus the gateway."""
    from imarc.stack import run_stack

    run_stack(data_dir, reset=reset)
