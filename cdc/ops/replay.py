"""Replay: rebuild deliveries with plain SELECTs, for leads whose binlog is gone.

``vicidial-cdc replay --lead-id N… | --since T [--until T] [--list L…]`` finds API leads
the way the detector does, but in the tables instead of the binlog:

- an API lead is a ``vicidial_list`` row with a ``vicidial_api_log`` row
  ``function='add_lead'``, ``result='SUCCESS'`` whose ``data`` has the lead id as its
  third ``|`` field (``phone|list_id|lead_id|gmt``);
- ``--since/--until`` (server local wall time, as ``api_date`` is stored) select those
  api_log rows first, then their leads;
- ``--lead-id`` selects the leads first (by primary key), then looks for their api_log
  rows within :data:`API_LOG_WINDOW_S` of ``entry_date`` (``api_date`` is indexed,
  ``data`` is not; ``add_lead`` writes both with ``NOW()`` in the same call), one
  ``api_date`` range per cluster of nearby entry dates. A lead without a valid
  ``entry_date`` costs one scan of the api_log table per batch.

Each lead is then built into an :class:`~cdc.records.ApiLead` as the detector builds
it, resolved with :func:`cdc.resolve.resolve` against the settings loaded now
(``vicidb.load_settings_rows`` + the config file's ``[urls]``), and committed to the
outbox with ``commit_batch(deliveries, None, now)``: idempotent on (source, lead_id,
endpoint), so a replay never duplicates what the live path (or an earlier replay)
stored. Deduplication covers what the outbox still holds: delivered rows are pruned
after ``state.retention_s`` (7 days by default), so older leads are sent again even
without ``--force``. ``--force`` resets rows already stored back to pending (see
:meth:`cdc.store.DeadLetters.requeue`), so even delivered leads are sent again, under the same
idempotency key.

The lead is the very row the binlog path builds: every ``vicidial_list`` column, in
table order (:func:`cdc.vicidb.table_columns`), with the binlog reader's values
(:func:`cdc.vicidb.binlog_row`), so each format (``get``, ``post-form``, ``post-json``)
renders the same request as live. Text comes through a ``utf8mb4`` connection (the
server converts each column from its charset, MariaDB ``latin1`` being Windows-1252 as
in :mod:`cdc.charset`, so double-encoded latin1 text comes back as the same Python
``str`` the binlog reader decodes), ENUMs as labels, DECIMAL as
:class:`decimal.Decimal` with the column's scale; DATE/DATETIME/TIME as the server's
text, turned into ``date``/``datetime``/``timedelta`` (zero dates stay ``0000-00-00``
text, as in the binlog); TIMESTAMP (``modify_date``) as ``UNIX_TIMESTAMP()``, the
stored UTC value, turned into the binlog's naive UTC ``datetime``.

What differs from the live path, by design:

- the lead is read as it stands now: a lead edited since it was added (status,
  names, moved to another list) replays with its current values;
- ``inserted_at`` (the ``epoch`` token) is ``UNIX_TIMESTAMP(entry_date)`` computed by
  the server in its session time zone, i.e. the server's local time, as VICIdial
  wrote it with ``NOW()``; the live path uses the binlog timestamp of the insert,
  which is the same second except in the repeated hour when clocks go back (DST).
  Without a valid ``entry_date`` the api_log row's ``api_date`` is used;
- custom fields come from ``custom_<list_id>`` when the lead's URL needs them
  (:func:`cdc.resolve.needs_custom`) and the lead has a row there;
- a lead whose api_log row was archived or deleted is not an API lead here
  (counted as ``not_api``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

import pymysql

from .. import vicidb, vicidial
from ..config import Config
from ..duration import parse_duration
from ..endpoints import Router
from ..errors import ConfigError, ExitCode
from ..leadfetch import LeadFetcher, build_lead, connection_options
from ..modes import vicidial_sender
from ..reader.connection import connect
from ..records import ApiLead, Delivery, SkipReason, Value
from ..records import as_int as _int
from ..records import as_text as _text
from ..settings import SettingsSnapshot, UrlOverrides
from ..store import OPERATOR_BATCH_ROWS, DeadLetters, Outbox
from ..vicidial import ADD_LEAD, API_LOG_TABLE, API_SUCCESS, LEAD_ADDED_REASON, UPDATE_LEAD
from .statefile import open_store

__all__ = [
    "API_LOG_WINDOW_S",
    "LeadIdRange",
    "ReplayReport",
    "Selection",
    "load_snapshot",
    "parse_lead_ids",
    "parse_time",
    "render_report",
    "replay",
    "replay_command",
]

#: How far from ``entry_date`` the ``add_lead`` api_log row of a lead is looked for.
API_LOG_WINDOW_S: Final = 3600
_WINDOW: Final = _dt.timedelta(seconds=API_LOG_WINDOW_S)
#: Leads (or api_log rows) handled per SELECT and per outbox commit.
BATCH_SIZE: Final = 500

#: Extra reasons a lead found by replay is not enqueued (besides :class:`SkipReason`).
LEAD_MISSING: Final = "lead_missing"  # the api_log row names a lead that no longer exists

_LEAD_ID_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


@dataclass(frozen=True, slots=True, order=True)
class LeadIdRange:
    """Lead ids ``first..last``, both included."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Selection:
    """Which leads to replay: ids and id ranges, or an ``api_date`` range; optional lists.

    ``since``/``until`` are ``YYYY-MM-DD HH:MM:SS`` in the server's local time;
    ``since`` is included, ``until`` excluded.
    """

    lead_ids: tuple[int, ...] = ()
    ranges: tuple[LeadIdRange, ...] = ()
    since: str | None = None
    until: str | None = None
    lists: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        by_id = bool(self.lead_ids or self.ranges)
        if by_id == (self.since is not None):
            raise ConfigError("replay needs either lead ids or --since, not both")
        if self.until is not None and self.since is None:
            raise ConfigError("--until needs --since")

    def describe(self) -> str:
        if self.since is not None:
            text = f"api_date >= {self.since}" + (f" and < {self.until}" if self.until else "")
        else:
            parts = [str(i) for i in self.lead_ids] + [f"{r.first}-{r.last}" for r in self.ranges]
            text = "lead_id " + ", ".join(parts[:10]) + (" …" if len(parts) > 10 else "")
        if self.lists:
            text += " in list " + ", ".join(str(i) for i in sorted(self.lists))
        return text


