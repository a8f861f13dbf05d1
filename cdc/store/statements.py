"""The outbox's SQL statements and how a row becomes a :class:`DeliveryRecord` (SQLite backend)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ..records import Delivery, Outcome, UrlSource
from ..resolve import origin_of
from .records import DeliveryRecord, DeliveryState

__all__ = [
    "COLUMNS",
    "INSERT",
    "NEW_ROWS",
    "PENDING_ENDPOINTS",
    "RECORD_SQL",
    "SAVE_CHECKPOINT",
    "SELECT_DUE",
    "SELECT_DUE_FOR_ENDPOINT",
    "SELECT_DUE_KEYS_FOR_ENDPOINT",
    "dead_filter",
    "insert_params",
    "record_of",
    "url_origin",
]

COLUMNS: Final = (
    "id, source, lead_id, list_id, endpoint_id, method, url, url_source, inserted_at,"
    " body, content_type, state, attempts, next_attempt_at, last_status, last_error,"
    " created_at, updated_at, delivered_at"
)
INSERT: Final = (
    "INSERT INTO delivery (source, lead_id, endpoint_id, list_id, method, url, body,"
    " content_type, url_source, inserted_at, idempotency_key, state, attempts,"
    " next_attempt_at, last_status, last_error, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, ?, ?, ?)"
    " ON CONFLICT (source, lead_id, endpoint_id) DO NOTHING"
)
SAVE_CHECKPOINT: Final = (
    "INSERT INTO checkpoint (id, file, pos, gtid, updated_at) VALUES (1, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET file = excluded.file, pos = excluded.pos,"
    " gtid = excluded.gtid, updated_at = excluded.updated_at"
)
SELECT_DUE: Final = (
    f"SELECT {COLUMNS} FROM delivery WHERE state = 'pending' AND next_attempt_at <= ?"
    " ORDER BY next_attempt_at, id LIMIT ?"
)
SELECT_DUE_FOR_ENDPOINT: Final = (
    f"SELECT {COLUMNS} FROM delivery INDEXED BY delivery_endpoint"
    " WHERE state = 'pending' AND endpoint_id = ? AND next_attempt_at <= ?"
    " ORDER BY next_attempt_at, id LIMIT ?"
)
SELECT_DUE_KEYS_FOR_ENDPOINT: Final = (
    "SELECT id, next_attempt_at FROM delivery INDEXED BY delivery_endpoint"
    " WHERE state = 'pending' AND endpoint_id = ? AND next_attempt_at <= ?"
    " ORDER BY next_attempt_at, id LIMIT ?"
)
#: The rows a commit inserted: those above the largest id before it (one writer).
NEW_ROWS: Final = "SELECT id, state, source, lead_id, endpoint_id FROM delivery WHERE id > ? ORDER BY id"
# A loose index scan: one index seek per distinct endpoint, however many rows wait.
PENDING_ENDPOINTS: Final = """
    WITH RECURSIVE ep(endpoint_id) AS (
        SELECT MIN(endpoint_id) FROM delivery WHERE state = 'pending'
        UNION ALL
        SELECT (SELECT MIN(endpoint_id) FROM delivery
                WHERE state = 'pending' AND endpoint_id > ep.endpoint_id)
        FROM ep WHERE ep.endpoint_id IS NOT NULL
    )
    SELECT endpoint_id FROM ep WHERE endpoint_id IS NOT NULL"""
_SET_ATTEMPT: Final = (
    "attempts = attempts + 1, last_status = ?, last_error = ?, updated_at = ?"
    " WHERE id = ? AND state = 'in_flight'"
)
RECORD_SQL: Final[dict[Outcome, str]] = {
    # A delivered row keeps no lead data: its URL shrinks to scheme://host[:port] and its
    # body goes; ids, endpoint, status and times stay (dedup, status, dlq show).
    Outcome.DELIVERED: (
        "UPDATE delivery SET state = 'delivered', delivered_at = ?, url = cdc_url_origin(url),"
        f" body = X'', {_SET_ATTEMPT}"
    ),
    Outcome.RETRY: f"UPDATE delivery SET state = 'pending', next_attempt_at = ?, {_SET_ATTEMPT}",
    Outcome.DEAD: f"UPDATE delivery SET state = 'dead', {_SET_ATTEMPT}",
}


def url_origin(url: str) -> str:
    """``scheme://host:port`` of a stored URL: what a delivered row keeps of it."""
    return origin_of(url)[0]


def insert_params(d: Delivery, now: float, *, in_flight: bool = False) -> tuple[Any, ...]:
    """``in_flight``: handed to the sender by the commit itself (never for a refused one)."""
    state = DeliveryState.IN_FLIGHT if in_flight else DeliveryState.PENDING
    return (
        d.source,
        d.lead_id,
        d.endpoint_id,
        d.list_id,
        d.method,
        d.url,
        d.body,
        d.content_type,
        d.url_source.value,
        d.inserted_at,
        d.idempotency_key,
        # A delivery refused at routing (its URL's origin) is a dead letter from the start.
        DeliveryState.DEAD.value if d.refused else state.value,
        now,
        d.refused,
        now,
        now,
    )


def record_of(row: Sequence[Any]) -> DeliveryRecord:
    (
        delivery_id,
        source,
        lead_id,
        list_id,
        endpoint_id,
        method,
        url,
        url_source,
        inserted_at,
        body,
        content_type,
        state,
        attempts,
        next_attempt_at,
        last_status,
        last_error,
        created_at,
        updated_at,
        delivered_at,
    ) = row
    delivery = Delivery(
        source=source,
        lead_id=lead_id,
        list_id=list_id,
        endpoint_id=endpoint_id,
        method=method,
        url=url,
        url_source=UrlSource(url_source),
        inserted_at=inserted_at,
        body=bytes(body),
        content_type=content_type,
    )
    return DeliveryRecord(
        id=delivery_id,
        delivery=delivery,
        state=DeliveryState(state),
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        last_status=last_status,
        last_error=last_error,
        created_at=created_at,
        updated_at=updated_at,
        delivered_at=delivered_at,
    )


def dead_filter(
    endpoint_id: str | None, lead_id: int | None, older_than: float | None
) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause (placeholders only) selecting dead rows by the given filters."""
    clauses = ["state = 'dead'"]
    params: list[Any] = []
    if endpoint_id is not None:
        clauses.append("endpoint_id = ?")
        params.append(endpoint_id)
    if lead_id is not None:
        clauses.append("lead_id = ?")
        params.append(lead_id)
    if older_than is not None:
        clauses.append("updated_at < ?")
        params.append(older_than)
    return " AND ".join(clauses), tuple(params)
