"""The source of a base URL: scheme, host and port, never credentials."""

import pytest

from core.sources import SourceError, source_of


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://api.binance.com", "https://api.binance.com:443"),
        ("https://api.binance.com:443/", "https://api.binance.com:443"),
        ("HTTPS://API.Binance.COM/api/v3?x=1#f", "https://api.binance.com:443"),
        ("http://127.0.0.1:8090", "http://127.0.0.1:8090"),
        ("http://localhost", "http://localhost:80"),
        ("https://testnet.binance.vision:8443/path", "https://testnet.binance.vision:8443"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        ("  https://api.binance.com  ", "https://api.binance.com:443"),
    ],
)
def test_source_is_scheme_host_and_explicit_port(url: str, source: str) -> None:
    assert source_of(url) == source


def test_credentials_are_dropped() -> None:
    source = source_of("https://alice:s3cret@proxy.example:8443/binance")
    assert source == "https://proxy.example:8443"
    assert "alice" not in source
    assert "s3cret" not in source


@pytest.mark.parametrize(
    "url",
    ["ftp://api.binance.com", "api.binance.com", "https://", "http://host:99999", "http://h:x"],
)
def test_a_url_without_an_http_host_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(SourceError) as raised:
        source_of(url)
    assert url.strip() not in str(raised.value)


def test_default_port_and_explicit_port_are_one_source() -> None:
    assert source_of("http://sim.local") == source_of("http://sim.local:80/")
    assert source_of("http://sim.local:8080") != source_of("http://sim.local")