@dataclass(slots=True)
class ReplayReport:
    """What a replay found and did."""

    selection: str
    dry_run: bool
    force: bool
    #: API leads selected (after the list filter).
    found: int = 0
    #: Deliveries the resolver built for them.
    deliveries: int = 0
    #: New outbox rows.
    enqueued: int = 0
    #: Deliveries whose (source, lead_id, endpoint) was already stored (in any state).
    already_present: int = 0
    #: Of those, rows reset to pending by ``--force``.
    requeued: int = 0
    #: Leads left out by ``--list``.
    other_list: int = 0
    #: Deliveries whose URL is outside their endpoint's allowed_origins: stored dead, unsent.
    refused: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["skipped"] = dict(sorted(self.skipped.items()))
        return out


# -- arguments ------------------------------------------------------------------------


def parse_lead_ids(values: Iterable[str]) -> tuple[tuple[int, ...], tuple[LeadIdRange, ...]]:
    """``["7", "100-200", "9,10"]`` → ((7, 9, 10), (LeadIdRange(100, 200),))."""
    ids: set[int] = set()
    ranges: list[LeadIdRange] = []
    for value in values:
        for part in value.split(","):
            match = _LEAD_ID_RANGE.fullmatch(part.strip())
            if match is None:
                raise ConfigError(f"--lead-id: {part!r} is not a lead id or a FIRST-LAST range")
            first = int(match.group(1))
            if match.group(2) is None:
                ids.add(first)
                continue
            last = int(match.group(2))
            if last < first:
                raise ConfigError(f"--lead-id: range {part!r} ends before it starts")
            ranges.append(LeadIdRange(first, last))
    ranges.sort()
    merged: list[LeadIdRange] = []
    for r in ranges:
        if merged and r.first <= merged[-1].last + 1:
            merged[-1] = LeadIdRange(merged[-1].first, max(merged[-1].last, r.last))
        else:
            merged.append(r)
    lone = tuple(sorted(i for i in ids if not any(r.first <= i <= r.last for r in merged)))
    return lone, tuple(merged)


