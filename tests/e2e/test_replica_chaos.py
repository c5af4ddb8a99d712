"""Chaos for three `exmeta poll` replicas: killed, frozen, database restarted, black-holed, skewed.

Each scenario runs three replica processes (r0 first, so that it holds the exchangeInfo
lease when the fault hits it) against a PostgreSQL of this module's own (it gets
restarted and black-holed; the session's server stays untouched) and the sim, whose
exchange an ``ExchangeScript`` changes step by step while the fault happens. Intervals
are 1 s, leases 3 s, and database waits are bounded at 3 s (but for the black-holed
replica, which keeps the defaults). After each scenario:

- ``exmeta verify`` exits 0;
- every change the sim made is recorded exactly once: the versions of each touched
  symbol, in order, are exactly the states the sim served (a lost change, a duplicated
  version or a version of a state never served all fail);
- polling resumed in time: the sim's first exchangeInfo request after the fault came at
  most ``lease_seconds`` + one interval after the first slot the faulty holder could not
  poll (the lease's contract: it lasts ``lease_seconds`` past its next due slot, and each
  replica asks for it once an interval). The time from the fault itself is reported in
  the "measured figures" section of the test summary;
- no two replicas polled one slot (``assert_one_poll_per_slot``);
- no replica logged a traceback: database faults are one warning line each.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import libfaketime as libfaketime_package
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

import migrations
from binance_sim.server import SimServer
from binance_sim.state import Fault, FaultKind, SimState
from core.config import DatabaseSettings
from core.db import create_db_engine
from exmeta.embedded import EmbeddedPostgres
from tests.conftest import DatabaseServer, postgres_under_test
from tests.e2e.processes import Replicas, exmeta_env, run_exmeta, scalar, wait_for
from tests.tcp_proxy import TcpProxy

INTERVAL = 1.0
LEASE = 3.0
# A standby asks for a late holder's lease the moment it lapses, LEASE after the slot the
# holder missed (3.03 s on an idle machine); the claim's transaction and the request after it
# get up to an interval more, for the loaded CI machine (-n auto, 2 cores). Before standbys
# asked at the lapse they asked at their own ticks, in step with the holder's slots, so a
# tick just before the lapse cost a whole interval: takeovers took 4.0-4.5 s.
TAKEOVER = LEASE + INTERVAL
# Polling resumes within LEASE + INTERVAL of PostgreSQL's return; this allows for the claim's
# transaction and the request after it, which took 0.22 s past that once under CI's load.
CLAIM = 0.5
DATABASE_TIMEOUT = 3.0
EXCHANGE_INFO = "/api/v3/exchangeInfo"
# Bounds on waits where correctness, not speed, is under test: generous for a loaded box.
STARTUP_SECONDS = 30
RECORD_SECONDS = 30

Report = Callable[[str], None]


class ExchangeScript:
    """Changes the sim's exchange a step at a time, each step once the last is recorded.

    The steps rotate: ETHBTC's status, LTCBTC's tick size, the listing or delisting of
    CHAOSUSDT. Waiting for each step to reach the database before the next makes every
    state the sim served observable, so "recorded exactly once" is exact: a fault may
    delay a step, never excuse its loss. Runs on the test's thread: ``advance`` is
    called between the phases of a scenario.
    """

    STATUSES = ("HALT", "BREAK", "TRADING")
    TICKS = ("0.00000010", "0.00000001", "0.00000100")

    def __init__(self, state: SimState, engine: Engine) -> None:
        self.state = state
        self.engine = engine
        self.statuses = [state.get_symbol("ETHBTC")["status"]]
        self.ticks = [Decimal(self._tick(state.get_symbol("LTCBTC")))]
        self.listed = [False]
        self.listing = {**state.get_symbol("BTCUSDT"), "symbol": "CHAOSUSDT"}
        self.steps = 0

    @staticmethod
    def _tick(symbol: dict[str, object]) -> str:
        filters = symbol["filters"]
        assert isinstance(filters, list)
        return str(next(f["tickSize"] for f in filters if f["filterType"] == "PRICE_FILTER"))

    def change(self) -> None:
        kind = self.steps % 3
        if kind == 0:
            status = self.STATUSES[(self.steps // 3) % 3]
            self.state.patch_symbol("ETHBTC", fields={"status": status})
            self.statuses.append(status)
        elif kind == 1:
            tick = self.TICKS[(self.steps // 3) % 3]
            price = {**self._price_filter("LTCBTC"), "tickSize": tick}
            self.state.patch_symbol("LTCBTC", filters=[price])
            self.ticks.append(Decimal(tick))
        elif self.listed[-1]:
            self.state.remove_symbol("CHAOSUSDT")
            self.listed.append(False)
        else:
            self.state.put_symbol(self.listing)
            self.listed.append(True)
        self.steps += 1

    def _price_filter(self, name: str) -> dict[str, object]:
        filters = self.state.get_symbol(name)["filters"]
        return dict(next(f for f in filters if f["filterType"] == "PRICE_FILTER"))

    def recorded(self) -> bool:
        """Whether the database's current versions are the sim's current state."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT"
                        " (SELECT status FROM symbol_versions"
                        "   WHERE symbol = 'ETHBTC' AND valid_to IS NULL),"
                        " (SELECT tick_size FROM symbol_filter_versions WHERE symbol = 'LTCBTC'"
                        "   AND filter_type = 'PRICE_FILTER' AND valid_to IS NULL),"
                        " (SELECT count(*) FROM symbol_versions"
                        "   WHERE symbol = 'CHAOSUSDT' AND valid_to IS NULL)"
                    )
                ).one()
        except SQLAlchemyError:
            return False  # the database is what the scenario is taking away
        return tuple(row) == (self.statuses[-1], self.ticks[-1], int(self.listed[-1]))

    def advance(self, steps: int) -> None:
        """Make ``steps`` changes, each recorded before the next is made."""
        for _ in range(steps):
            self.change()
            assert wait_for(self.recorded, RECORD_SECONDS), f"step {self.steps} never recorded"

    def assert_recorded_exactly_once(self) -> None:
        with self.engine.connect() as conn:
            statuses = conn.execute(
                text(
                    "SELECT status FROM symbol_versions WHERE symbol = 'ETHBTC' ORDER BY valid_from"
                )
            ).scalars()
            ticks = conn.execute(
                text(
                    "SELECT tick_size FROM symbol_filter_versions WHERE symbol = 'LTCBTC'"
                    " AND filter_type = 'PRICE_FILTER' ORDER BY valid_from"
                )
            ).scalars()
            listings = conn.execute(
                text(
                    "SELECT valid_to IS NULL FROM symbol_versions WHERE symbol = 'CHAOSUSDT'"
                    " ORDER BY valid_from"
                )
            ).scalars()
            assert list(statuses) == self.statuses
            assert list(ticks) == self.ticks
            times_listed = self.listed.count(True)
            still_listed = self.listed[-1]
            assert list(listings) == [False] * (times_listed - still_listed) + [True] * still_listed


