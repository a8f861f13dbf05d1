"""The simulated VICIdial writers, without a server: which statements each operation yields.

A recording connection stands in for PyMySQL (``lastrowid`` counts up, SELECTs answer
from a table of canned rows); the integration tests in ``test_mariadb.py`` run the
same writers against a private MariaDB and read the binlog.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from cdc import vicidial
from cdc.testing.simulate import NOISE_TABLES, Result, Statement, StepRunner, Vicidial, run_interleaved
from cdc.vicidial import SYSTEM_CAMPAIGN_ID

_UNIQUEID = re.compile(r"'\d{10}\.\d{9}'")


class _Cursor:
    def __init__(self, conn: RecordingConnection) -> None:
        self._conn = conn
        self.description: tuple[str, ...] | None = None
        self.lastrowid = 0
        self.rowcount = 1
        self._rows: Sequence[tuple[Any, ...]] = ()

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, args: tuple[Any, ...] | None) -> None:
        self._conn.executed.append(Statement(sql, tuple(args or ())))
        self._conn.next_id += 1
        self.lastrowid = self._conn.next_id
        canned = [rows for prefix, rows in self._conn.answers.items() if sql.startswith(prefix)]
        self._rows = canned[0] if canned else ()
        self.description = ("column",) if sql.startswith("SELECT") else None

    def fetchall(self) -> Sequence[tuple[Any, ...]]:
        return self._rows


class RecordingConnection:
    """Records every statement; SELECTs starting with a key of ``answers`` return its rows."""

    def __init__(self, answers: Mapping[str, Sequence[tuple[Any, ...]]] | None = None) -> None:
        self.executed: list[Statement] = []
        self.answers = dict(answers or {})
        self.next_id = 0
        self.database = ""

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def select_db(self, database: str) -> None:
        self.database = database


def tables(statements: Sequence[Statement]) -> list[tuple[str, str]]:
    return [(s.verb, s.table) for s in statements]


class TestSteps:
    """Statements, runners and interleaving."""

    def test_statement_names_its_verb_and_table(self) -> None:
        """verb and table come from the SQL text; DDL has no table."""
        assert Statement("insert into `vicidial_list` (a) VALUES (1)").verb == "INSERT"
        assert Statement("INSERT INTO `vicidial_list` (a) VALUES (1)").table == "vicidial_list"
        assert Statement("UPDATE call_log SET a=1").table == "call_log"
        assert Statement("DELETE FROM vicidial_log WHERE uniqueid=%s").table == "vicidial_log"
        assert (
            Statement("SELECT a, b FROM vicidial_lists_fields WHERE list_id=1").table
            == "vicidial_lists_fields"
        )
        assert Statement("CREATE TABLE x (a INT)").table == ""

    def test_runner_sends_each_result_back_into_the_sequence(self) -> None:
        """The lead_id the lead INSERT returned is in the api_log row that follows."""
        conn = RecordingConnection()
        sim = Vicidial(conn)
        runner = sim.runner(sim.add_lead_steps(phone_number="3125550100", list_id=101, touch_user=False))
        assert not runner.done
        with pytest.raises(RuntimeError, match="not finished"):
            _ = runner.result
        lead_id = runner.run()
        assert runner.done and runner.executed == conn.executed
        assert conn.executed[0].table == vicidial.LEAD_TABLE
        assert f"3125550100|101|{lead_id}|-5.00" in conn.executed[1].args

    def test_interleaving_runs_every_statement_and_keeps_runner_order(self) -> None:
        """run_interleaved returns each runner's result in the runners' order."""
        conns = [RecordingConnection() for _ in range(5)]
        sims = [Vicidial(conn) for conn in conns]
        runners = [
            StepRunner(conn, sim.loader_insert_steps(phone_number="1", list_id=1))
            for conn, sim in zip(conns, sims, strict=True)
        ]
        assert run_interleaved(runners, rng=random.Random(3)) == [1] * 5
        assert all(len(conn.executed) == 1 for conn in conns)

    def test_a_sequence_with_no_statement_is_done_at_once(self) -> None:
        """A sequence that returns before yielding has its result immediately."""

        def empty() -> Any:
            return 7
            yield Statement("SELECT 1")  # pragma: no cover - makes this a generator

        runner = StepRunner(RecordingConnection(), empty())
        assert runner.done and runner.result == 7 and not runner.step()


class TestText:
    """Text goes on the wire as PHP sends it."""

    def test_latin1_connection_sends_utf8_bytes(self) -> None:
        """send_utf8_bytes turns str arguments into UTF-8 bytes; numbers stay as they are."""
        conn = RecordingConnection()
        Vicidial(conn, send_utf8_bytes=True).add_list(101, "José")
        assert conn.executed[0].args[:2] == (101, "José".encode())

    def test_utf8mb4_connection_sends_str(self) -> None:
        """Without send_utf8_bytes text stays str."""
        conn = RecordingConnection()
        sim = Vicidial(conn)
        sim.add_list(101, "José")
        assert not sim.send_utf8_bytes
        assert conn.executed[0].args[1] == "José"


class TestLeads:
    """add_lead and the other insert paths yield VICIdial's statements in its order."""

    def test_add_lead_with_every_option_in_vicidial_order(self) -> None:
        """users, lead, api_log + api_urls, alt phones, custom fields, hopper, callback, url_log."""
        conn = RecordingConnection({"SELECT field_label": [("color", "N"), ("ssn", "Y")]})
        lead_id = Vicidial(conn).add_lead(
            phone_number="3125550101",
            list_id=101,
            custom={"color": "blue", "ssn": "123-45-6789"},
            alt_phones=["3125550199"],
            callback=True,
            sent_url="http://crm/x",
        )
        assert tables(conn.executed) == [
            ("UPDATE", "vicidial_users"),
            ("INSERT", "vicidial_list"),
            ("INSERT", "vicidial_api_log"),
            ("INSERT", "vicidial_api_urls"),
            ("INSERT", "vicidial_list_alt_phones"),
            ("INSERT", "vicidial_api_log"),
            ("SELECT", "vicidial_lists_fields"),
            ("INSERT", "custom_101"),
            ("UPDATE", "vicidial_list"),
            ("INSERT", "vicidial_api_log"),
            ("INSERT", "vicidial_hopper"),
            ("INSERT", "vicidial_api_log"),
            ("INSERT", "vicidial_callbacks"),
            ("INSERT", "vicidial_api_log"),
            ("INSERT", "vicidial_url_log"),
            ("UPDATE", "vicidial_url_log"),
        ]
        lead_insert, success = conn.executed[1], conn.executed[2]
        assert lead_id == 2
        assert "CBHOLD" in lead_insert.args
        assert success.args[1:4] == ("add_lead", "SUCCESS", "add_lead LEAD HAS BEEN ADDED")
        assert [s.args[3] for s in conn.executed if s.table == "vicidial_api_log"][1:] == [
            "add_lead MULTI-ALT-PHONE NUMBERS LOADED",
            "add_lead CUSTOM FIELDS VALUES ADDED",
            "add_lead ADDED TO HOPPER",
            "add_lead SCHEDULED CALLBACK ADDED",
        ]
        custom = conn.executed[7]
        assert custom.args[:2] == (lead_id, "blue") and "123-45-6789" not in custom.args
        assert conn.executed[14].args == (str(lead_id), vicidial.URL_TYPE, "http://crm/x")

    def test_other_insert_paths_write_no_add_lead_success(self) -> None:
        """update_lead, the loader, an agent's dial and a failed add_lead."""
        conn = RecordingConnection()
        sim = Vicidial(conn)
        sim.update_lead_insert(phone_number="1", list_id=101)
        sim.loader_insert(phone_number="2", list_id=101)
        sim.agent_insert(phone_number="3", list_id=101)
        sim.failed_add_lead(phone_number="12", list_id=101)
        api_rows = [s.args[1:3] for s in conn.executed if s.table == vicidial.API_LOG_TABLE]
        assert api_rows == [("update_lead", "SUCCESS"), ("add_lead", "ERROR")]
        assert tables(conn.executed).count(("INSERT", vicidial.LEAD_TABLE)) == 3

    def test_unknown_column_and_bad_label_are_refused(self) -> None:
        """A keyword that is no settable lead column is a TypeError; a bad custom label a ValueError."""
        sim = Vicidial(RecordingConnection())
        with pytest.raises(TypeError, match="no_such_column"):
            sim.add_lead(phone_number="1", list_id=1, no_such_column="x")
        with pytest.raises(ValueError, match="custom field label"):
            sim.add_custom_fields(101, [("1bad", False)])


