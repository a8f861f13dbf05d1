"""``vicidial-cdc check`` against real private MariaDB servers and real restricted accounts.

Every server setting is made wrong in turn; the fix the check prints is then applied
as printed (the ``SET GLOBAL`` on the running server, the ``my.cnf`` line on a restart
of the same datadir, the ``GRANT`` statements as root) and the check must pass after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.mariadb import MariaDBFactory, grants_user
from support.waiting import wait_until

from cdc import cli
from cdc.config import ENV_PREFIX, Config, MysqlConfig, StateConfig, UrlsConfig
from cdc.ops.check import READ_TABLES, Status, run_checks, start_check
from cdc.testing.mariadb import OptionValue, PrivateMariaDB
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb

CFG_SYS = "https://crm.example.com/lead?key=SENTINEL-CFG-KEY&phone=--A--phone_number--B--"
CFG_LIST = "https://list-crm.example.com/lead?phone=--A--phone_number--B--"
VICI_SYS = "https://vici.example.com/new?key=SENTINEL-VICI-KEY&lead=--A--lead_id--B--"
VICI_LIST = "https://vici-list.example.com/new?lead=--A--lead_id--B--"
CONFIG_SYS = f'[urls]\nsystem = "{CFG_SYS}"\n'
_user_numbers = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class Checked:
    """One run of ``vicidial-cdc check --json``."""

    code: int
    results: dict[str, dict[str, str]]

    def status(self, name: str) -> str:
        return self.results[name]["status"]

    def fix(self, name: str) -> str:
        return self.results[name]["fix"]

    def problems(self) -> dict[str, str]:
        return {n: r["status"] for n, r in self.results.items() if r["status"] in ("WARN", "FAIL")}


@dataclasses.dataclass
class CheckRunner:
    """Runs ``cli.main(["check", ...])`` with VICIDIAL_CDC_* env pointing at a server."""

    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    tmp_path: Path

    def env(
        self,
        server: PrivateMariaDB | None,
        database: str,
        *,
        user: str = "root",
        password: str = "",
        port: int | None = None,
        server_id: int | None = None,
    ) -> None:
        for key in list(os.environ):
            if key.startswith(ENV_PREFIX):
                self.monkeypatch.delenv(key)
        values = {
            "MYSQL_HOST": "127.0.0.1",
            "MYSQL_PORT": str(port if port is not None else server.port if server else 0),
            "MYSQL_USER": user,
            "MYSQL_PASSWORD": password,
            "MYSQL_DATABASE": database,
            "MYSQL_CONNECT_TIMEOUT_S": "5",
        }
        if server_id is not None:
            values["MYSQL_SERVER_ID"] = str(server_id)
        for key, value in values.items():
            self.monkeypatch.setenv(ENV_PREFIX + key, value)

    def text(self, config: str | None = CONFIG_SYS, *args: str) -> tuple[int, str]:
        argv = ["check", *args]
        if config is not None:
            path = self.tmp_path / "check.toml"
            path.write_text(config, encoding="utf-8")
            argv += ["--config", str(path)]
        self.capsys.readouterr()
        code = cli.main(argv)
        return code, self.capsys.readouterr().out

    def json(self, config: str | None = CONFIG_SYS, *args: str) -> Checked:
        code, out = self.text(config, "--json", *args)
        return Checked(code, {r["name"]: r for r in json.loads(out)})

    def run(
        self,
        server: PrivateMariaDB | None,
        database: str,
        config: str | None = CONFIG_SYS,
        *args: str,
        **env: Any,
    ) -> Checked:
        self.env(server, database, **env)
        return self.json(config, *args)


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> CheckRunner:
    return CheckRunner(monkeypatch, capsys, tmp_path)


def sql(server: PrivateMariaDB, *statements: str, db: str | None = None) -> list[tuple[Any, ...]]:
    """Run statements as root; the rows of the last one."""
    rows: list[tuple[Any, ...]] = []
    with contextlib.closing(server.connect(db=db)) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            rows = [tuple(r) for r in cur.fetchall()]
    return rows


def fix_statements(fix: str) -> list[str]:
    """The SQL lines of a printed fix (GRANT / REVOKE / SET GLOBAL / UPDATE / INSERT)."""
    found = re.findall(r"((?:GRANT|REVOKE|SET GLOBAL|UPDATE|INSERT) [^;]*;)", fix)
    return [s.rstrip(";") for s in found]


def my_cnf_lines(fix: str) -> dict[str, str]:
    """The indented ``name = value`` lines of a printed fix (what goes into my.cnf)."""
    return dict(re.findall(r"^    (\w+) = (\S+)$", fix, re.MULTILINE))


def vicidial_server(start: MariaDBFactory, **kwargs: Any) -> PrivateMariaDB:
    server = start(**kwargs)
    with contextlib.closing(server.connect()) as conn:
        create_vicidial_schema(conn, "asterisk")
    return server


@pytest.fixture
def make_user(mariadb: PrivateMariaDB) -> Iterator[Callable[..., tuple[str, str]]]:
    """``make_user(*grant_lines)`` → (user, password) of a new account on 127.0.0.1."""
    made: list[str] = []

    def make(*grants: str, password: str = "cdc-pass-9") -> tuple[str, str]:
        user = f"cdc_check_{next(_user_numbers)}"
        account = f"'{user}'@'127.0.0.1'"
        made.append(account)
        sql(
            mariadb,
            f"CREATE USER {account} IDENTIFIED BY '{password}'",
            *(g.format(account=account) for g in grants),
        )
        return user, password

    yield make
    for account in made:
        sql(mariadb, f"DROP USER IF EXISTS {account}")


class TestHealthyServer:
    """The recommended server with a config URL: every check OK or INFO, exit 0."""

    def test_all_good_as_root(self, check: CheckRunner, mariadb: PrivateMariaDB, vicidial_db: str) -> None:
        """Binlog settings OK, root's extra privileges only INFO, config URL by host."""
        result = check.run(mariadb, vicidial_db)
        assert result.code == 0
        assert result.problems() == {}
        for name in ("connect", "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata"):
            assert result.status(name) == "OK"
        assert result.status("binlog_retention") == "OK"  # expiry 0: never purged
        assert result.status("server_id") == "OK"
        assert result.status("grant.extra") == "INFO"
        assert "ALL PRIVILEGES ON *.*" in result.results["grant.extra"]["message"]
        assert result.status("vicidial.schema") == "INFO"
        assert result.results["url.system"]["message"] == (
            "lists without their own URL → crm.example.com (from config file [urls] system)"
        )
        assert result.status("double_send") == "OK"

    def test_text_output_shows_no_secret_lead_data_or_password_hash(
        self,
        check: CheckRunner,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        vicidial: Vicidial,
        make_user: Callable[..., tuple[str, str]],
    ) -> None:
        """Hosts only: no URL key, no phone or name, no password or its hash."""
        vicidial.add_list(101)
        vicidial.set_list_url(101, VICI_SYS)
        vicidial.add_lead(phone_number="5559871234", list_id=101, first_name="Sentinelname")
        user, password = make_user(
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {account}",
            f"GRANT SELECT, INSERT ON `{vicidial_db}`.* TO {{account}}",
        )
        (password_hash,) = sql(mariadb, f"SELECT PASSWORD('{password}')")[0]
        check.env(mariadb, vicidial_db, user=user, password=password)
        code, out = check.text()
        assert code == 1  # VICIdial's list 101 URL is sent twice
        lines = out.splitlines()
        assert lines[-1] == "1 warning(s) (exit 1)"
        assert any(line.startswith("WARN  double_send.list.101 ") for line in lines)
        assert any(line.startswith("INFO  grant.extra ") for line in lines)
        for secret in ("SENTINEL-CFG-KEY", "SENTINEL-VICI-KEY", "5559871234", "Sentinelname", password):
            assert secret not in out
        assert str(password_hash) not in out and str(password_hash)[1:] not in out


