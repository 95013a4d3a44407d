"""GET /api/v1/calculations/{id}/timeline: what happened, when, to which insurer (issue 12)."""

from __future__ import annotations

import uuid

from osago.config import Settings
from osago.models import Outcome, OutcomeKind
from osago.storage import MemoryStore
from tests.factories import MINIMAL_BODY, api_app

SETTINGS = Settings(insurer_codes=("aurora", "borealis"), api_token="core-" + "t" * 32)
CORE = {"Authorization": f"Bearer {SETTINGS.api_token}"}


async def test_the_timeline_tells_why_a_user_got_the_stub() -> None:
    store = MemoryStore()
    async with api_app(SETTINGS, store) as app:
        client = app.test_client()
        posted = await client.post("/api/v1/calculations", json=MINIMAL_BODY, headers=CORE)
        calc = uuid.UUID((await posted.get_json())["calculation_id"])
        view = await store.get_calculation(calc)
        assert view is not None
        jobs = await store.claim_outbox(now=view.created_at, lease=30.0, limit=10)
        await store.mark_sent([m.id for m in jobs], now=view.created_at + 0.01)
        (aurora,) = [x for x in store.exchanges.values() if x.insurer == "aurora"]
        failed = Outcome(
            OutcomeKind.FAILED, received_at=view.created_at + 2, error="503 three times"
        )
        await store.settle_exchange(
            aurora.correlation_id, failed, topic="/topic/t", now=view.created_at + 2, lease=30.0
        )
        await store.complete_due(
            topic="/topic/t", now=view.deadline_at + 0.01, lease=30.0, limit=10
        )

        assert (await client.get(f"/api/v1/calculations/{calc}/timeline")).status_code == 401
        r = await client.get(f"/api/v1/calculations/{calc}/timeline", headers=CORE)
        assert r.status_code == 200
        entries = (await r.get_json())["timeline"]
        steps = [(e["what"], e["insurer"]) for e in entries]
        assert steps[0] == ("accepted", None)
        assert {("job stored", "aurora"), ("job published", "borealis")} <= set(steps)
        answer = next(e for e in entries if e["what"] == "answer: failed")
        assert (answer["insurer"], answer["error"]) == ("aurora", "503 three times")
        assert ("no_offer event stored", "aurora") in steps
        completed = next(e for e in entries if e["what"] == "completed")
        assert (completed["result"], completed["offers"]) == ("stub", 0)
        assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
        missing = await client.get(f"/api/v1/calculations/{uuid.uuid4()}/timeline", headers=CORE)
        assert missing.status_code == 404
