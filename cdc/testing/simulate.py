"""Write rows the way VICIdial's PHP does: leads, API log rows, settings and noise.

Every operation is a *step sequence*: a generator that yields one :class:`Statement`
at a time and receives that statement's :class:`Result` back (so the ``lead_id`` of
the first INSERT is known to the later statements); its return value is the id the
operation produced. :meth:`Vicidial.add_lead` runs a sequence to the end on the
instance's connection. To interleave many API calls, give each its own connection
and step them in any order::

    sims = [Vicidial.connect(server, database=db) for _ in range(50)]
    runners = [s.runner(s.add_lead_steps(phone_number=f"555{i:07d}", list_id=101))
               for i, s in enumerate(sims)]
    lead_ids = run_interleaved(runners, rng=random.Random(7))

Every table is MyISAM, so each statement is its own binlog event group, exactly as on
a real VICIdial server. Nothing here is used by the streamer itself.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from .. import vicidial
from .mariadb import PrivateMariaDB
from .schema import DEFAULT_API_PASS, DEFAULT_API_USER, VICIDIAL_LIST_COLUMNS

__all__ = [
    "NOISE_TABLES",
    "SYSTEM_NEWLEAD_CAMPAIGN",
    "Result",
    "Statement",
    "StepRunner",
    "Steps",
    "Vicidial",
    "execute",
    "run_interleaved",
]

#: ``vicidial_url_multi.campaign_id`` of the system-level API New Lead URL.
SYSTEM_NEWLEAD_CAMPAIGN = "-SYSTEM-API-NEWLEAD-"
#: Busy tables a dialer writes all the time; the streamer must skip them.
NOISE_TABLES: tuple[str, ...] = (
    "vicidial_live_agents",
    "vicidial_auto_calls",
    "vicidial_log",
    "call_log",
    "vicidial_manager",
)

_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}$")
_TABLE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|SELECT\s.*?\sFROM)\s+`?(\w+)", re.I | re.S)
_SETTABLE_COLUMNS = frozenset(VICIDIAL_LIST_COLUMNS) - {"lead_id", "modify_date"}
_SERVER_IP = "10.10.10.15"
_WEB_IP = "10.10.10.20"


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement with PyMySQL ``%s`` parameters (``%%`` for a literal ``%``)."""

    sql: str
    args: tuple[Any, ...] = ()

    @property
    def verb(self) -> str:
        """``INSERT``, ``UPDATE``, ``DELETE``, ``SELECT``, ``CREATE``, ..."""
        return self.sql.split(None, 1)[0].upper()

    @property
    def table(self) -> str:
        """The table written or read ('' when not a plain DML statement)."""
        match = _TABLE.match(self.sql)
        return match.group(1) if match else ""


@dataclass(frozen=True, slots=True)
class Result:
    """What one executed statement returned."""

    lastrowid: int
    rowcount: int
    rows: tuple[tuple[Any, ...], ...] = ()


#: A step sequence: yields statements, receives their results, returns an id.
Steps = Generator[Statement, Result, int]


def execute(conn: Any, statement: Statement) -> Result:
    """Run one statement on a PyMySQL connection."""
    with conn.cursor() as cur:
        cur.execute(statement.sql, statement.args if statement.args else None)
        rows = tuple(tuple(row) for row in cur.fetchall()) if cur.description else ()
        return Result(lastrowid=int(cur.lastrowid or 0), rowcount=int(cur.rowcount), rows=rows)


class StepRunner:
    """Drives one step sequence on one connection, one statement per :meth:`step`."""

    def __init__(self, conn: Any, steps: Steps) -> None:
        self._conn = conn
        self._steps = steps
        self._result: int | None = None
        self._pending: Statement | None = None
        self.executed: list[Statement] = []
        try:
            self._pending = next(steps)
        except StopIteration as stop:
            self._result = int(stop.value)

    @property
    def done(self) -> bool:
        return self._pending is None

    @property
    def result(self) -> int:
        """The sequence's return value (the lead_id for lead inserts)."""
        if self._result is None:
            raise RuntimeError("the step sequence has not finished")
        return self._result

    def step(self) -> bool:
        """Execute the next statement; return whether statements remain."""
        if self._pending is None:
            return False
        statement = self._pending
        outcome = execute(self._conn, statement)
        self.executed.append(statement)
        try:
            self._pending = self._steps.send(outcome)
        except StopIteration as stop:
            self._pending = None
            self._result = int(stop.value)
        return self._pending is not None

    def run(self) -> int:
        while self.step():
            pass
        return self.result


def run_interleaved(runners: Sequence[StepRunner], *, rng: random.Random) -> list[int]:
    """Step the runners in a random interleaving until all finish; their results."""
    active = [runner for runner in runners if not runner.done]
    while active:
        runner = rng.choice(active)
        if not runner.step():
            active.remove(runner)
    return [runner.result for runner in runners]