@dataclass
class Cluster:
    engine: Engine
    database_url: str
    sim: SimServer
    replicas: Replicas
    script: ExchangeScript
    directory: Path

    def env(
        self, database_url: str | None = None, *, short_timeouts: bool = True
    ) -> dict[str, str]:
        """A replica's environment; ``short_timeouts=False`` keeps the database defaults."""
        timeouts = {
            "DATABASE__STATEMENT_TIMEOUT_SECONDS": str(DATABASE_TIMEOUT),
            "DATABASE__CONNECT_TIMEOUT_SECONDS": "2",
        }
        return exmeta_env(
            database_url or self.database_url,
            self.sim.url,
            INTERVAL,
            POLLER__LEASE_SECONDS=str(LEASE),
            POLLER__HEARTBEAT_SECONDS="0.5",
            POLLER__WEIGHT_BUDGET="1",  # no budget waits: they would blur the slot check
            **(timeouts if short_timeouts else {}),
        )

    def start(self, first: dict[str, str] | None = None) -> None:
        """r0 (with ``first`` as its environment, if given) until it holds the lease; r1, r2."""
        self.replicas.start("r0", first or self.env())
        assert wait_for(lambda: self.holder() == "r0", STARTUP_SECONDS)
        for name in ("r1", "r2"):
            self.replicas.start(name, self.env())
        assert wait_for(
            lambda: scalar(self.engine, "SELECT count(*) FROM replicas") == 3, STARTUP_SECONDS
        )

    def holder(self) -> str | None:
        try:
            value = scalar(
                self.engine, "SELECT holder FROM stream_leases WHERE stream = 'exchange_info'"
            )
        except SQLAlchemyError:
            return None
        return None if value is None else str(value)

    def next_due(self) -> float:
        """The exchangeInfo lease's next due slot, in seconds since the epoch."""
        return float(
            str(
                scalar(
                    self.engine,
                    "SELECT extract(epoch FROM next_due_at) FROM stream_leases"
                    " WHERE stream = 'exchange_info'",
                )
            )
        )

    def first_poll_after(self, moment: float) -> float:
        """When the sim received the first exchangeInfo request after ``moment``."""

        def polls() -> list[float]:
            return [
                r.received_at
                for r in self.sim.state.requests(since=moment)
                if r.path == EXCHANGE_INFO
            ]

        assert wait_for(lambda: bool(polls()), RECORD_SECONDS), "polling never resumed"
        return min(polls())

    def slow_poll_in_flight(self) -> None:
        """Return once the holder's next exchangeInfo request is being answered, slowly."""
        self.sim.state.add_fault(Fault(FaultKind.SLOW, EXCHANGE_INFO, delay_seconds=2.0))
        assert wait_for(lambda: not self.sim.state.pending_faults(), RECORD_SECONDS)

    def finish(self) -> None:
        """Stop every replica gracefully, then run every after-scenario check."""
        # A black-holed replica takes a few database timeouts to sign off.
        assert set(self.replicas.stop(timeout=30).values()) == {0}
        verify = run_exmeta(self.env(), self.directory, "verify")
        assert (verify.returncode, verify.stdout) == (0, "history verified: no findings\n")
        self.script.assert_recorded_exactly_once()
        assert_one_poll_per_slot(self.engine)
        for name in self.replicas.processes:
            assert "Traceback" not in self.replicas.log(name), self.replicas.log(name)


