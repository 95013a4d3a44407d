"""Issue 12: the Containerfile, built and run for real.

The image is built with podman on a base made from Debian's packages (no registry is reachable
here) and `osago --role all` is run from the image's own filesystem in a chroot, as the
image's user (`podman run` is refused by this sandbox's rlimits): scripts/container.sh. The
demo flow goes through it: a calculation posted to the api reaches the user's WebSocket.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
import trio

from tests.cluster import Cluster, all_role_env, receive_until_completed
from tests.factories import MINIMAL_BODY

pytestmark = [pytest.mark.e2e, pytest.mark.container]

SCRIPT = str(Path(__file__).parents[2] / "scripts" / "container.sh")


@pytest.fixture(scope="module")
def image() -> dict[str, object]:
    """Build the image (the base and the layers are cached after the first run)."""
    built = subprocess.run(
        [SCRIPT, "build"], capture_output=True, text=True, timeout=900, check=False
    )
    assert built.returncode == 0, built.stderr[-3000:]
    inspect = subprocess.run(
        ["podman", "image", "inspect", "localhost/osago:dev"],
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, object] = json.loads(inspect.stdout)[0]["Config"]
    return config


def test_the_image_runs_as_a_non_root_user_with_no_dev_endpoint(image: dict[str, object]) -> None:
    assert image["User"] == "osago"
    assert "OSAGO_DEV_ENDPOINTS=0" in image["Env"]  # type: ignore[operator]
    assert image["Entrypoint"] == ["osago"]


async def test_the_demo_flow_runs_from_the_image(image: dict[str, object]) -> None:
    env = all_role_env(OSAGO_DEADLINE_SECONDS="6", OSAGO_SIMULATOR_PROFILE="calm")
    async with trio.open_nursery() as nursery:
        c = Cluster(env, nursery)
        try:
            proc = await c.start("api", "all", command=(SCRIPT, "run"))
            c.procs["notifier"] = proc
            status = await trio.Path(f"/proc/{proc.process.pid}/status").read_text()
            uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid"))
            async with httpx.AsyncClient() as http:
                dev = await http.post(f"{c.url('api', 'api')}/dev/token", json={"user_id": "x"})
            async with c.websocket("notifier", "frida") as ws:
                accepted = await c.post({**MINIMAL_BODY, "user_id": "frida"})
                frames = await receive_until_completed(ws, accepted["calculation_id"], within=15)
        finally:
            with trio.CancelScope(shield=True):
                await c.stop()
    assert uid == "10001"  # the image's user, not root
    assert dev.status_code == 404  # no dev endpoint unless asked
    assert frames[-1][1]["type"] == "completed"
    assert frames[-1][1]["offers"] == sum(1 for _, e in frames if e["type"] == "offer") > 0
    assert proc.process.returncode == 0  # SIGTERM reached osago through the script: drained
