"""The private MariaDB, the VICIdial schema and the PHP-like simulator."""

from __future__ import annotations

import contextlib
import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from support.binlog import binlog_events, binlog_mark, rows_events
from support.mariadb import MariaDBFactory
from support.waiting import wait_until

import cdc.testing.mariadb.install
from cdc.testing.mariadb import MariaDBError, PrivateMariaDB, ensure_installed
from cdc.testing.schema import DEFAULT_API_PASS, TABLES, create_vicidial_schema
from cdc.testing.simulate import NOISE_TABLES, StepRunner, Vicidial, run_interleaved
from cdc.vicidial import LEAD_COLUMNS, SENDER_SCHEMA_VERSION, SYSTEM_CAMPAIGN_ID

pytestmark = pytest.mark.mariadb


def query(conn: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args or None)
        return [tuple(row) for row in cur.fetchall()]


def scalar(conn: Any, sql: str, *args: Any) -> Any:
    return query(conn, sql, *args)[0][0]


class TestServer:
    """The session server is a binlog source like a VICIdial server's."""

    def test_binlog_is_on_in_row_format_with_full_image_and_metadata(self, mariadb: PrivateMariaDB) -> None:
        """log_bin=ON, ROW format, FULL image, FULL row metadata, server_id 1."""
        with contextlib.closing(mariadb.connect()) as conn:
            row = query(
                conn,
                "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@server_id",
            )[0]
        assert row == (1, "ROW", "FULL", "FULL", 1)

    def test_sql_mode_is_not_strict(self, mariadb: PrivateMariaDB, vicidial_db: str) -> None:
        """sql_mode is empty, so an over-long value is truncated instead of rejected."""
        with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
            assert scalar(conn, "SELECT @@GLOBAL.sql_mode") == ""
            query(conn, "INSERT INTO vicidial_list (phone_number, state) VALUES ('5550001', 'ABCD')")
            assert scalar(conn, "SELECT state FROM vicidial_list WHERE phone_number='5550001'") == "AB"

    def test_root_has_no_password_over_tcp_and_the_server_is_private(self, mariadb: PrivateMariaDB) -> None:
        """root connects to 127.0.0.1 on a private port, with its own socket and datadir."""
        with contextlib.closing(mariadb.connect()) as conn:
            assert scalar(conn, "SELECT CURRENT_USER()") == "root@127.0.0.1"
            assert scalar(conn, "SELECT @@port") == mariadb.port != 3306
            assert scalar(conn, "SELECT @@socket") == mariadb.socket
            assert Path(scalar(conn, "SELECT @@datadir")).resolve() == mariadb.datadir
        assert mariadb.host == "127.0.0.1"
        assert Path(mariadb.socket).exists()

    def test_default_charset_is_utf8mb4(self, mariadb: PrivateMariaDB) -> None:
        """character_set_server and collation_server follow charset='utf8mb4'."""
        with contextlib.closing(mariadb.connect()) as conn:
            row = query(conn, "SELECT @@character_set_server, @@collation_server")[0]
        assert row == ("utf8mb4", "utf8mb4_general_ci")


