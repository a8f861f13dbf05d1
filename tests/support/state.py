"""Read a state file from a test, on a connection of the test's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cdc.store import DeliveryRecord, SqliteStore


def dead_letters(state: Path, **selector: Any) -> list[DeliveryRecord]:
    """Dead letters in a state file (``list_dead`` filters), read on a connection of the test's own.

    A running service's store is one connection owned by its worker thread: a test must
    not call it from another thread while the service uses it.
    """
    store = SqliteStore(state)
    store.open()
    try:
        return store.list_dead(**selector)
    finally:
        store.close()
