"""The cases recorded on a real VICIdial are the reference (``tests/golden/vicidial-recorded``).

Every case's raw binlog file goes through the fast reader's own framing and decoding
(no server), then through the pipeline (detector, settings, router) with the settings
that were in force. What VICIdial sent (its ``vicidial_url_log`` rows, the request
lines its receiver got) must be what we deliver, byte for byte, apart from ``SQLdate``
and ``epoch`` (VICIdial leaves them empty, we fill them); where VICIdial sent nothing,
nothing is delivered and the skip says why.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from typing import Any

import pytest
import yarl
from support.recorded import COLUMNS, RecordedCase, load, names, settings

from cdc import template
from cdc.config import Config, DeliveryConfig
from cdc.errors import ReaderFault, ReaderFaultError
from cdc.metrics import Metrics
from cdc.pipeline import Pipeline, PipelineStatistics
from cdc.reader.framing import BINLOG_MAGIC, file_events
from cdc.reader.recorded import read_recorded
from cdc.records import Delivery, GroupEnd, Op, Position, RowChange, SkipReason, SourceItem, Value
from cdc.settings import SETTINGS_TABLES, SettingsCache
from cdc.vicidial import API_LOG_TABLE, LEAD_TABLE, URL_LOG_TABLE

CASES = names()
#: Cases where VICIdial fetched a URL (a vicidial_url_log row), and the others.
SENT = [n for n in CASES if load(n).rows("vicidial_url_log")]
QUIET = [n for n in CASES if n not in SENT]
#: The recording's receiver (README: ``R = http://127.0.0.1:8099``).
RECEIVER = "127.0.0.1:8099"
TABLES = sorted({LEAD_TABLE, API_LOG_TABLE, URL_LOG_TABLE, *SETTINGS_TABLES})
#: Why a lead VICIdial inserted but sent nothing for is skipped (README: list 103 is
#: ---DISABLED---, list 104's and, in c18, the system's URL is 'http://x/1').
NOT_SENT = {
    "c05_apinewlead_list103_disabled": SkipReason.LIST_DISABLED,
    "c06_apinewlead_list104_short_url": SkipReason.URL_TOO_SHORT,
    "c18_system_url_short": SkipReason.URL_TOO_SHORT,
}
_FILLED_BY_US = re.compile(r"([?&](?:SQLdate|epoch)=)[^&]*")


def test_all_recorded_cases_are_here() -> None:
    """23 cases, each with its binlog, rows and the requests VICIdial sent."""
    assert (len(CASES), len(SENT), len(QUIET)) == (23, 14, 9)
    assert set(NOT_SENT) <= set(QUIET)
    for name in CASES:
        case = load(name)
        assert case.binlog.startswith(BINLOG_MAGIC) and case.case["name"] == name


# -- the raw reader on real binlog bytes ----------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_file_framing(name: str) -> None:
    """The events tile the file after its magic number, each with its own CRC32."""
    data = load(name).binlog
    events = list(file_events(data))
    assert sum(len(e) for e in events) == len(data) - len(BINLOG_MAGIC)
    assert events[0][4] == 15  # FORMAT_DESCRIPTION first
    assert all(zlib.crc32(e[:-4]) == int.from_bytes(e[-4:], "little") for e in events)


def test_truncated_file_is_refused() -> None:
    """A truncated binlog file, or one without its magic header, is refused."""
    data = load("c01_add_lead_basic").binlog
    with pytest.raises(ValueError, match="truncated"):
        list(file_events(data[:-1]))
    with pytest.raises(ValueError, match="magic"):
        list(file_events(data[4:]))


@pytest.mark.parametrize("name", CASES)
def test_packets_split_across_reads(name: str) -> None:
    """Socket reads of 1, 7 or 4096 bytes (packets cut anywhere) hand over the same rows and
    end at the same position (a run of empty groups is one group end per read: fewer when
    the file comes in one read)."""
    case = load(name)
    whole = case.items(TABLES)
    assert isinstance(whole[-1], GroupEnd)
    for chunk in (1, 7, 4096):
        items = case.items(TABLES, chunk_bytes=chunk)
        assert rows_of(items) == rows_of(whole)
        assert items[-1] == whole[-1]


def rows_of(items: list[SourceItem]) -> list[SourceItem]:
    return [i for i in items if not isinstance(i, GroupEnd)]


@pytest.mark.parametrize("name", CASES)
def test_decoded_rows_are_the_rows_vicidial_wrote(name: str) -> None:
    """The last image of every row the reader decoded equals the row in VICIdial's tables."""
    case = load(name)
    final: dict[str, dict[Any, dict[str, str]]] = {t: {} for t in COLUMNS}
    for item in case.items(TABLES):
        if isinstance(item, RowChange) and item.table in final and item.after is not None:
            key = next(iter(item.after.values()))  # the primary key is the first column
            final[item.table][key] = {k: template.format_value(v) for k, v in item.after.items()}
    for table, rows in final.items():
        assert list(rows.values()) == case.rows(table), table