class TestServerVariants:
    """Extra servers: charsets, metadata, options, restarts and failures."""

    def test_latin1_server(self, mariadb_factory: MariaDBFactory) -> None:
        """charset='latin1' sets the server default, which the VICIdial tables inherit."""
        server = mariadb_factory(charset="latin1")
        with contextlib.closing(server.connect()) as conn:
            assert query(conn, "SELECT @@character_set_server, @@collation_server")[0] == (
                "latin1",
                "latin1_swedish_ci",
            )
            create_vicidial_schema(conn, "asterisk", charset="latin1")
            collations = dict(
                query(
                    conn,
                    "SELECT table_name, table_collation FROM information_schema.tables"
                    " WHERE table_schema='asterisk'",
                )
            )
        assert collations["vicidial_list"] == "latin1_swedish_ci"
        assert collations["vicidial_url_multi"] == "utf8mb3_unicode_ci"

    def test_no_log_row_metadata(self, mariadb_factory: MariaDBFactory) -> None:
        """row_metadata='NO_LOG' is MariaDB's default: the binlog names no columns."""
        server = mariadb_factory(row_metadata="NO_LOG")
        with contextlib.closing(server.connect()) as conn:
            assert scalar(conn, "SELECT @@binlog_row_metadata") == "NO_LOG"
            assert scalar(conn, "SELECT @@log_bin") == 1

    def test_restart_keeps_data_and_port(self, mariadb_factory: MariaDBFactory) -> None:
        """restart() and kill() + start() keep the datadir, the port and MyISAM rows."""
        server = mariadb_factory()
        port = server.port
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn)
        with Vicidial.connect(server) as sim:
            lead_id = sim.add_lead(phone_number="3125550100", list_id=101)
        server.restart()
        assert server.port == port
        server.kill()
        assert not server.is_running()
        server.start()
        assert server.port == port
        with contextlib.closing(server.connect(db="asterisk")) as conn:
            assert (
                scalar(conn, "SELECT phone_number FROM vicidial_list WHERE lead_id=%s", lead_id)
                == "3125550100"
            )
            assert scalar(conn, "SELECT COUNT(*) FROM vicidial_api_log WHERE result='SUCCESS'") == 1

    def test_options_and_binlog_rotation(self, mariadb_factory: MariaDBFactory) -> None:
        """Extra my.cnf options apply and max_binlog_size rotates the binlog."""
        server = mariadb_factory(server_id=7, options={"max-connections": 77}, max_binlog_size=4096)
        with contextlib.closing(server.connect()) as conn:
            assert query(conn, "SELECT @@max_connections, @@server_id, @@max_binlog_size")[0] == (77, 7, 4096)
            create_vicidial_schema(conn)
        with Vicidial.connect(server, seed=1) as sim:
            sim.noise(100)
        assert len(server.binlog_files()) > 2
        before = server.binlog_files()
        assert server.flush_binary_logs() not in before

    def test_bad_option_fails_start_with_the_error_log_tail(self, mariadb_factory: MariaDBFactory) -> None:
        """A server that cannot start raises MariaDBError quoting its error log."""
        with pytest.raises(MariaDBError, match="unknown variable"):
            mariadb_factory(options={"no-such-option": 1})

    def test_lifecycle_errors_and_cleanup(self) -> None:
        """Starting twice is an error; close() removes the temp dir and cannot be undone."""
        server = PrivateMariaDB()
        with server:
            with pytest.raises(RuntimeError, match="already running"):
                server.start()
            base = server.base_dir
            assert (base / "my.cnf").read_text().count("log-bin=") == 1
        assert not base.exists()
        with pytest.raises(RuntimeError, match="closed"):
            server.start()

    def test_missing_binaries_raise_a_clear_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without mariadbd and without permission to install, ensure_installed explains."""
        ensure_installed(allow_install=False)
        monkeypatch.setattr(cdc.testing.mariadb.install, "find_binaries", lambda: None)
        with pytest.raises(MariaDBError, match="mariadb-server"):
            ensure_installed(allow_install=False)


class TestSchema:
    """create_vicidial_schema builds VICIdial's tables and settings rows."""

    def test_tables_and_engines(self, mariadb: PrivateMariaDB, vicidial_db: str) -> None:
        """Every table exists; all MyISAM but the MEMORY hopper."""
        with contextlib.closing(mariadb.connect()) as conn:
            engines = dict(
                query(
                    conn,
                    "SELECT table_name, engine FROM information_schema.tables WHERE table_schema=%s",
                    vicidial_db,
                )
            )
        assert set(engines) == set(TABLES)
        assert {t for t, e in engines.items() if e != "MyISAM"} == {"vicidial_hopper"}
        assert engines["vicidial_hopper"] == "MEMORY"

    def test_vicidial_list_columns_in_vicidial_order(self, mariadb: PrivateMariaDB, vicidial_db: str) -> None:
        """vicidial_list has VICIdial's columns, in order, with the documented types."""
        with contextlib.closing(mariadb.connect()) as conn:
            columns = query(
                conn,
                "SELECT column_name, column_type FROM information_schema.columns"
                " WHERE table_schema=%s AND table_name='vicidial_list' ORDER BY ordinal_position",
                vicidial_db,
            )
        assert tuple(name for name, _ in columns) == LEAD_COLUMNS
        types = dict(columns)
        assert types["lead_id"] == "int(9) unsigned"
        assert types["list_id"] == types["entry_list_id"] == "bigint(14) unsigned"
        assert types["gmt_offset_now"] == "decimal(4,2)"
        assert types["gender"] == "enum('M','F','U')"
        assert types["date_of_birth"] == "date"
        assert types["modify_date"] == "timestamp"
        assert types["entry_date"] == "datetime"
        assert types["called_since_last_reset"].startswith("enum('Y','N','Y1',")

    def test_current_build_has_apinewlead(self, mariadb: PrivateMariaDB, vicidial_db: str) -> None:
        """url_type includes apinewlead; the utf8 url table; schema version 1726+."""
        with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
            url_type = scalar(
                conn,
                "SELECT column_type FROM information_schema.columns WHERE table_schema=%s"
                " AND table_name='vicidial_url_multi' AND column_name='url_type'",
                vicidial_db,
            )
            settings = query(
                conn, "SELECT db_schema_version, use_non_latin, custom_fields_enabled FROM system_settings"
            )
            default_charset = scalar(
                conn,
                "SELECT default_character_set_name FROM information_schema.schemata WHERE schema_name=%s",
                vicidial_db,
            )
        assert url_type == "enum('dispo','start','addlead','noagent','apinewlead','')"
        assert len(settings) == 1
        assert settings[0][0] >= SENDER_SCHEMA_VERSION
        assert settings[0][1:] == ("0", "1")
        assert default_charset == "utf8mb4"

    @pytest.mark.parametrize("vicidial_db", [{"with_apinewlead": False, "charset": "latin1"}], indirect=True)
    def test_old_build_lacks_apinewlead(self, mariadb: PrivateMariaDB, vicidial_db: str) -> None:
        """with_apinewlead=False: no apinewlead label and db_schema_version below 1726."""
        with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
            url_type = scalar(
                conn,
                "SELECT column_type FROM information_schema.columns WHERE table_schema=%s"
                " AND table_name='vicidial_url_multi' AND column_name='url_type'",
                vicidial_db,
            )
            version = scalar(conn, "SELECT db_schema_version FROM system_settings")
            list_collation = scalar(
                conn,
                "SELECT table_collation FROM information_schema.tables WHERE table_schema=%s"
                " AND table_name='vicidial_list'",
                vicidial_db,
            )
        assert "apinewlead" not in url_type
        assert version < SENDER_SCHEMA_VERSION
        assert list_collation == "latin1_swedish_ci"


