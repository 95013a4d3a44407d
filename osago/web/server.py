"""Hypercorn settings of the api (the roles that serve machines at a high rate use
:mod:`osago.web.http1`, with the same keep-alive)."""

from __future__ import annotations

import logging

from hypercorn.config import Config

from osago.web.http1 import KEEP_ALIVE

__all__ = ["hypercorn_config"]


def hypercorn_config(bind: str, grace: float) -> Config:
    """Serve on ``bind``; no access log; in-flight requests get ``grace`` seconds at stop."""
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = grace
    config.keep_alive_timeout = KEEP_ALIVE  # why 75 s: see osago.web.http1
    # Why: Hypercorn's default accept backlog is 100. A burst of new connections (a rate
    # step, a pool refilling) overflows it, the kernel drops SYNs, and the client's first
    # retransmit comes a second later -- past a poll's attempt timeout.
    config.backlog = 4096
    return config
