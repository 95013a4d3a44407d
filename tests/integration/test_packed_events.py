"""Events packed in one topic message (osago.events.pack) reach their users one by one over
real ActiveMQ; a line that is no event is dropped alone."""

from __future__ import annotations

import json
import uuid

from trio_websocket import open_websocket_url

from osago.broker import Outgoing
from osago.events import pack
from tests.integration.test_sessions import pytestmark as sessions_marks
from tests.integration.test_sessions import receive, rig

pytestmark = sessions_marks


async def test_a_packed_message_pushes_each_event_and_drops_a_bad_line_alone(
    unique: str,
) -> None:
    async with rig(unique) as r, open_websocket_url(r.url(0, "ann")) as ann:
        assert (await receive(ann))["type"] == "hello"
        calc = str(uuid.uuid4())
        lines = [
            json.dumps({"type": "offer", "user_id": "ann", "calculation_id": calc, "seq": 1}),
            '{"user_id":"ann","calculation_id":{},"seq":2}',
            json.dumps({"type": "offer", "user_id": "ann", "calculation_id": calc, "seq": 3}),
        ]
        body = pack([line.encode() for line in lines])
        await r.publish_broker.send([Outgoing(r.settings.results_topic, body)])
        assert [(await receive(ann))["seq"] for _ in range(2)] == [1, 3]