class TestServerSettings:
    """Each required setting wrong in turn: its status, its fix, the exit code; the fix works."""

    @pytest.mark.parametrize(
        ("name", "start", "status", "code", "drop"),
        [
            ("log_bin", {"options": {"skip-log-bin": None}}, "FAIL", 2, ("skip-log-bin",)),
            ("binlog_format", {"options": {"binlog_format": "MIXED"}}, "FAIL", 2, ()),
            ("binlog_format", {"options": {"binlog_format": "STATEMENT"}}, "FAIL", 2, ()),
            ("binlog_row_image", {"options": {"binlog_row_image": "MINIMAL"}}, "FAIL", 2, ()),
            ("binlog_row_metadata", {"row_metadata": "NO_LOG"}, "WARN", 1, ()),
            ("binlog_row_metadata", {"row_metadata": "MINIMAL"}, "WARN", 1, ()),
            ("binlog_retention", {"options": {"binlog_expire_logs_seconds": 3600}}, "WARN", 1, ()),
        ],
    )
    def test_wrong_setting(
        self,
        check: CheckRunner,
        mariadb_factory: MariaDBFactory,
        name: str,
        start: dict[str, Any],
        status: str,
        code: int,
        drop: Sequence[str],
    ) -> None:
        """Only that check fails; its SET GLOBAL and its my.cnf line each make it pass."""
        server = vicidial_server(mariadb_factory, **start)
        result = check.run(server, "asterisk")
        assert result.problems() == {name: status}
        assert result.code == code
        fix = result.fix(name)
        cnf = my_cnf_lines(fix)
        expected_cnf = {
            "log_bin": {"log_bin": "mysql-bin"},
            "binlog_format": {"binlog_format": "ROW"},
            "binlog_row_image": {"binlog_row_image": "FULL"},
            "binlog_row_metadata": {"binlog_row_metadata": "FULL"},
            "binlog_retention": {"binlog_expire_logs_seconds": "86400"},
        }[name]
        assert cnf == expected_cnf

        statements = fix_statements(fix)
        if name == "log_bin":
            assert statements == []  # not dynamic: my.cnf and a restart
        else:
            assert len(statements) == 1 and statements[0].startswith("SET GLOBAL")
            sql(server, statements[0])
            after_sql = check.run(server, "asterisk")
            assert (after_sql.code, after_sql.problems()) == (0, {})

        # The my.cnf line, on a restart of the same datadir (the bad line edited or removed).
        server.stop()
        options: dict[str, OptionValue] = {k: v for k, v in start.get("options", {}).items() if k not in drop}
        options.update(cnf)
        restarted = PrivateMariaDB(
            server.base_dir, row_metadata=start.get("row_metadata", "FULL"), options=options
        )
        with restarted:
            after_cnf = check.run(restarted, "asterisk")
        assert (after_cnf.code, after_cnf.problems()) == (0, {})

    def test_retention_against_max_downtime(
        self, check: CheckRunner, mariadb_factory: MariaDBFactory
    ) -> None:
        """3 days kept: OK for --max-downtime 2d, WARN for 7d with a 7-day fix."""
        server = vicidial_server(mariadb_factory, options={"binlog_expire_logs_seconds": 3 * 86400})
        ok = check.run(server, "asterisk", CONFIG_SYS, "--max-downtime", "2d")
        assert (ok.code, ok.status("binlog_retention")) == (0, "OK")
        short = check.run(server, "asterisk", CONFIG_SYS, "--max-downtime", "7d")
        assert (short.code, short.problems()) == (1, {"binlog_retention": "WARN"})
        assert "SET GLOBAL binlog_expire_logs_seconds = 604800;" in short.fix("binlog_retention")

    def test_start_check_is_the_problems(self, mariadb_factory: MariaDBFactory, tmp_path: Path) -> None:
        """What ``run`` logs at start: the WARN and FAIL lines, by the config's reader.max_downtime_s."""
        server = vicidial_server(
            mariadb_factory, options={"binlog_format": "MIXED", "binlog_expire_logs_seconds": 3 * 86400}
        )
        cfg = Config(
            mysql=MysqlConfig(host="127.0.0.1", port=server.port, user="root", database="asterisk"),
            urls=UrlsConfig(system=CFG_SYS),
            state=StateConfig(path=str(tmp_path / "state.db")),
        )
        found = [(r.name, r.status) for r in start_check(cfg)]
        assert found == [("binlog_format", Status.FAIL)]
        problems = [(r.name, r.status) for r in run_checks(cfg) if r.status in (Status.WARN, Status.FAIL)]
        assert found == problems
        week = dataclasses.replace(cfg, reader=dataclasses.replace(cfg.reader, max_downtime_s=7 * 86400.0))
        found = [(r.name, r.status) for r in start_check(week)]
        assert found == [("binlog_format", Status.FAIL), ("binlog_retention", Status.WARN)]

    def test_bad_max_downtime_is_a_usage_error(self, check: CheckRunner, mariadb: PrivateMariaDB) -> None:
        """--max-downtime 0 exits 2 before connecting."""
        check.env(mariadb, "asterisk")
        code, out = check.text(CONFIG_SYS, "--max-downtime", "0")
        assert (code, out) == (2, "")


