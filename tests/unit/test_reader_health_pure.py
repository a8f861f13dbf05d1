"""Pure parts of reader health: error classes, server continuity, large packets, the state lock."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pymysql
import pytest

from cdc.errors import (
    BinlogPurgedError,
    ReaderFault,
    ReaderFaultError,
    SourceError,
    StateLockedError,
)
from cdc.ops.check.facts import ServerFacts
from cdc.ops.check.results import Status
from cdc.ops.check.rules import check_compression
from cdc.reader.faults import TransientCause, classify, explain, transient_cause
from cdc.reader.framing import LONG_PACKET, packet_error, read_packet
from cdc.reader.rowdecode import UnsupportedColumnError
from cdc.reader.serverinfo import ServerIdentity, Verdict, continuity, facts_from_variables
from cdc.records import Position
from cdc.statelock import StateLock, held_by


def _wrapped(inner: BaseException) -> SourceError:
    """As ``cdc.reader.connection.connect`` raises it: our error, the driver's as its cause."""
    try:
        raise SourceError("cannot connect to MySQL") from inner
    except SourceError as exc:
        return exc


class TestClassify:
    """Every error gets a kind; only connection trouble is retried fast."""

    @pytest.mark.parametrize(
        ("error", "kind"),
        [
            (
                pymysql.err.OperationalError(1045, "Access denied for user 'cdc'@'10.0.0.5'"),
                ReaderFault.ACCESS_DENIED,
            ),
            (
                pymysql.err.OperationalError(1227, "you need the REPLICATION SLAVE privilege"),
                ReaderFault.ACCESS_DENIED,
            ),
            (pymysql.err.OperationalError(1142, "SELECT command denied"), ReaderFault.TABLE_UNREADABLE),
            (
                pymysql.err.OperationalError(1236, "binlog truncated in the middle of event"),
                ReaderFault.BINLOG_FATAL,
            ),
            (
                pymysql.err.OperationalError(2013, "Lost connection to server during query"),
                ReaderFault.CONNECTION,
            ),
            (_wrapped(pymysql.err.OperationalError(2003, "Can't connect")), ReaderFault.CONNECTION),
            (
                pymysql.err.OperationalError(1381, "You are not using binary logging"),
                ReaderFault.BINLOG_SETTINGS,
            ),
            (_wrapped(pymysql.err.OperationalError(1045, "Access denied")), ReaderFault.ACCESS_DENIED),
            (ConnectionError("the server closed the binlog stream"), ReaderFault.CONNECTION),
            (TimeoutError("timed out"), ReaderFault.CONNECTION),
            (ReaderFaultError(ReaderFault.SCHEMA_AMBIGUOUS, "x"), ReaderFault.SCHEMA_AMBIGUOUS),
            (BinlogPurgedError("gone"), ReaderFault.BINLOG_PURGED),
            (struct.error("unpack requires a buffer of 4 bytes"), ReaderFault.MALFORMED_EVENT),
            (KeyError(7), ReaderFault.MALFORMED_EVENT),
        ],
    )
    def test_kinds(self, error: BaseException, kind: ReaderFault) -> None:
        """Each reader error is classified into its fault kind; only connection trouble is CONNECTION."""
        assert classify(error) is kind

    @pytest.mark.parametrize("first", [0x05, 0xFE])
    def test_unexpected_packet_is_malformed_by_kind(self, first: int) -> None:
        """A packet that is neither an event, an error nor an EOF is a malformed_event fault
        raised as such where it is read (no message text is matched)."""
        with pytest.raises(ReaderFaultError) as caught:
            packet_error(bytes([first]) + b"x" * 20)
        assert caught.value.kind is ReaderFault.MALFORMED_EVENT
        assert classify(caught.value) is ReaderFault.MALFORMED_EVENT

    def test_unsupported_column_through_its_cause(self) -> None:
        """An unsupported column is recognised through the exception's cause."""
        try:
            raise SourceError("table t: geometry") from UnsupportedColumnError("geometry")
        except SourceError as exc:
            assert classify(exc) is ReaderFault.UNSUPPORTED_COLUMN

    @pytest.mark.parametrize(
        ("error", "cause"),
        [
            (pymysql.err.OperationalError(2013, "Lost connection"), TransientCause.SERVER_GONE),
            (_wrapped(pymysql.err.OperationalError(2003, "Can't connect")), TransientCause.REFUSED),
            (TimeoutError(), TransientCause.TIMEOUT),
            (ConnectionError("closed"), TransientCause.CLOSED),
        ],
    )
    def test_transient_causes(self, error: BaseException, cause: TransientCause) -> None:
        """Each transient disconnect is named by its cause."""
        assert transient_cause(error) is cause

    def test_access_denied_names_the_grant_for_the_account_the_server_saw(self) -> None:
        """Access denied names the GRANT for the account as the server saw it, with the server's message."""
        error = pymysql.err.OperationalError(
            1045, "Access denied for user 'cdc'@'10.0.0.5' (using password: YES)"
        )
        text = explain(ReaderFault.ACCESS_DENIED, error, user="cdc", database="asterisk", position=None)
        assert "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdc'@'10.0.0.5'" in text
        assert "(1045) Access denied" in text

    def test_every_fault_kind_has_a_fix(self) -> None:
        """Every fault kind that is not retried explains itself with the error and a fix."""
        error = RuntimeError("boom")
        for kind in ReaderFault:
            if kind in (ReaderFault.CONNECTION, ReaderFault.BINLOG_PURGED, ReaderFault.SERVER_CHANGED):
                continue  # retried / own message (purged_message, serverinfo.changed_message)
            text = explain(
                kind, error, user="cdc", database="asterisk", position=Position("binlog.000001", 4)
            )
            assert "boom" in text and any(w in text for w in ("Fix", "fix", "Check", "report")), kind


