"""schemathesis over the api's own OpenAPI document, against an api process on the real
PostgreSQL and ActiveMQ: no response is a 5xx, and every response is one the document states."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.cluster import Cluster, all_role_env
from tests.conftest import STOMP_URL

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

API_TOKEN = "schemathesis-core-token"

# Every check schemathesis has but one: positive_data_acceptance expects each body valid by the
# document to be accepted, and two rules are relative to today (the policy's start date, the
# drivers' ages on it), which JSON Schema cannot state; the document says them in words, and
# test_schema pins that every other cross-field rule is in the document.
CHECKS = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]


async def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(
    pg_url: str, unique: str, tmp_path: Path
) -> None:
    env = all_role_env(
        OSAGO_DATABASE_URL=pg_url,
        OSAGO_BROKER_URL=STOMP_URL,
        OSAGO_REQUESTS_QUEUE=f"/queue/osago.test.{unique}",
        OSAGO_RESULTS_TOPIC=f"/topic/osago.test.{unique}",
        OSAGO_INSURERS_URL="http://127.0.0.1:9/",  # nobody: the api only stores and publishes
        OSAGO_API_TOKEN=API_TOKEN,
        # No worker runs here, so every job waits: without this the api would shed (503
        # overloaded, a 5xx for schemathesis) after 200 of them. Shedding has its own tests.
        OSAGO_MAX_WAITING_JOBS="0",
        # Nor on a burst that puts the api's publishing half a second behind.
        OSAGO_MAX_UNPUBLISHED_WAIT="0",
    )
    async with trio.open_nursery() as nursery:
        cluster = Cluster(env, nursery)
        try:
            api = await cluster.start("api", "api")
            st = Path(sys.executable).with_name("st")
            command = [
                str(st),
                "run",
                f"{api.urls['api']}/api/v1/openapi.json",
                "--header",
                f"Authorization: Bearer {API_TOKEN}",
                *CHECKS,
                "--max-time",
                "30",
                "--workers",
                "2",
                "--no-color",
            ]
            result = await trio.run_process(
                command, cwd=tmp_path, capture_stdout=True, stderr=subprocess.STDOUT, check=False
            )
            report = result.stdout.decode(errors="replace")
            # Doubtful, not yet understood: once in five CI runs one case of ~660 (a DELETE
            # with a body, answered 405 in 2 ms when replayed) timed out reading. A run whose
            # only trouble is a network error is repeated once; any failed check is not.
            if result.returncode and "Network Error" in report and "Failures:" not in report:
                result = await trio.run_process(
                    command,
                    cwd=tmp_path,
                    capture_stdout=True,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
        finally:
            with trio.CancelScope(shield=True):
                await cluster.stop()
            nursery.cancel_scope.cancel()
    report = result.stdout.decode(errors="replace")
    assert result.returncode == 0, report[-6000:] + "\n".join(api.grep("ERROR"))
    assert "generated" in report  # it did run cases
    assert not api.grep(r"Traceback|ERROR"), "\n".join(api.lines[-40:])
