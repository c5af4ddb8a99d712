"""Per-stream leases: which replica polls a stream's next slot (DESIGN §6, issue 4).

One row per stream. A replica may poll a slot only once it holds the lease, and it takes
or renews the lease only when the slot is due, so N replicas poll each stream once per
interval in total. Every time is the database's ``clock_timestamp()``, never a
replica's clock: replicas on different hosts disagree about the time, the database is one.

The lease carries a term (a fencing token) that grows each time the lease changes hands
or lapses. The write of an observation checks, in its own transaction, that its term is
still the lease's and unexpired, locking the row FOR SHARE so that no takeover can slip
in before that write commits: a replica paused past its lease (GC, SIGSTOP, a stalled
network) can never apply what it fetched under a term that is over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

# A slot counts as due this share of its interval early: the holder's own schedule wakes
# a hair before the database's due time now and then (sleep granularity, clock rate), and
# should not then skip a whole interval.
DUE_EARLY_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class Lease:
    """The right, given by the database, to poll one slot of ``stream`` under ``term``."""

    stream: str
    holder: str
    term: int


@dataclass(frozen=True, slots=True)
class Refused:
    """No lease for this slot: it is not due yet, or another replica holds it.

    ``lapses_in``: seconds until the lease of another replica that missed its slot lapses,
    on the database's clock; None otherwise (the slot is not due, the lease is this
    replica's, or its holder is on time). A standby asks again then, instead of at its next
    tick, which may come up to an interval later.
    """

    lapses_in: float | None = None


# One statement, one round trip on every slot: a stream's first lease is inserted as the
# update below would leave a blank row (term 1, due and expiring from now). The outer
# SELECT reads the row as it was before the statement, which is what a refusal needs.
# Built once: a poll's statements are few, and parsing one's text costs about as much as
# sending it.
_ACQUIRE = text(
    "WITH taken AS ("
    " INSERT INTO stream_leases AS l (stream, holder, term, expires_at, next_due_at)"
    " VALUES (:s, :h, 1,"
    " clock_timestamp() + make_interval(secs => :interval + :lease),"
    " clock_timestamp() + make_interval(secs => :interval))"
    " ON CONFLICT (stream) DO UPDATE SET"
    " term = CASE WHEN l.holder = :h AND l.expires_at > clock_timestamp()"
    "  THEN l.term ELSE l.term + 1 END,"
    " holder = :h,"
    " next_due_at = clock_timestamp() + make_interval(secs => :interval),"
    " expires_at = clock_timestamp() + make_interval(secs => :interval + :lease)"
    " WHERE (l.holder = :h OR l.expires_at <= clock_timestamp())"
    " AND l.next_due_at <= clock_timestamp() + make_interval(secs => :early)"
    " RETURNING term)"
    " SELECT (SELECT term FROM taken),"
    " (SELECT extract(epoch FROM expires_at - clock_timestamp())::float8 FROM stream_leases"
    "  WHERE stream = :s AND holder <> :h AND next_due_at <= clock_timestamp()"
    "  AND expires_at > clock_timestamp())"
)


def acquire(
    conn: Connection,
    stream: str,
    holder: str,
    interval: float,
    lease_seconds: float,
    *,
    at_once: bool = False,
) -> Lease | Refused:
    """Take or renew ``stream``'s lease if its slot is due and nobody else holds it.

    Refused when another replica holds an unexpired lease or the slot is not due yet. The
    lease lasts until ``lease_seconds`` past the next slot, so the holder keeps it across
    its own polls, and a holder that dies is replaced that long after the slot it missed.
    ``at_once``: due or not (an immediate poll a realtime listener asked for); still never
    from another replica's unexpired lease, so replicas never poll one stream together.
    """
    term, lapses_in = conn.execute(
        _ACQUIRE,
        {
            "s": stream,
            "h": holder,
            "interval": interval,
            "lease": lease_seconds,
            # The due time is at most one interval ahead: that much early is any time.
            "early": interval if at_once else interval * DUE_EARLY_SHARE,
        },
    ).one()
    return Refused(lapses_in) if term is None else Lease(stream, holder, int(term))


def release(conn: Connection, streams: Sequence[str], holder: str) -> int:
    """End ``holder``'s leases now, so another replica polls the next slot without waiting.

    The due time is kept: a successor polls when the slot is due, not at once.
    """
    return conn.execute(
        text(
            "UPDATE stream_leases SET expires_at = clock_timestamp()"
            " WHERE stream = ANY(:s) AND holder = :h AND expires_at > clock_timestamp()"
        ),
        {"s": list(streams), "h": holder},
    ).rowcount


# True while the lease of :lease_stream, :lease_holder and :lease_term is in force, and
# holds it so until the transaction ends (its row FOR SHARE): the writer reads it with the
# stream's head, in the statement that locks it, so that the check costs no round trip.
HELD = (
    "EXISTS (SELECT 1 FROM stream_leases WHERE stream = :lease_stream"
    " AND holder = :lease_holder AND term = :lease_term"
    " AND expires_at > clock_timestamp() FOR SHARE)"
)


def held_params(lease: Lease) -> dict[str, object]:
    """The parameters of ``HELD`` for ``lease``."""
    return {"lease_stream": lease.stream, "lease_holder": lease.holder, "lease_term": lease.term}
