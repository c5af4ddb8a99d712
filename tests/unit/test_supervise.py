"""How `exmeta up` binds the API's port and where it asks whether the API answers."""

import socket

import pytest

from exmeta.supervise import ListenError, listen, probe_address


def test_a_port_in_use_is_refused_in_one_line_naming_it_and_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as refused:
            listen("127.0.0.1", port)
    message = str(refused.value)
    assert "\n" not in message
    assert f"127.0.0.1:{port} is already in use" in message
    assert "EXMETA_API__PORT" in message


def test_the_socket_listens_on_the_port_asked() -> None:
    with listen("127.0.0.1", 0) as listener:
        host, port = listener.getsockname()
        with socket.create_connection((host, port), timeout=5):
            pass
    assert host == "127.0.0.1"


@pytest.mark.parametrize(
    ("bound", "asked"),
    [
        (("0.0.0.0", 8000), ("127.0.0.1", 8000)),
        (("::", 8000), ("::1", 8000)),
        (("127.0.0.1", 8000), ("127.0.0.1", 8000)),
        (("192.0.2.7", 9000), ("192.0.2.7", 9000)),
    ],
)
def test_a_wildcard_address_is_asked_on_loopback(
    bound: tuple[str, int], asked: tuple[str, int]
) -> None:
    assert probe_address(bound) == asked


def test_a_port_another_exmeta_listens_on_is_refused_too() -> None:
    """The socket allows the workers' own listeners (SO_REUSEPORT) only after its bind,
    which refuses a port in use whoever holds it."""
    with listen("127.0.0.1", 0) as first:
        port = first.getsockname()[1]
        with pytest.raises(ListenError) as refused:
            listen("127.0.0.1", port)
    assert f"127.0.0.1:{port} is already in use" in str(refused.value)
