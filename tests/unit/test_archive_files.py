"""The files `exmeta import` is given, as it finds them (poller.archive.archive_files)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# As root every directory is readable: the check then runs as nobody, with util-linux's
# setpriv (essential on Debian, as CI's machine is).
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
ROOT = os.geteuid() == 0


@pytest.mark.parametrize("given", ["locked", "locked/day.json"])
def test_a_path_that_cannot_be_read_is_refused_naming_it(given: str) -> None:
    # Not pytest's tmp_path: its parent is root's alone, which nobody could not search.
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir()
        (locked / "day.json").write_text("{}")
        locked.chmod(0o000)
        done = subprocess.run(
            [*(NOBODY if ROOT else []), sys.executable, "-c", CHECK, str(base / given)],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).parents[2],
            timeout=60,
        )
    finally:
        locked.chmod(0o755)
        shutil.rmtree(base)
    assert done.stderr == ""
    assert done.stdout == f"{base / given}: cannot read: Permission denied\n"


CHECK = """
import sys
from pathlib import Path
from poller.archive import ArchiveError, archive_files
try:
    archive_files([Path(sys.argv[1])])
except ArchiveError as exc:
    print(exc)
"""