def parse_time(conn: pymysql.Connection[Any], text: str) -> str:
    """``--since``/``--until``: a server-local time, or a duration ago by the server's clock.

    ``2025-06-01``, ``2025-06-01 14:30``, ``2025-06-01T14:30:00`` (no time zone: it is
    compared with ``api_date``, the server's wall time), or ``90m``, ``6h``, ``2d``.
    Returns ``YYYY-MM-DD HH:MM:SS``.
    """
    try:
        seconds = parse_duration(text)
    except ConfigError:
        seconds = None
    if seconds is not None:
        rows = vicidb.select(conn, "SELECT CAST(NOW() - INTERVAL %s SECOND AS CHAR) AS t", (int(seconds),))
        return _text(rows[0]["t"])[:19]
    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a time (YYYY-MM-DD[ HH:MM[:SS]], server local time) or a duration (6h)"
        ) from None
    if when.tzinfo is not None:
        raise ConfigError(f"{text!r}: give the server's local time without a time zone")
    return when.strftime("%Y-%m-%d %H:%M:%S")


# -- the connection and the settings -------------------------------------------------


def load_snapshot(conn: pymysql.Connection[Any], config: Config) -> SettingsSnapshot:
    """The settings as the live path has them: VICIdial's rows plus the config's ``[urls]``."""
    rows = vicidb.load_settings_rows(conn, config.mysql.database)
    return rows.snapshot(UrlOverrides.of(config.urls))


# -- the replay -------------------------------------------------------------------------


def replay(
    conn: pymysql.Connection[Any],
    store: Outbox | None,
    selection: Selection,
    snapshot: SettingsSnapshot,
    *,
    database: str,
    router: Router,
    force: bool = False,
    clock: Callable[[], float] = time.time,
    batch_size: int = BATCH_SIZE,
) -> ReplayReport:
    """Find the selected API leads, resolve them, and commit their deliveries.

    ``store=None`` is a dry run: everything is counted, nothing is written (and the
    outbox is not asked what it holds). ``force`` needs a store that is also :class:`~cdc.store.DeadLetters`.
    """
    dry_run = store is None
    if force and not dry_run and not isinstance(store, DeadLetters):
        raise ConfigError("replay --force needs a state store with requeue(); this one has none")
    report = ReplayReport(selection=selection.describe(), dry_run=dry_run, force=force)
    finder = _Finder(conn, database, snapshot, selection, report, batch_size, router)
    for leads in finder.batches():
        deliveries: list[Delivery] = []
        for lead in leads:
            routed, skips = router.route(lead, snapshot)
            deliveries.extend(routed)
            for skip in skips:
                report.skipped[skip.reason.value] += 1
        report.deliveries += len(deliveries)
        report.refused += sum(1 for d in deliveries if d.refused)
        if store is None or not deliveries:
            continue
        # One short transaction per chunk: a running streamer's writes get in between.
        for start in range(0, len(deliveries), OPERATOR_BATCH_ROWS):
            chunk = deliveries[start : start + OPERATOR_BATCH_ROWS]
            now = clock()
            if force:
                assert isinstance(store, DeadLetters)
                report.requeued += store.requeue(chunk, now)
            new_ids = store.commit_batch(chunk, None, now)
            report.enqueued += len(new_ids)
            report.already_present += len(chunk) - len(new_ids)
    return report