class TestServerId:
    """The streamer's server_id against the server's own and its real replicas'."""

    def test_the_servers_own_id(self, check: CheckRunner, mariadb: PrivateMariaDB, vicidial_db: str) -> None:
        """server_id = @@server_id is a blocker with a free id suggested."""
        result = check.run(mariadb, vicidial_db, server_id=1)
        assert (result.code, result.problems()) == (2, {"server_id": "FAIL"})
        assert "server_id = 3840000001" in result.fix("server_id")

    def test_a_real_replicas_id(self, check: CheckRunner, mariadb_factory: MariaDBFactory) -> None:
        """A replica connected with server_id 77: 77 is a blocker, the default is OK."""
        primary = vicidial_server(mariadb_factory)
        sql(
            primary,
            "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl-pass'",
            "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'",
        )
        replica = mariadb_factory(server_id=77)
        sql(
            replica,
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port},"
            " MASTER_USER='repl', MASTER_PASSWORD='repl-pass', MASTER_CONNECT_RETRY=1",
            "START SLAVE",
        )
        try:
            wait_until(
                lambda: any(row[0] == 77 for row in sql(primary, "SHOW SLAVE HOSTS")),
                30,
                message="the replica registers with the primary",
            )
            clash = check.run(primary, "asterisk", server_id=77)
            assert (clash.code, clash.problems()) == (2, {"server_id": "FAIL"})
            assert "used by a replica" in clash.results["server_id"]["message"]
            assert "server_id = 3840000001" in clash.fix("server_id")
            fine = check.run(primary, "asterisk")
            assert (fine.code, fine.status("server_id")) == (0, "OK")
            assert "1 replica(s)" in fine.results["server_id"]["message"]
        finally:
            sql(replica, "STOP SLAVE")


