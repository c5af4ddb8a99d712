"""Cost of taking a document's shape (core.schema) on a changed poll, next to ``json.loads``.

The writer takes the shape only when a body differs from the last one applied (an
unchanged poll is recognised by its hash, unparsed): it decodes the body once more and
walks it. Printed: medians of --runs runs, on the same bytes in the same process, of
``json.loads``, of that decode and of the walk, and of the whole parse of the body for
scale (``poller.parse.parse_exchange_info``, which the shape adds to).

    python bench/schema_walk.py [--runs 15] [--fixture 2023-09-08_2292.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from bench._db import fixture
from core.schema import document_shape
from poller.parse import parse_exchange_info


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--fixture", default="2023-09-08_2292.json", help="a snapshot's name, or a path"
    )
    args = parser.parse_args()
    given = Path(args.fixture)
    body = (given if given.is_file() else fixture(args.fixture)).read_bytes()
    doc = orjson.loads(body)
    baseline = median_ms(lambda: json.loads(body), args.runs)
    decode = median_ms(lambda: orjson.loads(body), args.runs)
    walk = median_ms(lambda: document_shape(doc), args.runs)
    parse = median_ms(lambda: parse_exchange_info(body), args.runs)
    shape = decode + walk
    print(f"body {given.name}: {len(body):,} bytes, {len(document_shape(doc).paths)} paths")
    print(f"json.loads            {baseline:7.1f} ms")
    print(f"orjson.loads          {decode:7.1f} ms")
    print(f"document_shape (walk) {walk:7.1f} ms  = {walk / baseline:.2f}x json.loads")
    print(f"shape in all          {shape:7.1f} ms  = {shape / baseline:.2f}x json.loads")
    print(f"parse_exchange_info   {parse:7.1f} ms  (the shape adds {shape / parse:.0%} to it)")


if __name__ == "__main__":
    main()
