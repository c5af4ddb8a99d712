"""The job of a MARKET_DATA stream: the API key in the ``X-MBX-APIKEY`` header, no signature.

Binance serves some public data (the margin pairs and delist schedule, notes §16) only to a
caller that names its key, without asking it to sign: no timestamp, no recvWindow, so
neither the server clock nor the signer is involved. The key is still the operator's, so
these jobs are built with the signed ones, once the key passed its safety check
(poller.signed_jobs).
"""

from __future__ import annotations

from urllib.parse import urlencode

from core.config import Secret
from core.ingest import StreamWriter
from core.streams import RATE_LIMIT_TABLES, Stream
from poller.binance import Response
from poller.job import StreamJob, resolve_parser
from poller.retry import RetryingClient
from poller.signed_client import API_KEY_HEADER


class KeyedStreamJob(StreamJob):
    """Polls a stream declared ``api_key`` (core.streams.Stream): the key header on every
    attempt, the path with the declared parameters, nothing signed."""

    def __init__(
        self,
        declared: Stream,
        client: RetryingClient,
        api_key: Secret,
        writer: StreamWriter,
        replica_id: str,
        deadline_seconds: float | None = None,
    ) -> None:
        super().__init__(
            declared.name,
            declared.path,
            resolve_parser(declared.parser),
            client,
            writer,
            replica_id,
            deadline_seconds=deadline_seconds,
            rate_limit_table=RATE_LIMIT_TABLES[declared.market],
        )
        self._api_key = api_key
        self.target = (
            f"{declared.path}?{urlencode(declared.params)}" if declared.params else declared.path
        )

    def fetch(self) -> Response:
        return self.client.fetch(
            lambda d: self.client.client.get(
                self.target, {API_KEY_HEADER: self._api_key.reveal()}, deadline=d
            ),
            self.deadline(),
        )