_uniqueid_lock = threading.Lock()
_last_uniqueid_ns = 0


def _uniqueid() -> str:
    """Asterisk-style ``epoch.fraction`` id, unique within the process (20 chars)."""
    global _last_uniqueid_ns
    with _uniqueid_lock:
        now = max(time.time_ns(), _last_uniqueid_ns + 1)
        _last_uniqueid_ns = now
    return f"{now // 1_000_000_000}.{now % 1_000_000_000:09d}"


def _gmt(value: object) -> str:
    return f"{Decimal(str(value)):.2f}"


def _check_label(label: str) -> str:
    if not _LABEL.match(label):
        raise ValueError(f"custom field label must match {_LABEL.pattern}: {label!r}")
    return label


def _ciphertext(value: str) -> str:
    """Stand-in for VICIdial's field encryption: never contains the plain value."""
    return base64.b64encode(hashlib.sha256(value.encode("utf-8")).digest()).decode("ascii")


class Vicidial:
    """A simulated VICIdial web server writing to one database over one connection.

    ``send_utf8_bytes`` sends text as raw UTF-8 bytes, as PHP does: over a latin1
    connection (``use_non_latin=0`` on a latin1 server) MariaDB then stores
    double-encoded text such as ``JosÃ©``, exactly as a real VICIdial does.
    """

    def __init__(
        self,
        conn: Any,
        *,
        database: str = "asterisk",
        send_utf8_bytes: bool = False,
        seed: int | None = None,
        api_pass: str = DEFAULT_API_PASS,
    ) -> None:
        self._conn = conn
        self.database = database
        self.send_utf8_bytes = send_utf8_bytes
        self.api_pass = api_pass
        self._rng = random.Random(seed)
        self._noise_keys: dict[str, list[Any]] = {table: [] for table in NOISE_TABLES}
        conn.select_db(database)

    @classmethod
    def connect(
        cls,
        server: PrivateMariaDB,
        *,
        database: str = "asterisk",
        connection_charset: str = "utf8mb4",
        seed: int | None = None,
    ) -> Self:
        """Open a connection to ``server``; a latin1 connection sends PHP's raw bytes."""
        conn = server.connect(db=database, charset=connection_charset)
        try:
            return cls(
                conn,
                database=database,
                send_utf8_bytes=connection_charset == "latin1",
                seed=seed,
            )
        except BaseException:
            conn.close()
            raise

    @property
    def conn(self) -> Any:
        return self._conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- running sequences ------------------------------------------------------------

    def runner(self, steps: Steps) -> StepRunner:
        """A runner for ``steps`` on this instance's connection."""
        return StepRunner(self._conn, steps)

    def run(self, steps: Steps) -> int:
        """Run a whole step sequence now; its return value."""
        return self.runner(steps).run()

    def execute(self, sql: str, *args: Any) -> Result:
        """One ad-hoc statement on this instance's connection."""
        return execute(self._conn, Statement(sql, tuple(args)))

    # -- leads ------------------------------------------------------------------------

    def add_lead_steps(
        self,
        *,
        phone_number: str,
        list_id: int,
        first_name: str = "",
        last_name: str = "",
        user: str = DEFAULT_API_USER,
        custom: Mapping[str, str] | None = None,
        alt_phones: Sequence[str] = (),
        add_to_hopper: bool = True,
        hopper_campaign_id: str = "TESTCAMP",
        callback: bool = False,
        touch_user: bool = True,
        source: str = "test",
        sent_url: str | None = None,
        **columns: Any,
    ) -> Steps:
        """The statements of one successful non-agent API ``add_lead``, in VICIdial's order.

        ``columns`` are other ``vicidial_list`` columns. ``custom`` fills the list's
        custom fields (``custom_fields=Y``); ``callback`` schedules a callback and sets
        status CBHOLD; ``sent_url`` adds the ``vicidial_url_log`` INSERT + UPDATE of
        VICIdial's own sender (schema 1726+).
        """
        if callback:
            columns.setdefault("status", "CBHOLD")
        lead = self._lead_values(
            phone_number=phone_number,
            list_id=list_id,
            first_name=first_name,
            last_name=last_name,
            user=user,
            columns=columns,
        )
        gmt = lead["gmt_offset_now"]
        if touch_user:
            yield self._touch_user(user)
        lead_id = (yield self._insert_lead(lead)).lastrowid
        yield from self._api_log(
            user=user,
            function="add_lead",
            result="SUCCESS",
            reason="add_lead LEAD HAS BEEN ADDED",
            source=source,
            data=f"{phone_number}|{list_id}|{lead_id}|{gmt}",
            query=f"function=add_lead&phone_number={phone_number}&list_id={list_id}",
        )
        if alt_phones:
            for count, alt in enumerate(alt_phones, start=1):
                yield Statement(
                    "INSERT INTO vicidial_list_alt_phones (lead_id, phone_code, phone_number,"
                    " alt_phone_note, alt_phone_count, active) VALUES (%s, %s, %s, %s, %s, 'Y')",
                    (lead_id, lead["phone_code"], alt, self._text(f"ALT{count}"), count),
                )
            yield from self._api_log(
                user=user,
                function="add_lead",
                result="NOTICE",
                reason="add_lead MULTI-ALT-PHONE NUMBERS LOADED",
                source=source,
                data=f"{len(alt_phones)}|{lead_id}|{phone_number}",
                query=None,
            )
        if custom is not None:
            yield from self._custom_row(lead_id, list_id, custom)
            yield Statement("UPDATE vicidial_list SET entry_list_id=%s WHERE lead_id=%s", (list_id, lead_id))
            yield from self._api_log(
                user=user,
                function="add_lead",
                result="NOTICE",
                reason="add_lead CUSTOM FIELDS VALUES ADDED",
                source=source,
                data=f"{phone_number}|{lead_id}|{list_id}",
                query=None,
            )
        if add_to_hopper:
            hopper_id = (
                yield Statement(
                    "INSERT INTO vicidial_hopper (lead_id, campaign_id, status, user, list_id,"
                    " gmt_offset_now, state, alt_dial, priority, source, vendor_lead_code)"
                    " VALUES (%s, %s, 'READY', '', %s, %s, %s, 'NONE', 99, 'A', %s)",
                    (
                        lead_id,
                        hopper_campaign_id,
                        list_id,
                        gmt,
                        lead["state"],
                        lead["vendor_lead_code"],
                    ),
                )
            ).lastrowid
            yield from self._api_log(
                user=user,
                function="add_lead",
                result="NOTICE",
                reason="add_lead ADDED TO HOPPER",
                source=source,
                data=f"{phone_number}|{lead_id}|{hopper_id}",
                query=None,
            )
        if callback:
            callback_id = (
                yield Statement(
                    "INSERT INTO vicidial_callbacks (lead_id, list_id, campaign_id, status,"
                    " entry_time, callback_time, user, recipient, comments, user_group,"
                    " lead_status) VALUES (%s, %s, %s, 'ACTIVE', NOW(),"
                    " NOW() + INTERVAL 1 DAY, %s, 'ANYONE', '', 'ADMIN', 'CALLBK')",
                    (lead_id, list_id, hopper_campaign_id, user),
                )
            ).lastrowid
            yield from self._api_log(
                user=user,
                function="add_lead",
                result="NOTICE",
                reason="add_lead SCHEDULED CALLBACK ADDED",
                source=source,
                data=f"{phone_number}|{lead_id}|{callback_id}",
                query=None,
            )
        if sent_url is not None:
            url_log_id = (yield self._url_log_insert(lead_id, sent_url)).lastrowid
            yield self._url_log_update(url_log_id, "OK", 0)
        return lead_id

    def add_lead(
        self,
        *,
        phone_number: str,
        list_id: int,
        first_name: str = "",
        last_name: str = "",
        user: str = DEFAULT_API_USER,
        custom: Mapping[str, str] | None = None,
        alt_phones: Sequence[str] = (),
        add_to_hopper: bool = True,
        hopper_campaign_id: str = "TESTCAMP",
        callback: bool = False,
        touch_user: bool = True,
        source: str = "test",
        sent_url: str | None = None,
        **columns: Any,
    ) -> int:
        """Run :meth:`add_lead_steps` now; the new lead_id."""
        return self.run(
            self.add_lead_steps(
                phone_number=phone_number,
                list_id=list_id,
                first_name=first_name,
                last_name=last_name,
                user=user,
                custom=custom,
                alt_phones=alt_phones,
                add_to_hopper=add_to_hopper,
                hopper_campaign_id=hopper_campaign_id,
                callback=callback,
                touch_user=touch_user,
                source=source,
                sent_url=sent_url,
                **columns,
            )
        )

    def update_lead_insert_steps(
        self,
        *,
        phone_number: str,
        list_id: int,
        user: str = DEFAULT_API_USER,
        source: str = "test",
        **columns: Any,
    ) -> Steps:
        """``update_lead`` with ``insert_if_not_found=Y``: a lead that fires no URL."""
        lead = self._lead_values(phone_number=phone_number, list_id=list_id, user=user, columns=columns)
        yield self._touch_user(user)
        lead_id = (yield self._insert_lead(lead)).lastrowid
        yield from self._api_log(
            user=user,
            function="update_lead",
            result="SUCCESS",
            reason="update_lead LEAD HAS BEEN ADDED",
            source=source,
            data=f"{phone_number}|{list_id}|{lead_id}|{lead['gmt_offset_now']}",
            query=f"function=update_lead&insert_if_not_found=Y&phone_number={phone_number}",
        )
        return lead_id

    def update_lead_insert(
        self,
        *,
        phone_number: str,
        list_id: int,
        user: str = DEFAULT_API_USER,
        source: str = "test",
        **columns: Any,
    ) -> int:
        """Run :meth:`update_lead_insert_steps` now; the new lead_id."""
        return self.run(
            self.update_lead_insert_steps(
                phone_number=phone_number, list_id=list_id, user=user, source=source, **columns
            )
        )

    def loader_insert_steps(self, *, phone_number: str, list_id: int, **columns: Any) -> Steps:
        """The web lead loader: one ``vicidial_list`` INSERT, no API log row."""
        columns.setdefault("user", "")
        lead = self._lead_values(phone_number=phone_number, list_id=list_id, columns=columns)
        return (yield self._insert_lead(lead)).lastrowid

    def loader_insert(self, *, phone_number: str, list_id: int, **columns: Any) -> int:
        """Run :meth:`loader_insert_steps` now; the new lead_id."""
        return self.run(self.loader_insert_steps(phone_number=phone_number, list_id=list_id, **columns))

    def agent_insert_steps(
        self, *, phone_number: str, list_id: int, agent: str = "1001", **columns: Any
    ) -> Steps:
        """An agent's manual dial of a new number: the lead, then the agent's live row."""
        columns.setdefault("status", "QUEUE")
        columns.setdefault("called_count", 1)
        lead = self._lead_values(phone_number=phone_number, list_id=list_id, user=agent, columns=columns)
        lead_id = (yield self._insert_lead(lead)).lastrowid
        yield Statement(
            "UPDATE vicidial_live_agents SET lead_id=%s, status='INCALL', last_call_time=NOW() WHERE user=%s",
            (lead_id, agent),
        )
        return lead_id

    def agent_insert(self, *, phone_number: str, list_id: int, agent: str = "1001", **columns: Any) -> int:
        """Run :meth:`agent_insert_steps` now; the new lead_id."""
        return self.run(
            self.agent_insert_steps(phone_number=phone_number, list_id=list_id, agent=agent, **columns)
        )

    def failed_add_lead_steps(
        self,
        *,
        phone_number: str,
        list_id: int,
        user: str = DEFAULT_API_USER,
        reason: str = "add_lead INVALID PHONE NUMBER LENGTH",
        source: str = "test",
    ) -> Steps:
        """An ``add_lead`` that fails validation: an ERROR api_log row and no lead."""
        yield self._touch_user(user)
        return (
            yield from self._api_log(
                user=user,
                function="add_lead",
                result="ERROR",
                reason=reason,
                source=source,
                data=f"{phone_number}|{list_id}",
                query=f"function=add_lead&phone_number={phone_number}&list_id={list_id}",
            )
        )

    def failed_add_lead(
        self,
        *,
        phone_number: str,
        list_id: int,
        user: str = DEFAULT_API_USER,
        reason: str = "add_lead INVALID PHONE NUMBER LENGTH",
        source: str = "test",
    ) -> int:
        """Run :meth:`failed_add_lead_steps` now; the api_log ``api_id``."""
        return self.run(
            self.failed_add_lead_steps(
                phone_number=phone_number, list_id=list_id, user=user, reason=reason, source=source
            )
        )

    # -- noise ------------------------------------------------------------------------

    def noise_steps(self, n: int, *, api_log: bool = True) -> Steps:
        """``n`` single-row writes over the busy dialer tables and other API functions.

        Inserts, updates and deletes (the latter two on rows this instance inserted),
        plus about one in ten ``vicidial_api_log`` rows of functions other than add_lead
        (none with ``api_log=False``: the dialer's own writes while that table is locked).
        Every statement changes exactly one row, so it writes exactly one rows event.
        """
        for _ in range(n):
            table, statement, key = self._noise_statement(api_log)
            outcome = yield statement
            if key is _AUTO_KEY:
                self._noise_keys[table].append(outcome.lastrowid)
            elif key is not None:
                self._noise_keys[table].append(key)
        return n

    def noise(self, n: int, *, api_log: bool = True) -> int:
        """Run :meth:`noise_steps` now; the number of statements."""
        return self.run(self.noise_steps(n, api_log=api_log))

    # -- settings ---------------------------------------------------------------------

    def set_system_url(self, url: str, *, active: str = "Y") -> None:
        """Set the system-level API New Lead URL (insert or update its row)."""
        self._upsert_url(SYSTEM_NEWLEAD_CAMPAIGN, "system", url, active)

    def delete_system_url(self) -> None:
        self.execute(
            "DELETE FROM vicidial_url_multi WHERE campaign_id=%s AND entry_type='system'"
            " AND url_type='apinewlead'",
            SYSTEM_NEWLEAD_CAMPAIGN,
        )

    def set_list_url(self, list_id: int, url: str, *, active: str = "Y") -> None:
        """Set a list's API New Lead URL (``---DISABLED---`` turns it off)."""
        self._upsert_url(str(list_id), "list", url, active)

    def delete_list_url(self, list_id: int) -> None:
        self.execute(
            "DELETE FROM vicidial_url_multi WHERE campaign_id=%s AND entry_type='list'"
            " AND url_type='apinewlead'",
            str(list_id),
        )

    def add_list(
        self,
        list_id: int,
        name: str = "",
        campaign_id: str = "TESTCAMP",
        description: str = "",
        *,
        active: str = "Y",
    ) -> None:
        self.execute(
            "INSERT INTO vicidial_lists (list_id, list_name, campaign_id, active,"
            " list_description, list_changedate, web_form_address, web_form_address_two,"
            " na_call_url) VALUES (%s, %s, %s, %s, %s, NOW(), '', '', '')",
            list_id,
            self._text(name or f"List {list_id}"),
            self._text(campaign_id),
            active,
            self._text(description),
        )

    def update_list(
        self,
        list_id: int,
        *,
        name: str | None = None,
        campaign_id: str | None = None,
        description: str | None = None,
    ) -> None:
        changes = {"list_name": name, "campaign_id": campaign_id, "list_description": description}
        sets = [(column, value) for column, value in changes.items() if value is not None]
        if not sets:
            return
        assignments = ", ".join(f"{column}=%s" for column, _ in sets)
        self.execute(
            f"UPDATE vicidial_lists SET {assignments}, list_changedate=NOW() WHERE list_id=%s",
            *[self._text(value) for _, value in sets],
            list_id,
        )

    def add_custom_fields(self, list_id: int, fields: Iterable[tuple[str, bool]]) -> None:
        """Create ``custom_<list_id>`` (if needed) and add one VARCHAR column per field.

        As VICIdial's admin page does: one ALTER TABLE and one ``vicidial_lists_fields``
        row per field. ``fields`` are ``(label, encrypt)`` pairs.
        """
        table = vicidial.custom_table(int(list_id))
        self.execute(
            f"CREATE TABLE IF NOT EXISTS `{table}` (lead_id INT(9) UNSIGNED PRIMARY KEY NOT NULL)"
            " ENGINE=MyISAM"
        )
        for rank, (label, encrypt) in enumerate(fields, start=1):
            size = 255 if encrypt else 100
            self.execute(f"ALTER TABLE `{table}` ADD `{_check_label(label)}` VARCHAR({size})")
            self.execute(
                "INSERT INTO vicidial_lists_fields (list_id, field_label, field_name,"
                " field_description, field_rank, field_help, field_type, field_options,"
                " field_size, field_max, field_default, field_cost, field_required,"
                " field_order, field_encrypt, field_duplicate) VALUES (%s, %s, %s, '', %s, '',"
                " 'TEXT', '', 20, %s, '', 0, 'N', 1, %s, 'N')",
                list_id,
                label,
                label.replace("_", " ").title(),
                rank,
                size,
                "Y" if encrypt else "N",
            )

    def set_system(
        self,
        *,
        use_non_latin: bool | None = None,
        db_schema_version: int | None = None,
        custom_fields_enabled: bool | None = None,
    ) -> None:
        """Update the ``system_settings`` row; ``None`` leaves a column alone."""
        changes: dict[str, Any] = {}
        if use_non_latin is not None:
            changes["use_non_latin"] = "1" if use_non_latin else "0"
        if db_schema_version is not None:
            changes["db_schema_version"] = db_schema_version
        if custom_fields_enabled is not None:
            changes["custom_fields_enabled"] = "1" if custom_fields_enabled else "0"
        if changes:
            assignments = ", ".join(f"{column}=%s" for column in changes)
            self.execute(f"UPDATE system_settings SET {assignments}", *changes.values())

    def log_url_request(self, lead_id: int, url: str) -> int:
        """VICIdial's own sender, before the fetch: the ``vicidial_url_log`` INSERT."""
        return execute(self._conn, self._url_log_insert(lead_id, url)).lastrowid

    def log_url_response(self, url_log_id: int, url_response: str, response_sec: int) -> None:
        """VICIdial's own sender, after the fetch (``PHP ERROR: ...`` when it failed)."""
        execute(self._conn, self._url_log_update(url_log_id, url_response, response_sec))

    # -- internals --------------------------------------------------------------------

    def _text(self, value: Any) -> Any:
        if self.send_utf8_bytes and isinstance(value, str):
            return value.encode("utf-8")
        return value

    def _lead_values(
        self,
        *,
        phone_number: str,
        list_id: int,
        first_name: str = "",
        last_name: str = "",
        user: str = "",
        columns: Mapping[str, Any],
    ) -> dict[str, Any]:
        unknown = set(columns) - _SETTABLE_COLUMNS
        if unknown:
            raise TypeError(f"not settable vicidial_list column(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {
            "entry_date": None,  # NOW()
            "status": "NEW",
            "user": user,
            "vendor_lead_code": "",
            "source_id": "",
            "list_id": list_id,
            "gmt_offset_now": "-5.00",
            "called_since_last_reset": "N",
            "phone_code": "1",
            "phone_number": phone_number,
            "title": "",
            "first_name": first_name,
            "middle_initial": "",
            "last_name": last_name,
            "address1": "",
            "address2": "",
            "address3": "",
            "city": "",
            "state": "",
            "province": "",
            "postal_code": "",
            "country_code": "",
            "gender": "U",
            "date_of_birth": "0000-00-00",
            "alt_phone": "",
            "email": "",
            "security_phrase": "",
            "comments": "",
            "called_count": 0,
            "last_local_call_time": "2008-01-01 00:00:00",
            "rank": 0,
            "owner": "",
            "entry_list_id": 0,
        }
        values.update(columns)
        values["gmt_offset_now"] = _gmt(values["gmt_offset_now"])
        return values

    def _insert_lead(self, lead: Mapping[str, Any]) -> Statement:
        names = [name for name in VICIDIAL_LIST_COLUMNS if name in lead]
        placeholders = ["NOW()" if name == "entry_date" and lead[name] is None else "%s" for name in names]
        args = tuple(
            self._text(lead[name]) for name, holder in zip(names, placeholders, strict=True) if holder == "%s"
        )
        column_list = ",".join(f"`{name}`" if name == "rank" else name for name in names)
        return Statement(f"INSERT INTO vicidial_list ({column_list}) VALUES ({','.join(placeholders)})", args)

    def _touch_user(self, user: str) -> Statement:
        return Statement(
            "UPDATE vicidial_users SET last_login_date=NOW(), last_ip=%s, failed_login_count=0 WHERE user=%s",
            (_WEB_IP, self._text(user)),
        )

    def _api_log(
        self,
        *,
        user: str,
        function: str,
        result: str,
        reason: str,
        source: str,
        data: str,
        query: str | None,
    ) -> Generator[Statement, Result, int]:
        """The api_log row and, for the call's main row, its ``vicidial_api_urls`` row."""
        api_id = (
            yield Statement(
                "INSERT INTO vicidial_api_log (user, api_date, api_script, `function`,"
                " agent_user, value, result, result_reason, source, data, run_time, webserver,"
                " api_url) VALUES (%s, NOW(), 'non-agent', %s, '', '', %s, %s, %s, %s, %s, 1, 0)",
                (
                    self._text(user),
                    function,
                    result,
                    reason,
                    self._text(source),
                    self._text(data),
                    f"{self._rng.uniform(0.002, 0.05):.6f}",
                ),
            )
        ).lastrowid
        if query is not None:
            yield Statement(
                "INSERT INTO vicidial_api_urls (api_id, api_date, remote_ip, url) VALUES (%s, NOW(), %s, %s)",
                (
                    api_id,
                    "192.0.2.10",
                    self._text(
                        f"http://{_WEB_IP}/vicidial/non_agent_api.php?source={source}"
                        f"&user={user}&pass={self.api_pass}&{query}"
                    ),
                ),
            )
        return api_id

    def _custom_row(
        self, lead_id: int, list_id: int, custom: Mapping[str, str]
    ) -> Generator[Statement, Result, None]:
        defined = (
            yield Statement(
                "SELECT field_label, field_encrypt FROM vicidial_lists_fields"
                " WHERE list_id=%s ORDER BY field_rank, field_order",
                (list_id,),
            )
        ).rows
        encrypted = {str(label): flag == "Y" for label, flag in defined}
        unknown = set(custom) - set(encrypted)
        if unknown:
            raise ValueError(f"list {list_id} has no custom field(s): {', '.join(sorted(unknown))}")
        labels = list(encrypted)
        values = []
        for label in labels:
            value = str(custom.get(label, ""))
            values.append(_ciphertext(value) if encrypted[label] and value else self._text(value))
        columns = "".join(f", `{_check_label(label)}`" for label in labels)
        holders = ", %s" * len(labels)
        yield Statement(
            f"INSERT INTO custom_{int(list_id)} (lead_id{columns}) VALUES (%s{holders})",
            (lead_id, *values),
        )

    def _upsert_url(self, campaign_id: str, entry_type: str, url: str, active: str) -> None:
        found = self.execute(
            "SELECT url_id FROM vicidial_url_multi WHERE campaign_id=%s AND entry_type=%s"
            " AND url_type='apinewlead' ORDER BY url_id LIMIT 1",
            campaign_id,
            entry_type,
        ).rows
        if found:
            self.execute(
                "UPDATE vicidial_url_multi SET url_address=%s, active=%s WHERE url_id=%s",
                self._text(url),
                active,
                found[0][0],
            )
            return
        self.execute(
            "INSERT INTO vicidial_url_multi (campaign_id, entry_type, active, url_type, url_rank,"
            " url_statuses, url_description, url_address, url_lists, url_call_length)"
            " VALUES (%s, %s, %s, 'apinewlead', 1, '', %s, %s, '', 0)",
            campaign_id,
            entry_type,
            active,
            "API New Lead URL",
            self._text(url),
        )

    def _url_log_insert(self, lead_id: int, url: str) -> Statement:
        return Statement(
            "INSERT INTO vicidial_url_log (uniqueid, url_date, url_type, url, url_response)"
            " VALUES (%s, NOW(), 'apinewlead', %s, '')",
            (str(lead_id), self._text(url)),
        )

    def _url_log_update(self, url_log_id: int, url_response: str, response_sec: int) -> Statement:
        return Statement(
            "UPDATE vicidial_url_log SET response_sec=%s, url_response=%s WHERE url_log_id=%s",
            (response_sec, self._text(url_response), url_log_id),
        )

    def _noise_statement(self, api_log: bool = True) -> tuple[str, Statement, Any]:
        """(table, statement, key to record once it ran: a value, _AUTO_KEY or None)."""
        rng = self._rng
        if rng.random() < 0.1 and api_log:
            function, result, reason = rng.choice(_OTHER_API_CALLS)
            lead_id = rng.randrange(1, 1_000_000)
            return (
                "vicidial_api_log",
                Statement(
                    "INSERT INTO vicidial_api_log (user, api_date, api_script, `function`,"
                    " agent_user, value, result, result_reason, source, data, run_time, webserver,"
                    " api_url) VALUES (%s, NOW(), 'non-agent', %s, '', %s, %s, %s, 'crm', %s,"
                    " '0.004', 1, 0)",
                    (DEFAULT_API_USER, function, str(lead_id), result, reason, f"{lead_id}|"),
                ),
                None,
            )
        table = rng.choice(NOISE_TABLES)
        keys = self._noise_keys[table]
        roll = rng.random()
        key_column = _NOISE_KEY[table]
        if keys and roll < 0.15:
            key = keys.pop(rng.randrange(len(keys)))
            return table, Statement(f"DELETE FROM {table} WHERE {key_column}=%s", (key,)), None
        if keys and roll < 0.5:
            sets, set_args = _NOISE_UPDATES[table](rng)
            statement = Statement(
                f"UPDATE {table} SET {sets} WHERE {key_column}=%s", (*set_args, rng.choice(keys))
            )
            return table, statement, None
        columns, values = _NOISE_INSERTS[table](rng)
        holders = ", ".join(v.expression if isinstance(v, _Sql) else "%s" for v in values)
        statement = Statement(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({holders})",
            tuple(v for v in values if not isinstance(v, _Sql)),
        )
        if key_column == "uniqueid":
            return table, statement, values[columns.index("uniqueid")]
        return table, statement, _AUTO_KEY


