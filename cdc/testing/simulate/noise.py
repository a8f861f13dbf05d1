"""Dialer noise: the busy tables a running VICIdial writes all the time, which the streamer must skip.

Single-row inserts, updates and deletes on the live-agent, auto-call, call-log and
manager tables (updates and deletes only on rows this writer inserted), plus API
calls other than add_lead in ``vicidial_api_log``. Every statement changes exactly
one row, so it writes exactly one rows event.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ... import vicidial
from ..schema import DEFAULT_API_USER
from .steps import Statement, Steps

__all__ = ["NOISE_TABLES", "DialerNoise"]

#: Busy tables a dialer writes all the time; the streamer must skip them.
NOISE_TABLES: tuple[str, ...] = (
    "vicidial_live_agents",
    "vicidial_auto_calls",
    "vicidial_log",
    "call_log",
    "vicidial_manager",
)
_SERVER_IP = "10.10.10.15"


class DialerNoise:
    """Noise statements drawn from ``rng``; remembers the keys of the rows it inserted."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._keys: dict[str, list[Any]] = {table: [] for table in NOISE_TABLES}

    def steps(self, n: int, *, api_log: bool = True) -> Steps:
        """``n`` single-row writes over the busy dialer tables and other API functions.

        About one in ten is a ``vicidial_api_log`` row of a function other than add_lead
        (none with ``api_log=False``: the dialer's own writes while that table is locked).
        """
        for _ in range(n):
            table, statement, key = self._statement(api_log)
            outcome = yield statement
            if key is _AUTO_KEY:
                self._keys[table].append(outcome.lastrowid)
            elif key is not None:
                self._keys[table].append(key)
        return n

    def _statement(self, api_log: bool) -> tuple[str, Statement, Any]:
        """(table, statement, key to record once it ran: a value, _AUTO_KEY or None)."""
        rng = self._rng
        if rng.random() < 0.1 and api_log:
            function, result, reason = rng.choice(_OTHER_API_CALLS)
            lead_id = rng.randrange(1, 1_000_000)
            return (
                vicidial.API_LOG_TABLE,
                Statement(
                    f"INSERT INTO {vicidial.API_LOG_TABLE} (user, api_date, api_script, `function`,"
                    " agent_user, value, result, result_reason, source, data, run_time, webserver,"
                    " api_url) VALUES (%s, NOW(), 'non-agent', %s, '', %s, %s, %s, 'crm', %s,"
                    " '0.004', 1, 0)",
                    (DEFAULT_API_USER, function, str(lead_id), result, reason, f"{lead_id}|"),
                ),
                None,
            )
        table = rng.choice(NOISE_TABLES)
        keys = self._keys[table]
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


_uniqueid_lock = threading.Lock()
_last_uniqueid_ns = 0


def _uniqueid() -> str:
    """Asterisk-style ``epoch.fraction`` id, unique within the process (20 chars)."""
    global _last_uniqueid_ns
    with _uniqueid_lock:
        now = max(time.time_ns(), _last_uniqueid_ns + 1)
        _last_uniqueid_ns = now
    return f"{now // 1_000_000_000}.{now % 1_000_000_000:09d}"


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
