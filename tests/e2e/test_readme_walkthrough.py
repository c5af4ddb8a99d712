"""The README's offline walkthrough, run as written: its code blocks are read from the
README by this test and pasted into bash, so a walkthrough that stops working for a new
user fails here first.

What is changed on the way, and only that: the fixed ports become free ones (9900 the
sim's, 8000 the API's, which ``EXMETA_API__PORT`` moves to match), ``.venv/bin/exmeta``
becomes this interpreter's ``-m exmeta``, and the database is the tests' own (no
embedded server to initialise). The first terminal's shell has job control (``set -m``),
as an interactive one does: the sim started with ``&`` is then a job of its own, which
the Ctrl-C sent to ``exmeta up`` does not reach.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine

from tests.e2e.processes import REPO, free_port, kill_all, process_tree, still_running, wait_for

BLOCK = re.compile(r"<!-- walkthrough: (\w+)[^>]*-->\n```sh\n(.*?)```", re.DOTALL)
UP_LINE = "exmeta is up"


def walkthrough() -> dict[str, str]:
    blocks = dict(BLOCK.findall((REPO / "README.md").read_text()))
    assert set(blocks) == {"up", "ask", "stop"}, "the README's walkthrough blocks moved"
    return blocks


def answers(output: str) -> list[dict[str, Any]]:
    """The JSON bodies curl printed one after the other."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    while at < len(output):
        if output[at].isspace():
            at += 1
            continue
        body, at = decoder.raw_decode(output, at)
        found.append(body)
    return found


def foreground_up(shell: int) -> int | None:
    """The pid of the `exmeta up` the first terminal's shell runs in the foreground."""
    for pid, _ in process_tree(shell):
        with contextlib.suppress(FileNotFoundError):
            if b"\0exmeta\0up" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return None


@pytest.mark.timeout(180)
def test_the_readme_walkthrough_works_as_pasted(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    blocks = walkthrough()
    sim_port, api_port = free_port(), free_port()

    def pasted(block: str) -> str:
        return (
            block.replace(".venv/bin/exmeta", f"{sys.executable} -m exmeta")
            .replace("9900", str(sim_port))
            .replace("8000", str(api_port))
        )

    env = {k: v for k, v in os.environ.items() if not k.startswith("EXMETA_")}
    env.update(
        EXMETA_DATABASE__URL=database_url, EXMETA_API__PORT=str(api_port), EXMETA_API__WORKERS="1"
    )
    log_path = tmp_path / "terminal-1.log"
    with log_path.open("w+") as log:
        terminal = subprocess.Popen(
            ["bash", "-c", "set -m\n" + pasted(blocks["up"]) + pasted(blocks["stop"])],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started: set[tuple[int, int]] = set()
        try:

            def polled() -> bool:
                url = f"http://127.0.0.1:{api_port}/v1/symbols/ETHBTC"
                try:
                    return requests.get(url, timeout=5).status_code == 200
                except (requests.ConnectionError, requests.Timeout):
                    return False  # not listening yet, or a first answer slow on a busy machine

            assert wait_for(polled, 60), log_path.read_text()[-3000:]
            # `up` says so once its own probe of the API answered, which may come a moment
            # after this test's first answer.
            assert wait_for(lambda: UP_LINE in log_path.read_text(), 30), log_path.read_text()
            asked = subprocess.run(
                ["bash", "-c", pasted(blocks["ask"])],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert asked.returncode == 0, asked.stderr
            bodies = answers(asked.stdout)
            assert not [b for b in bodies if "error" in b], bodies
            ours = [b for b in bodies if b.get("symbol") == "ETHBTC" and "evidence" in b]
            assert [b["status"] for b in ours[:3]] == ["TRADING", "HALT", "TRADING"]
            assert len(ours) == 4  # and the answer about local time, its "+" encoded

            # Ctrl-C: to `exmeta up`, the foreground job; then the shell goes on to `kill $SIM`.
            started = process_tree(terminal.pid)
            up = foreground_up(terminal.pid)
            assert up is not None
            os.killpg(up, signal.SIGINT)
            assert terminal.wait(60) == 0, log_path.read_text()[-3000:]
            # `kill $SIM` does not wait for the sim to finish its stop.
            stopped = wait_for(lambda: not still_running(started), 15)
            assert stopped, "the walkthrough left a process running"
        finally:
            started |= process_tree(terminal.pid)
            if terminal.poll() is None:
                os.killpg(terminal.pid, signal.SIGKILL)
                terminal.wait()
            kill_all(started)
