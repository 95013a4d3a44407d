"""One insurer's configuration: where it is and how every call to it is protected."""

from __future__ import annotations

from dataclasses import dataclass, field

from osago.errors import AttemptTimeout, InsurerRejected, InsurerUnavailable, ResultRejected
from osago.insurers.schedule import SchedulePolicy
from osago.resilience import BreakerPolicy, BudgetPolicy, BulkheadPolicy, RetryPolicy

__all__ = ["FAILURE_KINDS", "InsurerConfig"]

# What an insurers file may name in ``failures`` (what its breaker counts), and the errors
# each name stands for.
FAILURE_KINDS: dict[str, tuple[type[BaseException], ...]] = {
    "unavailable": (InsurerUnavailable, ResultRejected),
    "timeout": (AttemptTimeout,),
    "rejected": (InsurerRejected,),
}


@dataclass(frozen=True)
class InsurerConfig:
    """One insurer we ask for quotes, and how every call to it is protected."""

    code: str
    name: str
    base_url: str
    # "poll": status GETs on the learned schedule. "long-poll": each status GET asks the
    # insurer to hold it up to long_poll_wait seconds until the answer is ready. "callback":
    # the submit carries callback_url and the insurer POSTs its answer there, signed; a
    # status GET every safety_poll_interval finds an answer whose callback was lost.
    mode: str = "poll"
    long_poll_wait: float = 20.0
    safety_poll_interval: float = 10.0
    # Where this insurer POSTs its answer (callback mode): OSAGO_CALLBACK_URL + the path.
    callback_url: str | None = None
    # After the deadline only late offers remain: poll gently, leaving CPU to what is on time.
    late_poll_interval: float = 2.0
    submit_timeout: float = 5.0
    poll_timeout: float = 2.0
    hedge_delay: float | None = None  # start a second poll if the first takes longer
    # An open breaker is waited for (osago/roles/_patience.py) while it has been open less
    # than this; longer is an outage: the insurer's exchanges are unavailable at once.
    outage_patience: float = 15.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    budget: BudgetPolicy = field(default_factory=BudgetPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    bulkhead: BulkheadPolicy = field(default_factory=BulkheadPolicy)
    schedule: SchedulePolicy = field(default_factory=SchedulePolicy)  # when to poll
    # Errors the breaker counts as failures: unavailable (5xx, transport), timeout, rejected.
    failures: tuple[str, ...] = ("unavailable", "timeout")

    @property
    def long_poll(self) -> bool:
        return self.mode == "long-poll"

    @property
    def callback(self) -> bool:
        """Answers come by callback (a callback URL is known); polls are a safety net."""
        return self.mode == "callback" and self.callback_url is not None

    @property
    def poll_hedge(self) -> float | None:
        """After how long a poll is hedged; None: never. A long poll is held until the answer
        is ready, slow by design, so ``hedge_delay`` (a default for all) skips it."""
        return None if self.long_poll else self.hedge_delay

    @property
    def poll_attempt_timeout(self) -> float:
        """How long one status GET may take: a long poll may be held for its wait."""
        return self.poll_timeout + (self.long_poll_wait if self.long_poll else 0.0)
