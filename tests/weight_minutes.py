"""The database's clock minute, by which the request budget and the sim count weight."""

from __future__ import annotations

import time

from sqlalchemy import Engine, text


def seconds_to_next_minute(engine: Engine) -> float:
    with engine.connect() as conn:
        return float(
            conn.execute(
                text(
                    "SELECT extract(epoch FROM date_trunc('minute', clock_timestamp())"
                    " + interval '1 minute' - clock_timestamp())"
                )
            ).scalar_one()
        )


def start_well_inside_a_minute(engine: Engine) -> None:
    """The sim and the row count weight per minute: keep a test's requests in one."""
    left = seconds_to_next_minute(engine)
    if left < 5:
        time.sleep(left + 0.1)
