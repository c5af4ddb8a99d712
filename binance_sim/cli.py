"""The `binance_sim` command: a Binance look-alike on a local port until interrupted.

It announces its URL as the only line on stdout so scripts (and tests) can start it with
``--port 0`` and read where it landed. `exmeta sim` delegates here.
"""

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from binance_sim.server import SimServer
from binance_sim.state import SimState
from core.logs import utc_handler


def main(argv: list[str] | None = None, prog: str = "binance_sim") -> int:
    """Serve until SIGINT or SIGTERM; ``prog`` is the command's name in its usage line
    (`exmeta sim` when run from there).

    Returns 0 on a clean stop, 1 if it cannot listen, 2 if the fixture is unusable.
    """
    args = _parser(prog).parse_args(argv)
    try:
        state = SimState.from_file(
            args.fixture, usdm_path=args.usdm_fixture, coinm_path=args.coinm_fixture
        )
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        given = [f for f in (args.fixture, args.usdm_fixture, args.coinm_fixture) if f]
        fixture = " or ".join(given) if given else "the packaged fixtures"
        print(f"binance_sim: cannot load {fixture}: {reason}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, handlers=[utc_handler(sys.stderr)])
    stop = threading.Event()
    with _stop_on_signals(stop):
        try:
            server = SimServer(state, host=args.host, port=args.port, access_log=args.access_log)
            server.start()
        except (OSError, ValueError) as exc:
            print(f"binance_sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        try:
            print(f"binance_sim listening on {server.url}", flush=True)
            stop.wait()
        finally:
            server.stop()
    return 0


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        epilog=f"example:\n  {prog} --port 9900 &\n"
        "  EXMETA_BINANCE__BASE_URL=http://127.0.0.1:9900 exmeta up",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve Binance's exchangeInfo, time, ping, the signed account endpoints,\n"
        "system status and delist schedule from fixtures, and the futures markets'\n"
        "exchangeInfo (USD-M /fapi/v1/exchangeInfo, COIN-M /dapi/v1/exchangeInfo), with\n"
        "a control API under /_sim/ (per market: /_sim/markets/{spot,usdm,coinm}/) to\n"
        "change them and inject faults. Prints its URL; Ctrl-C stops it.",
    )
    parser.add_argument(
        "--fixture",
        metavar="PATH",
        help="a spot exchangeInfo JSON file to serve at /api/v3/exchangeInfo "
        "(default: 12 packaged real symbols)",
    )
    parser.add_argument(
        "--usdm-fixture",
        metavar="PATH",
        help="a USD-M futures exchangeInfo JSON file to serve at /fapi/v1/exchangeInfo "
        "(default: 13 packaged real contracts of 2025-10-30)",
    )
    parser.add_argument(
        "--coinm-fixture",
        metavar="PATH",
        help="a COIN-M futures exchangeInfo JSON file to serve at /dapi/v1/exchangeInfo "
        "(default: 7 packaged contracts written after Binance's documented shape; "
        "no real capture exists)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port to bind; 0 picks a free one (default: 0)"
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log one line per request (off: it is noisy)"
    )
    return parser


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``stop.set()`` for the duration, then restore the handlers.

    Handling SIGINT ourselves, instead of letting KeyboardInterrupt unwind the stack, is what
    makes Ctrl-C a clean exit without a traceback. The handlers go in before the server
    starts, so no signal can slip through between the two.
    """

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