class TestAdmin:
    """The admin writers upsert VICIdial's URL rows and follow its table names."""

    def test_url_is_inserted_then_updated(self) -> None:
        """set_system_url inserts a row when none exists, and updates the one it finds."""
        conn = RecordingConnection()
        sim = Vicidial(conn)
        sim.set_system_url("http://a/")
        assert tables(conn.executed) == [("SELECT", "vicidial_url_multi"), ("INSERT", "vicidial_url_multi")]
        assert conn.executed[1].args[:4] == (SYSTEM_CAMPAIGN_ID, "system", "Y", vicidial.URL_TYPE)
        conn.answers["SELECT url_id"] = [(9,)]
        sim.set_list_url(101, vicidial.DISABLED)
        assert conn.executed[-1].args == (vicidial.DISABLED, "Y", 9)

    def test_custom_fields_create_the_list_table(self) -> None:
        """add_custom_fields creates custom_<list_id>, one column and one field row per field."""
        conn = RecordingConnection()
        Vicidial(conn).add_custom_fields(7, [("color", False), ("ssn", True)])
        sqls = [s.sql for s in conn.executed]
        assert sqls[0].startswith(f"CREATE TABLE IF NOT EXISTS `{vicidial.custom_table(7)}`")
        assert [s for s in sqls if s.startswith("ALTER")] == [
            "ALTER TABLE `custom_7` ADD `color` VARCHAR(100)",
            "ALTER TABLE `custom_7` ADD `ssn` VARCHAR(255)",
        ]


