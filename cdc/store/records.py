"""The records the state store hands across its boundary (sender, service, operator tools).

Every backend (:mod:`cdc.store.sqlite`, :mod:`cdc.store.memory`) returns these and only
these; nothing outside :mod:`cdc.store` sees a database row.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..records import Delivery

__all__ = [
    "Committed",
    "DeliveryRecord",
    "DeliveryState",
    "EndpointCounts",
    "HandOff",
    "LockWait",
    "StoreStatistics",
    "StoredDelivery",
]


class DeliveryState(enum.StrEnum):
    """Where one stored delivery stands."""

    PENDING = "pending"  # waiting for next_attempt_at
    IN_FLIGHT = "in_flight"  # claimed by the sender, outcome not yet recorded
    DELIVERED = "delivered"  # the endpoint accepted it; pruned after the retention
    DEAD = "dead"  # given up; kept until an operator retries or purges it


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A delivery claimed for sending, with its outbox id."""

    id: int
    delivery: Delivery
    attempts: int  # attempts already recorded before this one
    created_at: float


@dataclass(frozen=True, slots=True)
class HandOff:
    """What the sender can start now, offered to a commit (the limits of a claim).

    The commit inserts the new rows the sender may take at once already in flight and
    returns them, so a lead that arrives while its endpoint has room costs no claim
    transaction. Same meaning as :meth:`~cdc.store.interfaces.Outbox.claim_due`'s
    arguments: at most ``limit`` rows, per endpoint at most its cap (``default_cap``
    for endpoints not in ``caps``; ``None``: no cap), endpoints in turns.
    """

    limit: int
    caps: Mapping[str, int] = field(default_factory=dict)
    default_cap: int | None = None


@dataclass(frozen=True, slots=True)
class Committed:
    """What a commit with a :class:`HandOff` stored and handed to the sender."""

    #: Ids of the rows inserted now, in insertion order (as ``commit_batch`` returns).
    ids: list[int]
    #: New rows inserted in flight, for the sender to start now.
    handed: list[StoredDelivery]
    #: Endpoints of the new rows left pending, due now (no room, blocked, or older due
    #: rows of theirs first): the claim path takes them.
    pending_endpoints: frozenset[str]
    #: Rows the results given with the commit changed (as ``record_attempts`` counts).
    recorded: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """Everything the store knows about one delivery (dead-letter tools, ``status``)."""

    id: int
    delivery: Delivery
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    last_status: int  # HTTP status of the last attempt, 0 when none or no response
    last_error: str  # failure class of the last attempt, "" when none or success
    created_at: float
    updated_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class DeadGroup:
    """Dead letters of one endpoint that failed for one reason (the status page's counts)."""

    endpoint_id: str
    reason: str  # the last attempt's failure class (``http_500``, ``connect``, ...)
    count: int


@dataclass(frozen=True, slots=True)
class DeadSummary:
    """Dead letters by endpoint and reason, and the ones that went dead last."""

    groups: tuple[DeadGroup, ...] = ()
    recent: tuple[DeliveryRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointCounts:
    """Outbox rows of one endpoint by state, read at scrape time."""

    endpoint_id: str
    pending: int = 0
    in_flight: int = 0
    delivered: int = 0
    dead: int = 0
    #: ``created_at`` of the oldest row not yet delivered or dead (pending or in flight:
    #: a row being re-sent is still waiting), or None when there is none.
    oldest_pending_created_at: float | None = None


@dataclass(frozen=True, slots=True)
class LockWait:
    """One write's wait for the state file's write lock, reported to ``on_lock_wait``."""

    action: str  # what the write does ("claim due deliveries", ...)
    waited_s: float  # since the write first asked for the lock
    #: True once the lock is held (reported for every write); False after each
    #: ``busy_timeout_s`` slice that found it taken by another process.
    acquired: bool


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """What one :class:`~cdc.store.sqlite.SqliteStore` connection's writes cost so far."""

    writes: int = 0
    #: The longest this connection held the write lock (one transaction).
    longest_write_s: float = 0.0
    #: ``busy_timeout_s`` slices that found the write lock taken by another process.
    busy_waits: int = 0
    #: The longest a write waited for the lock.
    longest_lock_wait_s: float = 0.0
    #: How long the write in progress has been waiting past its first busy slice (0: none).
    waiting_s: float = 0.0