class TestAddLead:
    """Vicidial.add_lead writes what VICIdial's non-agent API writes, in order."""

    def test_rows_in_documented_order(
        self, mariadb: PrivateMariaDB, vicidial: Vicidial, vicidial_db: str
    ) -> None:
        """users, list, api_log, api_urls, custom, entry_list_id, NOTICE, hopper, NOTICE; one group each."""
        vicidial.add_list(101, "Sales", "TESTCAMP", "Inbound sales")
        vicidial.add_custom_fields(101, [("favorite_color", False), ("ssn", True)])
        with contextlib.closing(mariadb.connect()) as conn:
            mark = binlog_mark(conn)
            lead_id = vicidial.add_lead(
                phone_number="3125550101",
                list_id=101,
                first_name="Ana",
                custom={"favorite_color": "blue", "ssn": "123-45-6789"},
            )
            events = rows_events(conn, mark, vicidial_db)
            all_types = [kind for kind, _ in binlog_events(conn, mark)]
        assert [(e.op, e.table) for e in events] == [
            ("update", "vicidial_users"),
            ("insert", "vicidial_list"),
            ("insert", "vicidial_api_log"),
            ("insert", "vicidial_api_urls"),
            ("insert", "custom_101"),
            ("update", "vicidial_list"),
            ("insert", "vicidial_api_log"),
            ("insert", "vicidial_hopper"),
            ("insert", "vicidial_api_log"),
        ]
        for event in events:
            assert event.group[:3] == ("Gtid", "Annotate_rows", "Table_map")
            assert event.group[-1] == "Query"
        assert "Xid" not in all_types
        assert f"'3125550101|101|{lead_id}|-5.00'" in events[2].sql
        assert "add_lead CUSTOM FIELDS VALUES ADDED" in events[6].sql
        assert "123-45-6789" not in events[4].sql

    def test_row_values(self, mariadb: PrivateMariaDB, vicidial: Vicidial, vicidial_db: str) -> None:
        """The lead and its api_log row carry VICIdial's values and formats."""
        lead_id = vicidial.add_lead(
            phone_number="3125550102",
            list_id=102,
            first_name="José",
            last_name="Núñez",
            gmt_offset_now=-6,
            city="Chicago",
        )
        with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
            lead = dict(
                zip(
                    LEAD_COLUMNS,
                    query(conn, "SELECT * FROM vicidial_list WHERE lead_id=%s", lead_id)[0],
                    strict=True,
                )
            )
            api = query(
                conn,
                "SELECT user, `function`, result, result_reason, data FROM vicidial_api_log"
                " WHERE result='SUCCESS'",
            )
            url = scalar(conn, "SELECT url FROM vicidial_api_urls")
        assert lead["status"] == "NEW" and lead["user"] == "6666" and lead["list_id"] == 102
        assert lead["first_name"] == "José" and lead["last_name"] == "Núñez" and lead["city"] == "Chicago"
        assert str(lead["gmt_offset_now"]) == "-6.00"
        assert lead["gender"] == "U" and lead["date_of_birth"] == "0000-00-00"
        assert lead["entry_list_id"] == 0 and lead["called_count"] == 0
        assert lead["entry_date"] is not None
        assert api == [
            ("6666", "add_lead", "SUCCESS", "add_lead LEAD HAS BEEN ADDED", f"3125550102|102|{lead_id}|-6.00")
        ]
        assert DEFAULT_API_PASS in url

    def test_unknown_column_is_rejected(self, vicidial: Vicidial) -> None:
        """A keyword that is not a settable vicidial_list column is a TypeError."""
        with pytest.raises(TypeError, match="no_such_column"):
            vicidial.add_lead(phone_number="1", list_id=1, no_such_column="x")

    def test_other_insert_paths(self, mariadb: PrivateMariaDB, vicidial: Vicidial, vicidial_db: str) -> None:
        """update_lead, the loader, agents and a failed add_lead write no add_lead SUCCESS row."""
        updated = vicidial.update_lead_insert(phone_number="3125550103", list_id=101)
        loaded = vicidial.loader_insert(phone_number="3125550104", list_id=101)
        dialed = vicidial.agent_insert(phone_number="3125550105", list_id=101)
        api_id = vicidial.failed_add_lead(phone_number="12", list_id=101)
        with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
            leads = query(conn, "SELECT lead_id, user, status FROM vicidial_list ORDER BY lead_id")
            api = query(conn, "SELECT api_id, `function`, result, result_reason, data FROM vicidial_api_log")
        assert leads == [(updated, "6666", "NEW"), (loaded, "", "NEW"), (dialed, "1001", "QUEUE")]
        assert api == [
            (
                1,
                "update_lead",
                "SUCCESS",
                "update_lead LEAD HAS BEEN ADDED",
                f"3125550103|101|{updated}|-5.00",
            ),
            (api_id, "add_lead", "ERROR", "add_lead INVALID PHONE NUMBER LENGTH", "12|101"),
        ]

    def test_latin1_php_connection_stores_double_encoded_text(self, mariadb_factory: MariaDBFactory) -> None:
        """Over a latin1 connection the UTF-8 bytes are stored as latin1 characters (JosÃ©)."""
        server = mariadb_factory(charset="latin1")
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, charset="latin1")
        with Vicidial.connect(server, connection_charset="latin1") as sim:
            lead_id = sim.add_lead(phone_number="3125550106", list_id=101, first_name="José")
        with contextlib.closing(server.connect(db="asterisk")) as conn:
            stored = query(
                conn, "SELECT HEX(first_name), first_name FROM vicidial_list WHERE lead_id=%s", lead_id
            )
        assert stored == [("4A6F73C3A9", "JosÃ©")]

    def test_own_sender_logs_the_url(
        self, mariadb: PrivateMariaDB, vicidial: Vicidial, vicidial_db: str
    ) -> None:
        """sent_url adds VICIdial's vicidial_url_log INSERT then UPDATE (schema 1726+)."""
        with contextlib.closing(mariadb.connect()) as conn:
            mark = binlog_mark(conn)
            lead_id = vicidial.add_lead(phone_number="3125550107", list_id=101, sent_url="http://h/x?1")
            url_log_id = vicidial.log_url_request(lead_id, "http://h/y")
            vicidial.log_url_response(url_log_id, "PHP ERROR: connection refused", 1)
            events = [
                (e.op, e.table) for e in rows_events(conn, mark, vicidial_db) if e.table == "vicidial_url_log"
            ]
            rows = query(
                conn, f"SELECT uniqueid, url_type, url, url_response FROM `{vicidial_db}`.vicidial_url_log"
            )
        assert events == [("insert", "vicidial_url_log"), ("update", "vicidial_url_log")] * 2
        assert rows == [
            (str(lead_id), "apinewlead", "http://h/x?1", "OK"),
            (str(lead_id), "apinewlead", "http://h/y", "PHP ERROR: connection refused"),
        ]


