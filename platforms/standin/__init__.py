"""Local stand-ins of the platforms' gateways (SPEC §5.10): see `server` and `shop`."""

from platforms.standin.server import (
    PDD_METHODS,
    TOP_METHODS,
    Refuse,
    StandinGateway,
    pdd_method,
    top_method,
)
from platforms.standin.shop import Faults, StandinShop

__all__ = [
    "PDD_METHODS",
    "TOP_METHODS",
    "Faults",
    "Refuse",
    "StandinGateway",
    "StandinShop",
    "pdd_method",
    "top_method",
]
