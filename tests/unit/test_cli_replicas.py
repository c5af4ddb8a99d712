"""`exmeta replicas --alive` names a replica: an empty name is a broken health check."""

from pathlib import Path

import pytest

from exmeta.cli import main


@pytest.mark.parametrize("replica_id", ["", " "])
def test_alive_with_an_empty_replica_id_is_a_usage_mistake(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    replica_id: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXMETA_DATABASE__URL", "postgresql://nobody@127.0.0.1:1/none")
    # `--alive "$REPLICA_ID"` with the variable unset: no replica is ever named "" (poll
    # takes host:pid then), so "not registered", exit 1, would only look like a dead one.
    with pytest.raises(SystemExit) as exited:
        main(["replicas", "--alive", replica_id])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("exmeta: error: argument --alive: empty; name a replica")
    assert len(err.strip().splitlines()) == 1
