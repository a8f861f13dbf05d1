"""VICIdial's own URL senders (API New Lead URL, schema 1726+, and the other hooks): their two
``vicidial_url_log`` writes (:mod:`.hooks` plays each sender around them).

Before the fetch the PHP inserts the row (``uniqueid`` is the lead_id, the response
empty); after it, an UPDATE sets the response and its duration (``PHP ERROR: ...``
when the fetch failed). The streamer reads these rows to tell what VICIdial sent.
"""

from __future__ import annotations

from ... import vicidial
from .steps import PhpText, Statement

__all__ = ["url_log_insert", "url_log_update"]


def url_log_insert(
    lead_id: int | str,
    url: str,
    text: PhpText,
    *,
    url_type: str = vicidial.URL_TYPE,
    url_date: str | None = None,
) -> Statement:
    """The INSERT VICIdial writes before it fetches ``url`` for ``lead_id`` (another
    sender: its ``url_type`` and ``uniqueid``, and its local time as ``url_date`` for the
    Perl senders, which write it as text; PHP writes ``NOW()``)."""
    date, args = ("NOW()", ()) if url_date is None else ("%s", (url_date,))
    return Statement(
        f"INSERT INTO {vicidial.URL_LOG_TABLE} (uniqueid, url_date, url_type, url, url_response)"
        f" VALUES (%s, {date}, %s, %s, '')",
        (str(lead_id), *args, url_type, text(url)),
    )


def url_log_update(url_log_id: int, url_response: str, response_sec: int, text: PhpText) -> Statement:
    """The UPDATE VICIdial writes once the fetch answered (or failed)."""
    return Statement(
        f"UPDATE {vicidial.URL_LOG_TABLE} SET response_sec=%s, url_response=%s WHERE url_log_id=%s",
        (response_sec, text(url_response), url_log_id),
    )
