"""What a benchmark run cost: CPU time and peak memory of each server process (from /proc),
and the per-service counters the processes export on their metrics port
(services/common/accounting.py). Linux only; used by submit_bench.py."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    role: str
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in task.read_text().split()]
    return out


def _sample(pid: int) -> tuple[float, float, str] | None:
    """CPU seconds (user + system), peak RSS in MB and command line of a live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    hwm = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")), "0")
    return cpu, int(hwm) / 1024, cmd


def _child_role(parent: str, cmd: str) -> str:
    root, _, kind = parent.partition(": ")
    if kind == "forkserver":  # the forkserver's children are the pool's workers
        return f"{root}: workers"
    if "resource_tracker" in cmd:
        return f"{root}: resource tracker"
    if "forkserver" in cmd:
        return f"{root}: forkserver"
    return f"{root}: workers"


@dataclass
class ProcessWatch:
    """Samples a set of named processes and their descendants until stopped."""

    roots: dict[str, int]
    interval: float = 0.5
    seen: dict[int, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> ProcessWatch:
        self.sample()
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        todo = [(pid, role, True) for role, pid in self.roots.items()]
        while todo:
            pid, role, root = todo.pop()
            got = _sample(pid)
            if got is None:
                continue
            cpu, rss, cmd = got
            if not root and pid not in self.seen:
                role = _child_role(role, cmd)
            p = self.seen.setdefault(pid, Proc(role))
            p.cpu_s, p.peak_rss_mb = max(p.cpu_s, cpu), max(p.peak_rss_mb, rss)
            todo += [(c, p.role, False) for c in _children(pid)]

    def stop(self) -> dict[str, Proc]:
        self.sample()
        self._stop.set()
        self._thread.join()
        by_role: dict[str, Proc] = {}
        for p in self.seen.values():
            agg = by_role.setdefault(p.role, Proc(p.role))
            agg.cpu_s += p.cpu_s
            agg.peak_rss_mb = max(agg.peak_rss_mb, p.peak_rss_mb)
        return by_role

    def baseline(self) -> dict[str, float]:
        """CPU seconds per role so far (subtracted from the final figures)."""
        self.sample()
        out: dict[str, float] = {}
        for p in self.seen.values():
            out[p.role] = out.get(p.role, 0.0) + p.cpu_s
        return out


def scrape(url: str) -> dict[tuple[str, str], float]:
    """(metric, service) → value of the accounting counters a metrics port serves."""
    out: dict[tuple[str, str], float] = {}
    wanted = (
        "imarc_sql_statements_total",
        "imarc_sql_transactions_total",
        "imarc_event_bytes_total",
        "imarc_loop_cpu_seconds_total",
    )
    for line in httpx.get(url, timeout=10).text.splitlines():
        if not line.startswith(wanted):
            continue
        name, _, rest = line.partition("{")
        labels, _, value = rest.rpartition("} ")
        service = labels.partition('service="')[2].partition('"')[0]
        out[(name, service)] = out.get((name, service), 0.0) + float(value)
    return out


def difference(
    after: dict[tuple[str, str], float], before: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def report(
    n: int,
    procs: dict[str, Proc],
    cpu_before: dict[str, float],
    counters: dict[tuple[str, str], float],
) -> dict[str, object]:
    """Per-instance costs, as printed by the benchmark."""
    per_process = {
        role: {
            "cpu_ms_per_instance": round(1000 * (p.cpu_s - cpu_before.get(role, 0.0)) / n, 2),
            "peak_rss_mb": round(p.peak_rss_mb, 1),
        }
        for role, p in sorted(procs.items())
    }
    services = sorted({s for _, s in counters})

    def per(metric: str, scale: float = 1.0, digits: int = 2) -> dict[str, float]:
        return {
            s: round(scale * counters[(metric, s)] / n, digits)
            for s in services
            if counters.get((metric, s))
        }

    out: dict[str, object] = {"processes": per_process}
    if counters:
        out["loop_cpu_ms_per_instance"] = per("imarc_loop_cpu_seconds_total", 1000)
        out["sql_statements_per_instance"] = per("imarc_sql_statements_total")
        out["sql_transactions_per_instance"] = per("imarc_sql_transactions_total")
        out["event_bytes_per_instance"] = per("imarc_event_bytes_total", digits=0)
        for key in (
            "sql_statements_per_instance",
            "sql_transactions_per_instance",
            "event_bytes_per_instance",
        ):
            values = out[key]
            assert isinstance(values, dict)
            values["total"] = round(sum(values.values()), 2)
    return out
