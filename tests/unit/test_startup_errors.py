"""What a person reads when a role cannot start: one line saying what and where (it was a
143-line exception group)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import STOMP_URL

SECRET = "startup-errors-secret-at-least-32-bytes"


def start(role: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OSAGO_")}
    return subprocess.run(
        [sys.executable, "-m", "osago", "--role", role],
        env={**clean, "OSAGO_WS_SECRET": SECRET, "PYTHONWARNINGS": "ignore", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("osago:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_port_in_use_is_one_line() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        line = one_line(start("insurers", OSAGO_INSURERS_BIND=f"127.0.0.1:{port}"))
    assert "cannot listen: address already in use" in line
    assert f"OSAGO_INSURERS_BIND=127.0.0.1:{port}" in line


def test_an_unreachable_broker_is_one_line() -> None:
    line = one_line(start("notifier", OSAGO_BROKER_URL="stomp://127.0.0.1:1"))
    assert "127.0.0.1:1" in line


@pytest.mark.integration  # the broker must be up for the role to reach its database
def test_an_unreachable_database_is_one_line() -> None:
    line = one_line(
        start(
            "worker",
            OSAGO_BROKER_URL=STOMP_URL,
            OSAGO_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        )
    )
    assert "open" in line
