"""The start of a calculation's life: a validated request becomes what the store keeps."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from osago.domain.request import request_hash
from osago.domain.stub import stub_for
from osago.models import NewCalculation, NewExchange

__all__ = ["Named", "Timing", "accept"]


class Named(Protocol):
    """An insurer as the lifecycle needs it (InsurerConfig is one)."""

    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Timing:
    """How long a user waits, and how long late answers are still shown after that."""

    deadline: float = 60.0
    late_window: float = 120.0


def accept(
    valid: dict[str, Any], insurers: Sequence[Named], *, now: float, timing: Timing
) -> NewCalculation:
    """The calculation for ``valid`` (a validated request body) accepted at ``now``.

    Its id is the client's ``request_id`` when given (the idempotency key end to end); its
    hash tells a replay from another body under the same id; each insurer's exchange gets
    a fresh correlation id, which is how that insurer's answer is matched to the request.
    """
    return NewCalculation(
        id=uuid.UUID(valid["request_id"]) if valid.get("request_id") else uuid.uuid4(),
        user_id=valid["user_id"],
        request=valid,
        created_at=now,
        deadline_at=now + timing.deadline,
        exchanges=tuple(NewExchange(uuid.uuid4(), i.code, i.name) for i in insurers),
        stub=stub_for(valid, timing.deadline),
        request_hash=request_hash(valid),
        closes_at=now + timing.deadline + timing.late_window,
    )
