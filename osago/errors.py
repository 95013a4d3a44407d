"""The one error tree of osago.

Every error the package raises on purpose derives from :class:`OsagoError` and carries its
data as attributes. Third-party errors (asyncpg, OSError, httpx, STOMP ERROR frames) are
translated into this tree at exactly one layer -- the adapter that talks to that system --
always as ``raise X from exc``, so callers never import a driver to catch its errors::

    OsagoError
    ├── ConfigError            settings that cannot work; the role exits with a one-line reason
    ├── ValidationFailed       a request body broke rules; .errors lists (field path, message)
    ├── ConflictError          same idempotency key, different body
    ├── StoreError             PostgreSQL (or its twin) failed; .operation names the call
    ├── BrokerError
    │   ├── BrokerUnavailable  no connection, or it was lost mid-call; safe to retry
    │   └── BrokerProtocolError  the broker answered with an ERROR frame
    ├── PoisonMessage          a queue message that can never be processed; .reason
    ├── InsurerError           an insurer call failed; .insurer
    │   ├── InsurerUnavailable   transport error or 5xx: transient, worth a retry
    │   └── InsurerRejected      4xx or a body we cannot read: not worth a retry
    └── TokenError             a WebSocket token was refused
        ├── TokenInvalid
        └── TokenExpired
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BrokerError",
    "BrokerProtocolError",
    "BrokerUnavailable",
    "ConfigError",
    "ConflictError",
    "FieldError",
    "InsurerError",
    "InsurerRejected",
    "InsurerUnavailable",
    "OsagoError",
    "PoisonMessage",
    "StoreError",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "ValidationFailed",
]


class OsagoError(Exception):
    """Base of every error osago raises on purpose."""


class ConfigError(OsagoError):
    """The settings cannot work (e.g. a worker on the in-process broker)."""


@dataclass(frozen=True)
class FieldError:
    """One broken rule: ``field`` is a dotted path such as ``drivers.0.birth_date``."""

    field: str
    message: str


class ValidationFailed(OsagoError):
    """A request body broke one or more rules; nothing was stored."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))


class ConflictError(OsagoError):
    """The same idempotency key was used with a different body."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"request id {key} was already used with a different body")


class StoreError(OsagoError):
    """The store failed to carry out ``operation``."""

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = detail
        super().__init__(f"store {operation} failed: {detail}")


class BrokerError(OsagoError):
    """Base of message-broker errors."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be reached or the connection was lost mid-call."""


class BrokerProtocolError(BrokerError):
    """The broker refused a frame (STOMP ERROR)."""

    def __init__(self, message: str, details: str = "") -> None:
        self.message = message
        self.details = details
        super().__init__(f"{message}: {details}" if details else message)


class PoisonMessage(OsagoError):
    """A queue message that no retry can make processable."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class InsurerError(OsagoError):
    """A call to ``insurer`` failed."""

    def __init__(self, insurer: str, detail: str, *, status: int | None = None) -> None:
        self.insurer = insurer
        self.detail = detail
        self.status = status
        super().__init__(f"insurer {insurer}: {detail}")


class InsurerUnavailable(InsurerError):
    """Transport error or 5xx: transient."""


class InsurerRejected(InsurerError):
    """A 4xx or an unreadable body: retrying will not help."""


class TokenError(OsagoError):
    """A WebSocket token was refused."""


class TokenInvalid(TokenError):
    """Malformed or wrongly signed."""


class TokenExpired(TokenError):
    """Signed correctly but past its expiry."""

    def __init__(self, user_id: str, expired_at: float) -> None:
        self.user_id = user_id
        self.expired_at = expired_at
        super().__init__(f"token for {user_id} expired at {expired_at:.0f}")