_AUTO_KEY = object()


@dataclass(frozen=True, slots=True)
class _Sql:
    """A noise column value that is an SQL expression, not a parameter."""

    expression: str


_NOW = _Sql("NOW()")
_EPOCH = _Sql("UNIX_TIMESTAMP()")


_NOISE_KEY: dict[str, str] = {
    "vicidial_live_agents": "live_agent_id",
    "vicidial_auto_calls": "auto_call_id",
    "vicidial_log": "uniqueid",
    "call_log": "uniqueid",
    "vicidial_manager": "man_id",
}

_OTHER_API_CALLS: tuple[tuple[str, str, str], ...] = (
    ("version", "SUCCESS", "version"),
    ("update_lead", "SUCCESS", "update_lead LEAD HAS BEEN UPDATED"),
    ("update_lead", "NOTICE", "update_lead NO MATCHES FOUND IN THE SYSTEM"),
    ("agent_stats_export", "SUCCESS", "agent_stats_export"),
    ("recording_lookup", "ERROR", "recording_lookup NO RECORDINGS FOUND"),
    ("lead_field_info", "SUCCESS", "lead_field_info"),
)


def _phone(rng: random.Random) -> str:
    return f"{rng.randrange(200, 999)}{rng.randrange(0, 10_000_000):07d}"


