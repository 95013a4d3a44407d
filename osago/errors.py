"""The one error tree of osago.

Every error the package raises on purpose derives from :class:`OsagoError` and carries its
data as attributes. Third-party errors (asyncpg, OSError, h11 and socket errors, STOMP ERROR
frames) are translated into this tree at exactly one layer -- the adapter that talks to that
system -- always as ``raise X from exc``, so callers never import a driver to catch its
errors::

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
    │   ├── InsurerUnavailable   transport, 5xx, 429, non-JSON body: transient; .retry_after
    │   └── InsurerRejected      4xx or JSON that breaks the protocol: not worth a retry
    ├── ResilienceError        raised by our own primitives (osago.resilience); .name
    │   ├── CircuitOpen          the breaker rejected the call without running it; .retry_after
    │   ├── BulkheadFull         no free slot within the bulkhead's wait
    │   ├── AttemptTimeout       one attempt ran past its timeout (not the overall deadline)
    │   └── ResultRejected       a result the retry predicate refused; .value
    ├── TokenError             a WebSocket token was refused
    │   ├── TokenInvalid
    │   └── TokenExpired
    └── CallbackRefused        an insurer's callback changes nothing; .status, .reason
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AttemptTimeout",
    "BrokerError",
    "BrokerProtocolError",
    "BrokerUnavailable",
    "BulkheadFull",
    "CallbackRefused",
    "CircuitOpen",
    "ConfigError",
    "ConflictError",
    "FieldError",
    "InsurerError",
    "InsurerRejected",
    "InsurerUnavailable",
    "OsagoError",
    "PoisonMessage",
    "ResilienceError",
    "ResultRejected",
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

    def __init__(
        self,
        insurer: str,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.insurer = insurer
        self.detail = detail
        self.status = status
        self.retry_after = retry_after  # the insurer's Retry-After hint, seconds
        super().__init__(f"insurer {insurer}: {detail}")


class InsurerUnavailable(InsurerError):
    """Transport error, 5xx, 429 or a body that is not JSON: transient."""


class InsurerRejected(InsurerError):
    """A 4xx or JSON that breaks the protocol: retrying will not help."""


class ResilienceError(OsagoError):
    """Raised by a resilience primitive named ``name`` (usually the insurer code)."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{name}: {message}")


class CircuitOpen(ResilienceError):
    """The breaker is open (or half-open and full): the call was not made."""

    def __init__(self, name: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(name, f"circuit open, next trial in {retry_after:.2f}s")


class BulkheadFull(ResilienceError):
    """Every slot stayed taken for the bulkhead's whole wait."""

    def __init__(self, name: str, max_concurrent: int, waited: float) -> None:
        self.max_concurrent = max_concurrent
        self.waited = waited
        super().__init__(name, f"bulkhead full ({max_concurrent} calls) after {waited:.2f}s")


class AttemptTimeout(ResilienceError):
    """One attempt exceeded its own timeout; the overall deadline may still allow another."""

    def __init__(self, name: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(name, f"attempt timed out after {timeout:.2f}s")


class ResultRejected(ResilienceError):
    """A call returned a result the retry policy treats as a failure (e.g. HTTP 503)."""

    def __init__(self, name: str, value: object) -> None:
        self.value = value
        super().__init__(name, f"result rejected: {value!r}")


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


class CallbackRefused(OsagoError):
    """An insurer's callback was refused and changed nothing: ``status`` is the HTTP status
    to answer, ``reason`` a short code (``bad_signature``, ``replayed``, ``unknown_exchange``,
    ``already_settled`` …) and the message says what exactly."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
