"""Table maps and row images, decoded from raw binlog bytes for :mod:`cdc.reader.raw`.

Pure, no I/O. :func:`parse_table_map` reads a ``TABLE_MAP`` event body (column types,
per-type metadata and the optional metadata MariaDB writes with
``binlog_row_metadata``); :func:`build_decoder` turns it, plus column info from
``information_schema`` where the binlog lacks it, into a :class:`RowDecoder` made of
one small closure per column, prepared once per table definition and reused for
every row. Values are normalized exactly as :mod:`cdc.reader.library` normalizes the
library's: text decoded losslessly with the column's charset (``bytes`` for binary
columns), ENUM and SET labels, ``Decimal`` with its scale, zero dates as text,
TIMESTAMP as a naive UTC ``datetime`` (the library's choice). Three deliberate
differences, where the library loses data or type: a date with a zero month or day
(``1980-00-00``, legal under VICIdial's non-strict ``sql_mode``) stays that text
instead of becoming ``0000-00-00``; SET labels come from ``information_schema`` when
the binlog does not carry them (the library then reports every SET as empty); and an
empty binary value is ``b""`` like every other binary value (the library's is ``""``,
because Python decodes ``b""`` without looking the codec up).

Formats: MySQL's ``libbinlogevents`` (``Table_map_log_event``, ``Rows_log_event``,
``my_time.cc``, ``decimal.c``) and MariaDB's ``log_event.h``.
"""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from pymysqlreplication.constants import CHARSET

from .. import charset
from ..records import Value, has_undecodable

__all__ = [
    "ColumnFacts",
    "ColumnSpec",
    "RowDecoder",
    "TableMap",
    "UnsupportedColumnError",
    "build_decoder",
    "column_specs",
    "parse_table_map",
]

# Column types as they appear in a TABLE_MAP event (MySQL's enum_field_types).
T_DECIMAL: Final = 0
T_TINY: Final = 1
T_SHORT: Final = 2
T_LONG: Final = 3
T_FLOAT: Final = 4
T_DOUBLE: Final = 5
T_NULL: Final = 6
T_TIMESTAMP: Final = 7
T_LONGLONG: Final = 8
T_INT24: Final = 9
T_DATE: Final = 10
T_TIME: Final = 11
T_DATETIME: Final = 12
T_YEAR: Final = 13
T_NEWDATE: Final = 14
T_VARCHAR: Final = 15
T_BIT: Final = 16
T_TIMESTAMP2: Final = 17
T_DATETIME2: Final = 18
T_TIME2: Final = 19
T_JSON: Final = 245
T_NEWDECIMAL: Final = 246
T_ENUM: Final = 247
T_SET: Final = 248
T_TINY_BLOB: Final = 249
T_MEDIUM_BLOB: Final = 250
T_LONG_BLOB: Final = 251
T_BLOB: Final = 252
T_VAR_STRING: Final = 253
T_STRING: Final = 254
T_GEOMETRY: Final = 255

_NUMERIC: Final = frozenset(
    {T_TINY, T_SHORT, T_INT24, T_LONG, T_LONGLONG, T_NEWDECIMAL, T_FLOAT, T_DOUBLE, T_YEAR}
)
#: Columns whose charset the optional metadata lists (as the library counts them on MariaDB).
_CHARACTER: Final = frozenset({T_STRING, T_VAR_STRING, T_VARCHAR, T_BLOB, T_GEOMETRY})
#: Column types whose values are text in a charset (the library's ``_TEXT_TYPES``).
_TEXT: Final = frozenset({T_VARCHAR, T_VAR_STRING, T_STRING, T_BLOB})
_META_1: Final = frozenset(
    {T_FLOAT, T_DOUBLE, T_BLOB, T_GEOMETRY, T_JSON, T_TIMESTAMP2, T_DATETIME2, T_TIME2}
)
_META_2: Final = frozenset({T_VARCHAR, T_BIT, T_NEWDECIMAL, T_VAR_STRING, T_STRING, T_ENUM, T_SET})

# Optional metadata field types (MySQL 8.0.1+, MariaDB 10.5+).
_OM_SIGNEDNESS: Final = 1
_OM_DEFAULT_CHARSET: Final = 2
_OM_COLUMN_CHARSET: Final = 3
_OM_COLUMN_NAME: Final = 4
_OM_SET_STR_VALUE: Final = 5
_OM_ENUM_STR_VALUE: Final = 6
_OM_ENUM_AND_SET_DEFAULT_CHARSET: Final = 10
_OM_ENUM_AND_SET_COLUMN_CHARSET: Final = 11

