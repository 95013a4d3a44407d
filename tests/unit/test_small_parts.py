"""Tokens, STOMP framing, the session hub, settings."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from stomp.utils import parse_headers

from osago.broker._framing import FrameParser, _headers, encode_frame, escape
from osago.broker._urls import parse_stomp_url
from osago.config import Settings
from osago.errors import ConfigError, TokenExpired, TokenInvalid
from osago.insurers import InsurerConfig, insurers_for, load_insurers
from osago.roles._sessions import History, Hub
from osago.runtime import check_role
from osago.tokens import mint_token, verify_token


def test_token_round_trip_and_refusals() -> None:
    token = mint_token("k", "user:42/é", expires_at=1000)
    assert verify_token("k", token, now=999).user_id == "user:42/é"
    with pytest.raises(TokenExpired):
        verify_token("k", token, now=1000)
    with pytest.raises(TokenInvalid):
        verify_token("other", token, now=0)
    with pytest.raises(TokenInvalid):
        verify_token("k", token[:-2], now=0)
    with pytest.raises(TokenInvalid):
        verify_token("k", "garbage", now=0)


def test_framing_round_trip_in_arbitrary_chunks() -> None:
    frames = [
        encode_frame("MESSAGE", {"a": "x:y\nz\\w", "destination": "/q"}, b"bo\x00dy"),
        b"\n\n",  # heart-beats between frames
        encode_frame("RECEIPT", {"receipt-id": "r1"}),
    ]
    data = b"".join(frames)
    for chunk in (1, 3, 7, len(data)):
        parser = FrameParser()
        got = []
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
            got.extend(parser)
        assert [(f.cmd, f.body) for f in got] == [("MESSAGE", b"bo\x00dy"), ("RECEIPT", b"")]
        assert got[0].headers["a"] == "x:y\nz\\w"


@pytest.mark.parametrize(
    "lines",
    [
        ["MESSAGE", "a:1", "a:2", "b:", "c:x:y", ":nokey", "novalue", "", "é:ü"],
        ["MESSAGE", "a\\cb:x\\ny", "a:b:plain", "k:\\\\"],
        ["MESSAGE", "message-id:ID\\cvm-1\\c2\\c-1\\c1\\c5", "t:\\t\\r\\", "\\c:x", "u:\\\\c"],
        ["RECEIPT"],
    ],
)
def test_header_reading_matches_stomp_py(lines: list[str]) -> None:
    """Our head reading reads a head exactly as stomp.py's ``parse_headers`` does: escapes
    (ActiveMQ escapes every message id's colons), unknown ones and a trailing backslash."""
    assert _headers(lines) == parse_headers(lines, 1)


@settings(max_examples=300)
@given(st.lists(st.text(alphabet="ab:\\cnrt", max_size=8), max_size=5))
def test_any_head_is_read_as_stomp_py_reads_it(lines: list[str]) -> None:
    head = ["MESSAGE", *lines]
    assert _headers(head) == parse_headers(head, 1)


@settings(max_examples=300)
@given(st.text(alphabet="ab:\\\n\rcnr", min_size=1, max_size=12))
def test_an_escaped_value_is_read_back_as_it_was(value: str) -> None:
    """Escaping (with its shortcut for values that need none) and our head reading agree,
    and stomp.py reads what we write the same way."""
    head = ["MESSAGE", f"{escape(value)}:{escape(value)}"]
    assert _headers(head) == parse_headers(head, 1) == {value: value}
    assert escape("ID:vm-1:2") == "ID\\cvm-1\\c2"
    assert escape("a\\b\nc") == "a\\\\b\\nc"


async def test_hub_delivers_per_user_once_and_drops_slow_readers() -> None:
    hub = Hub(buffer=2, per_user=2)
    a1, a2, b = hub.open("a", 1e12), hub.open("a", 1e12), hub.open("b", 1e12)
    assert a1 is not None
    assert a2 is not None
    assert b is not None
    assert hub.open("a", 1e12) is None  # per-user bound
    assert hub.first_time("c1", 1)
    assert not hub.first_time("c1", 1)
    assert hub.deliver("a", "e1", ("c1", 1)) == 2
    assert hub.deliver("a", "e1", ("c1", 1)) == 0  # each session has it already
    assert b.recv.statistics().current_buffer_used == 0
    assert a1.recv.receive_nowait() == ("e1", None, None)
    hub.deliver("a", "e2", ("c1", 2))
    hub.deliver("a", "e3", ("c1", 3))  # a2 holds e1, e2: its buffer is full
    assert a2.close_reason == "too_slow"
    assert a2.cancel.cancel_called
    assert a1.close_reason is None
    assert hub.sessions == 2
    await trio.lowlevel.checkpoint()


def test_history_cannot_vouch_for_a_calculation_it_evicted() -> None:
    """Issue 11: resume said "nothing missed" for a calculation evicted from the history."""
    history = History(started_at=0.0, retention=300.0, max_events=2)
    history.record("c1", "ann", 1, "c1#1", now=10.0)
    history.record("c1", "ann", 2, "c1#2", now=11.0)
    history.record("c2", "ann", 1, "c2#1", now=12.0)  # over max_events: c1 goes
    assert history.missed("c1", "ann", 0, created_at=9.0, now=13.0) is None
    assert history.missed("c2", "ann", 0, created_at=11.5, now=13.0) == [(1, "c2#1")]
    assert history.missed("c3", "ann", 0, created_at=12.5, now=13.0) == []  # after: known


def test_settings_from_env_and_role_checks() -> None:
    s = Settings.from_env(
        {
            "OSAGO_DEADLINE_SECONDS": "7.5",
            "OSAGO_INSURERS": "a, b",
            "OSAGO_API_BIND": "0.0.0.0:9000",
        }
    )
    assert (s.deadline_seconds, s.insurer_codes, s.api_bind.port) == (7.5, ("a", "b"), 9000)
    assert insurers_for(s)[0].base_url == "http://127.0.0.1:8082/a"
    with pytest.raises(ConfigError, match="OSAGO_DEADLINE_SECONDS"):
        Settings.from_env({"OSAGO_DEADLINE_SECONDS": "soon"})
    with pytest.raises(ConfigError, match="OSAGO_API_BIND"):
        Settings.from_env({"OSAGO_API_BIND": "nowhere"})
    assert Settings.from_env({"OSAGO_MAX_WAITING_JOBS": "0"}).max_waiting_jobs == 0  # no limit
    unpublished = Settings.from_env({"OSAGO_MAX_UNPUBLISHED_WAIT": "0.25"}).max_unpublished_wait
    assert unpublished == 0.25
    assert Settings.from_env({"OSAGO_MAX_UNPUBLISHED_WAIT": "0"}).max_unpublished_wait == 0
    assert Settings.from_env({"OSAGO_MAX_PICKUP_WAIT": "2.5"}).max_pickup_wait == 2.5
    assert Settings.from_env({"OSAGO_MAX_PICKUP_WAIT": "0"}).max_pickup_wait == 0
    assert Settings.from_env({"OSAGO_LOAD_TOPIC": "/topic/x"}).load_topic == "/topic/x"
    with pytest.raises(ConfigError, match="OSAGO_MAX_PICKUP_WAIT"):
        Settings.from_env({"OSAGO_MAX_PICKUP_WAIT": "-1"})
    assert Settings().settle_linger == 0.02
    assert Settings.from_env({"OSAGO_SETTLE_LINGER": "0.01"}).settle_linger == 0.01
    assert Settings.from_env({"OSAGO_SETTLE_LINGER": "0"}).settle_linger == 0  # never wait
    with pytest.raises(ConfigError, match="OSAGO_SETTLE_LINGER"):
        Settings.from_env({"OSAGO_SETTLE_LINGER": "-0.01"})
    assert Settings().callback_settle_linger == 0  # a callback's answer is settled at once
    custom = Settings.from_env({"OSAGO_CALLBACK_SETTLE_LINGER": "0.005"})
    assert custom.callback_settle_linger == 0.005
    assert Settings().gc_interval == 300.0  # the collector's full collections: 5 minutes
    assert Settings.from_env({"OSAGO_GC_INTERVAL": "60"}).gc_interval == 60.0
    with pytest.raises(ConfigError, match="OSAGO_GC_INTERVAL"):
        Settings.from_env({"OSAGO_GC_INTERVAL": "0"})
    with pytest.raises(ConfigError, match="shared"):
        check_role("worker", Settings())
    check_role("worker", Settings(broker_url="stomp://127.0.0.1:61613"))
    check_role("all", Settings())


@pytest.mark.parametrize("role", ["api", "notifier"])
def test_separate_roles_refuse_the_public_or_a_short_secret(role: str) -> None:
    stomp = Settings(broker_url="stomp://127.0.0.1:61613")
    for secret in ("osago-dev-secret", "short-secret"):
        with pytest.raises(ConfigError, match="OSAGO_WS_SECRET"):
            check_role(role, dataclasses.replace(stomp, ws_secret=secret))
    check_role(role, dataclasses.replace(stomp, ws_secret="x" * 32, callback_secret="z" * 32))


def test_an_api_taking_callbacks_refuses_the_public_or_a_short_callback_secret() -> None:
    stomp = Settings(broker_url="stomp://127.0.0.1:61613", ws_secret="x" * 32)
    for secret in ("osago-dev-secret", "short-secret"):
        with pytest.raises(ConfigError, match="OSAGO_CALLBACK_SECRET"):
            check_role("api", dataclasses.replace(stomp, callback_secret=secret))
    check_role("api", dataclasses.replace(stomp, callback_secret="z" * 32))
    # No insurer in callback mode: nothing to sign, nothing to ask for.
    check_role("api", dataclasses.replace(stomp, insurer_codes=("fjord",)))
    check_role("worker", stomp)  # a worker only tells insurers where to call


def test_the_demo_alone_may_use_the_public_secret_and_dev_endpoints_can_be_refused() -> None:
    assert Settings.from_env({}).dev_endpoints is None  # the role decides: on in `all`
    off = Settings.from_env({"OSAGO_DEV_ENDPOINTS": "0"})
    assert off.dev_endpoints is False
    with pytest.raises(ConfigError, match="OSAGO_WS_SECRET"):
        check_role("all", off)  # no demo: the public secret would let anyone in
    check_role("all", dataclasses.replace(off, ws_secret="y" * 40, callback_secret="z" * 40))
    with pytest.raises(ConfigError, match="OSAGO_DEV_ENDPOINTS"):
        Settings.from_env({"OSAGO_DEV_ENDPOINTS": "maybe"})


def test_the_container_image_never_enables_dev_endpoints() -> None:
    """Issue 10: the image ran `--role all` on 0.0.0.0 with /dev/token open to anyone."""
    image = (Path(__file__).parents[2] / "Containerfile").read_text()
    env = dict(re.findall(r"(OSAGO_\w+)=(\S+)", image.split("\nENV ", 1)[1]))
    assert env["OSAGO_DEV_ENDPOINTS"] == "0"
    with pytest.raises(ConfigError, match="OSAGO_WS_SECRET"):
        check_role("all", Settings.from_env(env))  # so it needs a real secret too


def test_osago_token_prints_a_token_the_notifier_accepts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from osago.cli import main

    monkeypatch.setenv("OSAGO_WS_SECRET", "cli-secret")
    assert main(["token", "user-7", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    claims = verify_token("cli-secret", token, now=time.time())
    assert claims.user_id == "user-7"
    assert 55 < claims.expires_at - time.time() <= 60


def test_a_role_that_cannot_work_exits_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from osago.cli import main

    monkeypatch.delenv("OSAGO_BROKER_URL", raising=False)
    assert main(["--role", "worker"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "OSAGO_BROKER_URL=stomp://" in err


def test_a_long_poll_insurer_must_not_count_its_held_polls_as_slow(tmp_path: Path) -> None:
    def load(name: str, text: str) -> tuple[InsurerConfig, ...]:
        path = tmp_path / name  # the loader caches by path
        path.write_text(text)
        return load_insurers(path, default_base="http://x")

    long_poll = '[[insurers]]\ncode = "a"\nmode = "long-poll"\nlong_poll_wait = 20.0\n'
    with pytest.raises(ConfigError, match="slow_call_duration"):
        load("a.toml", long_poll)
    [a] = load("b.toml", long_poll + "[insurers.breaker]\nslow_call_duration = 30.0\n")
    assert (a.long_poll, a.poll_attempt_timeout) == (True, a.poll_timeout + 20.0)
    with pytest.raises(ConfigError, match="mode"):
        load("c.toml", '[[insurers]]\ncode = "a"\nmode = "push"\n')


def test_a_hedge_is_a_request_under_the_rate_limit_and_never_for_a_held_poll(
    tmp_path: Path,
) -> None:
    def load(name: str, text: str) -> tuple[InsurerConfig, ...]:
        path = tmp_path / name
        path.write_text(text)
        return load_insurers(path, default_base="http://x")

    poll = '[[insurers]]\ncode = "a"\npoll_timeout = 2.0\n'
    [a] = load("a.toml", poll + "hedge_delay = 1.0\n")
    assert a.hedge_delay == 1.0
    with pytest.raises(ConfigError, match="min_interval"):  # two requests within a second
        load("b.toml", poll + "hedge_delay = 0.5\n")
    with pytest.raises(ConfigError, match="poll_timeout"):  # it could never start
        load("c.toml", poll + "hedge_delay = 2.0\n")
    held = (
        '[[insurers]]\ncode = "a"\nmode = "long-poll"\nhedge_delay = 1.0\n'
        "[insurers.breaker]\nslow_call_duration = 60.0\n"
    )
    [held_poll] = load("d.toml", held)  # a default for all: a held poll is never hedged
    assert (held_poll.hedge_delay, held_poll.poll_hedge) == (1.0, None)


def test_broker_urls_one_several_or_failover() -> None:
    assert parse_stomp_url("stomp://mq:61613").endpoints == (("mq", 61613),)
    several = parse_stomp_url("stomp://u:p@h1:61613, stomp://h2")
    assert several.endpoints == (("h1", 61613), ("h2", 61613))
    assert (several.login, several.passcode) == ("u", "p")
    failover = parse_stomp_url("failover:(stomp://h1:1,stomp://h2:2)?randomize=false")
    assert failover.endpoints == (("h1", 1), ("h2", 2))
    for bad in ("tcp://h:1", "stomp://h1:1,", "failover:(stomp://h:x)", "stomp://"):
        with pytest.raises(ConfigError, match="broker URL"):
            parse_stomp_url(bad)
