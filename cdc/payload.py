"""Request bodies of the ``post-form`` and ``post-json`` endpoint formats.

Built once, at resolve time, and stored in the outbox with the delivery, so every
attempt sends the same bytes (and signs them). Pure: no I/O, no clock.

``post-form``
    VICIdial's request with its query moved into the body: the URL template is rendered
    exactly as for ``get`` (:func:`cdc.template.render`: trim, connection charset, PHP
    ``urlencode``), then split at its first ``?``. The part before is the URL, the
    query (up to a ``#``) is the ``application/x-www-form-urlencoded`` body.

``post-json``
    The ``lead.created`` event, ``application/json`` (UTF-8, compact) built with
    ``orjson``; its contract is ``schemas/lead.created.v1.json``::

        {"id": "<source>:<lead_id>:<endpoint>", "type": "lead.created", "schema_version": 1,
         "occurred_at": "2025-03-04T11:06:07Z", "source": "dialer1", "lead_id": 7, "list_id": 101,
         "data": {"lead": {...every vicidial_list column...},
                  "list": {"list_id": 101, "list_name": ..., "list_description": ..., "campaign_id": ...},
                  "custom_fields": {...non-encrypted custom fields...}}}

    Typed values: integers are numbers; decimals (``gmt_offset_now``) are strings with
    the column's scale (``"-5.00"``, exact, as in the GET request); ``DATE`` is
    ``YYYY-MM-DD``; ``DATETIME`` is ``YYYY-MM-DDTHH:MM:SS`` in the dialer's local time
    (no offset: that is what MariaDB stores); ``TIMESTAMP`` (``modify_date``) is UTC with
    ``Z`` (``null`` when it comes as text, as from a SELECT in an unknown session time
    zone); a date that is not a calendar date (``0000-00-00``, ``1980-00-00``) is
    ``null``; ENUMs are their labels; NULL is ``null``. Text is what VICIdial's PHP
    reads over its connection, as UTF-8 (so a latin1 server's double-encoded
    ``JosÃ©`` is ``José``); bytes that never decoded become U+FFFD.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as _dt
import decimal
import re
from typing import Any, Final

import orjson

from . import charset, template
from .records import ApiLead, Value
from .settings import SettingsSnapshot

__all__ = [
    "EVENT_TYPE",
    "FORM_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "SCHEMA_VERSION",
    "form_request",
    "json_text",
    "json_value",
    "lead_event",
]

EVENT_TYPE: Final = "lead.created"
#: Bumped (with a new ``schemas/lead.created.vN.json``) on any incompatible change.
SCHEMA_VERSION: Final = 1
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE: Final = "application/json"

#: ``vicidial_list`` columns by type, where the Python value alone does not say it.
_DATE_COLUMNS: Final = frozenset({"date_of_birth"})
_DATETIME_COLUMNS: Final = frozenset({"entry_date", "last_local_call_time"})
_TIMESTAMP_COLUMNS: Final = frozenset({"modify_date"})
_ZERO_DATES: Final = frozenset({"0000-00-00", "0000-00-00 00:00:00"})
_SURROGATES: Final = re.compile("[\udc80-\udcff]")
_DATE_TEXT: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_TEXT: Final = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)")


def form_request(url: str) -> tuple[str, bytes]:
    """(URL without its query, the query as a form body) of a rendered VICIdial URL.

    Rendered values are urlencoded, so the first ``?`` is the template's own.
    """
    target, _, rest = url.partition("?")
    query = rest.partition("#")[0]
    return target, query.encode("ascii")


def lead_event(
    lead: ApiLead,
    snapshot: SettingsSnapshot,
    *,
    source: str,
    event_id: str,
    server_charset: str = "latin1",
) -> bytes:
    """The ``post-json`` body for ``lead`` (see the module docstring and the schema)."""
    codec = charset.connection_codec(snapshot.system.use_non_latin, server_charset)
    info = snapshot.list_info(lead.list_id)
    encrypted = {label.lower() for label in snapshot.encrypted_fields(lead.list_id)}
    custom: dict[str, Any] = {}
    if lead.custom is not None:
        for column, value in lead.custom.items():
            if column.lower() == "lead_id" or column.lower() in encrypted:
                continue
            custom[column] = None if value in _ZERO_DATES else json_value(value, codec)
    event = {
        "id": event_id,
        "type": EVENT_TYPE,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": _utc(lead.inserted_at),
        "source": source,
        "lead_id": lead.lead_id,
        "list_id": lead.list_id,
        "data": {
            "lead": {column: _lead_value(column, value, codec) for column, value in lead.lead.items()},
            "list": {
                "list_id": lead.list_id,
                "list_name": json_text(info.list_name, codec) if info is not None else None,
                "list_description": json_text(info.list_description, codec) if info is not None else None,
                "campaign_id": json_text(info.campaign_id, codec) if info is not None else None,
            },
            "custom_fields": custom,
        },
    }
    return orjson.dumps(event)


def _lead_value(column: str, value: Value, codec: str) -> Any:
    if isinstance(value, str):
        # The binlog gives text for zero or partly zero dates only; a SELECT (replay)
        # gives every date as text.
        if column in _DATE_COLUMNS:
            return value if _is_date(value) else None
        if column in _DATETIME_COLUMNS:
            match = _DATETIME_TEXT.fullmatch(value)
            return f"{match[1]}T{match[2]}" if match and _is_date(match[1]) else None
        if column in _TIMESTAMP_COLUMNS:
            return None  # as text it is in the reading session's time zone, unknown here
    if isinstance(value, _dt.datetime) and column in _TIMESTAMP_COLUMNS:
        if value.tzinfo is not None:
            value = value.astimezone(_dt.UTC).replace(tzinfo=None)
        return value.isoformat() + "Z"
    return json_value(value, codec)


def json_value(value: Value, codec: str) -> Any:
    """A normalized column value as a JSON value (see the module docstring)."""
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return json_text(value, codec)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=None).isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    return json_text(template.format_value(value), codec)  # TIME as HH:MM:SS, bytes as latin1


def json_text(text: str, codec: str) -> str:
    """``text`` as VICIdial's PHP reads it over a ``codec`` connection, read as UTF-8.

    On a UTF-8 connection that is the text itself. Over a latin1 connection, PHP gets
    the text's latin1 bytes: when those are UTF-8 (a UTF-8 form stored through a latin1
    connection, ``JosÃ©``), the UTF-8 reading (``José``); otherwise the text as stored.
    Lone surrogates (bytes that never decoded) become U+FFFD: JSON cannot carry them.
    """
    if not text.isascii() and codecs.lookup(codec).name != "utf-8":
        with contextlib.suppress(UnicodeError):
            text = text.encode(codec).decode("utf-8")
    return _SURROGATES.sub("\ufffd", text)


def _is_date(text: str) -> bool:
    """A real calendar date as ``YYYY-MM-DD`` (not ``0000-00-00`` nor ``1980-00-00``)."""
    if not _DATE_TEXT.fullmatch(text):
        return False
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _utc(epoch: int) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
