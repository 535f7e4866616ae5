"""Inventory: which servers to work on, how to reach them, and what each should become."""

from agent.editions import EDITIONS, PERIODS, RELEASES
from agent.inventory.loader import load_inventory
from agent.inventory.model import (
    SECRET_VARS,
    Endpoint,
    Host,
    Inventory,
    Secret,
    SshSettings,
)

__all__ = [
    "EDITIONS",
    "PERIODS",
    "RELEASES",
    "SECRET_VARS",
    "Endpoint",
    "Host",
    "Inventory",
    "Secret",
    "SshSettings",
    "load_inventory",
]
