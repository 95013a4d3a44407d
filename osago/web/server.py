"""Hypercorn settings shared by every HTTP role (api, notifier's health, simulator)."""

from __future__ import annotations

import logging

from hypercorn.config import Config

__all__ = ["hypercorn_config"]


def hypercorn_config(bind: str, grace: float) -> Config:
    """Serve on ``bind``; no access log; in-flight requests get ``grace`` seconds at stop."""
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = grace
    # Why 75 s: clients (ours: 4 s; httpx: 5 s) must close an idle keep-alive connection before the
    # server does; at equal timeouts both close at once and a request sent on a connection
    # the server just closed fails ("connection broken") under load.
    config.keep_alive_timeout = 75.0
    # Why: Hypercorn's default accept backlog is 100. A burst of new connections (a rate
    # step, a pool refilling) overflows it, the kernel drops SYNs, and the client's first
    # retransmit comes a second later -- past a poll's attempt timeout.
    config.backlog = 4096
    return config