def test_bad_checksum_is_a_reader_fault() -> None:
    """A flipped byte in a watched table's rows event is refused, never decoded."""
    case = load("c01_add_lead_basic")
    events = list(file_events(case.binlog))
    table_ids = {e[19:25]: e for e in events if e[4] == 19 and b"vicidial_list" in e}
    assert table_ids
    k = next(i for i, e in enumerate(events) if e[4] in (23, 30) and e[19:25] in table_ids)
    bad = bytearray(events[k])
    bad[-10] ^= 0xFF
    events[k] = bytes(bad)
    with pytest.raises(ReaderFaultError) as err:
        read_recorded(events, COLUMNS, file=case.binlog_file, tables=TABLES)
    assert err.value.kind is ReaderFault.MALFORMED_EVENT


def test_rows_of_a_group_that_never_ended_are_dropped_at_the_next_gtid() -> None:
    """A GTID that comes while a group's rows wait for their end (the end was never read)
    drops those rows, as :meth:`GroupAssembler.begin` says; the groups around it are whole."""
    case = load("c01_add_lead_basic")
    events = list(file_events(case.binlog))
    table_ids = {e[19:25] for e in events if e[4] == 19 and b"vicidial_list" in e}
    k = next(i for i, e in enumerate(events) if e[4] in (23, 30) and e[19:25] in table_ids)
    end = next(j for j in range(k + 1, len(events)) if events[j][4] in (2, 16))  # COMMIT or Xid
    assert events[end + 1][4] == 162  # the next group's MariaDB GTID follows
    cut = events[:end] + events[end + 1 :]
    whole = rows_of(read_recorded(events, COLUMNS, file=case.binlog_file, tables=TABLES))
    dropped = int.from_bytes(events[k][13:17], "little")  # the rows event's log_pos
    got = rows_of(read_recorded(cut, COLUMNS, file=case.binlog_file, tables=TABLES))
    expected = [i for i in whole if not (isinstance(i, RowChange) and i.log_pos == dropped)]
    assert len(expected) < len(whole) and got == expected


# -- detector + settings + router against what VICIdial sent ---------------------------


def pipeline_for(name: str) -> Pipeline:
    s = settings()
    urls = {u["url_id"]: u for u in s["urls"]}
    urls.update({u["url_id"]: u for u in s["cases"].get(name, [])})
    cache = SettingsCache()
    cache.load(list(urls.values()), s["lists"], s["fields"], s["system"])
    cfg = dataclasses.replace(Config(), delivery=DeliveryConfig(mode="send"))
    return Pipeline(
        cfg,
        cache,
        Metrics(),
        PipelineStatistics(),
        server_charset=s["server_charset"],
        enum_has_apinewlead=True,
    )


def run(case: RecordedCase) -> tuple[list[Delivery], Pipeline]:
    """The whole recording in one step, then binlog time well past every wait."""
    items: list[SourceItem] = case.items(TABLES)
    p = pipeline_for(case.name)
    deliveries = list(p.process([items], seen=0.0).deliveries)
    last = max(getattr(i, "timestamp", 0) for i in items)
    later: list[SourceItem] = [GroupEnd(Position(case.binlog_file, 1 << 40), last + 3600)]
    deliveries += p.process([later], seen=0.0).deliveries
    return deliveries, p


def request_line(url: str) -> str:
    """The request line our sender writes for ``url`` (``yarl.URL(url, encoded=True)``)."""
    return f"GET {yarl.URL(url, encoded=True).raw_path_qs} HTTP/1.1"


def vicidials(text: str) -> str:
    """``SQLdate`` and ``epoch`` emptied, as VICIdial sends them."""
    return _FILLED_BY_US.sub(r"\1", text)


def inserted(items: list[SourceItem]) -> list[Value]:
    return [
        i.values["lead_id"]
        for i in items
        if isinstance(i, RowChange) and i.table == LEAD_TABLE and i.op is Op.INSERT
    ]


@pytest.mark.parametrize("name", SENT)
def test_we_send_what_vicidial_sent(name: str) -> None:
    """One delivery per URL VICIdial fetched (its url_log rows, in order), same URL; to its
    receiver, the same request line and Host (c14's port was closed: nothing received)."""
    case = load(name)
    deliveries, p = run(case)
    assert [(d.lead_id, d.method, vicidials(d.url)) for d in deliveries] == [
        (int(a["uniqueid"]), "GET", a["url"]) for a in case.rows("vicidial_url_log")
    ]
    received = case.case["receiver"]
    assert [r["request_line"] for r in received] == case.request_lines
    ours = [d.url for d in deliveries if yarl.URL(d.url, encoded=True).raw_authority == RECEIVER]
    assert [vicidials(request_line(url)) for url in ours] == case.request_lines
    assert all(dict(r["headers"])["Host"] == RECEIVER for r in received)
    assert p.stats.skipped == {}


@pytest.mark.parametrize("name", QUIET)
def test_no_request_where_vicidial_sent_none(name: str) -> None:
    """No url_log row: no delivery; a lead that was inserted is skipped with the right reason."""
    case = load(name)
    deliveries, p = run(case)
    assert deliveries == []
    leads = inserted(case.items(TABLES))
    expected = {NOT_SENT[name].value: len(leads)} if leads else {}
    assert p.stats.skipped == expected
