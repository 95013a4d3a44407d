"""Signed, expiring WebSocket tokens: ``<user>.<expires>.<hmac>`` in URL-safe base64.

The core application holds the same secret and mints tokens for its users; ``osago token``
does the same from the command line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from osago.errors import TokenExpired, TokenInvalid

__all__ = ["Claims", "bearer_matches", "mint_token", "verify_token"]


def bearer_matches(token: str | None, authorization: str | None) -> bool:
    """``authorization`` (a request's header) is ``Bearer <token>``: compared in constant
    time, as bytes; never for an empty ``token`` (none configured)."""
    given = (authorization or "").encode("utf-8", errors="replace")
    return bool(token) and hmac.compare_digest(given, f"Bearer {token}".encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


class Claims:
    """What a verified token says."""

    __slots__ = ("expires_at", "user_id")

    def __init__(self, user_id: str, expires_at: float) -> None:
        self.user_id = user_id
        self.expires_at = expires_at


def mint_token(secret: str, user_id: str, *, expires_at: float) -> str:
    """A token for ``user_id`` valid until ``expires_at`` (Unix seconds)."""
    payload = f"{_b64(user_id.encode())}.{int(expires_at)}"
    return f"{payload}.{_sign(secret, payload)}"


def verify_token(secret: str, token: str, *, now: float) -> Claims:
    """Return the claims of a valid token; raise TokenInvalid or TokenExpired.

    Anything a client can put in a URL is refused as TokenInvalid, never another error:
    the signature is compared as bytes in constant time (``compare_digest`` raises
    TypeError on a non-ASCII str), the expiry must be ASCII digits.
    """
    parts = token.split(".")
    if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
        raise TokenInvalid("malformed token")
    payload = f"{parts[0]}.{parts[1]}"
    given = parts[2].encode("utf-8", errors="replace")
    if not hmac.compare_digest(_sign(secret, payload).encode(), given):
        raise TokenInvalid("bad signature")
    try:
        user_id = _unb64(parts[0]).decode()
    except (ValueError, UnicodeDecodeError):
        raise TokenInvalid("malformed user id") from None
    expires_at = float(parts[1])
    if expires_at <= now:
        raise TokenExpired(user_id, expires_at)
    return Claims(user_id, expires_at)
