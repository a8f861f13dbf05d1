"""Typed records that cross module boundaries.

Nothing after ``binlog`` sees a library row dict: rows travel as :class:`RowChange`,
whose values are already normalized (text decoded with the column charset, ENUM labels,
zero dates as text, decimals as :class:`decimal.Decimal`).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

#: A normalized column value. ``str`` may hold lone surrogates (U+DC80..U+DCFF) for
#: bytes that did not decode in the column charset (``surrogateescape``): the original
#: bytes are recoverable, and :func:`has_undecodable` reports them.
Value = str | int | float | decimal.Decimal | _dt.datetime | _dt.date | _dt.timedelta | bytes | None


class Op(enum.StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A binlog position at an event-group end: where a restart resumes.

    ``gtid`` is the MariaDB GTID of the group (``domain-server-seq``) when known.
    Positions order by (file, pos); binlog file names sort in creation order.
    """

    file: str
    pos: int
    gtid: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row of one rows event of a watched table."""

    schema: str
    table: str
    op: Op
    before: Mapping[str, Value] | None
    after: Mapping[str, Value] | None
    #: Binlog event timestamp (server clock, Unix seconds).
    timestamp: int
    #: Connection thread id of the event group (from its COMMIT/BEGIN Query event), or 0.
    thread_id: int = 0
    #: Position of the event itself (not a resumable position).
    log_file: str = ""
    log_pos: int = 0

    @property
    def values(self) -> Mapping[str, Value]:
        """The row image that exists after the change (before-image for deletes)."""
        image = self.after if self.after is not None else self.before
        assert image is not None
        return image


@dataclass(frozen=True, slots=True)
class GroupEnd:
    """An event group ended at ``position``: everything before it may be checkpointed."""

    position: Position
    timestamp: int
    thread_id: int = 0


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A DDL statement touched a watched table; cached column info must be reloaded."""

    schema: str
    table: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class UnreadableRows:
    """Rows of a watched table that the reader could not decode, in place of their RowChanges.

    The reader emits it instead of stopping the whole stream when one table's rows cannot
    be read (``reason``: a :class:`cdc.errors.ReaderFault` value, e.g. ``table_unreadable``
    for a ``custom_<list_id>`` table the account has no SELECT on). The rows are not lost:
    whatever depends on them is held and fetched by SELECT once the table is readable.
    """

    schema: str
    table: str
    op: Op
    count: int
    reason: str
    timestamp: int
    thread_id: int = 0
    log_file: str = ""
    log_pos: int = 0


#: What the reader hands to the pipeline, in binlog order.
SourceItem = RowChange | GroupEnd | SchemaChange | UnreadableRows


@dataclass(frozen=True, slots=True)
class ApiLead:
    """A ``vicidial_list`` row inserted by the non-agent API's ``add_lead``.

    ``lead`` is the row as it stands when the lead is released (later UPDATEs within
    the detection window, such as ``entry_list_id``, already applied). ``custom`` is
    the ``custom_<list_id>`` row inserted by the same call, or ``None``.
    """

    lead_id: int
    list_id: int
    lead: Mapping[str, Value]
    custom: Mapping[str, Value] | None
    #: Binlog timestamp of the ``vicidial_list`` insert (Unix seconds).
    inserted_at: int
    #: Monotonic-clock time when the reader handed over the insert, for latency metrics.
    seen_monotonic: float = 0.0
    thread_id: int = 0


class SkipReason(enum.StrEnum):
    """Why a ``vicidial_list`` insert produced no delivery. Every skip is counted."""

    NOT_API = "not_api"  # no add_lead/SUCCESS api_log row within the window
    UPDATE_LEAD_INSERT = "update_lead_insert"  # update_lead insert_if_not_found
    NO_URL = "no_url"  # neither list nor system defines a URL
    LIST_DISABLED = "list_disabled"  # list value ---DISABLED---
    URL_TOO_SHORT = "url_too_short"  # resolved URL of 10 characters or fewer
    URL_RELATIVE = "url_relative"  # no scheme/host
    URL_SCHEME = "url_scheme"  # not http or https
    URL_INVALID = "url_invalid"  # cannot be parsed as a URL
    OVERFLOW = "overflow"  # pending buffer full: the oldest unmatched insert was evicted
    VICIDIAL_SENDS = "vicidial_sends"  # watch/auto mode: VICIdial's own sender sends this lead


class UrlSource(enum.StrEnum):
    """Where a resolved URL template came from."""

    CONFIG_LIST = "config_list"
    CONFIG_SYSTEM = "config_system"
    VICIDIAL_LIST = "vicidial_list"
    VICIDIAL_SYSTEM = "vicidial_system"
    #: The exact URL VICIdial's own sender logged in ``vicidial_url_log`` and failed to send.
    VICIDIAL_RETRY = "vicidial_retry"
    #: The exact URL another VICIdial hook (dispo, start, ...) logged and failed or never
    #: completed: ``lead_id`` is its ``url_log_id`` (:mod:`cdc.hooks`).
    VICIDIAL_HOOK = "vicidial_hook"
    #: No URL: a dead letter of a lead whose processing raised (recover with ``replay``).
    UNRESOLVED = "unresolved"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One HTTP request to make for one lead: what the outbox stores and the sender sends."""

    source: str  # the streamer's source name (one per VICIdial database)
    lead_id: int
    list_id: int
    endpoint_id: str  # short name, used as metric label and outbox key
    method: str  # "GET" for VICIdial-compatible requests
    url: str  # fully rendered, percent-encoded, ASCII
    url_source: UrlSource
    #: Binlog timestamp of the lead insert (Unix seconds).
    inserted_at: int
    body: bytes = b""
    content_type: str = ""
    #: Why it must not be sent (e.g. ``origin_refused https://evil.example:443``): the
    #: outbox stores it as a dead letter at once, with this as its error. "" to send.
    refused: str = ""

    @property
    def idempotency_key(self) -> str:
        """Stable per (source, lead, endpoint): retries and re-reads carry the same key."""
        return f"{self.source}:{self.lead_id}:{self.endpoint_id}"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A lead that resolved to no delivery, with why."""

    lead_id: int
    list_id: int
    reason: SkipReason
    #: The endpoint that skips the lead when a lead fans out to several ("" otherwise).
    endpoint_id: str = ""


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of sending one delivery once."""

    delivery_id: int
    outcome: Outcome
    status: int  # HTTP status, 0 when no response
    error: str  # short class of failure ("timeout", "connect", ...), "" on success
    duration_s: float


def has_undecodable(value: Value) -> bool:
    """True when a text value carries bytes that did not decode (surrogate escapes)."""
    if not isinstance(value, str):
        return False
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def as_text(value: Value) -> str:
    """A column value as text; bytes (charset unknown to the reader) decoded as UTF-8, losslessly.

    Undecodable bytes become surrogate escapes (see :func:`has_undecodable`), never ``?``:
    a URL or a name read as bytes keeps every byte.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)


def as_int(value: Value) -> int | None:
    """A column value as an integer (ids, versions, counts: ASCII digits in text), else ``None``.

    A bool is not an id, and a float or a signed text is not one either.
    """
    if isinstance(value, int):
        return None if isinstance(value, bool) else value
    if value is None:
        return None
    text = as_text(value).strip()
    return int(text) if text.isascii() and text.isdigit() else None
