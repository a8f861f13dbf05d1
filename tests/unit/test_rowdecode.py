"""cdc.reader.rowdecode: table maps and row images from raw bytes (pure, no server).

Bytes are built here from the format descriptions (MySQL's ``decimal2bin``,
``my_datetime_packed_to_binary``, the TABLE_MAP layout), never by the code under
test. The integration test ``test_fastbinlog.py`` compares with the library on a
real server.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cdc.reader import rowdecode
from cdc.reader.rowdecode import (
    T_BLOB,
    T_DATE,
    T_DATETIME2,
    T_ENUM,
    T_LONG,
    T_LONGLONG,
    T_NEWDECIMAL,
    T_SET,
    T_SHORT,
    T_STRING,
    T_TIMESTAMP2,
    T_TINY,
    T_VARCHAR,
    ColumnSpec,
    build_decoder,
    column_decoder,
    column_specs,
    needs_schema,
    parse_table_map,
    read_lenenc,
)

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
UTF8MB4_GENERAL_CI = 45
LATIN1_SWEDISH_CI = 8
BINARY = 63


def strict(value: object) -> tuple[str, str]:
    return type(value).__name__, repr(value)


def lenenc(n: int) -> bytes:
    if n < 251:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    return b"\xfd" + n.to_bytes(3, "little")


def decimal_bytes(value: decimal.Decimal, precision: int, scale: int) -> bytes:
    """MySQL's decimal2bin for a value that fits DECIMAL(precision, scale)."""
    negative = value < 0
    text = f"{abs(value):.{scale}f}"
    int_part, _, frac_part = text.partition(".")
    intg = precision - scale
    int_part = int_part.rjust(intg, "0")[-intg:] if intg else ""
    out = bytearray()
    lead = intg % 9
    if lead:
        out += int(int_part[:lead]).to_bytes(_DIG2BYTES[lead], "big")
    for k in range(lead, intg, 9):
        out += int(int_part[k : k + 9]).to_bytes(4, "big")
    for k in range(0, scale - scale % 9, 9):
        out += int(frac_part[k : k + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(frac_part[scale - scale % 9 :]).to_bytes(_DIG2BYTES[scale % 9], "big")
    if negative:
        out = bytearray(b ^ 0xFF for b in out)
    out[0] ^= 0x80
    return bytes(out)


def datetime2_bytes(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    micro: int = 0,
    fsp: int = 0,
) -> bytes:
    packed = (1 << 39) | (year * 13 + month) << 22 | day << 17 | hour << 12 | minute << 6 | second
    frac = b""
    if fsp:
        nbytes = (fsp + 1) // 2
        frac = (micro // 10 ** (6 - 2 * nbytes)).to_bytes(nbytes, "big")
    return packed.to_bytes(5, "big") + frac


def date_bytes(year: int, month: int, day: int) -> bytes:
    return (year << 9 | month << 5 | day).to_bytes(3, "little")


def decode(spec: ColumnSpec, raw: bytes) -> object:
    reports: list[str] = []
    value, end = column_decoder(spec, lambda: reports.append(spec.name))(raw, 0)
    assert end == len(raw)
    return value


class TestLengthEncodedIntegers:
    """read_lenenc reads the 1, 3, 4 and 9 byte forms."""

    @pytest.mark.parametrize("n", [0, 250, 251, 65535, 65536, 1 << 24 - 1])
    def test_round_trip(self, n: int) -> None:
        """Length-encoded integers of every width read back with the offset just past them."""
        raw = lenenc(n) + b"tail"
        assert read_lenenc(raw, 0) == (n, len(raw) - 4)

    def test_nine_byte_form(self) -> None:
        """The 9-byte length-encoded form reads a 64-bit integer."""
        assert read_lenenc(b"\xfe" + (1 << 40).to_bytes(8, "little"), 0) == (1 << 40, 9)


class TestDecimal:
    """Binary DECIMAL decodes to the same digits and scale as written."""

    @pytest.mark.parametrize(
        ("text", "precision", "scale"),
        [
            ("-6.00", 4, 2),
            ("-5.00", 4, 2),
            ("10.50", 4, 2),
            ("-0.50", 4, 2),
            ("0.00", 4, 2),
            ("12345678901234.123456", 20, 6),
            ("-99999999999999.999999", 20, 6),
            ("42", 10, 0),
            ("-1", 10, 0),
            ("0.125", 3, 3),
            ("-0.999", 3, 3),
            ("1234567890123456789.123456789", 28, 9),
        ],
    )
    def test_values(self, text: str, precision: int, scale: int) -> None:
        """DECIMAL values decode with their exact digits and scale, negatives included."""
        spec = ColumnSpec("d", T_NEWDECIMAL, scale << 8 | precision)
        value = decimal.Decimal(text)
        assert strict(decode(spec, decimal_bytes(value, precision, scale))) == strict(value)

    @given(st.data())
    def test_any_value_keeps_its_scale(self, data: st.DataObject) -> None:
        """Any DECIMAL within its precision decodes to the same value with the same scale."""
        precision = data.draw(st.integers(1, 40))
        scale = data.draw(st.integers(0, min(precision, 30)))
        with decimal.localcontext(prec=100):
            limit = decimal.Decimal(10) ** (precision - scale) - decimal.Decimal(1).scaleb(-scale)
        value = data.draw(st.decimals(-limit, limit, places=scale, allow_nan=False, allow_infinity=False))
        assume(abs(value) <= limit)  # hypothesis may round past the bound at 29+ digits
        if value == 0:
            value = abs(value)  # MySQL never stores a negative zero
        spec = ColumnSpec("d", T_NEWDECIMAL, scale << 8 | precision)
        with decimal.localcontext(prec=100):  # formatting must not round 29+ digit values
            expected = decimal.Decimal(f"{value:.{scale}f}")
            raw = decimal_bytes(value, precision, scale)
        assert strict(decode(spec, raw)) == strict(expected)


class TestDates:
    """DATE, DATETIME2 and TIMESTAMP2 as the library returns them; zero dates as text."""

    def test_date(self) -> None:
        """A DATE decodes to a date; the zero date stays "0000-00-00"."""
        spec = ColumnSpec("d", T_DATE, 0)
        assert decode(spec, date_bytes(2024, 2, 29)) == dt.date(2024, 2, 29)
        assert decode(spec, date_bytes(0, 0, 0)) == "0000-00-00"

    def test_date_with_zero_month_or_day_keeps_its_text(self) -> None:
        """A date with a zero month or day keeps its text, as VICIdial reads it."""
        spec = ColumnSpec("d", T_DATE, 0)
        assert decode(spec, date_bytes(1980, 0, 0)) == "1980-00-00"
        assert decode(spec, date_bytes(1980, 5, 0)) == "1980-05-00"

    @pytest.mark.parametrize("fsp", [0, 1, 2, 3, 4, 5, 6])
    def test_datetime2(self, fsp: int) -> None:
        """DATETIME(fsp) decodes with its fractional seconds at every precision."""
        micro = 123456 // 10 ** (6 - fsp) * 10 ** (6 - fsp)
        spec = ColumnSpec("t", T_DATETIME2, fsp)
        raw = datetime2_bytes(2024, 3, 1, 12, 34, 56, micro, fsp)
        assert decode(spec, raw) == dt.datetime(2024, 3, 1, 12, 34, 56, micro)

    def test_zero_and_partial_datetimes(self) -> None:
        """Zero and partial DATETIMEs keep their text."""
        spec = ColumnSpec("t", T_DATETIME2, 0)
        assert decode(spec, datetime2_bytes(0, 0, 0)) == "0000-00-00 00:00:00"
        assert decode(spec, datetime2_bytes(2020, 0, 15, 10)) == "2020-00-15 10:00:00"
        spec6 = ColumnSpec("t", T_DATETIME2, 6)
        assert decode(spec6, datetime2_bytes(0, 0, 0, fsp=6)) == "0000-00-00 00:00:00"

    def test_timestamp2_is_naive_utc(self) -> None:
        """TIMESTAMP decodes to a naive UTC datetime, with fractions."""
        spec = ColumnSpec("t", T_TIMESTAMP2, 3)
        raw = (1709287200).to_bytes(4, "big") + (2500).to_bytes(2, "big")  # fsp 3: units of 100 µs
        assert decode(spec, raw) == dt.datetime(2024, 3, 1, 10, 0, 0, 250000)
        assert decode(ColumnSpec("t", T_TIMESTAMP2, 0), bytes(4)) == dt.datetime(1970, 1, 1)


class TestText:
    """Text decodes with the column charset, losslessly; binary stays bytes."""

    def test_utf8_and_latin1(self) -> None:
        """Text decodes in its column charset: utf8mb4 and latin1 (cp1252)."""
        raw = "José 😀".encode()
        assert decode(ColumnSpec("v", T_VARCHAR, 80, charset="utf8mb4"), bytes([len(raw)]) + raw) == "José 😀"
        latin = "Müller€".encode("cp1252")
        assert (
            decode(ColumnSpec("v", T_VARCHAR, 30, charset="latin1"), bytes([len(latin)]) + latin) == "Müller€"
        )

    def test_two_byte_length_prefix(self) -> None:
        """Long VARCHARs with a two-byte length prefix decode."""
        raw = "x" * 300
        spec = ColumnSpec("v", T_VARCHAR, 1020, charset="utf8mb4")
        assert decode(spec, (300).to_bytes(2, "little") + raw.encode()) == raw

    def test_invalid_utf8_is_kept_and_reported(self) -> None:
        """Invalid UTF-8 is kept (surrogate escapes) and reported, never dropped."""
        spec = ColumnSpec("v", T_VARCHAR, 40, charset="utf8mb4")
        reports: list[str] = []
        value, _ = column_decoder(spec, lambda: reports.append("v"))(b"\x03a\xffb", 0)
        assert value == "a\udcffb" and reports == ["v"]

    def test_latin1_never_fails(self) -> None:
        """Every latin1 byte decodes."""
        raw = bytes([0x81, 0x8D, 0x80])
        assert decode(ColumnSpec("v", T_VARCHAR, 10, charset="latin1"), b"\x03" + raw) == "\x81\x8d€"

    def test_binary_stays_bytes_even_when_empty(self) -> None:
        """Binary columns stay bytes, even when empty."""
        spec = ColumnSpec("b", T_BLOB, 2, charset="binary")
        assert decode(spec, b"\x02\x00\xde\xad") == b"\xde\xad"
        assert decode(spec, b"\x00\x00") == b""

    def test_char_length_prefix_follows_its_byte_length(self) -> None:
        # CHAR(100) in utf8mb4 holds up to 400 bytes: a two-byte length prefix. The two
        # high bits of the length travel inverted in the real-type byte.
        """A CHAR's length prefix width follows its byte length, not its character count."""
        meta = (T_STRING ^ ((400 & 0x300) >> 4)) << 8 | (400 & 0xFF)
        spec = ColumnSpec("c", T_STRING, meta, charset="utf8mb4")
        assert decode(spec, b"\x02\x00ok") == "ok"


class TestEnumAndSet:
    """ENUM indexes become labels ('' for 0); SET bits become labels in definition order."""

    def test_enum(self) -> None:
        """ENUM indexes decode to their labels; index 0 is the empty string."""
        spec = ColumnSpec("g", T_ENUM, T_ENUM << 8 | 1, labels=("M", "F", "U"))
        assert [decode(spec, bytes([i])) for i in range(4)] == ["", "M", "F", "U"]

    def test_enum_without_labels_is_none(self) -> None:
        """An ENUM without known labels decodes to None."""
        assert decode(ColumnSpec("g", T_ENUM, T_ENUM << 8 | 1), b"\x02") is None

    def test_set(self) -> None:
        """SET bitmaps decode to their comma-joined labels."""
        spec = ColumnSpec("s", T_SET, T_SET << 8 | 1, labels=("a", "b", "c", "d"))
        assert decode(spec, bytes([0b1010])) == "b,d"
        assert decode(spec, b"\x00") == ""


@dataclass(frozen=True)
class Info:
    """An information_schema column, as cdc.reader.schemahistory.ColumnInfo gives it."""

    name: str
    unsigned: bool = False
    charset: str | None = None
    enum_labels: tuple[str, ...] = ()


def table_map_body(
    types: Sequence[int], metas: Sequence[bytes], optional: bytes = b"", table_id: int = 77
) -> bytes:
    """A TABLE_MAP event body (post-header included, checksum excluded)."""
    metadata = b"".join(metas)
    return (
        table_id.to_bytes(6, "little")
        + b"\x01\x00"
        + b"\x08asterisk\x00"
        + b"\x05leads\x00"
        + lenenc(len(types))
        + bytes(types)
        + lenenc(len(metadata))
        + metadata
        + bytes((len(types) + 7) // 8 * [0xFF])
        + optional
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + lenenc(len(value)) + value


#: id INT UNSIGNED, name VARCHAR(30) utf8mb4, gender ENUM('M','F','U'), money DECIMAL(4,2),
#: flags SET('x','y'), note VARCHAR(10) latin1
TYPES = (T_LONG, T_VARCHAR, T_STRING, T_NEWDECIMAL, T_STRING, T_VARCHAR)
METAS = (b"", (120).to_bytes(2, "little"), bytes([T_ENUM, 1]), bytes([4, 2]), bytes([T_SET, 1]), b"\x0a\x00")
FULL_METADATA = (
    tlv(1, bytes([0b10000000]))  # signedness of the numeric columns (id, money): id unsigned
    + tlv(2, lenenc(UTF8MB4_GENERAL_CI) + lenenc(1) + lenenc(LATIN1_SWEDISH_CI))  # default + note
    + tlv(4, b"".join(lenenc(len(n)) + n for n in (b"id", b"name", b"gender", b"money", b"flags", b"note")))
    + tlv(6, lenenc(3) + b"".join(lenenc(1) + c for c in (b"M", b"F", b"U")))
    + tlv(5, lenenc(2) + b"".join(lenenc(1) + c for c in (b"x", b"y")))
)
SCHEMA = (
    Info("id", unsigned=True),
    Info("name", charset="utf8mb4"),
    Info("gender", enum_labels=("M", "F", "U")),
    Info("money"),
    Info("flags", enum_labels=("x", "y")),
    Info("note", charset="latin1"),
)


def row_image(values: Sequence[bytes | None]) -> bytes:
    nulls = sum(1 << k for k, v in enumerate(values) if v is None)
    return nulls.to_bytes((len(values) + 7) // 8, "little") + b"".join(v for v in values if v is not None)


ROW = (
    struct.pack("<I", 4000000000),
    b"\x05Jos\xc3\xa9",
    b"\x03",
    decimal_bytes(decimal.Decimal("-6.00"), 4, 2),
    b"\x03",
    b"\x02\xe9\x80",
)
EXPECTED = {
    "id": 4000000000,
    "name": "José",
    "gender": "U",
    "money": decimal.Decimal("-6.00"),
    "flags": "x,y",
    "note": "é€",
}


class TestTableMap:
    """A TABLE_MAP is parsed; FULL metadata or information_schema give names and labels."""

    def test_full_metadata(self) -> None:
        """A table map with FULL metadata gives names, types and charsets without information_schema."""
        body = table_map_body(TYPES, METAS, FULL_METADATA)
        tmap = parse_table_map(body, 0, len(body))
        assert (tmap.table_id, tmap.schema, tmap.table) == (77, "asterisk", "leads")
        assert tmap.types == (T_LONG, T_VARCHAR, T_ENUM, T_NEWDECIMAL, T_SET, T_VARCHAR)
        assert tmap.names == ("id", "name", "gender", "money", "flags", "note")
        assert not needs_schema(tmap)
        specs = column_specs(tmap, None)
        assert [s.charset for s in specs] == [None, "utf8mb4", None, None, None, "latin1"]
        assert specs[0].unsigned and not specs[3].unsigned
        assert specs[2].labels == ("M", "F", "U") and specs[4].labels == ("x", "y")

    def test_no_metadata_needs_information_schema(self) -> None:
        """Without metadata, names, signedness, charsets and labels come from information_schema."""
        body = table_map_body(TYPES, METAS)
        tmap = parse_table_map(body, 0, len(body))
        assert tmap.names is None and needs_schema(tmap)
        specs = column_specs(tmap, SCHEMA)
        assert [s.name for s in specs] == [i.name for i in SCHEMA]
        assert specs[0].unsigned and specs[5].charset == "latin1" and specs[4].labels == ("x", "y")

    def test_signature_ignores_the_table_id(self) -> None:
        """A table map's signature does not depend on its table id."""
        a = parse_table_map(table_map_body(TYPES, METAS, table_id=1), 0, len(table_map_body(TYPES, METAS)))
        b = parse_table_map(table_map_body(TYPES, METAS, table_id=2), 0, len(table_map_body(TYPES, METAS)))
        assert a.signature == b.signature and a.table_id != b.table_id

    @pytest.mark.parametrize("metadata", ["FULL", "NO_LOG"])
    def test_row_decodes_both_ways(self, metadata: str) -> None:
        """A row image decodes to the same values with FULL metadata and with information_schema."""
        body = table_map_body(TYPES, METAS, FULL_METADATA if metadata == "FULL" else b"")
        decoder = build_decoder(parse_table_map(body, 0, len(body)), None if metadata == "FULL" else SCHEMA)
        raw = row_image(ROW) + b"next"
        layout = decoder.layout(b"\x3f")
        values, end = decoder.row(raw, 0, layout)
        assert {k: strict(v) for k, v in values.items()} == {k: strict(v) for k, v in EXPECTED.items()}
        assert raw[end:] == b"next"

    def test_nulls_and_absent_columns(self) -> None:
        """NULLs decode to None and columns absent from the image are left out."""
        body = table_map_body(TYPES, METAS, FULL_METADATA)
        decoder = build_decoder(parse_table_map(body, 0, len(body)), None)
        nulls = row_image([ROW[0], None, None, None, None, ROW[5]])
        values, end = decoder.row(nulls, 0, decoder.layout(b"\x3f"))
        assert values == {
            "id": 4000000000,
            "name": None,
            "gender": None,
            "money": None,
            "flags": None,
            "note": "é€",
        }
        assert end == len(nulls)
        # Only id and note present (a MINIMAL row image): the others read as None.
        partial = row_image([ROW[0], ROW[5]])
        values, end = decoder.row(partial, 0, decoder.layout(b"\x21"))
        assert values["id"] == 4000000000 and values["note"] == "é€" and values["name"] is None
        assert end == len(partial)

    def test_undecodable_text_takes_the_reference_path_and_is_reported(self) -> None:
        """Undecodable text takes the reference path, is kept with surrogate escapes and is reported."""
        body = table_map_body(TYPES, METAS, FULL_METADATA)
        decoder = build_decoder(parse_table_map(body, 0, len(body)), None)
        raw = row_image([ROW[0], b"\x02\xff\xfe", ROW[2], ROW[3], ROW[4], ROW[5]])
        values, _ = decoder.row(raw, 0, decoder.layout(b"\x3f"))
        assert values["name"] == "\udcff\udcfe" and decoder.undecodable == ["name"]


class TestCompiledLayout:
    """The generated straight-line decoder equals the per-column reference, row by row."""

    @given(
        st.lists(
            st.tuples(
                st.integers(0, 2**32 - 1),
                st.one_of(st.none(), st.text(max_size=30)),
                st.integers(-(2**63), 2**63 - 1),
                st.integers(-(2**15), 2**15 - 1),
                st.integers(0, 255),
                st.one_of(st.none(), st.text(alphabet=st.characters(max_codepoint=255), max_size=20)),
                st.one_of(st.none(), st.binary(max_size=300)),
                st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31)),
            ),
            min_size=1,
            max_size=5,
        )
    )
    def test_compiled_equals_reference(self, rows: list[tuple[object, ...]]) -> None:
        """The compiled row layout decodes exactly like the reference decoder."""
        specs = (
            ColumnSpec("i", T_LONG, 0, unsigned=True),
            ColumnSpec("s", T_VARCHAR, 120, charset="utf8mb4"),
            ColumnSpec("big", T_LONGLONG, 0),
            ColumnSpec("sm", T_SHORT, 0),
            ColumnSpec("t", T_TINY, 0, unsigned=True),
            ColumnSpec("l", T_VARCHAR, 20, charset="latin1"),
            ColumnSpec("b", T_BLOB, 2, charset="binary"),
            ColumnSpec("d", T_DATE, 0),
        )
        decoders = tuple(column_decoder(s, lambda: None) for s in specs)
        decoder = rowdecode.RowDecoder("db", "t", specs, decoders)
        layout = decoder.layout(b"\xff")
        raw = b""
        for i, s, big, sm, t, latin, blob, day in rows:
            values: list[bytes | None] = [
                struct.pack("<I", i),
                None
                if s is None
                else lenenc(len(s.encode())) + s.encode()
                if len(s.encode()) < 251
                else None,
                struct.pack("<q", big),
                struct.pack("<h", sm),
                bytes([t]),
                None if latin is None else bytes([len(latin)]) + latin.encode("latin-1"),
                None if blob is None else len(blob).to_bytes(2, "little") + blob,
                date_bytes(day.year, day.month, day.day),
            ]
            raw += row_image(values)
        pos = fast_pos = 0
        while pos < len(raw):
            nulls = int.from_bytes(raw[pos : pos + 1], "little")
            reference, pos = decoder.row_reference(raw, pos + 1, nulls, layout.plan)
            fast, fast_pos = layout.fast(raw, fast_pos)
            assert {k: strict(v) for k, v in fast.items()} == {k: strict(v) for k, v in reference.items()}
            assert fast_pos == pos

    @given(
        st.lists(
            st.tuples(
                st.one_of(st.none(), st.integers(0, 2**31 - 1)),
                st.integers(0, 255),
                st.one_of(st.none(), st.decimals(-99, 99, places=2, allow_nan=False, allow_infinity=False)),
                st.one_of(
                    st.none(),
                    st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31)).map(
                        lambda d: d.replace(microsecond=0)
                    ),
                ),
            ),
            min_size=1,
            max_size=5,
        )
    )
    def test_inlined_kinds_equal_their_closures(
        self, rows: list[tuple[int | None, int, decimal.Decimal | None, dt.datetime | None]]
    ) -> None:
        """TIMESTAMP, 1-byte ENUM (out-of-range indexes too) and DATETIME compile to the
        closures' values; a DECIMAL read again (its memo) equals the first reading."""
        specs = (
            ColumnSpec("ts", T_TIMESTAMP2, 0),
            ColumnSpec("e", T_ENUM, 1, labels=("Y", "N", "Y1")),
            ColumnSpec("gmt", T_NEWDECIMAL, 2 << 8 | 4),
            ColumnSpec("dt", T_DATETIME2, 0),
        )
        decoders = tuple(column_decoder(s, lambda: None) for s in specs)
        decoder = rowdecode.RowDecoder("db", "t", specs, decoders)
        layout = decoder.layout(b"\x0f")
        raw = b""
        for ts, index, gmt, when in rows:
            image = row_image(
                [
                    None if ts is None else ts.to_bytes(4, "big"),
                    bytes([index]),
                    None if gmt is None else decimal_bytes(gmt, 4, 2),
                    None
                    if when is None
                    else datetime2_bytes(
                        when.year, when.month, when.day, when.hour, when.minute, when.second
                    ),
                ]
            )
            raw += image + image  # each row twice: the second DECIMAL reading comes from the memo
        pos = fast_pos = 0
        while pos < len(raw):
            nulls = raw[pos]
            reference, pos = decoder.row_reference(raw, pos + 1, nulls, layout.plan)
            fast, fast_pos = layout.fast(raw, fast_pos)
            assert {k: strict(v) for k, v in fast.items()} == {k: strict(v) for k, v in reference.items()}
            assert fast_pos == pos
            if fast["gmt"] is not None:
                assert strict(fast["gmt"]) == strict(decode(specs[2], decimal_bytes(fast["gmt"], 4, 2)))

    def test_column_names_are_only_literals(self) -> None:
        """Column names are data in the compiled decoder, never code."""
        specs = (ColumnSpec("x'] = 1; import os #", T_TINY, 0, unsigned=True),)
        decoders = tuple(column_decoder(s, lambda: None) for s in specs)
        decoder = rowdecode.RowDecoder("db", "t", specs, decoders)
        values, _ = decoder.row(b"\x00\x07", 0, decoder.layout(b"\x01"))
        assert values == {"x'] = 1; import os #": 7}


class TestUnsupported:
    """A column type the fast decoder does not read is refused by name, not misread."""

    def test_json(self) -> None:
        """A JSON column is refused with an error naming the column."""
        with pytest.raises(rowdecode.UnsupportedColumnError, match="column 'j'"):
            column_decoder(ColumnSpec("j", rowdecode.T_JSON, 4), lambda: None)


@pytest.mark.parametrize("collation", [UTF8MB4_GENERAL_CI, LATIN1_SWEDISH_CI, BINARY])
def test_collations_resolve(collation: int) -> None:
    """The collation ids MariaDB writes resolve to charset names."""
    assert rowdecode.charset_of_collation(collation) in ("utf8mb4", "latin1", "binary")
