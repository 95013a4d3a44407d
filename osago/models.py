"""Domain records passed between the roles and the store. Times are Unix float seconds."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from osago.domain.tariff import CURRENCY
from osago.errors import PoisonMessage

__all__ = [
    "CalculationView",
    "Exchange",
    "ExchangeView",
    "Job",
    "NewCalculation",
    "NewExchange",
    "OutboxMessage",
    "OutboxTrace",
    "Outcome",
    "OutcomeKind",
    "Push",
    "RawJSON",
    "Step",
    "Trail",
    "answer_fields",
    "iso",
    "receipt",
]

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RawJSON:
    """A JSON value kept as its text, to pass on as it is: a worker sends each stored request
    to its insurer without decoding it from the database and encoding it again (ten
    exchanges a calculation, a kilobyte each: a few percent of a worker's CPU)."""

    text: str

    def value(self) -> Any:
        """The value, decoded."""
        return json.loads(self.text)


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OutcomeKind(StrEnum):
    """How one insurer exchange ended."""

    OFFER = "offer"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


class _Insurer(Protocol):
    @property
    def insurer(self) -> str: ...


def receipt(
    calculation_id: UUID,
    status: str,
    created_at: float,
    deadline_at: float,
    exchanges: Sequence[_Insurer],
) -> JSON:
    """What the api answers to an accepted request (202): one shape, new or replayed."""
    return {
        "calculation_id": str(calculation_id),
        "status": status,
        "created_at": iso(created_at),
        "deadline_at": iso(deadline_at),
        "insurers": [x.insurer for x in exchanges],
    }


@dataclass(frozen=True)
class NewExchange:
    """One insurer to ask, with the correlation id that matches its answer to the request."""

    correlation_id: UUID
    insurer: str
    insurer_name: str


@dataclass(frozen=True)
class NewCalculation:
    """A validated request about to be stored with its outbox rows."""

    id: UUID
    user_id: str
    request: JSON
    created_at: float
    deadline_at: float
    exchanges: tuple[NewExchange, ...]
    stub: JSON
    request_hash: str = ""
    closes_at: float = 0.0  # deadline + late window; 0 means the deadline itself

    @property
    def closing(self) -> float:
        return max(self.closes_at, self.deadline_at)

    def receipt(self) -> JSON:
        """The api's 202 body for a calculation just accepted."""
        return receipt(self.id, "pending", self.created_at, self.deadline_at, self.exchanges)


@dataclass(frozen=True, slots=True)
class Job:
    """The queue message: ask ``insurer`` about ``calculation_id``."""

    correlation_id: UUID
    calculation_id: UUID
    insurer: str

    def encode(self) -> bytes:
        return json.dumps(
            {
                "correlation_id": str(self.correlation_id),
                "calculation_id": str(self.calculation_id),
                "insurer": self.insurer,
            }
        ).encode()

    def headers(self) -> dict[str, str]:
        """The job message's headers.

        Why a message group per calculation (``JMSXGroupID``, ActiveMQ's): every job of one
        calculation then goes to one worker, and the worker that settled its last answer
        knows its state and settles the next in one statement instead of a read and a
        write (osago/storage/_known.py). New groups go to consumers in turn, so
        calculations still spread over the workers; a group whose worker goes away moves
        to another. A broker without groups only loses that saving.
        """
        return {"insurer": self.insurer, "JMSXGroupID": str(self.calculation_id)}

    @classmethod
    def decode_all(cls, body: bytes) -> list[Job]:
        """The jobs of one queue message: one, or a calculation's, one per line
        (osago.outbox.outgoing); :class:`PoisonMessage` if any line can never be processed
        (the message came from no api of ours), or none is there."""
        jobs = [cls.decode(line) for line in body.split(b"\n") if line.strip()]
        if not jobs:
            raise PoisonMessage("a job message with no job")
        return jobs

    @classmethod
    def decode(cls, body: bytes) -> Job:
        """Parse a queue message; raise :class:`PoisonMessage` if it can never be processed."""
        try:
            data = json.loads(body)
            cid, calc, insurer = data["correlation_id"], data["calculation_id"], data["insurer"]
            if not (isinstance(cid, str) and isinstance(calc, str) and isinstance(insurer, str)):
                raise TypeError("correlation_id, calculation_id and insurer must be strings")
            return cls(UUID(cid), UUID(calc), insurer)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise PoisonMessage(f"undecodable job: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Exchange:
    """What a worker needs to run (or resume) one insurer exchange."""

    correlation_id: UUID
    calculation_id: UUID
    insurer: str
    user_id: str
    request: RawJSON  # passed on to the insurer as it was stored
    created_at: float
    deadline_at: float
    closes_at: float
    remote_id: str | None
    outcome: OutcomeKind | None
    closed: bool

    @property
    def settled(self) -> bool:
        """True when nothing is left to do for this exchange."""
        return self.outcome is not None or self.closed


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an exchange ended; ``received_at`` is when the worker got the insurer's answer.

    Every field is typed: ``pool`` and ``breakdown`` come with an offer, ``late`` is set by
    the lifecycle for an answer after the deadline, ``error`` is the technical cause of a
    failure (for logs and support, never shown to the user) and ``retry_after`` says when an
    unavailable insurer's breaker may let calls through again.
    """

    kind: OutcomeKind
    received_at: float
    premium: float | None = None
    message: str | None = None
    ready_at: float | None = None
    pool: bool = False
    breakdown: Mapping[str, Any] | None = None
    late: bool = False
    error: str | None = None
    retry_after: float | None = None

    def extras(self) -> JSON:
        """The fields kept beside the columns (PostgreSQL's ``detail``), defaults left out."""
        return {
            name: value
            for name, value, default in (
                ("pool", self.pool, False),
                ("breakdown", self.breakdown, None),
                ("late", self.late, False),
                ("error", self.error, None),
                ("retry_after", self.retry_after, None),
            )
            if value != default
        }

    @classmethod
    def restore(
        cls,
        kind: str,
        received_at: float,
        premium: float | None,
        message: str | None,
        ready_at: float | None,
        extras: Mapping[str, Any] | None,
    ) -> Outcome:
        """The outcome as stored: its columns and :meth:`extras`."""
        x = extras or {}
        return cls(
            OutcomeKind(kind),
            received_at,
            premium,
            message,
            ready_at,
            pool=bool(x.get("pool", False)),
            breakdown=x.get("breakdown"),
            late=bool(x.get("late", False)),
            error=x.get("error"),
            retry_after=x.get("retry_after"),
        )


def answer_fields(outcome: Outcome | None) -> JSON:
    """An insurer's answer as users see it, in events and in the api (one shape, one place)."""
    o = outcome or Outcome(OutcomeKind.TIMED_OUT, received_at=0.0)
    return {
        "premium": o.premium,
        "currency": CURRENCY if o.premium is not None else None,
        "pool": o.pool,
        "message": o.message,
        "breakdown": dict(o.breakdown) if o.breakdown is not None else None,
        "late": o.late,
        "ready_at": iso(o.ready_at),
        "received_at": iso(o.received_at) if outcome is not None else None,
    }


@dataclass(frozen=True)
class ExchangeView:
    """One insurer's state as the API shows it; ``outcome`` is None while pending."""

    insurer: str
    insurer_name: str
    outcome: Outcome | None = None

    @property
    def status(self) -> str:
        return self.outcome.kind.value if self.outcome else "pending"

    def to_json(self) -> JSON:
        return {
            "insurer": self.insurer,
            "insurer_name": self.insurer_name,
            "status": self.status,
            **answer_fields(self.outcome),
        }


@dataclass(frozen=True)
class CalculationView:
    """A calculation with its exchanges so far."""

    id: UUID
    user_id: str
    request: JSON
    created_at: float
    deadline_at: float
    completed_at: float | None
    stub: JSON
    exchanges: tuple[ExchangeView, ...]
    closes_at: float = 0.0
    closed_at: float | None = None
    last_seq: int = 0  # the seq of the latest event: a client that caught up resumes after it

    def receipt(self) -> JSON:
        """The api's 202 body, for a replayed request: as the first time, status now."""
        return receipt(self.id, self.status, self.created_at, self.deadline_at, self.exchanges)

    @property
    def status(self) -> str:
        """pending, completed (the user has had ``completed``) or closed (nothing to wait for)."""
        return "closed" if self.closed_at else "completed" if self.completed_at else "pending"

    def to_json(self) -> JSON:
        offers = [e.to_json() for e in self.exchanges if e.status == OutcomeKind.OFFER]
        on_time = [o for o in offers if not o["late"]]
        done = self.completed_at is not None
        return {
            "calculation_id": str(self.id),
            "user_id": self.user_id,
            "status": self.status,
            "created_at": iso(self.created_at),
            "deadline_at": iso(self.deadline_at),
            "completed_at": iso(self.completed_at),
            "closes_at": iso(max(self.closes_at, self.deadline_at)),
            "closed_at": iso(self.closed_at),
            "last_seq": self.last_seq,
            "request": self.request,
            "offers": offers,
            "insurers": [e.to_json() for e in self.exchanges],
            "stub": self.stub if done and not on_time else None,
        }


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message stored in the outbox, to be published (at least once) to ``destination``."""

    id: int
    destination: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class OutboxTrace:
    """One outbox row of a calculation, as its timeline shows it."""

    destination: str
    body: bytes
    headers: Mapping[str, str]
    created_at: float
    sent_at: float | None


# One thing a worker did in an exchange, and when: (time, "submitted as X" | "polled: pending" …).
Step = tuple[float, str]


@dataclass(frozen=True)
class Push:
    """An event frame written to one of the user's WebSocket sessions."""

    calculation_id: UUID
    seq: int
    type: str
    at: float


@dataclass(frozen=True)
class Trail:
    """What the worker and the notifier noted of a calculation beyond its stored rows: each
    exchange's steps by insurer, and each frame pushed to the user's browser."""

    steps: Mapping[str, Sequence[Step]]
    pushes: Sequence[Push]
