"""VICIdial's URL substitution for "API New Lead URL", reproduced byte for byte.

A leading ``VAR`` is stripped; each ``--A--name--B--`` token (case-insensitive) becomes
the value PHP would read from MariaDB: ``trim()``med, encoded into the PHP connection
charset (``cdc.charset.encode_for_connection``), then ``urlencode()``d. A token with no
value source stays exactly as typed. Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import functools
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from . import vicidial
from .charset import MARIADB_LATIN1, encode_for_connection
from .records import Value

__all__ = [
    "LEAD_TOKENS",
    "format_value",
    "lead_tokens",
    "php_trim",
    "php_urlencode",
    "render",
    "token_names",
]

#: Token name (lower case) -> ``vicidial_list`` column it reads.
LEAD_TOKENS: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{
            column: column
            for column in (
                "lead_id",
                "list_id",
                "entry_list_id",
                "phone_code",
                "phone_number",
                "title",
                "first_name",
                "middle_initial",
                "last_name",
                "address1",
                "address2",
                "address3",
                "city",
                "state",
                "province",
                "postal_code",
                "country_code",
                "gender",
                "date_of_birth",
                "alt_phone",
                "email",
                "security_phrase",
                "comments",
                "called_count",
                "rank",
                "owner",
                "source_id",
                "status",
                "entry_date",
                "gmt_offset_now",
                "user",
            )
        },
        "vendor_lead_code": "vendor_lead_code",
        "vendor_id": "vendor_lead_code",
        "phone": "phone_number",
    }
)

#: PHP ``urlencode()`` of each byte: RFC 1738 unreserved minus ``~``, space as ``+``.
_SAFE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_SAFE_BYTES: Final = bytes(sorted(_SAFE))
_URLENCODED: Final[tuple[str, ...]] = tuple(
    chr(b) if b in _SAFE else "+" if b == 0x20 else f"%{b:02X}" for b in range(256)
)

#: PHP ``trim()``'s default character set.
_PHP_TRIM: Final = " \t\n\r\0\x0b"

#: VICIdial replaces each token with ``preg_replace('/--A--name--B--/i', ...)``, so the
#: whole token, markers included, matches case-insensitively.
_TOKEN_RE: Final = re.compile(r"--A--([0-9A-Za-z_]+)--B--", re.IGNORECASE)


def php_urlencode(data: bytes) -> str:
    """PHP ``urlencode()``: works on bytes, so one UTF-8 character gives several ``%XX``."""
    if not data.rstrip(_SAFE_BYTES):  # nothing to encode (digits, most names): stays as is
        return data.decode("ascii")
    # One character per byte, each replaced by its encoding from the table (in C).
    return data.decode("latin-1").translate(_URLENCODED)


def php_trim(text: str) -> str:
    """PHP ``trim()`` with its default set (not Python's whitespace: NBSP, ``\\f`` stay)."""
    return text.strip(_PHP_TRIM)


def format_value(value: Value) -> str:
    """The text PHP gets for a column value from a MySQL ``SELECT`` (text protocol)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, decimal.Decimal):
        return format(value, "f")  # fixed point at the column's scale: -6.00
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, _dt.datetime):
        return _format_datetime(value)
    if isinstance(value, _dt.date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if isinstance(value, _dt.timedelta):
        return _format_time(value)
    return value.decode(MARIADB_LATIN1)


def lead_tokens(
    lead: Mapping[str, Value],
    *,
    list_name: str,
    list_description: str,
    campaign: str,
    custom: Mapping[str, Value] | None,
    encrypted_fields: frozenset[str],
    sql_date: str,
    epoch: int,
    only: frozenset[str] | None = None,
) -> dict[str, str]:
    """Token name (lower case) -> formatted value, for one lead; not trimmed or encoded.

    Only tokens with a value source are present, so the others stay literal. Custom
    field tokens exist only when ``custom`` (the ``custom_<list_id>`` row the same
    ``add_lead`` inserted) is given; encrypted fields hold ciphertext, so they are
    empty. A custom label never overrides a standard token (VICIdial substitutes the
    standard ones first). ``only`` (a template's :func:`token_names`) limits the
    standard tokens to those a template uses: formatting every column of every lead
    for a URL that names five of them is most of the rendering time.
    """
    tokens: dict[str, str] = {}
    for token, column in LEAD_TOKENS.items() if only is None else _lead_tokens_in(only):
        if column in lead:
            tokens[token] = format_value(lead[column])
    tokens["list_name"] = list_name
    tokens["list_description"] = list_description
    tokens["campaign"] = campaign
    tokens["sqldate"] = sql_date
    tokens["epoch"] = str(epoch)
    if custom is not None:
        encrypted = {label.lower() for label in encrypted_fields}
        for column, value in custom.items():
            label = column.lower()
            if label == "lead_id" or label in tokens or (only is not None and label not in only):
                continue
            tokens[label] = "" if label in encrypted else format_value(value)
    return tokens


def render(template: str, tokens: Mapping[str, str], codec: str) -> str:
    """The URL VICIdial requests: ``template`` with every known token substituted.

    ``tokens`` is keyed by lower-case name (see :func:`lead_tokens`); ``codec`` is the
    PHP connection's (``cdc.charset.connection_codec``). The result is ASCII.
    """
    head, parts = _parsed(template)
    out = [head]
    for name, typed, after in parts:
        value = tokens.get(name)
        out.append(typed if value is None else php_urlencode(encode_for_connection(php_trim(value), codec)))
        out.append(after)
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def _parsed(template: str) -> tuple[str, tuple[tuple[str, str, str], ...]]:
    """A template (``VAR`` stripped) cut at its tokens, once per template, not per lead.

    Returns the text before the first token and, per token, (lower-case name, the token
    as typed, the text after it up to the next token). The cut is ``_TOKEN_RE``'s own
    matches, so :func:`render` substitutes exactly what ``_TOKEN_RE.sub`` would; a token
    with no value source stays as typed.
    """
    template = vicidial.strip_var(template)
    matches = list(_TOKEN_RE.finditer(template))
    head = template[: matches[0].start()] if matches else template
    parts = tuple(
        (
            match.group(1).lower(),
            match.group(0),
            template[match.end() : matches[k + 1].start() if k + 1 < len(matches) else len(template)],
        )
        for k, match in enumerate(matches)
    )
    return head, parts


@functools.lru_cache(maxsize=256)
def _lead_tokens_in(only: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """The (token, column) pairs of :data:`LEAD_TOKENS` a template uses, in their order."""
    return tuple((token, column) for token, column in LEAD_TOKENS.items() if token in only)


@functools.lru_cache(maxsize=1024)
def token_names(template: str) -> frozenset[str]:
    """Lower-case names of the tokens a template uses (e.g. does it need custom fields?)."""
    return frozenset(name.lower() for name in _TOKEN_RE.findall(template))


def _format_float(value: float) -> str:
    # MariaDB prints the shortest round-trip form and no ".0" on whole numbers.
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _format_datetime(value: _dt.datetime) -> str:
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    # DATETIME(0), VICIdial's type, has no fraction; a DATETIME(n) value keeps one.
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


def _format_time(value: _dt.timedelta) -> str:
    # MySQL TIME: signed, hours may exceed 24 (-838:59:59 .. 838:59:59).
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    text = f"{sign}{hours:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{fraction:06d}" if fraction else text