class TestPrivileges:
    """Real restricted accounts: missing grants fail with the GRANTs that fix them."""

    def test_missing_grants_then_the_printed_fix(
        self,
        check: CheckRunner,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        vicidial: Vicidial,
        make_user: Callable[..., tuple[str, str]],
    ) -> None:
        """No REPLICATION CLIENT, SELECT on 3 tables only; custom_101 is required too."""
        vicidial.add_list(101)
        vicidial.add_custom_fields(101, [("color", False)])
        user, password = make_user(
            "GRANT REPLICATION SLAVE ON *.* TO {account}",
            *(
                f"GRANT SELECT ON `{vicidial_db}`.`{t}` TO {{account}}"
                for t in ("vicidial_list", "vicidial_lists", "vicidial_lists_fields")
            ),
        )
        result = check.run(mariadb, vicidial_db, user=user, password=password)
        assert result.code == 2
        assert result.problems() == {"grant.replication_client": "FAIL", "grant.select": "FAIL"}
        assert result.status("grant.replication_slave") == "OK"
        account = f"'{user}'@'127.0.0.1'"
        assert result.fix("grant.replication_client") == f"GRANT REPLICATION CLIENT ON *.* TO {account};"
        message = result.results["grant.select"]["message"]
        for table in ("vicidial_api_log", "vicidial_url_multi", "system_settings", "vicidial_url_log"):
            assert table in message
        assert "custom_101" in message
        select_all = f"GRANT SELECT ON `{vicidial_db}`.* TO {account}"
        assert fix_statements(result.fix("grant.select")) == [select_all]
        assert result.status("tables") == "INFO"  # hidden tables: not reported as missing
        assert result.status("urls") == "INFO"  # settings unreadable: not checked
        assert result.status("server_id") == "INFO"  # no REPLICATION MASTER ADMIN: not verifiable
        assert result.status("grant.extra") == "OK"

        sql(mariadb, *fix_statements(result.fix("grant.replication_client") + result.fix("grant.select")))
        fixed = check.run(mariadb, vicidial_db, user=user, password=password)
        assert (fixed.code, fixed.problems()) == (0, {})
        assert fixed.status("grant.extra") == "OK"
        assert fixed.status("tables.custom") == "OK"

    def test_extra_privileges_are_info_and_the_printed_fix_removes_them(
        self,
        check: CheckRunner,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        make_user: Callable[..., tuple[str, str]],
    ) -> None:
        """SELECT, INSERT on the whole database: INFO (exit 0); REVOKE + GRANTs leave exactly enough."""
        user, password = make_user(
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, PROCESS ON *.* TO {account}",
            f"GRANT SELECT, INSERT ON `{vicidial_db}`.* TO {{account}}",
        )
        result = check.run(mariadb, vicidial_db, user=user, password=password)
        assert (result.code, result.problems()) == (0, {})
        extra = result.results["grant.extra"]
        assert extra["status"] == "INFO"
        assert "PROCESS ON *.*" in extra["message"]
        assert f"INSERT ON `{vicidial_db}`.*" in extra["message"]  # SELECT on the database is needed
        assert "SELECT" not in extra["message"]

        sql(mariadb, *fix_statements(extra["fix"]))
        fixed = check.run(mariadb, vicidial_db, user=user, password=password)
        assert (fixed.code, fixed.problems()) == (0, {})
        assert fixed.status("grant.extra") == "OK"

    def test_privileges_through_a_default_role(
        self,
        check: CheckRunner,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        make_user: Callable[..., tuple[str, str]],
    ) -> None:
        """SELECTs granted to the account's default role count."""
        role = f"cdc_check_role_{next(_user_numbers)}"
        sql(mariadb, f"CREATE ROLE {role}")
        try:
            sql(
                mariadb,
                *(
                    f"GRANT SELECT ON `{vicidial_db}`.`{t}` TO {role}"
                    for t in (
                        "vicidial_list",
                        "vicidial_api_log",
                        "vicidial_url_multi",
                        "vicidial_lists",
                        "vicidial_lists_fields",
                        "system_settings",
                        "vicidial_url_log",
                    )
                ),
            )
            user, password = make_user(
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {account}",
                f"GRANT {role} TO {{account}}",
                f"SET DEFAULT ROLE {role} FOR {{account}}",
            )
            result = check.run(mariadb, vicidial_db, user=user, password=password)
            assert (result.code, result.problems()) == (1, {"grant.select": "WARN"})  # held, but per table
            assert result.status("grant.extra") == "OK"
            sql(mariadb, f"GRANT SELECT ON `{vicidial_db}`.* TO {role}")
            database_wide = check.run(mariadb, vicidial_db, user=user, password=password)
            assert (database_wide.code, database_wide.problems()) == (0, {})
        finally:
            sql(mariadb, f"DROP ROLE IF EXISTS {role}")

    def test_grants_sql_account_keeps_working_when_lists_are_added(
        self, check: CheckRunner, mariadb: PrivateMariaDB, vicidial_db: str, vicidial: Vicidial
    ) -> None:
        """deploy/sql/grants.sql: all good, and still all good after a new list gets custom fields."""
        with grants_user(mariadb, vicidial_db, "cdc_check_sqlfile", "pw-sqlfile-1"):
            before = check.run(mariadb, vicidial_db, user="cdc_check_sqlfile", password="pw-sqlfile-1")
            assert (before.code, before.problems()) == (0, {})
            grants = ("grant.replication_slave", "grant.replication_client", "grant.select", "grant.extra")
            assert {before.status(name) for name in grants} == {"OK"}
            vicidial.add_list(4101)
            vicidial.add_custom_fields(4101, [("color", False)])
            after = check.run(mariadb, vicidial_db, user="cdc_check_sqlfile", password="pw-sqlfile-1")
            assert (after.code, after.problems()) == (0, {})
            assert after.status("tables.custom") == "OK"
            assert "custom_4101" in after.results["tables.custom"]["message"]

    def test_per_table_grants_warn_then_fail_when_a_list_is_added(
        self,
        check: CheckRunner,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        vicidial: Vicidial,
        make_user: Callable[..., tuple[str, str]],
    ) -> None:
        """The old per-table advice: WARN (fragile); a new list's custom table: FAIL; the fix: db.*."""
        vicidial.add_list(101)
        vicidial.add_custom_fields(101, [("color", False)])
        tables = (*READ_TABLES, "custom_101")
        user, password = make_user(
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {account}",
            *(f"GRANT SELECT ON `{vicidial_db}`.`{t}` TO {{account}}" for t in tables),
        )
        fragile = check.run(mariadb, vicidial_db, user=user, password=password)
        assert (fragile.code, fragile.problems()) == (1, {"grant.select": "WARN"})
        assert "custom_<list_id>" in fragile.results["grant.select"]["message"]

        vicidial.add_list(102)
        vicidial.add_custom_fields(102, [("size", False)])
        broken = check.run(mariadb, vicidial_db, user=user, password=password)
        assert broken.code == 2
        assert broken.status("grant.select") == "FAIL"
        assert "custom_102" in broken.results["grant.select"]["message"]

        sql(mariadb, *fix_statements(broken.fix("grant.select")))
        fixed = check.run(mariadb, vicidial_db, user=user, password=password)
        assert (fixed.code, fixed.problems()) == (0, {})


