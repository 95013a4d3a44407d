"""Signed callbacks: an insurer in ``callback`` mode POSTs its answer to us when it is ready.

The signature, sent as ``X-Osago-Signature: t=<unix seconds>,v1=<hex>``, is
HMAC-SHA256(secret, ``"<t>.<raw body>"``) with the insurer's own secret. Why this shape: the
timestamp inside the MAC bounds a replay to a short window (``tolerance``), and a signature
seen within that window is refused again (:class:`ReplayGuard`); the raw body is what is
signed, so no JSON re-encoding can make a valid body invalid or the other way round.

Each insurer has its own secret, derived from ours (``OSAGO_CALLBACK_SECRET``) and its code:
HMAC-SHA256(master, ``"osago-callback:" + code``), hex. One setting to keep, a different
secret to hand to each insurer, and one insurer's secret signs nothing for another.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import OrderedDict

from osago.errors import CallbackRefused

__all__ = ["SIGNATURE_HEADER", "ReplayGuard", "insurer_secret", "sign", "verify"]

SIGNATURE_HEADER = "X-Osago-Signature"


def insurer_secret(master: str, code: str) -> str:
    """The secret shared with insurer ``code``."""
    return hmac.new(master.encode(), f"osago-callback:{code}".encode(), hashlib.sha256).hexdigest()


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, now: float) -> str:
    """The signature header's value for ``body`` sent at ``now``."""
    t = int(now)
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(secret: str, header: str | None, body: bytes, *, now: float, tolerance: float) -> str:
    """Check a callback's signature; return its MAC (the replay key) or raise
    :class:`CallbackRefused` (status 401) saying what is wrong."""
    if not header:
        raise CallbackRefused(401, "missing_signature", f"{SIGNATURE_HEADER} is required")
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError) as exc:
        raise CallbackRefused(401, "bad_signature", "expected t=<seconds>,v1=<hex>") from exc
    if not math.isfinite(now) or abs(now - t) > tolerance:
        raise CallbackRefused(401, "stale_signature", f"signed {now - t:.0f} s from now")
    expected = _mac(secret, t, body)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise CallbackRefused(401, "bad_signature", "the signature does not match the body")
    return expected


class ReplayGuard:
    """Signatures accepted within the last ``window`` seconds: one seen again is a replay.

    Bounded (``limit``): a flood of valid signatures evicts the oldest, which are also the
    first to fall out of the timestamp window. Per process: behind a load balancer a replay
    to another api instance reaches the store, which refuses what is already settled.
    """

    def __init__(self, window: float, limit: int = 100_000) -> None:
        self._window = window
        self._limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, mac: str, now: float) -> bool:
        """Remember ``mac``; False when it was seen within the window."""
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if at >= now - self._window and len(self._seen) < self._limit:
                break
            del self._seen[oldest]
        if mac in self._seen:
            return False
        self._seen[mac] = now
        return True
