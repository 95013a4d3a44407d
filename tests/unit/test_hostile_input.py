"""Hostile input at the boundaries fixed so far (issue 10): whatever arrives, each boundary
answers with its own refusal -- never another exception that would escape a task."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osago.errors import InsurerRejected, InsurerUnavailable, PoisonMessage, TokenError
from osago.insurers import HttpInsurerClient, InsurerConfig, Pending, Quote
from osago.insurers.http11 import Response
from osago.models import Job
from osago.roles._topic import read_event as _read_event
from osago.tokens import mint_token, verify_token

INSURER = InsurerConfig(code="x", name="X", base_url="http://insurer.test/x")
DEEP = b"[" * 4000 + b"]" * 4000
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


class Canned:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def request(self, method: str, target: str, **kw: Any) -> Response:
        return Response(200, {}, self.body)


async def poll(body: bytes) -> Quote | Pending:
    return await HttpInsurerClient({"x": Canned(body)}).poll(INSURER, "r1")


def answer(**fields: Any) -> bytes:
    base = {
        "status": "ready",
        "correlation_id": str(uuid.uuid4()),
        "premium": 5000.0,
        "ready_at": 1_790_000_000.0,
    }
    return json.dumps({**base, **fields}, allow_nan=True).encode()


@pytest.mark.parametrize("token", ["a.1.\u00e9", "a.\u0661.x", "\u00e9.1.x", "..", "a.b.c.d", ""])
def test_tokens_from_a_url_are_refused_not_crashed(token: str) -> None:
    with pytest.raises(TokenError):
        verify_token("secret", token, now=0.0)


@given(st.text(max_size=80))
def test_any_token_text_is_either_valid_or_refused(token: str) -> None:
    with contextlib.suppress(TokenError):
        verify_token("secret", token, now=0.0)
    good = mint_token("secret", "user", expires_at=10.0)
    assert verify_token("secret", good, now=0.0).user_id == "user"


@pytest.mark.parametrize(
    "body",
    [
        b'{"user_id": "u", "calculation_id": "c", "seq": 1e999}',
        b'{"user_id": "u", "calculation_id": {}, "seq": 1}',
        b'{"user_id": "u", "calculation_id": "c", "seq": true}',
        b"\xff\xfe not utf-8",
        DEEP,
        b"[]",
    ],
)
def test_topic_events_that_are_not_events_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (any refusal with a reason)
        _read_event(body)


@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_topic_body_is_read_or_refused(body: bytes) -> None:
    with contextlib.suppress(ValueError):
        _read_event(body)


@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_job_body_is_a_job_or_poison(body: bytes) -> None:
    with contextlib.suppress(PoisonMessage):
        Job.decode(body)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"ready_at": 1_790_000_000_000}, "Unix seconds"),  # milliseconds
        ({"ready_at": "2026-11-30"}, "number"),
        ({"correlation_id": 123}, "string"),
        ({"premium": float("nan")}, "finite"),
        ({"premium": True}, "number"),
    ],
)
async def test_insurer_answers_that_break_the_protocol_are_rejected(
    fields: dict[str, Any], why: str
) -> None:
    with pytest.raises(InsurerRejected, match=why):
        await poll(answer(**fields))


async def test_what_an_offer_can_do_without_is_dropped_not_failed() -> None:
    quote = await poll(
        answer(message={"html": "<b>x</b>"}, breakdown={"kt": float("nan"), "km": 1.1, "x": {}})
    )
    assert isinstance(quote, Quote)
    assert (quote.message, quote.breakdown) == (None, {"km": 1.1})
    assert (await poll(answer(message="line\nforged INFO"))).message == "lineforged INFO"  # type: ignore[union-attr]


async def test_deeply_nested_answers_are_rejected() -> None:
    with pytest.raises(InsurerRejected, match="deep"):
        await poll(DEEP)


@given(json_values)
async def test_any_poll_answer_is_an_answer_or_a_refusal(value: Any) -> None:
    with contextlib.suppress(InsurerRejected, InsurerUnavailable):
        await poll(json.dumps(value).encode())
