"""Peak memory of `exmeta import` as the archive grows (issue 15).

Writes ``--sizes`` archives of real-size snapshots synthesised as bench/import_archive.py
does (the fixtures' churn), and imports each with the command, in a process of its own,
into a fresh database: its peak resident set (``ru_maxrss`` of the finished child) and
its wall time. An import that holds its documents grows with the archive; one that reads
them batch by batch stays flat.

    python bench/import_memory.py [--sizes 30 60 120]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import bench_engine, fixture
from bench._procs import BenchError, run
from bench.import_archive import churn, synthesise

# The command, reporting its own peak as it ends: VmHWM, the high-water mark of the
# memory of the program it runs. Not ru_maxrss: a child's counts the parent's resident
# set at the fork (this bench's, with the snapshots it synthesised), and RUSAGE_CHILDREN's
# is the largest of every child this bench waited for (initdb's included).
_MEASURED = (
    "import re, sys\n"
    "from pathlib import Path\n"
    "from exmeta.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "status_text = Path('/proc/self/status').read_text()\n"
    "print('peak_kb', re.search(r'VmHWM:\\s+(\\d+)', status_text)[1], file=sys.stderr)\n"
    "sys.exit(status)\n"
)


def imported(archive: Path, url: str) -> tuple[float, float]:
    """Seconds and peak resident MB of ``exmeta import archive`` into ``url``."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, "import", str(archive)],
        env={**os.environ, "EXMETA_DATABASE__URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise BenchError(f"exmeta import exited {done.returncode}: {done.stderr.strip()[-300:]}")
    peak = next(line for line in done.stderr.splitlines() if line.startswith("peak_kb "))
    return took, int(peak.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 60, 120])
    args = parser.parse_args()
    day1 = json.loads(fixture("2022-11-28_2124.json").read_bytes())
    changed = churn(day1, json.loads(fixture("2022-11-29_2124.json").read_bytes()))
    print(f"snapshots of the real 2022-11-28 body, {changed} symbols changed in each")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="exmeta-import-") as tmp, bench_engine() as e:
            synthesise(json.loads(json.dumps(day1)), size, changed, Path(tmp))
            took, peak = imported(Path(tmp), e.url.render_as_string(hide_password=False))
        print(f"{size:5d} documents: peak RSS {peak:6.0f} MB, {took:5.1f} s ({size / took:.1f}/s)")


if __name__ == "__main__":
    run(main)
