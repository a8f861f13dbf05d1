"""VICIdial's own API New Lead URL sender (schema 1726+): its two ``vicidial_url_log`` writes.

Before the fetch the PHP inserts the row (``uniqueid`` is the lead_id, the response
empty); after it, an UPDATE sets the response and its duration (``PHP ERROR: ...``
when the fetch failed). The streamer reads these rows to tell what VICIdial sent.
"""

from __future__ import annotations

from ... import vicidial
from .steps import PhpText, Statement

__all__ = ["url_log_insert", "url_log_update"]


def url_log_insert(lead_id: int, url: str, text: PhpText) -> Statement:
    """The INSERT VICIdial writes before it fetches ``url`` for ``lead_id``."""
    return Statement(
        f"INSERT INTO {vicidial.URL_LOG_TABLE} (uniqueid, url_date, url_type, url, url_response)"
        " VALUES (%s, NOW(), %s, %s, '')",
        (str(lead_id), vicidial.URL_TYPE, text(url)),
    )


def url_log_update(url_log_id: int, url_response: str, response_sec: int, text: PhpText) -> Statement:
    """The UPDATE VICIdial writes once the fetch answered (or failed)."""
    return Statement(
        f"UPDATE {vicidial.URL_LOG_TABLE} SET response_sec=%s, url_response=%s WHERE url_log_id=%s",
        (response_sec, text(url_response), url_log_id),
    )