def assert_one_poll_per_slot(engine: Engine) -> None:
    """No two replicas polled one slot.

    A replica polls only after taking the lease at a due slot, and slots are at least
    0.9 interval apart on the database's clock (core.leases), so two polls of different
    replicas begin at least that far apart. We see when the sim stamped each answer
    (``observed_at``, its ``serverTime``), which is between the start of the poll and
    its end (``duration_ms`` later). So for consecutive applied polls P1, P2 of different
    replicas, ``observed_at(P2) - observed_at(P1) + duration(P1)`` bounds from above the
    time between their starts, and it must be at least half an interval: less means two
    replicas polled one slot. Polls fenced off (``stale``) applied nothing and are left
    out; so are failed ones, whose ``observed_at`` is the database's time of writing.
    """
    with engine.connect() as conn:
        polls = conn.execute(
            text(
                "SELECT replica_id, extract(epoch FROM observed_at), duration_ms"
                " FROM observations WHERE stream = 'exchange_info'"
                " AND outcome IN ('changed', 'unchanged') ORDER BY observed_at"
            )
        ).all()
    assert len(polls) >= 5
    crowded = [
        (first, second)
        for first, second in itertools.pairwise(polls)
        if first[0] != second[0] and float(second[1] - first[1]) + first[2] / 1000 < INTERVAL / 2
    ]
    assert crowded == []


@pytest.fixture(scope="module")
def chaos_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    embedded = postgres_under_test(tmp_path_factory.mktemp("chaos-pg") / "data")
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop("immediate")


@pytest.fixture
def cluster(chaos_postgres: EmbeddedPostgres, sim: SimServer, tmp_path: Path) -> Iterator[Cluster]:
    url = DatabaseServer(chaos_postgres.url()).create_database("exmeta_chaos")
    engine = create_db_engine(url, DatabaseSettings(), application_name="exmeta-chaos-tests")
    migrations.upgrade(engine)
    try:
        with Replicas(tmp_path) as replicas:
            yield Cluster(engine, url, sim, replicas, ExchangeScript(sim.state, engine), tmp_path)
    finally:
        engine.dispose()