_EPOCH: Final = dt.datetime(1970, 1, 1)
_DIG2BYTES: Final = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_ZERO_DATE: Final = "0000-00-00"
_ZERO_DATETIME: Final = "0000-00-00 00:00:00"
#: Distinct values a DECIMAL column's decoder keeps before it starts over.
_DECIMAL_MEMO: Final = 1024

#: The decode of one column: (buffer, offset) -> (value, offset after it).
ColumnDecoder = Callable[[bytes, int], tuple[Value, int]]


class UnsupportedColumnError(ValueError):
    """A watched table has a column type the fast decoder does not read."""


@dataclass(frozen=True, slots=True)
class TableMap:
    """A parsed TABLE_MAP event body. ``signature`` identifies the table definition."""

    table_id: int
    schema: str
    table: str
    types: tuple[int, ...]  # after the ENUM/SET real-type substitution
    metas: tuple[int, ...]  # per-column metadata, packed as the event carries it
    signature: bytes
    unsigned: tuple[bool, ...] | None = None
    charsets: tuple[int | None, ...] | None = None  # collation id per column (None: not text)
    names: tuple[str, ...] | None = None
    enum_labels: tuple[tuple[bytes, ...], ...] | None = None  # per ENUM column, in order
    set_labels: tuple[tuple[bytes, ...], ...] | None = None  # per SET column, in order
    enum_set_charsets: tuple[int | None, ...] | None = None  # collation id per column (ENUM/SET)


