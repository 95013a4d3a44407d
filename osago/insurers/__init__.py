"""The insurers we ask: their configuration (the insurers file), the client port with its HTTP
implementation, and the guard (retry, breaker, bulkhead, timeouts) around every call."""

from osago.insurers.catalog import insurers_for, load_insurers
from osago.insurers.client import HttpInsurerClient, InsurerClient, Pending, Quote, read_answer
from osago.insurers.config import FAILURE_KINDS, InsurerConfig

__all__ = [
    "FAILURE_KINDS",
    "HttpInsurerClient",
    "InsurerClient",
    "InsurerConfig",
    "Pending",
    "Quote",
    "insurers_for",
    "load_insurers",
    "read_answer",
]