class TestConnection:
    """A failed connection is the one FAIL line, with its fix; exit 2."""

    def test_wrong_password(self, check: CheckRunner, mariadb: PrivateMariaDB) -> None:
        """Access denied: check the user and the password env."""
        result = check.run(mariadb, "asterisk", password="wrong-password")
        assert result.code == 2
        assert list(result.results) == ["connect"]
        assert result.status("connect") == "FAIL"
        assert "Access denied" in result.results["connect"]["message"]
        assert "VICIDIAL_CDC_MYSQL_PASSWORD" in result.fix("connect")

    def test_nothing_listening(self, check: CheckRunner) -> None:
        """Connection refused: check host, port, bind-address."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        result = check.run(None, "asterisk", port=port)
        assert (result.code, list(result.results)) == (2, ["connect"])
        assert "bind-address" in result.fix("connect")


class TestVicidialBuild:
    """Which build sends, and where the same list would be sent twice."""

    @pytest.mark.parametrize("vicidial_db", [{"with_apinewlead": False}], indirect=True)
    def test_old_build_without_apinewlead(
        self, check: CheckRunner, mariadb: PrivateMariaDB, vicidial_db: str
    ) -> None:
        """Schema 1725, enum without apinewlead: only the streamer sends; exit 0."""
        result = check.run(mariadb, vicidial_db)
        assert (result.code, result.problems()) == (0, {})
        assert "db_schema_version 1725" in result.results["vicidial.schema"]["message"]
        assert "has no API New Lead URL sender" in result.results["vicidial.schema"]["message"]
        assert result.status("double_send") == "OK"

    def test_half_upgraded_schema_warns(
        self, check: CheckRunner, mariadb: PrivateMariaDB, vicidial_db: str, vicidial: Vicidial
    ) -> None:
        """db_schema_version 1728 with the old url_type enum: WARN."""
        vicidial.execute(
            "ALTER TABLE vicidial_url_multi MODIFY url_type"
            " ENUM('dispo','start','addlead','noagent','') DEFAULT 'dispo'"
        )
        result = check.run(mariadb, vicidial_db)
        assert (result.code, result.problems()) == (1, {"vicidial.schema": "WARN"})

    def test_double_send_then_each_printed_fix(
        self, check: CheckRunner, mariadb: PrivateMariaDB, vicidial_db: str, vicidial: Vicidial
    ) -> None:
        """System row, list 102 row, config URL for 101: three double sends; both fixes clear them."""
        for list_id in (101, 102, 103):
            vicidial.add_list(list_id)
        vicidial.set_system_url(VICI_SYS)
        vicidial.set_list_url(102, VICI_LIST)
        config = f'[urls.lists]\n101 = "{CFG_LIST}"\n'
        result = check.run(mariadb, vicidial_db, config)
        assert result.code == 1
        assert result.problems() == {
            "double_send.system": "WARN",
            "double_send.list.101": "WARN",
            "double_send.list.102": "WARN",
        }
        msg = result.results["double_send.list.101"]["message"]
        assert "vici.example.com" in msg and "list-crm.example.com" in msg
        assert result.results["url.list.102"]["message"] == (
            "list 102 → vici-list.example.com (from VICIdial's list setting)"
        )
        assert result.results["url.lists"]["message"] == "1 list(s) use the system level: 103"

        # Fix 1: leave everything to VICIdial (the config lines the fixes print).
        leave = (
            '[urls]\nsystem = "---DISABLED---"\n'
            '[urls.lists]\n101 = "---DISABLED---"\n102 = "---DISABLED---"\n'
        )
        for name in ("double_send.system", "double_send.list.101", "double_send.list.102"):
            assert '= "---DISABLED---"' in result.fix(name).splitlines()[0]
        left = check.run(mariadb, vicidial_db, leave)
        assert left.problems() == {"urls": "WARN"}  # the streamer now has nothing to send
        assert left.status("double_send") == "OK"

        # Fix 2: the streamer sends; VICIdial's rows turned off with the printed SQL.
        statements = [s for name in sorted(result.problems()) for s in fix_statements(result.fix(name))]
        assert len(statements) == 3
        sql(mariadb, *statements, db=vicidial_db)
        ours = f'[urls]\nsystem = "{CFG_SYS}"\n[urls.lists]\n101 = "{CFG_LIST}"\n102 = "{CFG_LIST}"\n'
        moved = check.run(mariadb, vicidial_db, ours)
        assert (moved.code, moved.problems()) == (0, {})
        assert moved.status("double_send") == "OK"
