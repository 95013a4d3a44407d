"""osago-aggregator: fan an OSAGO quote request out to insurers, push each offer over WebSocket."""

__all__ = ["__version__"]

__version__ = "0.1.0"
