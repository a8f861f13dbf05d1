"""The resolver: one :class:`~cdc.records.ApiLead` + settings → deliveries, or why not.

Pure: no I/O, no clock. The URL template comes from
:meth:`SettingsSnapshot.url_for <cdc.settings.SettingsSnapshot.url_for>` (precedence
lives there); tokens are built and rendered by :mod:`cdc.template`, in the connection
charset VICIdial's PHP uses (:func:`cdc.charset.connection_codec`).

VICIdial's length rule (10 characters or fewer → ``URL_TOO_SHORT``) applies to the
template as stored, before ``VAR`` is stripped and tokens are substituted, as
``non_agent_api.php`` does: :meth:`~cdc.settings.SettingsSnapshot.url_for` applies it with
the precedence. The rendered URL is then checked, in this order, and a failing check is
a :class:`~cdc.records.Skipped` with its reason (VICIdial would log a ``PHP ERROR:`` and
deliver nothing):

1. no ``scheme://host`` → ``URL_RELATIVE``;
2. a scheme other than http/https → ``URL_SCHEME``;
3. not a URL we can send as is (non-ASCII, spaces or control characters, an empty or
   malformed host, a bad port) → ``URL_INVALID``.

Whitespace around the whole rendered URL (a trailing newline typed into the admin
screen) is removed first; whitespace inside it makes it invalid.
"""

from __future__ import annotations

import datetime as _dt
import functools
import ipaddress
import re
import urllib.parse
from collections.abc import Collection

from . import charset, template, vicidial
from .records import ApiLead, Delivery, Skipped, SkipReason, Value
from .settings import SettingsSnapshot

METHOD = "GET"
_SCHEME_HOST = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]+)")
_HOST = re.compile(r"[A-Za-z0-9_.-]+")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_SQL_DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_ZERO_DATE = "0000-00-00 00:00:00"

#: Tokens a custom label cannot override (``template.lead_tokens`` fills them first).
_STANDARD_TOKENS = frozenset(template.LEAD_TOKENS) | {
    "list_name",
    "list_description",
    "campaign",
    "sqldate",
    "epoch",
}
#: Written by the custom-field step of ``add_lead`` (``UPDATE … SET entry_list_id``).
_CUSTOM_STEP_TOKENS = frozenset({"entry_list_id"})


def resolve(
    lead: ApiLead,
    snapshot: SettingsSnapshot,
    *,
    source: str,
    endpoint_id: str | None = None,
    server_charset: str = "latin1",
) -> list[Delivery] | Skipped:
    """The request(s) VICIdial's "API New Lead URL" would make for ``lead``.

    ``endpoint_id`` defaults to the URL's ``host:port``: VICIdial's URLs carry no name,
    and the sender limits, pauses and breaks per endpoint. It is taken from the template
    (:func:`endpoint_id_of`), so a host filled with lead data is one endpoint, not one a lead.
    """
    url_template, url_source, reason = snapshot.url_for(lead.list_id)
    if url_template is None or url_source is None:
        return Skipped(lead.lead_id, lead.list_id, reason or SkipReason.NO_URL)
    url = render_url(lead, snapshot, url_template, server_charset=server_charset)
    problem = check_url(url)
    if problem is not None:
        return Skipped(lead.lead_id, lead.list_id, problem)
    return [
        Delivery(
            source=source,
            lead_id=lead.lead_id,
            list_id=lead.list_id,
            endpoint_id=endpoint_id or endpoint_id_of(url_template, url),
            method=METHOD,
            url=url,
            url_source=url_source,
            inserted_at=lead.inserted_at,
        )
    ]


def render_url(
    lead: ApiLead, snapshot: SettingsSnapshot, url_template: str, *, server_charset: str = "latin1"
) -> str:
    """``url_template`` rendered for ``lead`` as VICIdial renders its URL (outer whitespace removed)."""
    info = snapshot.list_info(lead.list_id)
    tokens = template.lead_tokens(
        lead.lead,
        list_name=info.list_name if info is not None else "",
        list_description=info.list_description if info is not None else "",
        campaign=info.campaign_id if info is not None else "",
        custom=lead.custom,
        # Read only with custom fields: most leads have none, and this builds a set.
        encrypted_fields=snapshot.encrypted_fields(lead.list_id) if lead.custom is not None else frozenset(),
        sql_date=sql_date(lead.lead.get("entry_date"), lead.inserted_at),
        epoch=lead.inserted_at,
        only=template.token_names(url_template),
    )
    codec = charset.connection_codec(snapshot.system.use_non_latin, server_charset)
    return template.render(url_template, tokens, codec).strip()


def endpoint_id_of(url_template: str, url: str) -> str:
    """The ``host:port`` endpoint id of a URL rendered from ``url_template``.

    When tokens fill the template's authority (``http://--A--phone_number--B--.example/``)
    the rendered host differs per lead; the id is then the template's own
    ``host:port`` (``--a--phone_number--b--.example:80``): one id, one metric label value
    and one set of limits per template. Otherwise it is the rendered URL's, as before.
    """
    raw = vicidial.strip_var(url_template)
    match = _SCHEME_HOST.match(raw.strip())
    if match is not None and template.token_names(match.group(2)):
        return _origin(match.group(1), match.group(2))[1]
    return origin_of(url)[1]


