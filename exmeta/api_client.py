"""The API application, run in process on the database, as the read commands' client."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import orjson

from core.config import Settings
from exmeta.database import api_database, api_engine
from exmeta.errors import CliError

ApiGet = Callable[[str, Mapping[str, str] | Sequence[tuple[str, str]]], str]


@contextmanager
def api_client(settings: Settings) -> Iterator[ApiGet]:
    """GETs to the API application, run in process on the database: each returns the body
    of a successful answer.

    The read commands go through the routes themselves, so they give the same answers,
    evidence and errors as the API by construction rather than by care. An error answer
    becomes one line on stderr: exit 2 for bad input or a database that cannot answer, 1
    otherwise (not listed, ...).
    """
    from urllib.parse import urlencode

    from api import create_app

    with api_database(settings) as url, api_engine(settings, url, "read") as engine:
        # The operator holds the configuration: answers include what the token unlocks
        # (the account's part of an order check).
        token = settings.api.token.reveal()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = create_app(settings, engine).test_client()

        def get(path: str, params: Mapping[str, str] | Sequence[tuple[str, str]]) -> str:
            response = client.get(f"{path}?{urlencode(params)}", headers=headers)
            body = response.get_data(as_text=True)
            if response.status_code != 200:
                error = orjson.loads(body)["error"]
                raise CliError(
                    f"{error['code']}: {error['message']}",
                    2 if response.status_code in (400, 503) else 1,
                )
            return body

        yield get