def test_sigkill_of_the_holder_mid_poll(cluster: Cluster, report_figure: Report) -> None:
    cluster.start()
    cluster.script.advance(2)

    cluster.slow_poll_in_flight()
    time.sleep(0.4)  # r0 is waiting for the answer
    missed, killed_at = cluster.next_due(), time.time()
    cluster.replicas["r0"].send_signal(signal.SIGKILL)
    resumed = cluster.first_poll_after(killed_at)
    report_figure(
        f"takeover after SIGKILL of the holder mid-poll: {resumed - killed_at:.2f} s"
        f" ({resumed - missed:.2f} s after the slot it missed)"
    )
    assert resumed - missed <= TAKEOVER
    assert wait_for(lambda: cluster.holder() in {"r1", "r2"}, RECORD_SECONDS)

    cluster.script.advance(3)
    cluster.finish()


def test_sigstop_past_the_lease_then_sigcont_is_fenced_off(
    cluster: Cluster, report_figure: Report
) -> None:
    cluster.start()
    cluster.script.advance(2)

    cluster.slow_poll_in_flight()
    time.sleep(0.4)
    missed, frozen_at = cluster.next_due(), time.time()
    frozen = cluster.replicas["r0"]
    frozen.send_signal(signal.SIGSTOP)
    resumed = cluster.first_poll_after(frozen_at)
    report_figure(
        f"takeover after SIGSTOP of the holder mid-poll: {resumed - frozen_at:.2f} s"
        f" ({resumed - missed:.2f} s after the slot it missed)"
    )
    assert resumed - missed <= TAKEOVER
    cluster.script.advance(1)  # a change while r0 is frozen, recorded by its successor
    time.sleep(max(0.0, frozen_at + LEASE + 2 * INTERVAL - time.time()))
    frozen.send_signal(signal.SIGCONT)

    def late_writes() -> list[tuple[object, ...]]:
        with cluster.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT outcome, error_class, (SELECT count(*) FROM symbol_versions"
                        " WHERE opened_by = o.id OR closed_by = o.id) FROM observations o"
                        " WHERE replica_id = 'r0' AND observed_at > to_timestamp(:t)"
                        " AND stream = 'exchange_info' ORDER BY id"
                    ),
                    {"t": frozen_at},
                )
            ]

    assert wait_for(lambda: bool(late_writes()), RECORD_SECONDS)
    # Fetched under a term that is over, it is fenced off. r0 froze in the middle of its
    # request, whose deadline passed meanwhile: on SIGCONT the watchdog that ends the
    # request at its deadline and the read of the answer buffered meanwhile race, so the
    # poll is either fenced or a timeout; neither applies anything.
    assert late_writes()[0] in {("stale", "lease_lost", 0), ("error", "timeout", 0)}
    cluster.script.advance(2)
    cluster.finish()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restart(
    cluster: Cluster, chaos_postgres: EmbeddedPostgres, report_figure: Report, mode: str
) -> None:
    cluster.start()
    cluster.script.advance(2)

    down_at = time.time()
    chaos_postgres.stop(mode)
    cluster.script.change()  # made while the database is away: recorded once it is back
    time.sleep(2 * INTERVAL)
    chaos_postgres.start()
    back_at = time.time()
    resumed = cluster.first_poll_after(back_at)
    report_figure(
        f"polling resumed {resumed - back_at:.2f} s after PostgreSQL was back"
        f" from a -m {mode} restart (down {back_at - down_at:.1f} s)"
    )
    assert resumed - back_at <= LEASE + INTERVAL + CLAIM
    assert wait_for(cluster.script.recorded, RECORD_SECONDS)
    assert cluster.replicas.alive() == ["r0", "r1", "r2"]  # no process had to restart
    assert any("database unavailable" in cluster.replicas.log(n) for n in ("r0", "r1", "r2"))

    cluster.script.advance(3)
    cluster.finish()


