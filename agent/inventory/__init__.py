"""Inventory: which servers to work on, how to reach them, and what each should become."""

from agent.inventory.model import EDITIONS, PERIODS, RELEASES, Endpoint, Host, Inventory, SshSettings

__all__ = ["EDITIONS", "PERIODS", "RELEASES", "Endpoint", "Host", "Inventory", "SshSettings"]
