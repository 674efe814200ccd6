"""A poison event ends in the dead-letter queue after the bounded retries while its queue
keeps flowing, and an operator deals with it through `imarc dlq` (every act recorded)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from imarc.cli import app
from imarc.runtime import Runtime
from services.common.events import Event, InstanceHeld
from services.common.settings import SERVICES
from services.qc.models import Instance
from tests.harness import make_settings

pytestmark = [pytest.mark.faults]

GOLDEN = Path(__file__).parent.parent / "contract" / "golden"
QUEUE = "qc.on_instance_held"


def held(**changes: object) -> Event:
    data = {**json.loads((GOLDEN / "org.imarc.instance.held.json").read_text()), **changes}
    return Event(source="/site-1/deid", type=InstanceHeld.TYPE, data=data)


async def until(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def run_platform(data: Path, *events: Event) -> tuple[int, int]:
    """Start the embedded platform, publish ``events``, wait until qc's queue is done with
    them; returns (qc's indexed instances, dead letters of the queue)."""
    runtime = Runtime(
        make_settings(data, bus_max_attempts=3, bus_retry_base_seconds=0.05), SERVICES
    )
    await runtime.start()
    try:
        await runtime.bus.publish(list(events))

        async def settled() -> bool:
            return await runtime.bus.depth(QUEUE) == 0

        await until(settled)
        async with runtime.contexts["qc"].db.session() as s:
            indexed = int(await s.scalar(select(func.count()).select_from(Instance)) or 0)
        return indexed, len(await runtime.bus.dead_letters(QUEUE))
    finally:
        await runtime.stop()


def _dlq(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["dlq", *args, "--data-dir", str(data)])
    return result.exit_code, result.output


async def dlq(data: Path, *args: str) -> tuple[int, str]:
    """`imarc dlq ...` as an operator runs it (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(_dlq, data, *args)


async def test_a_poison_event_is_dead_lettered_and_the_operator_replays_then_drops_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "var"
    poison = held(reason=None)  # no reason: qc can never index it
    good = held(instance_id="0" * 32)
    indexed, dead = await run_platform(data, poison, good)
    assert (indexed, dead) == (1, 1), "the good event took effect; the poison one is dead-lettered"

    code, out = await dlq(data, "list")
    assert code == 0 and QUEUE in out
    assert any(re.search(r"\s1\s", line) for line in out.splitlines() if QUEUE in line), out
    code, out = await dlq(data, "show", QUEUE)
    assert code == 0 and poison.id in out and "1 dead letter(s)" in out
    code, out = await dlq(data, "show", QUEUE, poison.id)
    assert code == 0 and "reason" in out

    code, out = await dlq(data, "replay", QUEUE, poison.id)
    assert code != 0 and "--why" in out, "an unexplained replay is refused"
    code, out = await dlq(data, "replay", QUEUE, poison.id, "--why", "qc fixed, try again")
    assert code == 0 and "replayed 1" in out
    # replayed: another round of bounded attempts, and back in the dead-letter queue
    assert await run_platform(data) == (1, 1)

    code, out = await dlq(data, "drop", QUEUE, poison.id, "--why", "a malformed test event")
    assert code == 0 and "dropped 1" in out
    code, out = await dlq(data, "history")
    assert code == 0 and "replay" in out and "drop" in out and "a malformed test event" in out
    code, out = await dlq(data, "show", "no.such.queue")
    assert code != 0 and "no consumer queue" in out
    assert await run_platform(data) == (1, 0)