class ColumnFacts(Protocol):
    """What the decoder reads of :class:`cdc.reader.schemahistory.ColumnInfo` (``information_schema``)."""

    @property
    def name(self) -> str: ...
    @property
    def unsigned(self) -> bool: ...
    @property
    def charset(self) -> str | None: ...
    @property
    def enum_labels(self) -> tuple[str, ...]:
        """ENUM or SET members, in definition order."""
        ...


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column, with everything needed to build its decoder."""

    name: str
    type: int
    meta: int
    unsigned: bool = False
    charset: str | None = None  # MariaDB charset name for text columns
    labels: tuple[str, ...] = ()  # ENUM or SET members, in definition order


def read_lenenc(buf: bytes, pos: int) -> tuple[int, int]:
    """A length-encoded integer at ``pos`` and the offset after it."""
    first = buf[pos]
    if first < 251:
        return first, pos + 1
    if first == 252:
        return buf[pos + 1] | buf[pos + 2] << 8, pos + 3
    if first == 253:
        return buf[pos + 1] | buf[pos + 2] << 8 | buf[pos + 3] << 16, pos + 4
    if first == 254:
        return int.from_bytes(buf[pos + 1 : pos + 9], "little"), pos + 9
    raise ValueError(f"bad length-encoded integer prefix {first:#x}")


def parse_table_map(buf: bytes, body: int, end: int, post_header_len: int = 8) -> TableMap:
    """Parse the TABLE_MAP event whose body spans ``buf[body:end]`` (checksum excluded)."""
    if post_header_len == 6:
        table_id = int.from_bytes(buf[body : body + 4], "little")
    else:
        table_id = int.from_bytes(buf[body : body + 6], "little")
    pos = body + post_header_len
    signature = bytes(buf[pos:end])
    schema_len = buf[pos]
    schema = buf[pos + 1 : pos + 1 + schema_len].decode("utf-8", "surrogateescape")
    pos += schema_len + 2
    table_len = buf[pos]
    table = buf[pos + 1 : pos + 1 + table_len].decode("utf-8", "surrogateescape")
    pos += table_len + 2
    count, pos = read_lenenc(buf, pos)
    raw_types = buf[pos : pos + count]
    pos += count
    meta_len, pos = read_lenenc(buf, pos)
    meta_end = pos + meta_len
    types: list[int] = []
    metas: list[int] = []
    for t in raw_types:
        meta = 0
        if t in _META_1:
            meta = buf[pos]
            pos += 1
        elif t in _META_2:
            if t in (T_STRING, T_VAR_STRING, T_ENUM, T_SET):
                meta = buf[pos] << 8 | buf[pos + 1]  # real type first, then the length byte
                real = buf[pos]
                if real in (T_ENUM, T_SET):
                    t = real
            else:
                meta = buf[pos] | buf[pos + 1] << 8
            pos += 2
        types.append(t)
        metas.append(meta)
    pos = meta_end + (count + 7) // 8  # the nullability bitmap is not needed
    base = TableMap(table_id, schema, table, tuple(types), tuple(metas), signature)
    return _optional_metadata(base, buf, pos, end)


def _optional_metadata(tmap: TableMap, buf: bytes, pos: int, end: int) -> TableMap:
    types = tmap.types
    n = len(types)
    numeric = [i for i, t in enumerate(types) if t in _NUMERIC]
    character = [i for i, t in enumerate(types) if t in _CHARACTER]
    enum_set = [i for i, t in enumerate(types) if t in (T_ENUM, T_SET)]
    unsigned: list[bool] | None = None
    charsets: list[int | None] | None = None
    enum_set_charsets: list[int | None] | None = None
    names: list[str] | None = None
    enums: list[tuple[bytes, ...]] | None = None
    sets: list[tuple[bytes, ...]] | None = None
    while pos < end:
        kind = buf[pos]
        length, pos = read_lenenc(buf, pos + 1)
        value_end = pos + length
        if kind == _OM_SIGNEDNESS:
            unsigned = [False] * n
            for k, i in enumerate(numeric):
                unsigned[i] = bool(buf[pos + k // 8] & (0x80 >> (k % 8)))
        elif kind in (_OM_DEFAULT_CHARSET, _OM_COLUMN_CHARSET):
            charsets = _charset_list(buf, pos, value_end, kind == _OM_DEFAULT_CHARSET, character, n)
        elif kind in (_OM_ENUM_AND_SET_DEFAULT_CHARSET, _OM_ENUM_AND_SET_COLUMN_CHARSET):
            enum_set_charsets = _charset_list(
                buf, pos, value_end, kind == _OM_ENUM_AND_SET_DEFAULT_CHARSET, enum_set, n
            )
        elif kind == _OM_COLUMN_NAME:
            names = []
            p = pos
            while p < value_end:
                size, p = read_lenenc(buf, p)
                names.append(buf[p : p + size].decode("utf-8", "surrogateescape"))
                p += size
        elif kind in (_OM_SET_STR_VALUE, _OM_ENUM_STR_VALUE):
            lists: list[tuple[bytes, ...]] = []
            p = pos
            while p < value_end:
                members, p = read_lenenc(buf, p)
                labels = []
                for _ in range(members):
                    size, p = read_lenenc(buf, p)
                    labels.append(bytes(buf[p : p + size]))
                    p += size
                lists.append(tuple(labels))
            if kind == _OM_SET_STR_VALUE:
                sets = lists
            else:
                enums = lists
        pos = value_end
    return TableMap(
        tmap.table_id,
        tmap.schema,
        tmap.table,
        tmap.types,
        tmap.metas,
        tmap.signature,
        unsigned=tuple(unsigned) if unsigned is not None else None,
        charsets=tuple(charsets) if charsets is not None else None,
        names=tuple(names) if names is not None and len(names) == n else None,
        enum_labels=tuple(enums) if enums is not None else None,
        set_labels=tuple(sets) if sets is not None else None,
        enum_set_charsets=tuple(enum_set_charsets) if enum_set_charsets is not None else None,
    )


def _charset_list(
    buf: bytes, pos: int, end: int, default_form: bool, columns: list[int], n: int
) -> list[int | None]:
    """Collation id per column from DEFAULT_CHARSET (default + exceptions) or COLUMN_CHARSET."""
    out: list[int | None] = [None] * n
    if default_form:
        default, pos = read_lenenc(buf, pos)
        exceptions: dict[int, int] = {}
        while pos < end:
            index, pos = read_lenenc(buf, pos)
            collation, pos = read_lenenc(buf, pos)
            exceptions[index] = collation
        for k, i in enumerate(columns):
            out[i] = exceptions.get(k, default)
    else:
        for i in columns:
            if pos >= end:
                break
            out[i], pos = read_lenenc(buf, pos)
    return out


def charset_of_collation(collation_id: int | None) -> str | None:
    """The MariaDB charset name of a collation id, or ``None`` when unknown."""
    if collation_id is None:
        return None
    found = CHARSET.charset_by_id(collation_id, "mariadb") or CHARSET.charset_by_id(collation_id, "mysql")
    return str(found.name) if found is not None else None


def needs_schema(tmap: TableMap) -> bool:
    """True when the binlog lacks names, signedness, text charsets or ENUM/SET labels."""
    if tmap.names is None:
        return True
    types = tmap.types
    if tmap.unsigned is None and any(t in _NUMERIC for t in types):
        return True
    if any(t in _TEXT for t in types):
        if tmap.charsets is None:
            return True
        if any(charset_of_collation(tmap.charsets[i]) is None for i, t in enumerate(types) if t in _TEXT):
            return True
    if any(t == T_ENUM for t in types) and tmap.enum_labels is None:
        return True
    return any(t == T_SET for t in types) and tmap.set_labels is None


def column_specs(tmap: TableMap, info: Sequence[ColumnFacts] | None) -> tuple[ColumnSpec, ...]:
    """Merge the binlog's own metadata with ``information_schema`` columns (by position).

    The binlog wins where it has the fact (it describes the row as written);
    ``info`` fills what it lacks, as the library source (:mod:`cdc.reader.library`) does.
    """
    specs: list[ColumnSpec] = []
    enum_k = set_k = 0
    for i, (t, meta) in enumerate(zip(tmap.types, tmap.metas, strict=True)):
        ci = info[i] if info is not None and i < len(info) else None
        if tmap.names is not None:
            name = tmap.names[i]
        elif ci is not None:
            name = ci.name
        else:
            name = f"UNKNOWN_COL{i}"
        unsigned = ci is not None and ci.unsigned
        if tmap.unsigned is not None:
            unsigned = tmap.unsigned[i]
        cs: str | None = None
        labels: tuple[str, ...] = ()
        if t in _TEXT:
            cs = charset_of_collation(tmap.charsets[i]) if tmap.charsets is not None else None
            cs = cs or (ci.charset if ci is not None else None) or "binary"
        elif t == T_ENUM:
            labels = _labels(tmap.enum_labels, enum_k, tmap, i, ci)
            enum_k += 1
        elif t == T_SET:
            labels = _labels(tmap.set_labels, set_k, tmap, i, ci)
            set_k += 1
        specs.append(ColumnSpec(name, t, meta, unsigned, cs, labels))
    return tuple(specs)


def _labels(
    lists: tuple[tuple[bytes, ...], ...] | None, k: int, tmap: TableMap, i: int, ci: ColumnFacts | None
) -> tuple[str, ...]:
    if lists is not None and k < len(lists):
        collation = tmap.enum_set_charsets[i] if tmap.enum_set_charsets is not None else None
        codec = charset.lossless_codec(charset_of_collation(collation) or "utf8mb4")
        if codec == charset.KEEP_BYTES:
            codec = charset.lossless_codec("utf8mb4")
        return tuple(label.decode(codec) for label in lists[k])
    return ci.enum_labels if ci is not None else ()


# -- per-column decoders ------------------------------------------------------------------


def _int_decoder(fmt: str, size: int) -> ColumnDecoder:
    unpack_from = struct.Struct(fmt).unpack_from

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        value: int = unpack_from(buf, pos)[0]
        return value, pos + size

    return dec


def _int24(signed: bool) -> ColumnDecoder:
    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        return int.from_bytes(buf[pos : pos + 3], "little", signed=signed), pos + 3

    return dec


def _float_decoder(fmt: str, size: int) -> ColumnDecoder:
    unpack_from = struct.Struct(fmt).unpack_from

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        value: float = unpack_from(buf, pos)[0]
        return value, pos + size

    return dec


def _text_decoder(prefix: int, mysql_charset: str, report: Callable[[], None]) -> ColumnDecoder:
    """Length-prefixed text, decoded losslessly; ``report`` is told about undecodable bytes."""
    codec = charset.lossless_codec(mysql_charset)
    if codec == charset.KEEP_BYTES:
        return _raw_decoder(prefix)
    python = charset.python_codec(mysql_charset)
    if python == "utf-8" and prefix == 1:
        # The common case (VARCHAR up to 255 bytes in utf8/utf8mb4), kept to one call.
        def dec_utf8(buf: bytes, pos: int) -> tuple[Value, int]:
            end = pos + 1 + buf[pos]
            try:
                return buf[pos + 1 : end].decode("utf-8"), end
            except UnicodeDecodeError:
                report()
                return buf[pos + 1 : end].decode("utf-8", "surrogateescape"), end

        return dec_utf8
    if python == charset.MARIADB_LATIN1 and prefix == 1:
        table = bytes(range(256)).decode(charset.MARIADB_LATIN1)  # every byte has a character
        charmap_decode = codecs.charmap_decode

        def dec_latin1(buf: bytes, pos: int) -> tuple[Value, int]:
            end = pos + 1 + buf[pos]
            return charmap_decode(buf[pos + 1 : end], "strict", table)[0], end

        return dec_latin1

    def decode(raw: bytes) -> str:
        if python == "utf-8":
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                report()
                return raw.decode("utf-8", "surrogateescape")
        text = raw.decode(codec)  # the registered lossless codec: never fails
        if python != charset.MARIADB_LATIN1 and has_undecodable(text):
            report()
        return text

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        start = pos + prefix
        end = start + int.from_bytes(buf[pos:start], "little")
        return decode(buf[start:end]), end

    return dec


def _raw_decoder(prefix: int) -> ColumnDecoder:
    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        start = pos + prefix
        end = start + int.from_bytes(buf[pos:start], "little")
        return bytes(buf[start:end]), end

    return dec


def _decimal_decoder(precision: int, scale: int) -> ColumnDecoder:
    """MySQL's binary DECIMAL, to the same ``Decimal`` (same digits, same scale) as the library."""
    integral = precision - scale
    groups: list[tuple[int, int, bool]] = []  # (bytes, digits, zero-padded)
    lead = integral % 9
    if _DIG2BYTES[lead]:
        groups.append((_DIG2BYTES[lead], lead, False))
    groups.extend((4, 9, True) for _ in range(integral // 9))
    int_groups = len(groups)
    groups.extend((4, 9, True) for _ in range(scale // 9))
    if _DIG2BYTES[scale % 9]:
        groups.append((_DIG2BYTES[scale % 9], scale % 9, True))
    size = sum(g[0] for g in groups)
    sign_bit = 1 << (size * 8 - 1)
    all_ones = (1 << (size * 8)) - 1
    shifts: list[tuple[int, int, int, bool]] = []  # (shift, mask, digits, padded) from the left
    offset = size * 8
    for nbytes, digits, padded in groups:
        offset -= nbytes * 8
        shifts.append((offset, (1 << (nbytes * 8)) - 1, digits, padded))

    #: Decoded values by their bytes: a DECIMAL column (``gmt_offset_now``) holds few
    #: distinct values, and a ``Decimal`` is immutable, so one object serves them all.
    memo: dict[bytes, decimal.Decimal] = {}

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        packed = buf[pos : pos + size]
        value = memo.get(packed)
        if value is None:
            value = convert(packed)
            if len(memo) >= _DECIMAL_MEMO:
                memo.clear()
            memo[packed] = value
        return value, pos + size

    def convert(packed: bytes) -> decimal.Decimal:
        raw = int.from_bytes(packed, "big")
        negative = not raw & sign_bit
        raw ^= sign_bit
        if negative:
            raw ^= all_ones
        parts = ["-" if negative else ""]
        for k, (shift, mask, digits, padded) in enumerate(shifts):
            if k == int_groups:
                parts.append(".")
            group = (raw >> shift) & mask
            parts.append(f"{group:0{digits}d}" if padded else str(group))
        if int_groups == len(shifts):
            parts.append(".")
        return decimal.Decimal("".join(parts))

    return dec


def _fraction(buf: bytes, pos: int, fsp: int) -> tuple[int, int]:
    """Microseconds of a TIME2/DATETIME2/TIMESTAMP2 fraction (the library's arithmetic)."""
    nbytes = (fsp + 1) // 2
    if not nbytes:
        return 0, pos
    value = int.from_bytes(buf[pos : pos + nbytes], "big", signed=True)
    if fsp % 2:
        value = int(value / 10)
    return value * 10 ** (6 - fsp), pos + nbytes


def _datetime2(fsp: int) -> ColumnDecoder:
    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        packed = int.from_bytes(buf[pos : pos + 5], "big")
        micro, end = _fraction(buf, pos + 5, fsp)
        year_month = (packed >> 22) & 0x1FFFF
        year, month = divmod(year_month, 13)
        day = (packed >> 17) & 0x1F
        hour = (packed >> 12) & 0x1F
        minute = (packed >> 6) & 0x3F
        second = packed & 0x3F
        try:
            value = dt.datetime(year, month, day, hour, minute, second)
        except ValueError:
            return _invalid_datetime(year, month, day, hour, minute, second, micro, fsp), end
        if micro > 0:
            value = value.replace(microsecond=micro)
        return value, end

    return dec


def _invalid_datetime(
    year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int, fsp: int
) -> str:
    if not (year or month or day or hour or minute or second or micro):
        return _ZERO_DATETIME
    text = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{micro:06d}"[: len(text) + 1 + fsp] if fsp else text


def _timestamp2(fsp: int) -> ColumnDecoder:
    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        seconds = int.from_bytes(buf[pos : pos + 4], "big")
        micro, end = _fraction(buf, pos + 4, fsp)
        value = _EPOCH + dt.timedelta(seconds=seconds)
        if micro > 0:
            value = value.replace(microsecond=micro)
        return value, end

    return dec


def _time2(fsp: int) -> ColumnDecoder:
    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        packed = int.from_bytes(buf[pos : pos + 3], "big", signed=True)
        sign = 1 if (packed >> 23) & 1 else -1
        if sign == -1:
            packed = ~packed + 1
        micro, end = _fraction(buf, pos + 3, fsp)
        value = (
            dt.timedelta(
                hours=(packed >> 12) & 0x3FF,
                minutes=(packed >> 6) & 0x3F,
                seconds=packed & 0x3F,
                microseconds=micro,
            )
            * sign
        )
        return value, end

    return dec


def _date(buf: bytes, pos: int) -> tuple[Value, int]:
    packed = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
    if not packed:
        return _ZERO_DATE, pos + 3
    year, month, day = packed >> 9, (packed >> 5) & 0xF, packed & 0x1F
    try:
        return dt.date(year, month, day), pos + 3
    except ValueError:
        return f"{year:04d}-{month:02d}-{day:02d}", pos + 3


def _datetime_v1(buf: bytes, pos: int) -> tuple[Value, int]:
    packed = int.from_bytes(buf[pos : pos + 8], "little")
    date, time_part = divmod(packed, 1_000_000)
    year, rest = divmod(date, 10_000)
    month, day = divmod(rest, 100)
    hour, rest = divmod(time_part, 10_000)
    minute, second = divmod(rest, 100)
    try:
        return dt.datetime(year, month, day, hour, minute, second), pos + 8
    except ValueError:
        return _invalid_datetime(year, month, day, hour, minute, second, 0, 0), pos + 8


def _timestamp_v1(buf: bytes, pos: int) -> tuple[Value, int]:
    return _EPOCH + dt.timedelta(seconds=int.from_bytes(buf[pos : pos + 4], "little")), pos + 4


def _time_v1(buf: bytes, pos: int) -> tuple[Value, int]:
    packed = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
    value = dt.timedelta(hours=packed // 10000, minutes=(packed % 10000) // 100, seconds=packed % 100)
    return value, pos + 3


def _absent(buf: bytes, pos: int) -> tuple[Value, int]:
    return None, pos


def _year(buf: bytes, pos: int) -> tuple[Value, int]:
    return buf[pos] + 1900, pos + 1


def _enum(size: int, labels: tuple[str, ...]) -> ColumnDecoder:
    members = ("", *labels)

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        index = buf[pos] if size == 1 else int.from_bytes(buf[pos : pos + size], "little")
        if not labels:
            return None, pos + size
        return (members[index] if index < len(members) else ""), pos + size

    return dec


def _set(size: int, labels: tuple[str, ...]) -> ColumnDecoder:
    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        mask = int.from_bytes(buf[pos : pos + size], "little")
        return ",".join(label for k, label in enumerate(labels) if mask >> k & 1), pos + size

    return dec


def _bit(meta: int) -> ColumnDecoder:
    bits = (meta >> 8) * 8 + (meta & 0xFF)
    nbytes = (bits + 7) // 8

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        out = []
        for k in range(nbytes):
            byte = buf[pos + k]
            width = 8
            if k == 0:
                width = bits if nbytes == 1 else (bits % 8 or 8)
            out.append(format(byte & ((1 << width) - 1), f"0{width}b"))
        return "".join(out), pos + nbytes

    return dec


def _string_prefix(meta: int) -> int:
    """Length-prefix size of a CHAR/BINARY (STRING) column from its packed metadata."""
    max_length = (((meta >> 4) & 0x300) ^ 0x300) + (meta & 0xFF)
    return 2 if max_length > 255 else 1


def column_decoder(spec: ColumnSpec, report: Callable[[], None]) -> ColumnDecoder:
    """The decoder of one column; ``report()`` is called when text did not decode."""
    t, meta = spec.type, spec.meta
    signed = not spec.unsigned
    if t == T_TINY:
        return _int_decoder("<b" if signed else "<B", 1)
    if t == T_SHORT:
        return _int_decoder("<h" if signed else "<H", 2)
    if t == T_LONG:
        return _int_decoder("<i" if signed else "<I", 4)
    if t == T_LONGLONG:
        return _int_decoder("<q" if signed else "<Q", 8)
    if t == T_INT24:
        return _int24(signed)
    if t == T_FLOAT:
        return _float_decoder("<f", 4)
    if t == T_DOUBLE:
        return _float_decoder("<d", 8)
    if t == T_NEWDECIMAL:
        return _decimal_decoder(meta & 0xFF, meta >> 8)
    if t == T_VARCHAR:
        return _text_decoder(2 if meta > 255 else 1, spec.charset or "binary", report)
    if t in (T_STRING, T_VAR_STRING):
        return _text_decoder(_string_prefix(meta), spec.charset or "binary", report)
    if t == T_BLOB:
        return _text_decoder(meta, spec.charset or "binary", report)
    if t == T_GEOMETRY:
        return _raw_decoder(meta)
    if t == T_DATE:
        return _date
    if t == T_DATETIME2:
        return _datetime2(meta)
    if t == T_TIMESTAMP2:
        return _timestamp2(meta)
    if t == T_TIME2:
        return _time2(meta)
    if t == T_DATETIME:
        return _datetime_v1
    if t == T_TIMESTAMP:
        return _timestamp_v1
    if t == T_TIME:
        return _time_v1
    if t == T_YEAR:
        return _year
    if t == T_ENUM:
        return _enum(meta & 0xFF, spec.labels)
    if t == T_SET:
        return _set(meta & 0xFF, spec.labels)
    if t == T_BIT:
        return _bit(meta)
    raise UnsupportedColumnError(
        f"column {spec.name!r} has binlog type {t}, which the fast reader does not decode"
    )


# -- rows ---------------------------------------------------------------------------------


#: A compiled row-image decoder: (buffer, offset of the image's null bitmap) -> ...
RowFunction = Callable[[bytes, int], tuple[dict[str, Value], int]]
_Plan = tuple[tuple[str, ColumnDecoder, int], ...]


@dataclass(frozen=True, slots=True)
class Layout:
    """The row images of a rows event with one columns-present bitmap."""

    null_bytes: int
    #: (name, decoder, null-bitmap bit) per column: the reference path.
    plan: _Plan
    #: The same decode, null bitmap included, as straight-line code (see :func:`_compile`).
    #: Raises ``UnicodeDecodeError`` on text that does not decode: :meth:`RowDecoder.row`
    #: then takes the reference path.
    fast: RowFunction


@dataclass(slots=True)
class RowDecoder:
    """Decodes row images of one table definition. Built once, used for every row."""

    schema: str
    table: str
    specs: tuple[ColumnSpec, ...]
    #: One decoder per column of ``specs`` (:func:`column_decoder`).
    decoders: tuple[ColumnDecoder, ...]
    #: Names of the columns whose text did not decode in the last row image (the
    #: decoders' ``report`` appends here, see :func:`build_decoder`).
    undecodable: list[str] = field(default_factory=list)
    _layouts: dict[bytes, Layout] = field(default_factory=dict)

    def layout(self, present: bytes) -> Layout:
        """The layout for one columns-present bitmap (cached; FULL row images have one).

        A column absent from the row image (``binlog_row_image`` other than FULL) reads
        as ``None`` and takes no bytes.
        """
        cached = self._layouts.get(present)
        if cached is not None:
            return cached
        plan: list[tuple[str, ColumnDecoder, int]] = []
        k = 0
        for i, (spec, decoder) in enumerate(zip(self.specs, self.decoders, strict=True)):
            if present[i // 8] >> (i % 8) & 1:
                plan.append((spec.name, decoder, 1 << k))
                k += 1
            else:
                plan.append((spec.name, _absent, 0))
        null_bytes = (k + 7) // 8
        fast = _compile(
            self.specs,
            self.decoders,
            tuple(bit for _, _, bit in plan),
            null_bytes,
            f"{self.schema}.{self.table}",
        )
        layout = Layout(null_bytes, tuple(plan), fast)
        self._layouts[bytes(present)] = layout
        return layout

    def row(self, buf: bytes, pos: int, layout: Layout) -> tuple[dict[str, Value], int]:
        """One row image at ``pos``: its values by column name and the offset after it."""
        try:
            return layout.fast(buf, pos)
        except UnicodeDecodeError:
            # Text that is not valid in its charset: the reference path decodes it
            # losslessly and records the column in ``undecodable``.
            null_end = pos + layout.null_bytes
            nulls = int.from_bytes(buf[pos:null_end], "little")
            return self.row_reference(buf, null_end, nulls, layout.plan)

    @staticmethod
    def row_reference(buf: bytes, pos: int, nulls: int, plan: _Plan) -> tuple[dict[str, Value], int]:
        """The row image decoded column by column with the per-column closures."""
        values: dict[str, Value] = {}
        for name, decoder, bit in plan:
            if nulls & bit:
                values[name] = None
            else:
                values[name], pos = decoder(buf, pos)
        return values, pos


_INT_FORMATS: Final = {T_TINY: ("b", 1), T_SHORT: ("h", 2), T_LONG: ("i", 4), T_LONGLONG: ("q", 8)}
_COMPILE_ENV: Final[dict[str, object]] = {
    **{f"_{c}": struct.Struct(f"<{c}").unpack_from for c in "bBhHiIqQ"},
    "_charmap": codecs.charmap_decode,
    "_datetime": dt.datetime,
    "_timedelta": dt.timedelta,
    "_epoch": _EPOCH,
    "_latin1": bytes(range(256)).decode(charset.MARIADB_LATIN1),
}


def _inline(spec: ColumnSpec, key: str, env: dict[str, object]) -> list[str] | None:
    """Straight-line code for the common column kinds, or ``None`` (call the closure).

    The code assigns the variable ``key``; constants it needs go into ``env`` under
    names derived from ``key``.
    """
    t = spec.type
    if t in _INT_FORMATS:
        code, size = _INT_FORMATS[t]
        if t == T_TINY and spec.unsigned:
            return [f"{key} = buf[pos]", "pos += 1"]
        code = code.upper() if spec.unsigned else code
        return [f"{key} = _{code}(buf, pos)[0]", f"pos += {size}"]
    if t == T_DATETIME2 and spec.meta == 0:
        return [
            "packed = int.from_bytes(buf[pos : pos + 5], 'big')",
            "pos += 5",
            "ym = packed >> 22 & 0x1FFFF",
            "try:",
            f"    {key} = _datetime(ym // 13, ym % 13, packed >> 17 & 31, packed >> 12 & 31,"
            " packed >> 6 & 63, packed & 63)",
            "except ValueError:",
            f"    {key} = _invalid_datetime(ym // 13, ym % 13, packed >> 17 & 31,"
            " packed >> 12 & 31, packed >> 6 & 63, packed & 63, 0, 0)",
        ]
    if t == T_TIMESTAMP2 and spec.meta == 0:
        return [f"{key} = _epoch + _timedelta(seconds=int.from_bytes(buf[pos : pos + 4], 'big'))", "pos += 4"]
    if t == T_ENUM and spec.meta & 0xFF == 1 and spec.labels:
        env[f"_m_{key}"] = ("", *spec.labels)
        return [
            "index = buf[pos]",
            "pos += 1",
            f"{key} = _m_{key}[index] if index < {len(spec.labels) + 1} else ''",
        ]
    if t == T_VARCHAR:
        prefix = 2 if spec.meta > 255 else 1
    elif t in (T_STRING, T_VAR_STRING):
        prefix = _string_prefix(spec.meta)
    elif t == T_BLOB:
        prefix = spec.meta
    else:
        return None
    codec = charset.lossless_codec(spec.charset or "binary")
    raw = f"buf[pos + {prefix} : end]"
    if codec == charset.KEEP_BYTES:
        expr = raw
    elif charset.python_codec(spec.charset or "binary") == "utf-8":
        expr = f"{raw}.decode('utf-8')"  # strict: an error falls back to the reference path
    elif charset.python_codec(spec.charset or "binary") == charset.MARIADB_LATIN1:
        expr = f"_charmap({raw}, 'strict', _latin1)[0]"
    else:
        return None
    if prefix == 1:
        length = "buf[pos]"
    elif prefix == 2:
        length = "(buf[pos] | buf[pos + 1] << 8)"
    else:
        return None
    return [f"end = pos + {prefix} + {length}", f"{key} = {expr}", "pos = end"]


def _compile(
    specs: tuple[ColumnSpec, ...],
    decoders: tuple[ColumnDecoder, ...],
    bits: tuple[int, ...],
    null_bytes: int,
    label: str,
) -> RowFunction:
    """Generate the row decoder of one layout as one function without a per-column loop.

    Pay once per table definition, save the loop, the tuple per column and most calls
    per row: the per-column loop of :meth:`RowDecoder.row_reference` costs about as
    much as the decoding itself on a 35-column ``vicidial_list`` row. Each value goes
    into a local (``v0``, ``v1``...) and the dict is built once at the end, sized for
    its keys. Column names enter the source only as ``repr`` literals; everything else
    is generated here.
    """
    env: dict[str, object] = dict(_COMPILE_ENV, _invalid_datetime=_invalid_datetime)
    lines = ["def row(buf, pos):"]
    if null_bytes == 1:
        lines += ["    nulls = buf[pos]", "    pos += 1"]
    elif null_bytes:
        lines += [
            f"    nulls = int.from_bytes(buf[pos : pos + {null_bytes}], 'little')",
            f"    pos += {null_bytes}",
        ]
    for i, (spec, decoder, bit) in enumerate(zip(specs, decoders, bits, strict=True)):
        var = f"v{i}"
        if not bit:
            lines.append(f"    {var} = None")
            continue
        body = _inline(spec, var, env)
        if body is None:
            env[f"_d{i}"] = decoder
            body = [f"{var}, pos = _d{i}(buf, pos)"]
        lines.append(f"    if nulls & {bit}:")
        lines.append(f"        {var} = None")
        lines.append("    else:")
        lines.extend(f"        {line}" for line in body)
    items = ", ".join(f"{spec.name!r}: v{i}" for i, spec in enumerate(specs))
    lines.append(f"    return {{{items}}}, pos")
    exec(compile("\n".join(lines), f"<row decoder {label}>", "exec"), env)
    function: RowFunction = env["row"]  # type: ignore[assignment]
    return function


def build_decoder(tmap: TableMap, info: Sequence[ColumnFacts] | None) -> RowDecoder:
    """A :class:`RowDecoder` for this table definition (see :func:`column_specs`)."""
    specs = column_specs(tmap, info)
    undecodable: list[str] = []

    def reporter(name: str) -> Callable[[], None]:
        return lambda: undecodable.append(name)

    decoders = tuple(column_decoder(spec, reporter(spec.name)) for spec in specs)
    return RowDecoder(tmap.schema, tmap.table, specs, decoders, undecodable)


def present_count(bitmap: bytes) -> int:
    """Columns present in a rows event's column bitmap."""
    return int.from_bytes(bitmap, "little").bit_count()
