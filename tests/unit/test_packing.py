"""Events share topic messages (one per line); a calculation's jobs share a queue message."""

from __future__ import annotations

import json

from osago.events import PACKED_HEADERS, encode_event, event_headers, pack, unpack
from osago.models import OutboxMessage
from osago.outbox import PACK_MAX, outgoing

T, Q = "/topic/results", "/queue/jobs"


def event(seq: int, text: str = "") -> OutboxMessage:
    e = {"type": "offer", "calculation_id": "c", "user_id": "u", "seq": seq, "message": text}
    return OutboxMessage(seq, T, encode_event(e), event_headers(e))


def job(i: int) -> OutboxMessage:
    return OutboxMessage(i, Q, b'{"job": %d}' % i, {})


def test_consecutive_events_share_a_message_and_jobs_go_alone_in_order() -> None:
    rows = [job(1), job(2), event(3), event(4, "line\nbreak \u2028"), event(5), job(6), event(7)]
    sent = outgoing(rows)
    assert [(m.destination, len(unpack(m.body))) for m in sent] == [
        (Q, 1),
        (Q, 1),
        (T, 3),
        (Q, 1),
        (T, 1),
    ]
    # A packed message holds its events' bytes as they were, in order; a lone one is itself.
    assert unpack(sent[2].body) == [r.body for r in rows[2:5]]
    assert json.loads(unpack(sent[2].body)[1])["message"] == "line\nbreak \u2028"
    assert sent[2].headers == PACKED_HEADERS
    assert (sent[4].body, sent[4].headers) == (rows[6].body, rows[6].headers)
    assert [m.body for m in sent if m.destination == Q] == [
        r.body for r in rows if r.destination == Q
    ]


def grouped(i: int, calc: str) -> OutboxMessage:
    return OutboxMessage(i, Q, b'{"job": %d}' % i, {"insurer": "x", "JMSXGroupID": calc})


def test_consecutive_jobs_of_one_calculation_share_a_message_in_its_group() -> None:
    rows = [grouped(1, "a"), grouped(2, "a"), grouped(3, "b"), event(4), grouped(5, "b"), job(6)]
    sent = outgoing(rows)
    assert [(m.destination, m.headers.get("JMSXGroupID"), unpack(m.body)) for m in sent] == [
        (Q, "a", [rows[0].body, rows[1].body]),
        (Q, "b", [rows[2].body]),  # alone: itself, headers and all
        (T, None, [rows[3].body]),
        (Q, "b", [rows[4].body]),  # not next to its calculation's other job
        (Q, None, [rows[5].body]),
    ]
    assert sent[1].headers == rows[2].headers
    assert sent[0].headers == {**PACKED_HEADERS, "JMSXGroupID": "a"}


def test_a_message_carries_at_most_pack_max_events() -> None:
    sent = outgoing([event(i) for i in range(2 * PACK_MAX + 1)])
    assert [len(unpack(m.body)) for m in sent] == [PACK_MAX, PACK_MAX, 1]


def test_one_event_packs_to_itself() -> None:
    body = event(1).body
    assert pack([body]) == body
    assert unpack(body) == [body]
