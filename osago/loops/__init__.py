"""Background loops the roles embed: the outbox relay, the deadline keeper, retention."""

from osago.loops import keeper, relay, retention

__all__ = ["keeper", "relay", "retention"]
