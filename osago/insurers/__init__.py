"""Insurer client port (with its HTTP implementation) and the insurer simulator."""

from osago.insurers.client import HttpInsurerClient, InsurerClient, Quote

__all__ = ["HttpInsurerClient", "InsurerClient", "Quote"]
