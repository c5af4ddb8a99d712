"""What a live `exmeta serve` answers to requests Flask never sees or must not choke on:
every error is the API's JSON body, whether gunicorn or the application answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine

from tests.e2e.processes import ApiServer


@pytest.fixture
def server(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path, database_url) as live:
        yield live


def json_error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    error: dict[str, Any] = body["error"]
    return error


def test_a_10000_character_symbol_is_a_json_414(server: ApiServer) -> None:
    response = requests.get(f"{server.url}/v1/symbols/{'A' * 10_000}", timeout=10)
    assert json_error(response, 414)["code"] == "uri_too_long"


def test_a_10000_character_as_of_is_a_json_414(server: ApiServer) -> None:
    response = requests.get(f"{server.url}/v1/symbols", params={"as_of": "1" * 10_000}, timeout=10)
    assert json_error(response, 414)["code"] == "uri_too_long"


def test_a_long_symbol_within_gunicorns_limit_is_the_apis_json_400(server: ApiServer) -> None:
    response = requests.get(f"{server.url}/v1/symbols/{'A' * 3000}", timeout=10)
    assert json_error(response, 400)["code"] == "invalid_parameter"


def test_too_many_headers_are_a_json_431(server: ApiServer) -> None:
    headers = {f"X-Filler-{i}": "x" for i in range(150)}
    response = requests.get(f"{server.url}/healthz", headers=headers, timeout=10)
    assert json_error(response, 431)["code"] == "request_header_fields_too_large"


def test_an_oversized_header_is_a_json_431(server: ApiServer) -> None:
    response = requests.get(f"{server.url}/healthz", headers={"X-Big": "x" * 9000}, timeout=10)
    assert json_error(response, 431)["code"] == "request_header_fields_too_large"


def test_a_malformed_request_line_is_a_json_400(server: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: application/json" in head
    assert body.startswith(b'{"error":{"code":"bad_request"')


def test_a_nul_byte_is_a_json_400_without_a_traceback(server: ApiServer) -> None:
    for url in ("/v1/symbols/BTC%00USDT", "/v1/symbols?status=%00", "/v1/changes?symbol=%00"):
        json_error(requests.get(server.url + url, timeout=10), 400)
    assert "Traceback" not in server.log()