def _facts(server_id: int = 1, uuid: str = "", logs: tuple[tuple[str, int], ...] = (), gtid_pos: str = "",
           gtid_state: str = "") -> object:  # fmt: skip
    return facts_from_variables(
        {"server_id": str(server_id), "server_uuid": uuid, "gtid_binlog_pos": gtid_pos,
         "gtid_binlog_state": gtid_state, "binlog_format": "ROW", "binlog_row_image": "FULL"},
        logs,
    )  # fmt: skip


class TestContinuity:
    """The same server, a replica holding our GTIDs, or another server."""

    A = ServerIdentity(1)
    CHECKPOINT = Position("binlog.000003", 5000, "0-1-500")

    def test_same_server_after_restart(self) -> None:
        """The same server after a restart, further along, is the same server."""
        facts = _facts(logs=(("binlog.000003", 9000), ("binlog.000004", 300)), gtid_pos="0-1-520")
        assert continuity(self.A, self.CHECKPOINT, facts).verdict is Verdict.SAME  # type: ignore[arg-type]

    def test_purge_is_not_a_server_change(self) -> None:
        """Purged binlogs with GTIDs past ours are not a server change."""
        facts = _facts(logs=(("binlog.000009", 300),), gtid_pos="0-1-900")
        assert continuity(self.A, self.CHECKPOINT, facts).verdict is Verdict.SAME  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "facts",
        [
            _facts(logs=(("binlog.000003", 4000),), gtid_pos="0-1-900"),  # file shorter than the checkpoint
            _facts(logs=(("binlog.000001", 90000),), gtid_pos="0-1-900"),  # only older files
            _facts(logs=(("binlog.000003", 9000),), gtid_pos="0-1-20"),  # GTIDs behind ours
            _facts(server_id=2, logs=(("binlog.000003", 9000),), gtid_pos="0-2-20", gtid_state="0-2-20"),
            _facts(uuid="b", logs=(("binlog.000003", 9000),)),
        ],
    )
    def test_another_server(self, facts: object) -> None:
        """A shorter file, only older files, GTIDs behind ours, another server_id or another uuid mean
        another server."""
        recorded = ServerIdentity(1, "a")
        result = continuity(recorded, self.CHECKPOINT, facts)  # type: ignore[arg-type]
        assert result.verdict is Verdict.CHANGED and result.reason

    def test_promoted_replica_continues_by_gtid(self) -> None:
        """A promoted replica holding our GTIDs continues by GTID, and the reason names its server_id."""
        facts = _facts(server_id=2, logs=(("replica-bin.000001", 100),), gtid_pos="0-2-510",
                       gtid_state="0-1-505,0-2-510")  # fmt: skip
        result = continuity(self.A, self.CHECKPOINT, facts)  # type: ignore[arg-type]
        assert result.verdict is Verdict.GTID and "server_id is 2" in result.reason

    def test_a_clone_with_our_server_id_never_continues_by_gtid(self) -> None:
        """A clone with our server_id but a different history never continues by GTID."""
        facts = _facts(logs=(("binlog.000003", 100),), gtid_pos="0-1-900", gtid_state="0-1-900")
        assert continuity(self.A, self.CHECKPOINT, facts).verdict is Verdict.CHANGED  # type: ignore[arg-type]


def _packet(payload: bytes, seq: int = 0) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def _event(etype: int, table_id: int, size: int) -> bytes:
    """An OK byte, a 19-byte event header, a 6-byte table id, then filler."""
    header = bytes(4) + bytes([etype]) + bytes(14)
    return b"\x00" + header + table_id.to_bytes(6, "little") + b"x" * size


def _split(payload: bytes) -> bytes:
    """The protocol's framing of a payload of 16 MB or more: full parts, then the rest."""
    out = b""
    while True:
        part, payload = payload[:LONG_PACKET], payload[LONG_PACKET:]
        out += _packet(part)
        if len(part) < LONG_PACKET:
            return out


