"""`imarc dlq list|show|replay|drop|history`: an operator's view of the dead-letter queues.

A consumer that keeps failing on an event (after the bounded retries with backoff) moves
it to ``<queue>.dlq`` so that the queue keeps flowing. These commands work on the bus the
deployment uses, configured like `imarc serve` (``IMARC_BUS_URL``; without it, the
embedded bus under ``--data-dir``). Replaying or dropping is recorded with who did it
and why (`imarc dlq history`).
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from imarc.cli_http import fail
from services.common.settings import SERVICES, Settings

app = typer.Typer(no_args_is_help=True, help=__doc__.split("\n\n")[0] if __doc__ else None)
out = Console(soft_wrap=True)
T = TypeVar("T")

DataDir = Annotated[
    Path,
    typer.Option(envvar="IMARC_DATA_DIR", help="Data directory of an embedded deployment."),
]
Why = Annotated[str, typer.Option("--why", help="Why (recorded with your name).")]


def _settings(data_dir: Path) -> Settings:
    settings = Settings(data_dir=data_dir)
    if settings.embedded_bus and not (data_dir / "db" / "bus.sqlite").exists():
        fail(
            f"no embedded deployment in {data_dir.resolve()} (no db/bus.sqlite there): pass "
            "--data-dir, or set IMARC_BUS_URL to the broker of a distributed deployment"
        )
    return settings


def _queues(settings: Settings) -> list[str]:
    """Every consumer queue of the platform (from the services' own specs)."""
    from imarc.runtime import Runtime, prepare_embedded

    runtime = Runtime(prepare_embedded(settings), SERVICES)
    return sorted(
        c.queue for spec in runtime.specs for c in spec.consumers(runtime.deps[spec.name])
    )


def _with_bus(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from imarc.runtime import open_bus

    async def run() -> T:
        bus = open_bus(settings, owner=False)
        try:
            await bus.start()
            return await work(bus)
        finally:
            await bus.close()

    try:
        return asyncio.run(run())
    except (OSError, ConnectionError) as e:
        fail(f"cannot reach the bus: {e}; is the broker up (IMARC_BUS_URL)?")


def _known(queue: str, settings: Settings) -> str:
    queues = _queues(settings)
    if queue not in queues:
        fail(f"no consumer queue is named {queue!r}; the queues are: {', '.join(queues)}")
    return queue


@app.command("list")
def list_(data_dir: DataDir = Path("var")) -> None:
    """How many dead letters each consumer queue holds."""
    settings = _settings(data_dir)
    queues = _queues(settings)
    counts = _with_bus(settings, lambda bus: bus.dead_letter_counts(queues))
    table = Table("queue", "dead letters")
    for queue in queues:
        table.add_row(queue, str(counts.get(queue, 0)))
    out.print(table)


@app.command()
def show(
    queue: Annotated[str, typer.Argument(help="A consumer queue, e.g. deid.on_instance_received.")],
    event_id: Annotated[str | None, typer.Argument(help="One event: print it whole.")] = None,
    data_dir: DataDir = Path("var"),
) -> None:
    """The dead letters of a queue: event id, type, attempts and the last error."""
    settings = _settings(data_dir)
    _known(queue, settings)
    letters = _with_bus(settings, lambda bus: bus.dead_letters(queue))
    if event_id is not None:
        match = [d for d in letters if d.event.id == event_id]
        if not match:
            fail(f"{queue} has no dead letter with event id {event_id}")
        d = match[0]
        out.print_json(json.dumps({"attempts": d.attempts, "error": d.error}))
        out.print_json(d.event.model_dump_json())
        return
    # one line each, ids whole, so that they can be copied into `imarc dlq replay|drop`
    for d in letters:
        out.print(
            f"{d.event.id}  {d.event.type}  subject={d.event.subject or '-'}  "
            f"attempts={d.attempts}  {d.error}",
            highlight=False,
            markup=False,
        )
    out.print(f"{len(letters)} dead letter(s) in {queue}")


def _act(action: str, queue: str, ids: list[str] | None, why: str, data_dir: Path) -> list[str]:
    if not why.strip():
        fail(f"say why with --why TEXT: every {action} is recorded with your name")
    settings = _settings(data_dir)
    _known(queue, settings)
    by = getpass.getuser()

    async def work(bus: Any) -> list[str]:
        done: list[str] = await getattr(bus, f"{action}_dead_letters")(queue, ids)
        if done:
            await bus.audit_dead_letters(action, queue, done, by, why.strip())
        return done

    done = _with_bus(settings, work)
    missing = sorted(set(ids or ()) - set(done))
    if missing:
        out.print(f"not in {queue}.dlq (already handled?): {', '.join(missing)}")
    return done


EventIds = Annotated[list[str] | None, typer.Argument(help="Event ids (see `imarc dlq show`).")]


@app.command()
def replay(
    queue: Annotated[str, typer.Argument(help="The consumer queue.")],
    event_ids: EventIds = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter of the queue.")] = False,
    why: Why = "",
    data_dir: DataDir = Path("var"),
) -> None:
    """Send dead letters back to their queue for another round of attempts (once the cause
    is fixed). The consumer's inbox keeps their effect single."""
    if not event_ids and not all_:
        fail("name the event ids to replay, or pass --all")
    done = _act("replay", queue, None if all_ else event_ids, why, data_dir)
    out.print(f"replayed {len(done)} event(s) to {queue}")


@app.command()
def drop(
    queue: Annotated[str, typer.Argument(help="The consumer queue.")],
    event_ids: Annotated[list[str], typer.Argument(help="Event ids (see `imarc dlq show`).")],
    why: Why = "",
    data_dir: DataDir = Path("var"),
) -> None:
    """Delete dead letters that must never be applied."""
    done = _act("drop", queue, event_ids, why, data_dir)
    out.print(f"dropped {len(done)} event(s) from {queue}.dlq")


@app.command()
def history(data_dir: DataDir = Path("var")) -> None:
    """Who replayed or dropped which dead letters, when and why."""
    settings = _settings(data_dir)
    entries = _with_bus(settings, lambda bus: bus.dead_letter_history())
    for e in entries:
        out.print(
            f"{e.at}  {e.by}  {e.action}  {e.queue}  {' '.join(e.event_ids)}  why: {e.why}",
            highlight=False,
            markup=False,
        )
    if not entries:
        out.print("no dead letter was replayed or dropped yet")
