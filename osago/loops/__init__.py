"""Background loops the roles embed: the outbox relay and the deadline keeper."""

from osago.loops import keeper, relay

__all__ = ["keeper", "relay"]
