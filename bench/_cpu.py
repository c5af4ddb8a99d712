"""CPU time of a piece of bench code, here and in the database's backends on this host.

On the shared machine wall time measures the load as much as the code; CPU time of the
bench process plus the PostgreSQL backends serving it measures the code.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, text


def backends(engine: Engine) -> list[int]:
    """The database's backend processes, if they run on this host (the pool's connections:
    one, in this single-threaded loop; not the autovacuum workers that come and go)."""
    with engine.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend'"
            )
        ).scalars()
        return [pid for pid in pids if Path(f"/proc/{pid}/sched").exists()]


def backend_cpu(pids: list[int]) -> float:
    """CPU seconds the processes ``pids`` have used: se.sum_exec_runtime (milliseconds, to
    the nanosecond) of /proc/<pid>/sched; /proc/<pid>/stat counts 10 ms ticks."""
    total = 0.0
    for pid in pids:
        for line in Path(f"/proc/{pid}/sched").read_text().splitlines():
            if line.startswith("se.sum_exec_runtime"):
                total += float(line.split(":")[1]) / 1000
    return total


def measured(fn: Callable[[], object], pids: list[int]) -> tuple[float, float]:
    """Wall time of ``fn`` and the CPU time it took here and in the database's backends."""
    wall, here, there = measured_apart(fn, pids)
    return wall, here + there


def measured_apart(fn: Callable[[], object], pids: list[int]) -> tuple[float, float, float]:
    """Wall time of ``fn``, the CPU time it took here, and that of the database's backends:
    a backend serves one connection's statements one after another, so its CPU time alone
    bounds how fast that connection's work can go, whatever this process does."""
    gc.collect()
    cpu, backend, started = time.process_time(), backend_cpu(pids), time.perf_counter()
    fn()
    wall = time.perf_counter() - started
    return wall, time.process_time() - cpu, backend_cpu(pids) - backend
