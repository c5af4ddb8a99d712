"""`exmeta compact` refuses a window it cannot fold by, before reaching any database."""

from pathlib import Path

import pytest

from tests.cli_output import fails_in_one_line


@pytest.mark.parametrize("hours", ["-1", "nan", "inf", "1e20", "2e7"])
def test_a_window_that_is_no_span_of_hours_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    hours: str,
) -> None:
    # 2e7 h reaches before year 1: the database, not the window, would have been blamed.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXMETA_DATABASE__URL", "postgresql://nobody@127.0.0.1:1/none")

    fails_in_one_line(
        capsys,
        ["compact", "--older-than-hours", hours],
        2,
        "--older-than-hours must be 0 to 876000 (a century), got ",
    )
