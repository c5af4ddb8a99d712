"""The embedded server's data directory: reused across starts, never someone else's files."""

import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from exmeta.embedded import OWNER_FILE, EmbeddedError, EmbeddedPostgres


def test_a_non_empty_foreign_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "not-pgdata"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    with pytest.raises(EmbeddedError, match="initdb"):
        EmbeddedPostgres(data).start()
    assert (data / "notes.txt").read_text() == "mine"
    assert not (data / "PG_VERSION").exists()


def test_data_survives_a_restart_on_the_same_port(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pgdata")
    server.start()
    try:
        url = server.ensure_database("kept")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
        port = server.port
        server.stop()
        again = EmbeddedPostgres(tmp_path / "pgdata")
        again.start()
        assert again.port == port
        with psycopg.connect(again.url("kept")) as conn:
            assert conn.execute("SELECT v FROM t").fetchone() == (42,)
    finally:
        server.stop("immediate")


def test_a_server_whose_owner_is_gone_is_adopted_and_one_whose_owner_lives_is_left_alone(
    tmp_path: Path,
) -> None:
    server = EmbeddedPostgres(tmp_path / "pgdata")
    assert server.start(), "a server this process starts is its own"
    try:
        other = EmbeddedPostgres(tmp_path / "pgdata")
        assert not other.start(), "the owner, this very process, lives"
        gone = subprocess.Popen(["true"])  # any process that has ended
        gone.wait()
        (tmp_path / "pgdata" / OWNER_FILE).write_text(f"{gone.pid}\n")
        adopter = EmbeddedPostgres(tmp_path / "pgdata")
        assert adopter.start(), "an owner that is gone leaves the server to the next command"
        assert adopter.port == server.port
        assert (tmp_path / "pgdata" / OWNER_FILE).read_text() == f"{os.getpid()}\n"
    finally:
        server.stop("immediate")
    assert not (tmp_path / "pgdata" / OWNER_FILE).exists()
