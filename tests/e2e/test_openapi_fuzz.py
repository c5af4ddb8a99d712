"""schemathesis against a live `exmeta serve`: the OpenAPI document is a contract a fuzzer
can trust, with and without the bearer token.

The run goes through schemathesis' own command line, the way a user would point it at a
deployment, against gunicorn and a database that the sim fed: what never reaches Flask
(an over-long request line) is answered by the same process as the rest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from binance_sim.server import SimServer
from tests.e2e.processes import REPO, ApiServer
from tests.signed_sim import API_TOKEN, poll_every_stream

# Enough for each operation's coverage phase (boundaries, missing and malformed values)
# and some random cases, while a run stays within a minute or so on a CI machine.
MAX_EXAMPLES = 30
SEED = 20261203
# Every check runs and none is excluded; the hooks only keep schemathesis from calling
# "valid" the cases that break a rule JSON Schema cannot state (each named there).
HOOKS = "tests.e2e.fuzz_hooks"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("token", [False, True], ids=["anonymous", "bearer"])
def test_schemathesis_finds_nothing(
    engine: Engine,
    database_url: str,
    sim: SimServer,
    tmp_path: Path,
    token: bool,
    report_figure: Callable[[str], None],
) -> None:
    poll_every_stream(sim, engine)
    with ApiServer(tmp_path, database_url, API__TOKEN=API_TOKEN) as server:
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
        ]
        if token:
            command += ["--header", f"Authorization: Bearer {API_TOKEN}"]
        env = {**os.environ, "PYTHONPATH": str(REPO), "SCHEMATHESIS_HOOKS": HOOKS}
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=540, check=False, cwd=tmp_path, env=env
        )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-3000:]
    operations = re.search(r"Tested: (\d+)", result.stdout)
    cases = re.search(r"(\d+) generated", result.stdout)
    assert operations is not None, result.stdout[-3000:]
    assert cases is not None, result.stdout[-3000:]
    report_figure(
        f"schemathesis, {'with' if token else 'without'} the token: {operations[1]} operations,"
        f" {cases[1]} test cases, 0 failures"
    )