def test_black_hole_between_the_holder_and_postgres(
    cluster: Cluster, chaos_postgres: EmbeddedPostgres, report_figure: Report
) -> None:
    with TcpProxy("127.0.0.1", chaos_postgres.port) as proxy:
        proxied = make_url(cluster.database_url).set(port=proxy.port)
        # r0 keeps the default database timeouts: they are what must notice within 30 s.
        r0_env = cluster.env(proxied.render_as_string(hide_password=False), short_timeouts=False)
        cluster.start(first=r0_env)
        cluster.script.advance(2)

        def r0_writes() -> int:
            return int(
                str(
                    scalar(
                        cluster.engine,
                        "SELECT count(*) FROM observations"
                        " WHERE replica_id = 'r0' AND stream = 'exchange_info'",
                    )
                )
            )

        seen = r0_writes()
        assert wait_for(lambda: r0_writes() > seen, RECORD_SECONDS)  # r0 just wrote: idle now
        last_id = scalar(cluster.engine, "SELECT max(id) FROM observations")
        log_size = len(cluster.replicas.log("r0"))
        missed, holed_at = cluster.next_due(), time.time()
        proxy.black_hole()

        resumed = cluster.first_poll_after(holed_at)
        report_figure(
            f"takeover after a black hole under the holder: {resumed - holed_at:.2f} s"
            f" ({resumed - missed:.2f} s after the slot it missed)"
        )
        assert resumed - missed <= TAKEOVER
        assert wait_for(lambda: cluster.holder() in {"r1", "r2"}, RECORD_SECONDS)
        assert wait_for(lambda: "database unavailable" in cluster.replicas.log("r0")[log_size:], 30)
        noticed = time.time() - holed_at
        report_figure(f"black-holed replica noticed its database was gone after {noticed:.2f} s")
        assert noticed <= 30

        cluster.script.advance(3)
        assert cluster.replicas.alive() == ["r0", "r1", "r2"]
        cluster.finish()
        assert (
            scalar(
                cluster.engine,
                "SELECT count(*) FROM observations WHERE replica_id = 'r0' AND id > :last",
                last=last_id,
            )
            == 0
        )


def libfaketime() -> Path:
    """The library the PyPI package ``libfaketime`` (a dev dependency) ships, built for
    x86-64 Linux; elsewhere, Debian's (``apt-get install libfaketime``)."""
    shipped = Path(libfaketime_package.__file__).parent / "vendor/libfaketime/src/libfaketime.so.1"
    found = [shipped] if shipped.exists() else []
    found += sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    assert found, "libfaketime is missing: pip install libfaketime, or apt-get install libfaketime"
    return found[0]


@pytest.mark.parametrize("skew", [5, -300])
def test_holder_with_a_skewed_clock(cluster: Cluster, report_figure: Report, skew: int) -> None:
    """Leases and due times are on the database's clock: a replica's own clock is irrelevant.

    libfaketime shifts r0's wall clock only: with its monotonic clock shifted too,
    Python's timed waits never return, and a host whose NTP is off has a sound monotonic
    clock anyway (``FAKETIME_DONT_FAKE_MONOTONIC``).
    """
    skewed = {
        **cluster.env(),
        "LD_PRELOAD": str(libfaketime()),
        "FAKETIME": f"{skew:+d}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    cluster.start(first=skewed)
    cluster.script.advance(3)
    offset = scalar(
        cluster.engine,
        "SELECT extract(epoch FROM avg(requested_at - observed_at)) FROM observations"
        " WHERE replica_id = 'r0' AND stream = 'exchange_info'",
    )
    assert abs(float(str(offset)) - skew) < 2  # r0 did run with its clock off by ``skew``

    missed, killed_at = cluster.next_due(), time.time()
    cluster.replicas["r0"].send_signal(signal.SIGKILL)
    resumed = cluster.first_poll_after(killed_at)
    report_figure(
        f"takeover after SIGKILL of a holder whose clock is {skew:+d} s off:"
        f" {resumed - killed_at:.2f} s ({resumed - missed:.2f} s after the slot it missed)"
    )
    assert resumed - missed <= TAKEOVER

    cluster.script.advance(3)
    cluster.finish()