def replay_command(
    config: Config,
    *,
    lead_ids: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    lists: Sequence[int] = (),
    force: bool = False,
    dry_run: bool = False,
    as_json: bool = False,
    create_state: bool = False,
    out: TextIO,
    store_opener: Callable[[Config], Outbox] | None = None,
) -> int:
    """``vicidial-cdc replay``: connect, select, resolve, commit, print the counts.

    The outbox is the running streamer's (``state.path``): a missing state file is an
    error unless ``create_state`` (a replay before the streamer's first start).
    """
    ids, ranges = parse_lead_ids(lead_ids)
    store: Outbox | None = None
    with contextlib.ExitStack() as stack:
        if not dry_run:  # first: a wrong state file fails before any query
            if store_opener is not None:
                store = store_opener(config)
            else:
                store = open_store(config, create=create_state)
            stack.callback(_close, store)
            if force and not isinstance(store, DeadLetters):
                raise ConfigError(
                    "replay --force needs the state store's requeue(), which this build lacks;"
                    " run without --force (already stored leads are then left as they are)"
                )
        conn = stack.enter_context(contextlib.closing(connect(config.mysql, **connection_options())))
        selection = Selection(
            lead_ids=ids,
            ranges=ranges,
            since=parse_time(conn, since) if since is not None else None,
            until=parse_time(conn, until) if until is not None else None,
            lists=frozenset(lists),
        )
        snapshot = load_snapshot(conn, config)
        report = replay(
            conn,
            store,
            selection,
            snapshot,
            database=config.mysql.database,
            router=Router(
                config.delivery,
                config.mysql.source_name,
                vicidb.connection_charset(conn, config.reader.server_charset),
                vicidial_sender(snapshot, vicidb.url_type_has_apinewlead(conn, config.mysql.database)),
            ),
            force=force,
        )
    if as_json:
        out.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        out.write(render_report(report))
    return ExitCode.OK


def render_report(report: ReplayReport) -> str:
    lines = [
        f"replay of {report.selection}" + (" (dry run: nothing written)" if report.dry_run else ""),
        f"found:            {report.found} API leads",
        f"deliveries:       {report.deliveries}",
    ]
    if report.dry_run:
        lines.append("enqueued:         - (dry run; the outbox was not consulted)")
    else:
        lines.append(f"enqueued:         {report.enqueued}")
        present = f"already present:  {report.already_present}"
        if report.force:
            present += f" (sent again: {report.requeued}; in flight, left alone: "
            present += f"{report.already_present - report.requeued})"
        lines.append(present)
    skipped = ", ".join(f"{reason}={n}" for reason, n in sorted(report.skipped.items())) or "none"
    lines.append(f"skipped:          {skipped}")
    if report.other_list:
        lines.append(f"other lists:      {report.other_list} leads left out by --list")
    if report.refused:
        lines.append(
            f"refused:          {report.refused} (URL outside the endpoint's allowed_origins:"
            " dead letters, not sent; see `dlq list`)"
        )
    return "\n".join(lines) + "\n"


def _close(store: object) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


@dataclass(frozen=True, slots=True)
class _ApiRow:
    lead_id: int
    function: str  # add_lead | update_lead
    api_epoch: int