def _callerid(rng: random.Random) -> str:
    return f"V{rng.randrange(10**17, 10**18)}"


def _insert_live_agent(rng: random.Random) -> tuple[list[str], list[Any]]:
    user = str(rng.randrange(1000, 1100))
    return (
        ["user", "server_ip", "conf_exten", "extension", "status", "lead_id", "campaign_id",
         "uniqueid", "callerid", "channel", "random_id", "last_call_time", "last_call_finish",
         "closer_campaigns", "call_server_ip", "user_level", "comments", "last_state_change"],
        [user, _SERVER_IP, f"86000{rng.randrange(10, 99)}", f"SIP/{user}", "PAUSED", 0,
         "TESTCAMP", "", "", "", rng.randrange(10_000_000, 99_999_999), _NOW, _NOW, "",
         _SERVER_IP, 1, "", _NOW],
    )  # fmt: skip


def _update_live_agent(rng: random.Random) -> tuple[str, tuple[Any, ...]]:
    status = rng.choice(("READY", "QUEUE", "INCALL", "PAUSED"))
    return "status=%s, last_state_change=NOW(), calls_today=calls_today+1", (status,)


def _insert_auto_call(rng: random.Random) -> tuple[list[str], list[Any]]:
    return (
        ["server_ip", "campaign_id", "status", "lead_id", "uniqueid", "callerid", "channel",
         "phone_code", "phone_number", "call_time", "call_type", "stage", "alt_dial"],
        [_SERVER_IP, "TESTCAMP", "SENT", rng.randrange(1, 1_000_000), "", _callerid(rng), "",
         "1", _phone(rng), _NOW, "OUT", "START", "MAIN"],
    )  # fmt: skip


