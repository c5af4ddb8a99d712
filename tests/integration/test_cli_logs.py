"""Every log line of an `exmeta` command starts with its time in UTC, as the API writes
times, whatever the host's time zone."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from tests.e2e.processes import cli_env, run_exmeta

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (DEBUG|INFO|WARNING|ERROR) ")


def test_log_lines_are_stamped_in_utc_on_a_host_in_another_zone(
    migrated_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    env = cli_env(
        TZ="Asia/Kathmandu",  # UTC+05:45: a local time could not pass for UTC
        EXMETA_DATABASE__URL=database_url,
        EXMETA_LOG__LEVEL="DEBUG",
    )
    before = datetime.now(UTC)

    done = run_exmeta(env, tmp_path, "migrate")

    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines  # alembic says which context it runs in
    for line in lines:
        stamp = STAMP.match(line)
        assert stamp, line
        at = datetime.fromisoformat(stamp.group(1))
        assert before - timedelta(seconds=1) <= at <= datetime.now(UTC), line