class TestSettingsWriters:
    """The settings writers produce the rows the settings cache follows."""

    def test_url_rows(self, mariadb: PrivateMariaDB, vicidial: Vicidial, vicidial_db: str) -> None:
        """System and list URLs are upserted; deleting a list URL removes its row."""
        vicidial.set_system_url("http://a/--A--lead_id--B--")
        vicidial.set_system_url("http://b/--A--lead_id--B--")
        vicidial.set_list_url(101, "---DISABLED---")
        vicidial.set_list_url(102, "http://c/")
        vicidial.delete_list_url(102)

        def rows() -> list[tuple[Any, ...]]:
            with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
                return query(
                    conn,
                    "SELECT campaign_id, entry_type, url_type, url_address FROM vicidial_url_multi"
                    " ORDER BY url_id",
                )

        assert rows() == [
            (SYSTEM_CAMPAIGN_ID, "system", "apinewlead", "http://b/--A--lead_id--B--"),
            ("101", "list", "apinewlead", "---DISABLED---"),
        ]
        vicidial.delete_system_url()
        assert wait_until(lambda: len(rows()) == 1, timeout_s=5)

    def test_lists_custom_fields_and_system(
        self, mariadb: PrivateMariaDB, vicidial: Vicidial, vicidial_db: str
    ) -> None:
        """add_list, update_list, add_custom_fields and set_system write their rows."""
        vicidial.add_list(101, "Sales", "CAMP1", "First")
        vicidial.update_list(101, name="Sales 2", description="Second")
        vicidial.add_custom_fields(101, [("color", False), ("secret", True)])
        vicidial.add_custom_fields(101, [("size", False)])
        vicidial.set_system(use_non_latin=True, db_schema_version=1700, custom_fields_enabled=False)
        with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
            assert query(conn, "SELECT list_name, campaign_id, list_description FROM vicidial_lists") == [
                ("Sales 2", "CAMP1", "Second")
            ]
            assert query(
                conn, "SELECT field_label, field_encrypt FROM vicidial_lists_fields ORDER BY field_id"
            ) == [
                ("color", "N"),
                ("secret", "Y"),
                ("size", "N"),
            ]
            assert [c[0] for c in query(conn, "SHOW COLUMNS FROM custom_101")] == [
                "lead_id",
                "color",
                "secret",
                "size",
            ]
            assert query(
                conn, "SELECT use_non_latin, db_schema_version, custom_fields_enabled FROM system_settings"
            ) == [("1", 1700, "0")]