def _update_auto_call(rng: random.Random) -> tuple[str, tuple[Any, ...]]:
    channel = f"SIP/trunk-{rng.randrange(16**8):08x}"
    return "status=%s, uniqueid=%s, channel=%s", (
        rng.choice(("RINGING", "LIVE", "XFER")),
        _uniqueid(),
        channel,
    )


def _insert_log(rng: random.Random) -> tuple[list[str], list[Any]]:
    return (
        ["uniqueid", "lead_id", "list_id", "campaign_id", "call_date", "start_epoch",
         "end_epoch", "length_in_sec", "status", "phone_code", "phone_number", "user",
         "comments", "processed", "user_group", "term_reason", "alt_dial", "called_count"],
        [_uniqueid(), rng.randrange(1, 1_000_000), 101, "TESTCAMP", _NOW, _EPOCH, _EPOCH, 0,
         "NA", "1", _phone(rng), "VDAD", "AUTO", "N", "", "NONE", "MAIN", 1],
    )  # fmt: skip


def _update_log(rng: random.Random) -> tuple[str, tuple[Any, ...]]:
    return "status=%s, length_in_sec=length_in_sec+%s, end_epoch=UNIX_TIMESTAMP()", (
        rng.choice(("NA", "B", "A", "DROP", "SALE")),
        rng.randrange(1, 600),
    )