class TestReadPacket:
    """A large packet is read exactly (parts joined), or dropped in pieces when unwatched."""

    def _read(self, wire: bytes, have: int, watched: set[int]) -> tuple[bytes | None, bytes, int]:
        """(payload, what the socket still holds after it, the largest single read)."""
        stream = io.BytesIO(wire[have:])
        calls = []

        def read(n: int) -> bytes:
            calls.append(n)
            return stream.read(n)

        payload, rest = read_packet(read, wire[:have], 0, have, dict.fromkeys(watched))
        return payload, rest + stream.read(), max(calls)

    def test_multi_part_payload_joined(self) -> None:
        """A payload split over several 16 MB packets is joined into one event."""
        event = _event(30, 7, LONG_PACKET + 1000)
        wire = _split(event) + _packet(b"next")
        payload, after, _ = self._read(wire, 70_000, {7})
        assert payload == event and after == _packet(b"next")

    def test_unwatched_rows_dropped_in_small_reads(self) -> None:
        """An unwatched rows event spanning packets is dropped while read in small pieces."""
        event = _event(30, 8, 2 * LONG_PACKET)
        payload, after, biggest = self._read(_split(event) + b"\x01\x00", 65_536, {7})
        assert payload is None and after == b"\x01\x00"
        assert biggest <= 1 << 20

    def test_exact_part_boundary(self) -> None:
        """An event of exactly one full packet ends with an empty packet and is read whole."""
        event = _event(19, 7, LONG_PACKET - 26)  # exactly one full part, then an empty one
        assert len(event) == LONG_PACKET
        payload, rest, _ = self._read(_split(event), 10, {7})
        assert payload == event and rest == b""

    def test_stream_ending_inside_an_event(self) -> None:
        """A stream that ends inside an event is a connection error."""
        wire = _split(_event(30, 7, 100_000))[:90_000]
        with pytest.raises(ConnectionError):
            self._read(wire, 100, {7})


class TestCheckCompression:
    @pytest.mark.parametrize("name", ["log_bin_compress", "binlog_transaction_compression"])
    def test_compression_on_is_a_blocker_with_the_my_cnf_line(self, name: str) -> None:
        """Binlog compression turned on fails the check with the my.cnf line that turns it off."""
        facts = _check_facts({name: "ON"})
        result = check_compression(facts)
        assert result.status is Status.FAIL and f"{name} = OFF" in result.fix

    def test_off(self) -> None:
        """Binlog compression off passes the check."""
        facts = _check_facts({"log_bin_compress": "OFF"})
        assert check_compression(facts).status is Status.OK


def _check_facts(variables: dict[str, str]) -> ServerFacts:
    return ServerFacts(
        account="cdc@%",
        variables=variables,
        grants=(),
        replica_server_ids=(),
        database="asterisk",
        tables=frozenset(),
        url_type_labels=None,
        settings=None,
    )


class TestStateLock:
    def test_second_holder_refused_with_the_first_ones_pid(self, tmp_path: Path) -> None:
        """A second holder of the state lock is refused with the first one's pid and host; the lock file
        is 0600 and freed on release."""
        path = str(tmp_path / "state.db")
        with StateLock(path):
            with pytest.raises(StateLockedError, match=r"pid \d+ on host"):
                StateLock(path).acquire()
            assert held_by(path) is not None
        assert held_by(path) is None
        with StateLock(path):  # released: free again
            pass
        assert (tmp_path / "state.db.lock").stat().st_mode & 0o777 == 0o600


def test_rows_of_a_table_without_columns_are_a_table_unreadable_fault() -> None:
    """The reader's own error for a watched table it cannot see (no SELECT, no column names
    in the binlog) is a table_unreadable fault with the GRANT, never a transient disconnect
    retried forever (schema history's wording 'but none' no longer matched the classifier).
    Both sources raise the error :class:`cdc.reader.schema.TableSchemas` makes."""
    from cdc.config import MysqlConfig
    from cdc.reader.schema import SchemaCache, TableSchemas, WatchedTables

    mysql = MysqlConfig(user="cdc", database="asterisk")
    schemas = TableSchemas("asterisk", WatchedTables({"vicidial_url_log"}), SchemaCache(mysql))
    exc = schemas.ambiguous("asterisk", "vicidial_url_log", Position("binlog.000001", 400), [3, 15, 15], 0)
    assert classify(exc) is ReaderFault.TABLE_UNREADABLE
    message = explain(ReaderFault.TABLE_UNREADABLE, exc, user="cdc", database="asterisk", position=None)
    assert "vicidial_url_log" in message and "GRANT SELECT ON `asterisk`.* TO 'cdc'" in message