class TestNoise:
    """Dialer noise: single-row writes on the busy tables, reproducible from a seed."""

    def test_noise_touches_only_noise_tables_and_other_api_calls(self) -> None:
        """Every statement writes one noise table or an api_log row of another function."""
        conn = RecordingConnection()
        assert Vicidial(conn, seed=5).noise(500) == 500
        assert {s.table for s in conn.executed} <= {*NOISE_TABLES, vicidial.API_LOG_TABLE}
        assert {s.verb for s in conn.executed} == {"INSERT", "UPDATE", "DELETE"}
        assert not [s for s in conn.executed if s.table == vicidial.API_LOG_TABLE and "add_lead" in s.args]

    def test_without_api_log_no_api_log_row(self) -> None:
        """api_log=False: the dialer's own writes only (api_log is locked meanwhile)."""
        conn = RecordingConnection()
        Vicidial(conn, seed=5).noise(300, api_log=False)
        assert {s.table for s in conn.executed} <= set(NOISE_TABLES)

    def test_same_seed_same_statements(self) -> None:
        """One seed drives every writer: the same calls replay the same statements."""

        def statements(seed: int) -> list[tuple[str, str]]:
            conn = RecordingConnection()
            sim = Vicidial(conn, seed=seed)
            sim.noise(50)
            sim.add_lead(phone_number="1", list_id=101)
            sim.noise(50)
            # Asterisk uniqueids come from the clock, not the seed.
            return [(s.sql, _UNIQUEID.sub("UID", repr(s.args))) for s in conn.executed]

        assert statements(1) == statements(1)
        assert statements(1) != statements(2)


def test_result_defaults_to_no_rows() -> None:
    """A Result of a write carries no rows."""
    assert Result(lastrowid=3, rowcount=1).rows == ()
