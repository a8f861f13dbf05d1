"""The fast reader against the standard one, value by value, on a generated binlog.

``cdc.reader.library_reader`` (the library's decoding) is the reference. Both readers
read the same stretch of binlog, written first: every column type VICIdial uses (and
a few it does not), signed and unsigned, NULLs, zero dates, negative decimals, ENUM
and SET, latin1 and utf8mb4 tables, multi-row INSERT/UPDATE/DELETE events, MyISAM
groups (COMMIT) and InnoDB ones (Xid), DDL, rotation, noise, and the simulator's
add_lead calls; with binlog_row_metadata FULL and NO_LOG. Every record must be equal,
values compared by type and ``repr`` (so ``Decimal('-6.00')`` differs from
``Decimal('-6.0')``), except three documented quirks of the reference
(:func:`as_reference_reports`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql
import pytest
from support.binlog import position
from support.harness import StartPipeline
from support.mariadb import MariaDBFactory, mysql_config
from support.waiting import wait_until_async

from cdc.errors import BinlogPurgedError
from cdc.reader import ReaderFactory, fast_reader, library_reader
from cdc.reader.library import LibrarySource
from cdc.reader.raw import RawSource
from cdc.records import GroupEnd, Op, Position, RowChange, SchemaChange, SourceItem, Value
from cdc.service import LEAD_TABLES
from cdc.settings import SETTINGS_TABLES
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb

DATABASE = "asterisk"
TYPE_TABLES = ("types_utf8", "types_latin1", "types_inno")
WATCHED = frozenset({*LEAD_TABLES, *SETTINGS_TABLES, *TYPE_TABLES})
READ_TIMEOUT_S = 60.0

TYPES_DDL = """
CREATE TABLE {name} (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  i_s INT, i_u INT UNSIGNED, big_s BIGINT, big_u BIGINT UNSIGNED,
  small_s SMALLINT, small_u SMALLINT UNSIGNED, tiny_s TINYINT, tiny_u TINYINT UNSIGNED,
  mid_s MEDIUMINT, mid_u MEDIUMINT UNSIGNED,
  v_short VARCHAR(20), v_long VARCHAR(255), ch CHAR(10), txt TEXT, mtxt MEDIUMTEXT,
  vbin VARBINARY(20), blb BLOB,
  money DECIMAL(4,2), wide DECIMAL(20,6), whole DECIMAL(10,0), frac DECIMAL(3,3),
  d DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP NULL DEFAULT NULL, ts3 TIMESTAMP(3) NULL DEFAULT NULL,
  tm TIME, yr YEAR, flt FLOAT, dbl DOUBLE(8,2),
  gender ENUM('M','F','U'), flags SET('a','b','c','d'), bits BIT(10)
) ENGINE={engine} DEFAULT CHARSET={charset}
"""
COLUMNS = (
    "i_s, i_u, big_s, big_u, small_s, small_u, tiny_s, tiny_u, mid_s, mid_u, v_short, v_long, ch, txt,"
    " mtxt, vbin, blb, money, wide, whole, frac, d, dtm, dtm6, ts, ts3, tm, yr, flt, dbl, gender, flags, bits"
)
ROW_TYPICAL = (
    "(7, 4000000000, -5, 18000000000000000000, -300, 65000, -100, 250, -8000000, 16000000,"
    " 'José', REPEAT('x', 200), 'ch', 'a text', 'medium', X'00FF10', X'DEADBEEF',"
    " '-6.00', '12345678901234.123456', '42', '0.125', '2024-02-29', '2024-03-01 12:34:56',"
    " '2024-03-01 12:34:56.123456', '2024-03-01 10:00:00', '2024-03-01 10:00:00.250', '-12:30:15', 2024,"
    " 1.5, 123.45, 'F', 'a,c', b'1010101010')"
)
ROW_NULLS = "(" + ", ".join(["NULL"] * 33) + ")"
ROW_EDGES = (
    "(-2147483648, 0, -9223372036854775808, 0, 32767, 0, 127, 0, 8388607, 0,"
    " '', '', '', '', '', '', '', '-0.50', '-99999999999999.999999', '-1', '-0.999',"
    " '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '1970-01-01 00:00:01', NULL, '00:00:00',"
    " 1901, -0.0, -1.25, '', '', b'0')"
)
#: Dates with a zero month or day: legal with VICIdial's sql_mode, and one of the two
#: places where the reference reader loses the text (it reports a zero date).
ROW_PARTIAL_ZERO = (
    "(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 'p', 'p', 'p', 'p', 'p', 'p', 'p', '1.00', '1', '1', '0.001',"
    " '1980-00-00', '2020-00-15 10:00:00', '2021-05-00 00:00:00.5', NULL, NULL, '838:59:59', 2155,"
    " 3.25, 0, 'M', 'b,d', b'1111111111')"
)
UTF8_TEXT = (
    "(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'Nguyễn 😀', 'Zoë «quoted» \\\\ back', 'ü', 'Año', '中文', '', '', "
    + ("'0', '0', '0', '0', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'U', 'a,b,c,d', NULL)")
)
LATIN1_TEXT = "(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'Müller€', 'Œuvre ½ ©', 'é', 'ÿ', 'naïve', '', '', " + (
    "'0', '0', '0', '0', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'U', 'd', NULL)"
)


def _execute(conn: Any, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def write_workload(server: PrivateMariaDB) -> tuple[Position, Position]:
    """Write the test binlog; return the positions before and after it."""
    with contextlib.closing(server.connect()) as conn:
        create_vicidial_schema(conn, DATABASE)
        _execute(
            conn,
            TYPES_DDL.format(name="types_utf8", engine="MyISAM", charset="utf8mb4"),
            TYPES_DDL.format(name="types_latin1", engine="MyISAM", charset="latin1"),
            TYPES_DDL.format(name="types_inno", engine="InnoDB", charset="utf8mb4"),
            "SET time_zone = '+00:00'",
        )
        start = position(conn)
        for table, text_row in (("types_utf8", UTF8_TEXT), ("types_latin1", LATIN1_TEXT)):
            _execute(
                conn,
                f"INSERT INTO {table} ({COLUMNS}) VALUES {ROW_TYPICAL}, {ROW_NULLS}, {ROW_EDGES}",
                f"INSERT INTO {table} ({COLUMNS}) VALUES {ROW_PARTIAL_ZERO}",
                f"INSERT INTO {table} ({COLUMNS}) VALUES {text_row}",
                f"UPDATE {table} SET v_short = CONCAT(v_short, '+'), money = money - 1, flags = 'b'"
                " WHERE id <= 3",
                f"UPDATE {table} SET gender = NULL, d = '2001-01-01' WHERE id = 2",
                f"DELETE FROM {table} WHERE id IN (1, 3)",
            )
        # PHP's raw bytes over a latin1 connection, including the five bytes cp1252 lacks.
        with (
            contextlib.closing(server.connect(db=DATABASE, charset="latin1")) as latin1,
            latin1.cursor() as cur,
        ):
            cur.execute(
                "INSERT INTO types_latin1 (v_short, txt) VALUES (%s, %s)",
                ("Jos\xc3\xa9".encode("latin-1"), bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D, 0x80])),
            )
        # An InnoDB transaction: one group, two statements, ending in Xid.
        conn.begin()
        _execute(
            conn,
            f"INSERT INTO types_inno ({COLUMNS}) VALUES {ROW_TYPICAL}, {ROW_EDGES}",
            "UPDATE types_inno SET txt = 'in a transaction'",
        )
        conn.commit()
        with Vicidial.connect(server, database=DATABASE, seed=9) as vici:
            vici.add_list(101, "Liste Année", "CAMP", "descr")
            vici.set_system_url("http://crm.example.com/x?id=--A--lead_id--B--")
            vici.noise(60)
            for i in range(3):
                vici.add_lead(
                    phone_number=f"312555000{i}", list_id=101, first_name="José", last_name="O'Neil"
                )
            vici.update_lead_insert(phone_number="3125559999", list_id=101)
            vici.loader_insert(phone_number="3125558888", list_id=101)
            vici.noise(60)
        server.flush_binary_logs()  # a real rotation inside the stretch
        _execute(conn, f"INSERT INTO types_utf8 ({COLUMNS}) VALUES {ROW_TYPICAL}")
        # With NO_LOG, the rows before it decode with the first columns of the new definition.
        _execute(
            conn,
            "ALTER TABLE types_utf8 ADD COLUMN added VARCHAR(10) DEFAULT 'new'",
            f"INSERT INTO types_utf8 ({COLUMNS}) VALUES {ROW_TYPICAL}",
        )
        end = position(conn)
    return start, end


async def read_stretch(
    factory: ReaderFactory, server: PrivateMariaDB, start: Position, end: Position
) -> list[SourceItem]:
    """Everything the reader ``factory`` builds hands over from ``start`` up to the group end at ``end``."""
    reader = factory(mysql_config(server), WATCHED, start, flush_interval_s=0.01)
    reader.start()
    items: list[SourceItem] = []
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            while not any(isinstance(i, GroupEnd) and i.position >= end for i in items[-3:]):
                items.extend(await reader.get_batch())
    finally:
        await reader.stop()
    cut = next(k for k, i in enumerate(items) if isinstance(i, GroupEnd) and i.position >= end)
    return items[: cut + 1]


def collapse(items: Sequence[SourceItem]) -> list[SourceItem]:
    """Consecutive group ends collapse to the last one (how many survive depends on batching)."""
    out: list[SourceItem] = []
    for item in items:
        if isinstance(item, GroupEnd) and out and isinstance(out[-1], GroupEnd):
            out.pop()
        out.append(item)
    return out


def strict(value: Value) -> tuple[str, str]:
    return type(value).__name__, repr(value)


def describe(item: SourceItem) -> tuple[Any, ...]:
    """Every field of a record, values by type and repr."""
    if isinstance(item, RowChange):
        images = tuple(
            None if image is None else tuple((k, strict(v)) for k, v in image.items())
            for image in (item.before, item.after)
        )
        return ("row", item.schema, item.table, item.op, item.timestamp, item.thread_id, item.log_file,
                item.log_pos, images)  # fmt: skip
    if isinstance(item, GroupEnd):
        p = item.position
        return ("end", p.file, p.pos, p.gtid, item.timestamp, item.thread_id)
    return ("schema", item.schema, item.table, item.timestamp)


def differences(expected: list[tuple[Any, ...]], got: list[tuple[Any, ...]]) -> list[str]:
    """Readable differences between two described record lists (the first few)."""
    out: list[str] = []
    if len(expected) != len(got):
        out.append(f"{len(expected)} records from the reference, {len(got)} from the fast reader")
    for k, (a, b) in enumerate(zip(expected, got, strict=False)):
        if a == b:
            continue
        if a[0] == b[0] == "row" and a[:8] == b[:8]:
            for image_a, image_b in zip(a[8], b[8], strict=True):
                cols_a, cols_b = dict(image_a or ()), dict(image_b or ())
                for name in dict.fromkeys([*cols_a, *cols_b]):
                    if cols_a.get(name) != cols_b.get(name):
                        out.append(f"record {k} {a[2]}.{name}: {cols_a.get(name)} != {cols_b.get(name)}")
        else:
            out.append(f"record {k}: {a[:8]} != {b[:8]}")
        if len(out) > 20:
            break
    return out


#: Columns of the type tables whose zero-month/day text the reference turns into a zero date.
_REFERENCE_ZERO = {"d": "0000-00-00", "dtm": "0000-00-00 00:00:00", "dtm6": "0000-00-00 00:00:00"}


def as_reference_reports(item: SourceItem, row_metadata: str) -> SourceItem:
    """The fast reader's record with the reference reader's known quirks applied.

    The reference turns a date with a zero month or day into a zero date, has no SET
    labels without FULL metadata, and returns an empty binary value as ``''`` (Python
    decodes ``b''`` to ``''`` without looking the codec up) but others as ``bytes``.
    """
    if not isinstance(item, RowChange) or item.table not in TYPE_TABLES:
        return item

    def degrade(image: dict[str, Value] | None) -> dict[str, Value] | None:
        if image is None:
            return None
        out = {k: "" if v == b"" else v for k, v in image.items()}
        for column, zero in _REFERENCE_ZERO.items():
            if isinstance(out.get(column), str):
                out[column] = zero
        if row_metadata != "FULL" and out.get("flags") is not None:
            out["flags"] = ""  # without FULL metadata the reference has no SET labels
        return out

    return RowChange(item.schema, item.table, item.op, degrade(dict(item.before) if item.before else None),
                     degrade(dict(item.after) if item.after else None), item.timestamp, item.thread_id,
                     item.log_file, item.log_pos)  # fmt: skip


@pytest.fixture(params=["FULL", "NO_LOG"])
def stretch(request: pytest.FixtureRequest, mariadb_factory: MariaDBFactory) -> Iterator[tuple[Any, ...]]:
    server = mariadb_factory(row_metadata=request.param)
    start, end = write_workload(server)
    yield server, start, end, request.param


def _rows(items: Sequence[SourceItem], table: str) -> list[RowChange]:
    return [i for i in items if isinstance(i, RowChange) and i.table == table]


class TestDifferential:
    """Both readers hand over the same records, value by value."""

    async def test_same_records(self, stretch: tuple[Any, ...]) -> None:
        """Every RowChange, GroupEnd and SchemaChange is equal (up to the reference's quirks)."""
        server, start, end, row_metadata = stretch
        reference = collapse(await read_stretch(library_reader, server, start, end))
        fast = collapse(await read_stretch(fast_reader, server, start, end))
        expected = [describe(i) for i in reference]
        got = [describe(as_reference_reports(i, row_metadata)) for i in fast]
        assert differences(expected, got) == []
        # The stretch exercised what it should.
        kinds = {(i.table, i.op) for i in fast if isinstance(i, RowChange)}
        assert {("types_utf8", Op.UPDATE), ("types_latin1", Op.DELETE), ("vicidial_list", Op.INSERT)} <= kinds
        assert any(isinstance(i, GroupEnd) and i.thread_id == 0 for i in fast)  # the InnoDB Xid group
        assert len({i.position.file for i in fast if isinstance(i, GroupEnd)}) == 2  # rotation
        multi = [i.log_pos for i in fast if isinstance(i, RowChange) and i.table == "types_utf8"]
        assert len(multi) > len(set(multi))  # multi-row events
        assert any(isinstance(i, SchemaChange) for i in fast)

    async def test_fast_values(self, stretch: tuple[Any, ...]) -> None:
        """Spot checks against the literals written (what VICIdial's PHP would read back)."""
        server, start, end, _ = stretch
        fast = await read_stretch(fast_reader, server, start, end)
        utf8 = [r.values for r in _rows(fast, "types_utf8") if r.op is Op.INSERT]
        typical, nulls, edges, partial, text = utf8[:5]
        assert typical["i_u"] == 4000000000 and typical["big_u"] == 18000000000000000000
        assert typical["tiny_s"] == -100 and typical["mid_s"] == -8000000
        assert strict(typical["money"]) == strict(decimal.Decimal("-6.00"))
        assert strict(typical["wide"]) == strict(decimal.Decimal("12345678901234.123456"))
        assert typical["d"] == dt.date(2024, 2, 29)
        assert typical["dtm6"] == dt.datetime(2024, 3, 1, 12, 34, 56, 123456)
        assert typical["ts"] == dt.datetime(2024, 3, 1, 10, 0, 0)  # UTC, naive (the library's choice)
        assert typical["ts3"] == dt.datetime(2024, 3, 1, 10, 0, 0, 250000)
        assert typical["gender"] == "F" and typical["flags"] == "a,c" and typical["v_short"] == "José"
        assert typical["vbin"] == b"\x00\xff\x10" and typical["blb"] == b"\xde\xad\xbe\xef"
        assert typical["bits"] == "1010101010"
        assert all(v is None for k, v in nulls.items() if k != "id")
        assert edges["d"] == "0000-00-00" and edges["dtm"] == "0000-00-00 00:00:00"
        assert edges["big_s"] == -9223372036854775808 and edges["gender"] == "" and edges["flags"] == ""
        assert strict(edges["money"]) == strict(decimal.Decimal("-0.50"))
        assert strict(edges["frac"]) == strict(decimal.Decimal("-0.999"))
        assert partial["d"] == "1980-00-00" and partial["dtm"] == "2020-00-15 10:00:00"
        assert partial["flags"] == "b,d"  # with NO_LOG too: labels from information_schema
        assert text["v_short"] == "Nguyễn 😀" and text["mtxt"] == "中文"
        latin1 = [r.values for r in _rows(fast, "types_latin1") if r.op is Op.INSERT]
        assert latin1[4]["v_short"] == "Müller€" and latin1[4]["v_long"] == "Œuvre ½ ©"
        assert latin1[5]["v_short"] == "JosÃ©"  # PHP's double encoding, stored as VICIdial does
        assert latin1[5]["txt"] == "\x81\x8d\x8f\x90\x9d€"  # every latin1 byte decodes
        lead = _rows(fast, "vicidial_list")[0].values
        assert lead["gender"] == "U" and lead["date_of_birth"] == "0000-00-00"
        assert strict(lead["gmt_offset_now"]) == strict(decimal.Decimal("-5.00"))
        assert lead["first_name"] == "José"


class TestFastReader:
    """Behaviour that belongs to the fast reader's own stream handling."""

    async def test_noise_is_not_decoded(self, mariadb: PrivateMariaDB, vicidial_db: str) -> None:
        """Only watched tables are decoded; every event is still counted and positions move."""
        with contextlib.closing(mariadb.connect()) as conn:
            start = position(conn)
        with Vicidial.connect(mariadb, database=vicidial_db, seed=3) as vici:
            vici.noise(300)
            vici.add_list(101, "L", "C", "")
        with contextlib.closing(mariadb.connect()) as conn:
            end = position(conn)
        reader = fast_reader(mysql_config(mariadb, vicidial_db), WATCHED, start)
        reader.start()
        ends: list[Position] = [start]
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                while ends[-1] < end:
                    ends.extend(i.position for i in await reader.get_batch() if isinstance(i, GroupEnd))
        finally:
            await reader.stop()
        stats = reader.statistics()
        assert {table for table, _ in stats.rows} <= {"vicidial_api_log", "vicidial_lists"}
        assert stats.events >= 4 * 300  # GTID, table map, rows, COMMIT per noise statement

    async def test_reconnects_from_the_last_group_end(self, mariadb_factory: MariaDBFactory) -> None:
        """A killed dump connection: the reader resumes, nothing is lost, nothing repeats."""
        server = mariadb_factory(options={"binlog_checksum": "NONE"})
        with contextlib.closing(server.connect()) as conn:
            _execute(conn, f"CREATE DATABASE {DATABASE}", TYPES_DDL.format(name=f"{DATABASE}.types_utf8",
                     engine="MyISAM", charset="utf8mb4"))  # fmt: skip
            start = position(conn)
        reader = fast_reader(mysql_config(server), WATCHED, start, reconnect_initial_s=0.05)
        reader.start()
        seen: list[RowChange] = []

        async def collect(count: int) -> None:
            async with asyncio.timeout(READ_TIMEOUT_S):
                while len(seen) < count:
                    seen.extend(i for i in await reader.get_batch() if isinstance(i, RowChange))

        try:
            with contextlib.closing(server.connect(db=DATABASE)) as conn:
                for i in range(5):
                    _execute(conn, f"INSERT INTO types_utf8 (i_s) VALUES ({i})")
                await collect(5)
                _kill_dump_threads(conn)
                await wait_until_async(lambda: reader.statistics().reconnects >= 1, 10)
                for i in range(5, 10):
                    _execute(conn, f"INSERT INTO types_utf8 (i_s) VALUES ({i})")
                await collect(10)
        finally:
            await reader.stop()
        assert [r.values["i_s"] for r in seen] == list(range(10))

    async def test_streams_without_mysql_replication(
        self, mariadb: PrivateMariaDB, vicidial_db: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The fast reader connects and dumps by itself (cdc.reader.replication), from a position
        and from a GTID, with checksums on: mysql-replication is never asked."""

        def refuse(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("the fast reader used mysql-replication's BinLogStreamReader")

        monkeypatch.setattr("cdc.reader.library.BinLogStreamReader", refuse)
        with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
            _execute(conn, TYPES_DDL.format(name="types_utf8", engine="MyISAM", charset="utf8mb4"))
            with conn.cursor() as cur:
                cur.execute("SELECT @@global.binlog_checksum, @@gtid_binlog_pos")
                checksum, gtid = cur.fetchone()
            start = position(conn)
            _execute(conn, *(f"INSERT INTO types_utf8 (i_s) VALUES ({i})" for i in range(3)))
        assert checksum == "CRC32"
        cfg = mysql_config(mariadb, vicidial_db)
        for begin in (start, str(gtid)):
            reader = fast_reader(cfg, WATCHED, begin)
            reader.start()
            seen: list[RowChange] = []
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    while len(seen) < 3:
                        seen.extend(i for i in await reader.get_batch() if isinstance(i, RowChange))
            finally:
                await reader.stop()
            assert [r.values["i_s"] for r in seen] == [0, 1, 2], begin

    async def test_event_larger_than_one_packet(self, mariadb: PrivateMariaDB, vicidial_db: str) -> None:
        """A 17 MB row arrives in several 16 MB protocol packets and decodes like the reference."""
        cfg = mysql_config(mariadb, vicidial_db)
        with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
            _execute(conn, "CREATE TABLE big (id INT PRIMARY KEY, body LONGTEXT) ENGINE=MyISAM")
            start = position(conn)
            _execute(conn, "INSERT INTO big VALUES (1, CONCAT(REPEAT('x', 17825792), 'é')), (2, 'small')")
            end = position(conn)
        decoded = {}
        for factory in (library_reader, fast_reader):
            reader = factory(cfg, {"big"}, start)
            reader.start()
            items: list[SourceItem] = []
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    while not any(isinstance(i, GroupEnd) and i.position >= end for i in items):
                        items.extend(await reader.get_batch())
            finally:
                await reader.stop()
            decoded[factory.__name__] = [
                (r.values["id"], r.values["body"]) for r in items if isinstance(r, RowChange)
            ]
        assert decoded["fast_reader"] == decoded["library_reader"]
        assert len(decoded["fast_reader"][0][1]) == 17825793

    async def test_purged_start_is_reported(self, mariadb: PrivateMariaDB) -> None:
        """A checkpoint in a binlog file the server no longer has raises BinlogPurgedError."""
        reader = fast_reader(mysql_config(mariadb), WATCHED, Position("binlog.999999", 4))
        reader.start()
        try:
            with pytest.raises(BinlogPurgedError):
                async with asyncio.timeout(READ_TIMEOUT_S):
                    await reader.get_batch()
        finally:
            await reader.stop()

    async def test_ddl_invalidates_enum_labels_without_metadata(
        self, mariadb_factory: MariaDBFactory
    ) -> None:
        """NO_LOG: an ENUM gains a label; the table map bytes stay the same, the DDL rebuilds."""
        server = mariadb_factory(row_metadata="NO_LOG")
        with contextlib.closing(server.connect()) as conn:
            _execute(conn, f"CREATE DATABASE {DATABASE}", TYPES_DDL.format(name=f"{DATABASE}.types_utf8",
                     engine="MyISAM", charset="utf8mb4"))  # fmt: skip
            start = position(conn)
        reader = fast_reader(mysql_config(server), WATCHED, start)
        reader.start()
        seen: list[SourceItem] = []

        async def until(predicate: Any) -> None:
            async with asyncio.timeout(READ_TIMEOUT_S):
                while not any(predicate(i) for i in seen):
                    seen.extend(await reader.get_batch())

        try:
            with contextlib.closing(server.connect(db=DATABASE)) as conn:
                _execute(conn, "INSERT INTO types_utf8 (gender) VALUES ('U')")
                await until(lambda i: isinstance(i, RowChange))
                _execute(
                    conn,
                    "ALTER TABLE types_utf8 MODIFY gender ENUM('M','F','U','X')",
                    "INSERT INTO types_utf8 (gender) VALUES ('X')",
                )
                await until(lambda i: isinstance(i, RowChange) and i.values["gender"] != "U")
        finally:
            await reader.stop()
        assert [i.values["gender"] for i in seen if isinstance(i, RowChange)] == ["U", "X"]
        assert any(isinstance(i, SchemaChange) for i in seen)

    @pytest.mark.both_readers
    async def test_custom_tables_always_read(
        self, mariadb: PrivateMariaDB, vicidial_db: str, reader_class: ReaderFactory
    ) -> None:
        """A custom_<list_id> table created while running is read without being watched."""
        cfg = mysql_config(mariadb, vicidial_db)
        with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
            start = position(conn)
            _execute(conn, "CREATE TABLE custom_8 (lead_id INT UNSIGNED PRIMARY KEY, note VARCHAR(9))")
            _execute(conn, "INSERT INTO custom_8 VALUES (1, 'first')")
            reader = reader_class(cfg, WATCHED, start)
            reader.start()
            seen: list[RowChange] = []
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    while not seen:
                        seen.extend(i for i in await reader.get_batch() if isinstance(i, RowChange))
            finally:
                await reader.stop()
        assert [(r.table, r.values["note"]) for r in seen] == [("custom_8", "first")]


def _kill_dump_threads(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
        for (thread_id,) in cur.fetchall():
            with contextlib.suppress(pymysql.MySQLError):
                cur.execute(f"KILL {int(thread_id)}")


class TestReaderChoice:
    """The service builds the reader it is given, else the one ``reader.decoder`` names."""

    async def test_service_builds_the_reader_it_is_given(
        self, mariadb: PrivateMariaDB, vicidial_db: str, start_pipeline: StartPipeline
    ) -> None:
        """A reader factory given to the service wins over ``reader.decoder`` (here the default)."""
        run = await start_pipeline(mariadb, vicidial_db, reader_factory=library_reader)
        assert run.config.reader.decoder == "fast"
        assert type(getattr(run.service.reader, "source", None)) is LibrarySource

    @pytest.mark.both_readers
    async def test_decoder_names_the_reader(
        self, mariadb: PrivateMariaDB, vicidial_db: str, start_pipeline: StartPipeline, decoder: str
    ) -> None:
        """``reader.decoder`` = fast or library: the service builds the reader on that source."""
        run = await start_pipeline(mariadb, vicidial_db)
        sources = {"fast": RawSource, "library": LibrarySource}
        assert type(getattr(run.service.reader, "source", None)) is sources[decoder]