class TestNoise:
    """noise(n) writes n single-row events the streamer must skip."""

    def test_noise_tables_only(self, mariadb: PrivateMariaDB, vicidial: Vicidial, vicidial_db: str) -> None:
        """Inserts, updates and deletes on noise tables, plus api_log rows of other functions."""
        with contextlib.closing(mariadb.connect()) as conn:
            mark = binlog_mark(conn)
            assert vicidial.noise(300) == 300
            events = rows_events(conn, mark, vicidial_db)
        assert len(events) == 300
        assert {e.table for e in events} <= {*NOISE_TABLES, "vicidial_api_log"}
        assert {e.op for e in events} == {"insert", "update", "delete"}
        assert {e.table for e in events} >= set(NOISE_TABLES)
        assert not [e for e in events if e.table == "vicidial_api_log" and "'add_lead'" in e.sql]


class TestInterleaving:
    """Step sequences interleave across connections like concurrent API calls."""

    def test_runner_passes_the_lead_id_to_later_steps(self, vicidial: Vicidial) -> None:
        """The api_log statement carries the lead_id returned by the vicidial_list insert."""
        runner = vicidial.runner(
            vicidial.add_lead_steps(phone_number="3125550108", list_id=101, touch_user=False)
        )
        assert runner.step() and runner.executed[0].table == "vicidial_list"
        runner.run()
        assert runner.done
        api_log = next(s for s in runner.executed if s.table == "vicidial_api_log")
        assert f"3125550108|101|{runner.result}|-5.00" in api_log.args

    def test_fifty_interleaved_add_leads(
        self, mariadb: PrivateMariaDB, vicidial: Vicidial, vicidial_db: str
    ) -> None:
        """50 add_lead sequences on 50 connections interleave and each pairs by lead_id."""
        vicidial.add_custom_fields(101, [("color", False)])
        with contextlib.ExitStack() as stack:
            sims = [
                stack.enter_context(Vicidial.connect(mariadb, database=vicidial_db, seed=i))
                for i in range(50)
            ]
            runners: list[StepRunner] = [
                sim.runner(
                    sim.add_lead_steps(
                        phone_number=f"31255{i:05d}",
                        list_id=101,
                        custom={"color": f"c{i}"} if i % 3 == 0 else None,
                    )
                )
                for i, sim in enumerate(sims)
            ]
            with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn:
                mark = binlog_mark(conn)
                lead_ids = run_interleaved(runners, rng=random.Random(42))
                threads = {scalar(conn, "SELECT CONNECTION_ID()")} | {
                    scalar(sim.conn, "SELECT CONNECTION_ID()") for sim in sims
                }
                events = rows_events(conn, mark, vicidial_db)
                leads = dict(query(conn, "SELECT lead_id, phone_number FROM vicidial_list"))
                successes = query(
                    conn, "SELECT data FROM vicidial_api_log WHERE `function`='add_lead' AND result='SUCCESS'"
                )
                customs = dict(query(conn, "SELECT lead_id, color FROM custom_101"))
        assert len(threads) == 51
        assert len(set(lead_ids)) == 50
        assert {leads[lead_id] for lead_id in lead_ids} == {f"31255{i:05d}" for i in range(50)}
        assert sorted(d for (d,) in successes) == sorted(
            f"31255{i:05d}|101|{lead_id}|-5.00" for i, lead_id in enumerate(lead_ids)
        )
        assert customs == {lead_id: f"c{i}" for i, lead_id in enumerate(lead_ids) if i % 3 == 0}
        # Interleaved: at least once, two leads are inserted before either's api_log row.
        inserts = [
            e.table for e in events if e.op == "insert" and e.table in ("vicidial_list", "vicidial_api_log")
        ]
        assert any(a == b == "vicidial_list" for a, b in itertools.pairwise(inserts))
        # users UPDATEs write a row only when the row changes (last_login_date moved on).
        assert len([e for e in events if e.table != "vicidial_users"]) == 50 * 5 + 17 * 3
