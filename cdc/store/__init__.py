"""The state store: the outbox, the checkpoint and what else survives a restart.

Interfaces by role (:mod:`cdc.store.interfaces`), the records they exchange
(:mod:`cdc.store.records`), the SQLite backend (:mod:`cdc.store.sqlite`) and its async
face (:mod:`cdc.store.asyncstore`). The in-memory backend for unit tests,
:mod:`cdc.store.memory`, is imported from there.
"""

from .asyncstore import AsyncStore
from .fairness import cap_of, fair_merge
from .interfaces import (
    OPERATOR_BATCH_ROWS,
    AsyncMetadata,
    AsyncOutbox,
    DeadLetters,
    Metadata,
    Outbox,
    OutboxStatistics,
    Retention,
    SchemaHistory,
    StateStore,
)
from .migrations import SCHEMA_VERSION
from .records import (
    Committed,
    DeadGroup,
    DeadSummary,
    DeliveryRecord,
    DeliveryState,
    EndpointCounts,
    HandOff,
    LockWait,
    StoredDelivery,
    StoreStatistics,
)
from .sqlite import SqliteStore

__all__ = [
    "OPERATOR_BATCH_ROWS",
    "SCHEMA_VERSION",
    "AsyncMetadata",
    "AsyncOutbox",
    "AsyncStore",
    "Committed",
    "DeadGroup",
    "DeadLetters",
    "DeadSummary",
    "DeliveryRecord",
    "DeliveryState",
    "EndpointCounts",
    "HandOff",
    "LockWait",
    "Metadata",
    "Outbox",
    "OutboxStatistics",
    "Retention",
    "SchemaHistory",
    "SqliteStore",
    "StateStore",
    "StoreStatistics",
    "StoredDelivery",
    "cap_of",
    "fair_merge",
]