#: The endpoint id of VICIdial-logged URLs beyond :class:`EndpointIds`' bound.
OVERFLOW_ENDPOINT = "other"


class EndpointIds:
    """``host:port`` ids of URLs whose template is unknown (VICIdial's own sends, read
    from ``vicidial_url_log``), at most ``limit`` distinct: later hosts share
    :data:`OVERFLOW_ENDPOINT`, so lead data in a host cannot grow the label set."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def of(self, url: str) -> str:
        host_port = origin_of(url)[1]
        if host_port in self._seen:
            return host_port
        if len(self._seen) >= self._limit:
            return OVERFLOW_ENDPOINT
        self._seen.add(host_port)
        return host_port


def origin_of(url: str) -> tuple[str, str]:
    """(``scheme://host:port``, ``host:port``) of a URL; the label never holds a path."""
    match = _SCHEME_HOST.match(url)
    if match is not None:
        return _origin(match.group(1), match.group(2))
    return _origin_uncached(url)


@functools.lru_cache(maxsize=4096)
def _origin(scheme: str, netloc: str) -> tuple[str, str]:
    """:func:`origin_of` depends on the scheme and authority only: one parse per endpoint."""
    return _origin_uncached(f"{scheme}://{netloc}/")


def _origin_uncached(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        port = 0
    host = (parts.hostname or "").lower()
    host_port = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{host_port}", host_port


#: The error of a delivery refused because its URL's origin is not one its endpoint allows.
ORIGIN_REFUSED = "origin_refused"


def origin_refusal(url: str, allowed: Collection[str]) -> str | None:
    """Why ``url`` may not carry its endpoint's secrets (``origin_refused <origin>``), or None.

    ``allowed`` are ``scheme://host:port`` origins; empty means the endpoint allows any.
    The reason names the origin only, never the path or query.
    """
    if not allowed:
        return None
    origin = origin_of(url)[0]
    return None if origin in allowed else f"{ORIGIN_REFUSED} {origin}"


def check_url(url: str) -> SkipReason | None:
    """Why a rendered URL cannot be sent, or ``None`` (the length rule is the template's)."""
    match = _SCHEME_HOST.match(url)
    if match is None:
        return SkipReason.URL_RELATIVE
    if match.group(1).lower() not in ("http", "https"):
        return SkipReason.URL_SCHEME
    if not url.isascii() or _CONTROL_OR_SPACE.search(url) is not None:
        return SkipReason.URL_INVALID
    return _authority_problem(match.group(2))


@functools.lru_cache(maxsize=4096)
def _authority_problem(netloc: str) -> SkipReason | None:
    """The host and port checks of :func:`check_url`: they see only the authority."""
    try:
        parts = urllib.parse.urlsplit(f"http://{netloc}/")
        parts.port  # noqa: B018 - raises ValueError for a non-numeric or out-of-range port
        host = parts.hostname or ""
        if ":" in host:
            ipaddress.IPv6Address(host)  # bracketed literal; raises ValueError when bad
        elif not _HOST.fullmatch(host):
            return SkipReason.URL_INVALID
    except ValueError:
        return SkipReason.URL_INVALID
    return None


def sql_date(entry_date: Value, inserted_at: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` of the lead's insert, in the server's local time.

    ``entry_date`` is a DATETIME (server wall time, as VICIdial wrote it); when it is
    missing or a zero date, ``inserted_at`` (binlog epoch) in this process's local
    time, which the deployment keeps equal to the server's.
    """
    if isinstance(entry_date, _dt.datetime):
        if entry_date.year < 1000:  # strftime does not pad such a year to four digits
            return entry_date.strftime("%Y-%m-%d %H:%M:%S")
        e = entry_date
        return f"{e.year}-{e.month:02d}-{e.day:02d} {e.hour:02d}:{e.minute:02d}:{e.second:02d}"
    if isinstance(entry_date, str) and _SQL_DATE.fullmatch(entry_date) and entry_date != _ZERO_DATE:
        return entry_date
    return _dt.datetime.fromtimestamp(inserted_at).strftime("%Y-%m-%d %H:%M:%S")


def needs_custom(snapshot: SettingsSnapshot, list_id: int) -> bool:
    """True when a lead of ``list_id`` must wait for the custom-field step of add_lead.

    That is: custom fields are enabled, the list has some, and its URL template uses a
    token that step writes (a custom field label, or ``entry_list_id``). The
    :class:`~cdc.detect.Detector` then holds the lead until the step is over.
    """
    url_template = snapshot.url_for(list_id)[0]
    return url_template is not None and template_needs_custom(snapshot, list_id, url_template)


def template_needs_custom(snapshot: SettingsSnapshot, list_id: int, url_template: str) -> bool:
    """:func:`needs_custom` for a given template (a named endpoint's own URL)."""
    if not snapshot.system.custom_fields_enabled:
        return False
    fields = snapshot.custom_fields(list_id)
    if not fields:
        return False
    names = {name.lower() for name in template.token_names(url_template)}
    if names & _CUSTOM_STEP_TOKENS:
        return True
    return any(
        f.label.lower() in names
        for f in fields
        if f.label not in vicidial.ADD_LEAD_FIELDS and f.label.lower() not in _STANDARD_TOKENS
    )
