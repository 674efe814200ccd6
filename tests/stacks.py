"""A distributed deployment on this machine for a test: one `imarc serve` process per
service plus the gateway (imarc/stack.py), started on free loopback ports and, whatever
happens, stopped with its broker objects removed; a service's traceback is printed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imarc.stack import Stack, free_port
from services.common.settings import SERVICES


@contextmanager
def running_stack(root: Path, env: dict[str, str], *, tail: int = 4000) -> Iterator[Stack]:
    s = Stack(root, env=env, ports={n: free_port() for n in SERVICES}, gateway_port=free_port())
    try:
        s.start(timeout=120)
        yield s
    finally:
        s.stop()
        s.destroy_broker_objects()
        for log in sorted(root.glob("*.log")):
            text = log.read_text(errors="replace")
            if "Traceback" in text:
                print(f"--- {log.name}\n{text[-tail:]}")
