"""Broker addresses: one ``stomp://`` URL, several comma-separated, or ActiveMQ's
``failover:(stomp://h1:61613,stomp://h2:61613)`` form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from osago.errors import ConfigError

__all__ = ["StompAddress", "parse_stomp_url"]

_FAILOVER = re.compile(r"failover:\((?P<inner>[^)]*)\)(?:\?.*)?")


@dataclass(frozen=True)
class StompAddress:
    """The brokers to try, in order, and the credentials (from the first URL that has any)."""

    endpoints: tuple[tuple[str, int], ...]
    login: str | None = None
    passcode: str | None = None


def parse_stomp_url(url: str) -> StompAddress:
    """``stomp://[user:pass@]host[:port]``, a comma-separated list of them, or
    ``failover:(...)`` around such a list (its ``?options`` are ignored)."""
    m = _FAILOVER.fullmatch(url.strip())
    parts = (m.group("inner") if m else url).split(",")
    endpoints: list[tuple[str, int]] = []
    login = passcode = None
    for part in (p.strip() for p in parts):
        split = urlsplit(part)
        if split.scheme != "stomp" or not split.hostname:
            raise ConfigError(f"broker URL {url!r}: {part!r} is not stomp://host:port")
        try:
            port = split.port or 61613
        except ValueError as exc:
            raise ConfigError(f"broker URL {url!r}: bad port in {part!r}") from exc
        endpoints.append((split.hostname, port))
        if login is None and split.username is not None:
            login, passcode = split.username, split.password
    return StompAddress(tuple(endpoints), login, passcode)