def _insert_call_log(rng: random.Random) -> tuple[list[str], list[Any]]:
    return (
        ["uniqueid", "channel", "channel_group", "type", "server_ip", "extension",
         "number_dialed", "caller_code", "start_time", "start_epoch", "length_in_sec"],
        [_uniqueid(), f"SIP/trunk-{rng.randrange(16**8):08x}", "Outbound Call", "SIP",
         _SERVER_IP, "8600051", _phone(rng), _callerid(rng), _NOW, _EPOCH, 0],
    )  # fmt: skip


def _update_call_log(rng: random.Random) -> tuple[str, tuple[Any, ...]]:
    seconds = rng.randrange(1, 600)
    return (
        "end_time=NOW(), end_epoch=UNIX_TIMESTAMP(), length_in_sec=length_in_sec+%s, length_in_min=%s",
        (seconds, round(seconds / 60, 2)),
    )


def _insert_manager(rng: random.Random) -> tuple[list[str], list[Any]]:
    return (
        ["uniqueid", "entry_date", "status", "response", "server_ip", "channel", "action",
         "callerid", "cmd_line_b", "cmd_line_c", "cmd_line_d", "cmd_line_e", "cmd_line_f"],
        ["", _NOW, "NEW", "N", _SERVER_IP, "", "Originate", _callerid(rng),
         "Exten: 8600051", "Context: default", "Channel: Local/58600051@default",
         "Priority: 1", "Callerid: " + _callerid(rng)],
    )  # fmt: skip


def _update_manager(rng: random.Random) -> tuple[str, tuple[Any, ...]]:
    return "status=%s, uniqueid=%s", (rng.choice(("QUEUE", "SENT", "UPDATED", "DEAD")), _uniqueid())


_NOISE_INSERTS: dict[str, Callable[[random.Random], tuple[list[str], list[Any]]]] = {
    "vicidial_live_agents": _insert_live_agent,
    "vicidial_auto_calls": _insert_auto_call,
    "vicidial_log": _insert_log,
    "call_log": _insert_call_log,
    "vicidial_manager": _insert_manager,
}
_NOISE_UPDATES: dict[str, Callable[[random.Random], tuple[str, tuple[Any, ...]]]] = {
    "vicidial_live_agents": _update_live_agent,
    "vicidial_auto_calls": _update_auto_call,
    "vicidial_log": _update_log,
    "call_log": _update_call_log,
    "vicidial_manager": _update_manager,
}
