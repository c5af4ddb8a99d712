"""A small git repository of archived responses, built with the git CLI: each commit
writes (or deletes) one file at a chosen committer time, its author time elsewhere."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime
from pathlib import Path

# Far from every committer time used: an import dated by author time would show it.
AUTHOR_DATE = "2001-01-01T00:00:00+00:00"


def git(repo: Path, *args: str, committed_at: datetime | None = None) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "archiver",
        "GIT_AUTHOR_EMAIL": "archiver@example.invalid",
        "GIT_COMMITTER_NAME": "archiver",
        "GIT_COMMITTER_EMAIL": "archiver@example.invalid",
        "GIT_AUTHOR_DATE": AUTHOR_DATE,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    if committed_at is not None:
        env["GIT_COMMITTER_DATE"] = committed_at.isoformat()
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, check=True, text=True
    )
    return done.stdout.strip()


def new_repository(repo: Path) -> Path:
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    return repo


def commit_file(repo: Path, name: str, body: bytes | None, at: datetime) -> str:
    """Commit ``body`` as ``name`` (None: delete it) at committer time ``at``; its id."""
    if body is None:
        git(repo, "rm", "-q", name)
    else:
        (repo / name).write_bytes(body)
        git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"snapshot at {at.isoformat()}", committed_at=at)
    return git(repo, "rev-parse", "HEAD")