class _Finder:
    """The SELECTs: yields batches of :class:`ApiLead`, counting what it leaves out."""

    def __init__(
        self,
        conn: pymysql.Connection[Any],
        database: str,
        snapshot: SettingsSnapshot,
        selection: Selection,
        report: ReplayReport,
        batch_size: int,
        router: Router,
    ) -> None:
        self._conn = conn
        self._db = vicidb.quote_name(database)
        self._selection = selection
        self._report = report
        self._batch = batch_size
        self._fetcher = LeadFetcher(conn, database, lambda list_id: router.needs_custom(snapshot, list_id))

    def batches(self) -> Iterator[list[ApiLead]]:
        if self._selection.since is not None:
            yield from self._by_api_date(self._selection.since, self._selection.until)
            return
        for chunk in _chunks(self._selection.lead_ids, self._batch):
            rows = self._select_leads("`lead_id` IN (" + ", ".join(["%s"] * len(chunk)) + ")", tuple(chunk))
            found = {_int(row.get("lead_id")) for row in rows}
            self._count(LEAD_MISSING, sum(1 for i in chunk if i not in found))
            yield self._pair(self._filter_lists(rows))
        for r in self._selection.ranges:
            after = r.first - 1
            while after < r.last:
                rows = self._select_leads(
                    f"`lead_id` > %s AND `lead_id` <= %s ORDER BY `lead_id` LIMIT {self._batch:d}",
                    (after, r.last),
                )
                if not rows:
                    break
                after = max(_int(row.get("lead_id")) or 0 for row in rows)
                yield self._pair(self._filter_lists(rows))

    # -- --since: api_log rows first ---------------------------------------------------

    def _by_api_date(self, since: str, until: str | None) -> Iterator[list[ApiLead]]:
        last_date, last_id = since, 0
        until_sql = "" if until is None else " AND `api_date` < %s"
        seen: set[int] = set()  # a lead named by two add_lead rows is replayed once
        while True:
            args: tuple[Any, ...] = (since, last_date, last_date, last_id)
            if until is not None:
                args += (until,)
            rows = vicidb.select(
                self._conn,
                "SELECT `api_id`, CAST(`api_date` AS CHAR) AS api_date, `data`,"
                " UNIX_TIMESTAMP(`api_date`) AS api_epoch"
                f" FROM {self._db}.{API_LOG_TABLE}"
                f" WHERE `function` = '{ADD_LEAD}' AND `result` = '{API_SUCCESS}' AND `api_date` >= %s"
                " AND (`api_date` > %s OR (`api_date` = %s AND `api_id` > %s))"
                f"{until_sql} ORDER BY `api_date`, `api_id` LIMIT {self._batch:d}",
                args,
            )
            if not rows:
                return
            last_date, last_id = str(rows[-1]["api_date"]), _int(rows[-1]["api_id"]) or 0
            api: dict[int, _ApiRow] = {}
            for row in rows:
                lead_id = _data_lead_id(row.get("data"))
                if lead_id is not None and lead_id not in api and lead_id not in seen:
                    seen.add(lead_id)
                    api[lead_id] = _ApiRow(lead_id, ADD_LEAD, _int(row.get("api_epoch")) or 0)
            ids = sorted(api)
            leads = (
                self._select_leads("`lead_id` IN (" + ", ".join(["%s"] * len(ids)) + ")", tuple(ids))
                if ids
                else []
            )
            found = {_int(row.get("lead_id")) for row in leads}
            self._count(LEAD_MISSING, sum(1 for i in ids if i not in found))
            kept = self._filter_lists(leads)
            yield self._build(kept, api)

    # -- --lead-id: leads first ----------------------------------------------------------

    def _pair(self, leads: list[dict[str, Value]]) -> list[ApiLead]:
        """Find the api_log rows of these leads (see the module docstring)."""
        if not leads:
            return []
        ids = {_int(row.get("lead_id")) for row in leads}
        api: dict[int, _ApiRow] = {}
        dated = [d for row in leads if (d := _valid_datetime(row.get("entry_date"))) is not None]
        for first, last in _clusters(dated, 2 * API_LOG_WINDOW_S):
            self._collect_api_rows(
                api,
                ids,
                "`api_date` BETWEEN %s AND %s",
                (_sql_time(first - _WINDOW), _sql_time(last + _WINDOW)),
            )
        undated = sorted(
            lead_id
            for row in leads
            if _valid_datetime(row.get("entry_date")) is None and (lead_id := _int(row.get("lead_id")))
        )
        if undated:  # no index can help: one scan of the api_log table
            self._collect_api_rows(
                api,
                ids,
                "SUBSTRING_INDEX(SUBSTRING_INDEX(`data`, '|', 3), '|', -1) IN ("
                + ", ".join(["%s"] * len(undated))
                + ")",
                tuple(str(i) for i in undated),
            )
        return self._build(leads, api)

    def _collect_api_rows(
        self, api: dict[int, _ApiRow], ids: set[int | None], where: str, args: tuple[Any, ...]
    ) -> None:
        rows = vicidb.select(
            self._conn,
            "SELECT `function`, `result_reason`, `data`, UNIX_TIMESTAMP(`api_date`) AS api_epoch"
            f" FROM {self._db}.{API_LOG_TABLE} WHERE {where}"
            f" AND `result` = '{API_SUCCESS}' AND (`function` = '{ADD_LEAD}'"
            f" OR (`function` = '{UPDATE_LEAD}' AND `result_reason` LIKE '%%{LEAD_ADDED_REASON}%%'))"
            " ORDER BY `api_id`",
            args,
        )
        for row in rows:
            lead_id = _data_lead_id(row.get("data"))
            if lead_id is None or lead_id not in ids:
                continue
            function = _text(row.get("function")).strip()
            known = api.get(lead_id)
            if known is None or (known.function != ADD_LEAD and function == ADD_LEAD):
                api[lead_id] = _ApiRow(lead_id, function, _int(row.get("api_epoch")) or 0)

    # -- both ------------------------------------------------------------------------------

    def _build(self, leads: list[dict[str, Value]], api: Mapping[int, _ApiRow]) -> list[ApiLead]:
        out: list[ApiLead] = []
        chosen: list[tuple[dict[str, Value], int, int, int]] = []
        for row in leads:
            lead_id = _int(row.get("lead_id"))
            list_id = _int(row.get("list_id"))
            match = api.get(lead_id) if lead_id is not None else None
            if lead_id is None or list_id is None or match is None:
                self._report.skipped[SkipReason.NOT_API.value] += 1
                continue
            if match.function != ADD_LEAD:
                self._report.skipped[SkipReason.UPDATE_LEAD_INSERT.value] += 1
                continue
            epoch = LeadFetcher.take_epoch(row)
            chosen.append((row, lead_id, list_id, epoch or match.api_epoch))
        self._report.found += len(chosen)
        customs = self._fetcher.custom_rows([(lead_id, list_id) for _, lead_id, list_id, _ in chosen])
        for row, lead_id, list_id, inserted_at in chosen:
            out.append(build_lead(row, lead_id, list_id, inserted_at, customs.get(lead_id)))
        return out

    def _count(self, reason: str, n: int) -> None:
        if n:
            self._report.skipped[reason] += n

    def _select_leads(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Value]]:
        return self._fetcher.select_leads(where, args)

    def _filter_lists(self, rows: list[dict[str, Value]]) -> list[dict[str, Value]]:
        lists = self._selection.lists
        if not lists:
            return rows
        kept = [row for row in rows if _int(row.get("list_id")) in lists]
        self._report.other_list += len(rows) - len(kept)
        return kept


# -- helpers ------------------------------------------------------------------------------


def _chunks(values: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _data_lead_id(data: Value) -> int | None:
    """The lead id in an add_lead api_log ``data`` (``phone|list_id|lead_id|gmt``)."""
    return _int(vicidial.api_log_data_field(_text(data), vicidial.DATA_LEAD_ID))


def _valid_datetime(value: Value) -> _dt.datetime | None:
    """A DATETIME that is a real date and time: :func:`cdc.vicidb.binlog_row` made each one a
    ``datetime``; a zero or invalid date stays text, NULL is ``None``."""
    return value if isinstance(value, _dt.datetime) else None


def _clusters(times: Iterable[_dt.datetime], gap_s: float) -> list[tuple[_dt.datetime, _dt.datetime]]:
    """(first, last) of each run of ``times`` whose neighbours are at most ``gap_s`` apart."""
    out: list[tuple[_dt.datetime, _dt.datetime]] = []
    for t in sorted(times):
        if out and (t - out[-1][1]).total_seconds() <= gap_s:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def _sql_time(value: _dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")
