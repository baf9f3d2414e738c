"""Stores: one small interface (``Store``), a memory and a Redis implementation, and ``open_store``."""

from streamlimit.store.base import Store
from streamlimit.store.connect import open_store

__all__ = ["Store", "open_store"]
