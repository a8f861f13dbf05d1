"""Unit tests for cdc.ops.check: SHOW GRANTS parsing and every check rule, without a server."""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pymysql
import pytest

from cdc.config import MysqlConfig
from cdc.errors import ConfigError, SourceError
from cdc.ops.check import parse_duration_s
from cdc.ops.check.connection import check_tls, connect_failure
from cdc.ops.check.facts import ServerFacts, StateFacts
from cdc.ops.check.grants import Grant, extra_privileges, has_privilege, parse_grant
from cdc.ops.check.rendering import exit_code, render_json, render_text
from cdc.ops.check.results import CheckResult, Status
from cdc.ops.check.rules import (
    check_binlog_format,
    check_log_bin,
    check_privileges,
    check_retention,
    check_row_image,
    check_row_metadata,
    check_server_id,
    check_state,
    evaluate,
    human_duration,
)
from cdc.ops.check.tables import READ_TABLES, check_custom_tables, check_tables
from cdc.ops.check.urls import check_schema_version
from cdc.records import Value
from cdc.settings import UrlOverrides
from cdc.vicidb import SettingsRows

DB = "asterisk"
URL_TYPES_NEW = ("dispo", "start", "addlead", "noagent", "apinewlead", "")
URL_TYPES_OLD = ("dispo", "start", "addlead", "noagent", "")
VICI_SYS = "https://vici-sys.example.com/new?key=VICI-SECRET-1&l=--A--lead_id--B--"
VICI_LIST = "https://vici-list.example.com/new?key=VICI-SECRET-2&p=--A--phone_number--B--"
CFG_SYS = "https://cfg-sys.example.com/x?key=CFG-SECRET-3&p=--A--phone_number--B--"
CFG_LIST = "https://cfg-list.example.com/x?key=CFG-SECRET-4&p=--A--phone_number--B--"
SECRETS = ("VICI-SECRET-1", "VICI-SECRET-2", "CFG-SECRET-3", "CFG-SECRET-4")
DISABLED = "---DISABLED---"


def least_privilege() -> tuple[Grant, ...]:
    """The recommended grants (deploy/sql/grants.sql): SELECT on the whole database."""
    return (Grant(frozenset({"REPLICATION SLAVE", "BINLOG MONITOR"})), Grant(frozenset({"SELECT"}), DB))


def per_table(tables: tuple[str, ...] = READ_TABLES) -> tuple[Grant, ...]:
    """The old advice: SELECT table by table."""
    return (
        Grant(frozenset({"REPLICATION SLAVE", "BINLOG MONITOR"})),
        *(Grant(frozenset({"SELECT"}), DB, t) for t in tables),
    )


GOOD_VARIABLES = {
    "version": "10.11.19-MariaDB-log",
    "log_bin": "ON",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
    "binlog_expire_logs_seconds": "259200",
    "expire_logs_days": "3.000000",
    "server_id": "1",
}


def url_row(url_id: int, campaign_id: str, address: str, entry_type: str = "list") -> dict[str, Value]:
    return {
        "url_id": url_id,
        "campaign_id": campaign_id,
        "entry_type": entry_type,
        "url_type": "apinewlead",
        "url_address": address,
    }


def sys_row(url_id: int, address: str) -> dict[str, Value]:
    return url_row(url_id, "-SYSTEM-API-NEWLEAD-", address, "system")


def list_row(list_id: int) -> dict[str, Value]:
    return {"list_id": list_id, "list_name": f"L{list_id}", "list_description": "", "campaign_id": "C"}


def field_row(list_id: int, label: str) -> dict[str, Value]:
    return {
        "list_id": list_id,
        "field_label": label,
        "field_type": "TEXT",
        "field_encrypt": "N",
        "field_duplicate": "N",
    }


def settings(
    *,
    urls: tuple[Mapping[str, Value], ...] = (),
    lists: tuple[int, ...] = (101, 102, 103),
    fields: tuple[Mapping[str, Value], ...] = (),
    version: int = 1728,
) -> SettingsRows:
    return SettingsRows(
        url_rows=list(urls),
        list_rows=[list_row(i) for i in lists],
        field_rows=list(fields),
        system_row={"db_schema_version": version, "use_non_latin": "0", "custom_fields_enabled": "1"},
    )


def make_facts(**changes: Any) -> ServerFacts:
    variables = changes.pop("variables", GOOD_VARIABLES)
    base = ServerFacts(
        account="vicidial_cdc@%",
        variables=types.MappingProxyType(dict(variables)),
        grants=least_privilege(),
        replica_server_ids=(),
        database=DB,
        tables=frozenset(READ_TABLES),
        url_type_labels=URL_TYPES_NEW,
        settings=settings(),
    )
    return dataclasses.replace(base, **changes)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def problems(results: list[CheckResult]) -> dict[str, Status]:
    return {r.name: r.status for r in results if r.status in (Status.WARN, Status.FAIL)}


class TestParseGrant:
    """SHOW GRANTS lines become Grant values; grantee and password hash are dropped."""

    def test_global_replication_grant_without_its_password_hash(self) -> None:
        """The IDENTIFIED BY PASSWORD hash is never part of the parsed grant."""
        line = (
            "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%` "
            "IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'"
        )
        grant = parse_grant(line)
        assert grant == Grant(frozenset({"REPLICATION SLAVE", "BINLOG MONITOR"}))
        assert "D821809F" not in repr(grant)

    def test_database_table_and_column_levels(self) -> None:
        """Database, table and column privileges, quoted names unquoted."""
        assert parse_grant("GRANT SELECT ON `aster\\_%`.* TO `cdc`@`%`") == Grant(
            frozenset({"SELECT"}), "aster\\_%", "*"
        )
        assert parse_grant(
            "GRANT SELECT (`list_id`, `lead_id`), INSERT ON `asterisk`.`vicidial_list` TO `cdc`@`%`"
        ) == Grant(
            frozenset({"INSERT"}),
            "asterisk",
            "vicidial_list",
            column_privileges=("SELECT (`list_id`, `lead_id`)",),
        )

    def test_grant_option_and_all_privileges(self) -> None:
        """WITH GRANT OPTION is noticed; ALL PRIVILEGES is kept as one privilege."""
        grant = parse_grant("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION")
        assert grant == Grant(frozenset({"ALL PRIVILEGES"}), grant_option=True)

    def test_names_with_escaped_backticks_dots_and_on(self) -> None:
        """Backtick-escaped names and ' ON ' inside a quoted column name parse right."""
        grant = parse_grant("GRANT SELECT (`x on y`) ON `my``db`.`t.1` TO `u`@`h`")
        assert grant == Grant(frozenset(), "my`db", "t.1", column_privileges=("SELECT (`x on y`)",))

    def test_routine_grant(self) -> None:
        """A procedure grant is marked as a routine grant."""
        grant = parse_grant("GRANT EXECUTE ON PROCEDURE `asterisk`.`p1` TO `u`@`%`")
        assert grant is not None
        assert grant.routine == "PROCEDURE"
        assert grant.on == "PROCEDURE `asterisk`.`p1`"

    @pytest.mark.parametrize(
        "line",
        [
            "GRANT `cdcrole` TO `cdc`@`%`",
            "GRANT `cdcrole` TO `root`@`127.0.0.1` WITH ADMIN OPTION",
            "GRANT PROXY ON ``@`%` TO `root`@`127.0.0.1` WITH GRANT OPTION",
            "SET DEFAULT ROLE `cdcrole` FOR `cdc`@`%`",
        ],
    )
    def test_role_proxy_and_default_role_lines_are_not_privileges(self, line: str) -> None:
        """Lines that carry no table privilege give None."""
        assert parse_grant(line) is None


class TestHasPrivilege:
    """Privileges resolve through global, database (LIKE patterns) and table grants."""

    def test_all_privileges_on_star_covers_everything(self) -> None:
        """ALL PRIVILEGES ON *.* gives replication and SELECT everywhere."""
        grants = [Grant(frozenset({"ALL PRIVILEGES"}))]
        assert has_privilege(grants, {"REPLICATION SLAVE"})
        assert has_privilege(grants, {"SELECT"}, DB, "vicidial_list")

    def test_database_level_all_gives_no_global_privilege(self) -> None:
        """ALL on a database is not REPLICATION SLAVE."""
        grants = [Grant(frozenset({"ALL PRIVILEGES"}), DB)]
        assert not has_privilege(grants, {"REPLICATION SLAVE"})
        assert has_privilege(grants, {"SELECT"}, DB, "custom_101")

    @pytest.mark.parametrize(
        ("pattern", "matches"),
        [("asterisk", True), ("aster%", True), ("a_terisk", True), ("aster\\_%", False), ("other", False)],
    )
    def test_database_patterns(self, pattern: str, matches: bool) -> None:
        """% and _ are wildcards, a backslash escapes them."""
        grants = [Grant(frozenset({"SELECT"}), pattern)]
        assert has_privilege(grants, {"SELECT"}, DB, "vicidial_list") is matches

    def test_table_grant_is_exact_and_column_grant_is_not_table_select(self) -> None:
        """A table grant covers that table only; column privileges never count."""
        grants = [
            Grant(frozenset({"SELECT"}), DB, "vicidial_list"),
            Grant(frozenset(), DB, "vicidial_lists", column_privileges=("SELECT (`list_id`)",)),
        ]
        assert has_privilege(grants, {"SELECT"}, DB, "vicidial_list")
        assert not has_privilege(grants, {"SELECT"}, DB, "vicidial_lists")
        assert not has_privilege(grants, {"SELECT"}, "other", "vicidial_list")


class TestExtraPrivileges:
    """Anything beyond REPLICATION SLAVE/CLIENT and table SELECTs is reported."""

    def test_least_privilege_has_nothing_extra(self) -> None:
        """The recommended grants hold nothing more; nor do the old per-table ones."""
        assert extra_privileges(least_privilege(), DB, READ_TABLES) == []
        assert extra_privileges(per_table(), DB, READ_TABLES) == []

    def test_extras_at_each_level(self) -> None:
        """Global SELECT, database patterns, other privileges and grant option are listed."""
        grants = [
            Grant(frozenset({"REPLICATION SLAVE", "SUPER"})),
            Grant(frozenset({"SELECT"}), "*"),
            Grant(frozenset({"SELECT"}), "aster%"),
            Grant(frozenset({"SELECT", "INSERT"}), DB, "vicidial_list", grant_option=True),
            Grant(frozenset({"SELECT"}), DB, "vicidial_users"),
        ]
        extra = extra_privileges(grants, DB, READ_TABLES)
        assert extra[0] == "SUPER ON *.*"
        assert extra[1] == "SELECT ON *.* (every database on the server, not only VICIdial's)"
        assert extra[2] == "SELECT ON `aster%`.* (a pattern: every database whose name it matches)"
        assert extra[3] == "INSERT ON `asterisk`.`vicidial_list` WITH GRANT OPTION"
        assert extra[4] == "SELECT ON `asterisk`.`vicidial_users`"

    def test_select_on_the_database_is_not_extra(self) -> None:
        """The recommended SELECT on the database, also written with escaped wildcards."""
        assert extra_privileges([Grant(frozenset({"SELECT"}), "vd1\\_x")], "vd1_x", READ_TABLES) == []
        assert extra_privileges([Grant(frozenset({"SELECT", "INSERT"}), DB)], DB, READ_TABLES) == [
            "INSERT ON `asterisk`.*"
        ]


class TestBinlogSettings:
    """log_bin, binlog_format, binlog_row_image, binlog_row_metadata: status and fix."""

    def test_good_settings_are_ok(self) -> None:
        """The recommended server passes every binlog check."""
        facts = make_facts()
        for check in (check_log_bin, check_binlog_format, check_row_image, check_row_metadata):
            assert check(facts).status is Status.OK

    def test_log_bin_off_is_a_blocker_fixed_in_my_cnf_with_a_restart(self) -> None:
        """log_bin is not dynamic: the fix is a my.cnf line and a restart."""
        result = check_log_bin(make_facts(variables={**GOOD_VARIABLES, "log_bin": "OFF"}))
        assert result.status is Status.FAIL
        assert "    log_bin = mysql-bin" in result.fix.splitlines()
        assert "restart MariaDB" in result.fix
        assert "SET GLOBAL" not in result.fix

    @pytest.mark.parametrize(
        ("variable", "bad", "status", "good"),
        [
            ("binlog_format", "MIXED", Status.FAIL, "ROW"),
            ("binlog_format", "STATEMENT", Status.FAIL, "ROW"),
            ("binlog_row_image", "MINIMAL", Status.FAIL, "FULL"),
            ("binlog_row_image", "NOBLOB", Status.FAIL, "FULL"),
            ("binlog_row_metadata", "MINIMAL", Status.WARN, "FULL"),
            ("binlog_row_metadata", "NO_LOG", Status.WARN, "FULL"),
        ],
    )
    def test_wrong_dynamic_setting(self, variable: str, bad: str, status: Status, good: str) -> None:
        """The fix is the my.cnf line plus the SET GLOBAL for a running server."""
        facts = make_facts(variables={**GOOD_VARIABLES, variable: bad})
        checks = {
            "binlog_format": check_binlog_format,
            "binlog_row_image": check_row_image,
            "binlog_row_metadata": check_row_metadata,
        }
        result = checks[variable](facts)
        assert (result.name, result.status) == (variable, status)
        assert bad in result.message
        assert f"    {variable} = {good}" in result.fix.splitlines()
        assert f"SET GLOBAL {variable} = '{good}';" in result.fix

    def test_server_without_row_metadata_is_info(self) -> None:
        """Before MariaDB 10.5 the variable does not exist: nothing to fix."""
        variables = {k: v for k, v in GOOD_VARIABLES.items() if k != "binlog_row_metadata"}
        assert check_row_metadata(make_facts(variables=variables)).status is Status.INFO


class TestRetention:
    """Binlog expiry against --max-downtime; 0 means never purged."""

    def _variables(self, **values: str) -> dict[str, str]:
        base = {k: v for k, v in GOOD_VARIABLES.items() if "expire" not in k}
        return {**base, **values}

    @pytest.mark.parametrize(
        ("values", "downtime", "status"),
        [
            ({"binlog_expire_logs_seconds": "0", "expire_logs_days": "0.000000"}, 86400, Status.OK),
            ({"binlog_expire_logs_seconds": "259200"}, 259200, Status.OK),
            ({"binlog_expire_logs_seconds": "259200"}, 259201, Status.WARN),
            ({"expire_logs_days": "0.5"}, 43200, Status.OK),
            ({"expire_logs_days": "0.5"}, 86400, Status.WARN),
        ],
    )
    def test_status(self, values: dict[str, str], downtime: float, status: Status) -> None:
        """OK when binlogs outlive the max downtime (or are never purged)."""
        assert check_retention(make_facts(variables=self._variables(**values)), downtime).status is status

    def test_fix_rounds_up_to_whole_days_in_the_variable_the_server_has(self) -> None:
        """binlog_expire_logs_seconds on 10.6+, expire_logs_days before."""
        new = check_retention(make_facts(variables=self._variables(binlog_expire_logs_seconds="3600")), 90000)
        assert "    binlog_expire_logs_seconds = 172800" in new.fix.splitlines()
        assert "SET GLOBAL binlog_expire_logs_seconds = 172800;" in new.fix
        old = check_retention(make_facts(variables=self._variables(expire_logs_days="1")), 5 * 86400)
        assert "    expire_logs_days = 5" in old.fix.splitlines()
        assert "1 day (86400 s)" in old.message and "5 days (432000 s)" in old.message

    def test_size_based_purge_warns(self) -> None:
        """max_binlog_total_size > 0 can purge sooner than the expiry."""
        variables = self._variables(binlog_expire_logs_seconds="0", max_binlog_total_size="1073741824")
        result = check_retention(make_facts(variables=variables), 86400)
        assert result.status is Status.WARN
        assert "    max_binlog_total_size = 0" in result.fix.splitlines()


class TestServerId:
    """The streamer's server_id is not the server's and no replica's."""

    def test_ok(self) -> None:
        """A distinct id passes, replicas listed."""
        result = check_server_id(make_facts(replica_server_ids=(2, 3)), 3_840_000_001)
        assert result.status is Status.OK
        assert "2 replica(s)" in result.message

    def test_the_servers_own_id_is_a_blocker(self) -> None:
        """Equal to @@server_id: FAIL with a free id suggested."""
        result = check_server_id(make_facts(), 1)
        assert result.status is Status.FAIL
        assert "server_id = 3840000001" in result.fix

    def test_a_replicas_id_is_a_blocker_and_the_suggestion_avoids_used_ids(self) -> None:
        """Used by a replica: FAIL; the suggested id is free."""
        result = check_server_id(make_facts(replica_server_ids=(3_840_000_001, 7)), 3_840_000_001)
        assert result.status is Status.FAIL
        assert "used by a replica" in result.message
        assert "server_id = 3840000002" in result.fix

    def test_replicas_not_visible_is_info(self) -> None:
        """Without REPLICATION MASTER ADMIN the replicas cannot be listed: INFO, how to verify."""
        facts = make_facts(replica_server_ids=None, replica_hosts_error="Access denied; you need ...")
        result = check_server_id(facts, 3_840_000_001)
        assert result.status is Status.INFO
        assert "SHOW SLAVE HOSTS" in result.fix

    @pytest.mark.parametrize("server_id", [0, 2**32])
    def test_out_of_range(self, server_id: int) -> None:
        """0 and 2**32 are not valid replica ids."""
        assert check_server_id(make_facts(), server_id).status is Status.FAIL


class TestPrivileges:
    """REPLICATION SLAVE, REPLICATION CLIENT, SELECT on each table read, nothing more."""

    def test_least_privilege_account_is_ok(self) -> None:
        """Everything needed, nothing extra."""
        results = by_name(check_privileges(make_facts(), READ_TABLES))
        assert {name: r.status for name, r in results.items()} == {
            "grant.replication_slave": Status.OK,
            "grant.replication_client": Status.OK,
            "grant.select": Status.OK,
            "grant.extra": Status.OK,
        }

    def test_old_name_replication_client_counts(self) -> None:
        """REPLICATION CLIENT (before 10.5.2) and BINLOG MONITOR are the same privilege."""
        facts = make_facts(grants=(Grant(frozenset({"REPLICATION SLAVE", "REPLICATION CLIENT"})),))
        assert by_name(check_privileges(facts, ()))["grant.replication_client"].status is Status.OK

    def test_missing_privileges_are_blockers_with_the_grant_statements(self) -> None:
        """Each missing privilege: FAIL and the exact GRANT for this account (the whole database)."""
        grants = (
            Grant(frozenset({"REPLICATION SLAVE"})),
            Grant(frozenset({"SELECT"}), DB, "vicidial_list"),
        )
        tables = (*READ_TABLES, "custom_101")
        results = by_name(check_privileges(make_facts(grants=grants, account="cdc@10.0.0.%"), tables))
        assert results["grant.replication_slave"].status is Status.OK
        client = results["grant.replication_client"]
        assert client.status is Status.FAIL
        assert client.fix == "GRANT REPLICATION CLIENT ON *.* TO 'cdc'@'10.0.0.%';"
        select = results["grant.select"]
        assert select.status is Status.FAIL
        for t in tables[1:]:
            assert t in select.message
        assert select.fix.splitlines()[0] == "GRANT SELECT ON `asterisk`.* TO 'cdc'@'10.0.0.%';"
        assert "REPLICATION SLAVE already shows this account every row" in select.fix

    def test_per_table_select_is_a_fragile_warning(self) -> None:
        """Every table granted one by one: WARN naming the new-list risk; the fix is SELECT on db.*."""
        tables = (*READ_TABLES, "custom_101")
        select = by_name(check_privileges(make_facts(grants=per_table(tables)), tables))["grant.select"]
        assert select.status is Status.WARN
        assert "custom_<list_id>" in select.message and "new list" in select.message
        assert select.fix.splitlines()[0] == "GRANT SELECT ON `asterisk`.* TO 'vicidial_cdc'@'%';"

    @pytest.mark.parametrize(
        "grant",
        [
            Grant(frozenset({"SELECT"}), DB),
            Grant(frozenset({"SELECT"}), "aster%"),
            Grant(frozenset({"SELECT"})),
            Grant(frozenset({"ALL PRIVILEGES"}), DB),
        ],
    )
    def test_database_wide_select_is_ok(self, grant: Grant) -> None:
        """SELECT at database or global level covers the lists added later: OK."""
        grants = (Grant(frozenset({"REPLICATION SLAVE", "BINLOG MONITOR"})), grant)
        tables = (*READ_TABLES, "custom_101")
        select = by_name(check_privileges(make_facts(grants=grants), tables))["grant.select"]
        assert select.status is Status.OK

    def test_extras_of_a_dedicated_account_are_info_with_revoke_and_grants(self) -> None:
        """INFO (not a warning): REVOKE ALL, then the least-privilege GRANTs."""
        grants = (*least_privilege(), Grant(frozenset({"INSERT", "UPDATE"}), DB))
        result = by_name(check_privileges(make_facts(grants=grants), READ_TABLES))["grant.extra"]
        assert result.status is Status.INFO
        assert "INSERT, UPDATE ON `asterisk`.*" in result.message
        lines = result.fix.splitlines()
        assert lines[1:] == [
            "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'vicidial_cdc'@'%';",
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'vicidial_cdc'@'%';",
            "GRANT SELECT ON `asterisk`.* TO 'vicidial_cdc'@'%';",
        ]

    def test_root_gets_a_dedicated_account_instead_of_a_revoke(self) -> None:
        """Never suggest revoking root's privileges: CREATE USER a dedicated account."""
        facts = make_facts(account="root@localhost", grants=(Grant(frozenset({"ALL PRIVILEGES"})),))
        result = by_name(check_privileges(facts, READ_TABLES))["grant.extra"]
        assert "ALL PRIVILEGES ON *.*" in result.message
        assert "REVOKE" not in result.fix
        assert "CREATE USER 'vicidial_cdc'@'localhost' IDENTIFIED BY '<password>';" in result.fix


class TestTables:
    """VICIdial's tables, as far as the account can see them."""

    def test_missing_required_table_is_a_blocker(self) -> None:
        """A table the account could read but that is absent: wrong database?"""
        facts = make_facts(
            tables=frozenset(READ_TABLES) - {"vicidial_api_log"}, grants=(Grant(frozenset({"SELECT"}), DB),)
        )
        result = check_tables(facts)
        assert result.status is Status.FAIL
        assert "vicidial_api_log" in result.message
        assert "[mysql] database" in result.fix

    def test_missing_url_log_is_a_warning(self) -> None:
        """vicidial_url_log is needed only to follow VICIdial's own sends."""
        facts = make_facts(tables=frozenset(READ_TABLES) - {"vicidial_url_log"})
        assert check_tables(facts).status is Status.WARN

    def test_tables_hidden_by_missing_privileges_are_info(self) -> None:
        """Not visible without a privilege: grant.select already fails."""
        facts = make_facts(
            tables=frozenset({"vicidial_list"}), grants=(Grant(frozenset({"SELECT"}), DB, "vicidial_list"),)
        )
        assert check_tables(facts).status is Status.INFO

    def test_custom_tables(self) -> None:
        """custom_<list_id> for each list with fields: present OK, absent WARN."""
        present = make_facts(tables=frozenset({*READ_TABLES, "custom_101"}))
        assert check_custom_tables(present, [101]).status is Status.OK
        assert check_custom_tables(make_facts(), [101]).status is Status.WARN
        hidden = make_facts(grants=per_table())
        assert check_custom_tables(hidden, [101]).status is Status.INFO  # hidden: no privilege
        assert check_custom_tables(make_facts(), []).status is Status.OK
        assert check_custom_tables(make_facts(), None).status is Status.INFO


class TestSchemaVersion:
    """VICIdial sends apinewlead itself from schema 1726 with the enum value."""

    @pytest.mark.parametrize(
        ("version", "labels", "status", "text"),
        [
            (1728, URL_TYPES_NEW, Status.INFO, "sends API New Lead URLs itself"),
            (1726, URL_TYPES_NEW, Status.INFO, "sends API New Lead URLs itself"),
            (1725, URL_TYPES_OLD, Status.INFO, "has no API New Lead URL sender"),
            (1728, URL_TYPES_OLD, Status.WARN, "half-upgraded"),
            (1725, URL_TYPES_NEW, Status.WARN, "half-upgraded"),
        ],
    )
    def test_combinations(self, version: int, labels: tuple[str, ...], status: Status, text: str) -> None:
        """Both the version and the enum must say so."""
        result = check_schema_version(make_facts(settings=settings(version=version), url_type_labels=labels))
        assert result.status is status
        assert text in result.message


class TestUrlsAndDoubleSend:
    """Which level resolves where (host only), and levels both VICIdial and we send."""

    def _run(
        self,
        *,
        urls: tuple[Mapping[str, Value], ...] = (),
        system: str | None = None,
        lists: Mapping[int, str] | None = None,
        version: int = 1728,
    ) -> dict[str, CheckResult]:
        labels = URL_TYPES_NEW if version >= 1726 else URL_TYPES_OLD
        facts = make_facts(settings=settings(urls=urls, version=version), url_type_labels=labels)
        results = evaluate(facts, overrides=UrlOverrides(system=system, lists=dict(lists or {})))
        for r in results:
            assert not any(s in r.message or s in r.fix for s in SECRETS), r
        return by_name(results)

    def test_old_build_with_config_urls_is_all_good(self) -> None:
        """Schema 1725: only the streamer sends; the config URL shows by host."""
        results = self._run(system=CFG_SYS, lists={101: CFG_LIST}, version=1725)
        assert results["url.system"].message == (
            "lists without their own URL → cfg-sys.example.com (from config file [urls] system)"
        )
        assert results["url.list.101"].message == (
            "list 101 → cfg-list.example.com (from config file [urls.lists])"
        )
        assert results["url.lists"].message == "2 list(s) use the system level: 102, 103"
        assert results["double_send"].status is Status.OK
        assert problems(list(results.values())) == {}

    def test_new_build_config_only_is_not_a_double_send(self) -> None:
        """VICIdial has no rows: it sends nothing, so no double send."""
        results = self._run(system=CFG_SYS)
        assert results["double_send"].status is Status.OK

    def test_vicidial_system_row_alone_is_sent_twice(self) -> None:
        """Without watch mode the streamer sends VICIdial's own URL again."""
        results = self._run(urls=(sys_row(1, VICI_SYS),))
        double = results["double_send.system"]
        assert double.status is Status.WARN
        assert "vici-sys.example.com" in double.message
        assert double.fix.splitlines() == [
            'either leave it to VICIdial: in the config file, under [urls]: system = "---DISABLED---"',
            "or let the streamer send it (with retries): copy VICIdial's URL into the config file, "
            'under [urls]: system = "<the URL>", then turn VICIdial\'s off:',
            "UPDATE vicidial_url_multi SET url_address='' WHERE campaign_id='-SYSTEM-API-NEWLEAD-'"
            " AND entry_type='system' AND url_type='apinewlead';",
        ]

    def test_list_row_and_config_list_url(self) -> None:
        """VICIdial's list row and our list URL: WARN with the list row's UPDATE."""
        results = self._run(urls=(url_row(1, "101", VICI_LIST),), lists={101: CFG_LIST})
        double = results["double_send.list.101"]
        assert double.status is Status.WARN
        assert "vici-list.example.com" in double.message and "cfg-list.example.com" in double.message
        assert double.fix.splitlines()[-1] == (
            "UPDATE vicidial_url_multi SET url_address='---DISABLED---' WHERE campaign_id='101'"
            " AND entry_type='list' AND url_type='apinewlead';"
        )
        assert "double_send.system" not in results

    def test_vicidial_system_level_and_config_list_url_inserts_a_list_row(self) -> None:
        """VICIdial sends list 101 its system URL: the fix adds a disabled list row."""
        results = self._run(urls=(sys_row(1, VICI_SYS),), lists={101: CFG_LIST}, system=DISABLED)
        assert results["double_send.list.101"].fix.splitlines()[-1] == (
            "INSERT INTO vicidial_url_multi (campaign_id, entry_type, active, url_type, url_address)"
            " VALUES ('101', 'list', 'Y', 'apinewlead', '---DISABLED---');"
        )
        assert "double_send.system" not in results
        assert results["url.system"].message == (
            "lists without their own URL: ---DISABLED--- in config file [urls] system: no request"
        )

    @pytest.mark.parametrize(
        ("urls", "system", "lists"),
        [
            ((url_row(1, "101", DISABLED),), None, {101: CFG_LIST}),
            ((sys_row(1, VICI_SYS),), DISABLED, {}),
            ((sys_row(1, VICI_SYS), url_row(2, "101", VICI_LIST)), DISABLED, {101: DISABLED}),
        ],
    )
    def test_the_fixes_remove_the_double_send(
        self, urls: tuple[Mapping[str, Value], ...], system: str | None, lists: dict[int, str]
    ) -> None:
        """Either side turned off: nobody sends twice."""
        results = self._run(urls=urls, system=system, lists=lists)
        assert not [name for name in results if name.startswith("double_send.")]
        assert results["double_send"].status is Status.OK

    def test_nothing_to_send_warns(self) -> None:
        """No level resolves: the streamer would send nothing."""
        results = self._run()
        assert results["urls"].status is Status.WARN
        assert "[urls] system" in results["urls"].fix

    def test_unsendable_template_warns(self) -> None:
        """A relative or too-short URL is never sent by anyone."""
        results = self._run(system="/crm/new?phone=--A--phone_number--B--")
        assert results["url.system"].status is Status.WARN

    def test_settings_not_readable(self) -> None:
        """Without the settings the URL checks say why, once."""
        facts = make_facts(settings=None, settings_error="SELECT command denied")
        results = by_name(evaluate(facts))
        assert results["urls"].status is Status.INFO
        assert "SELECT command denied" in results["urls"].message
        assert results["tables.custom"].status is Status.INFO


class TestEvaluate:
    """The whole report for a good server, and the custom tables it requires."""

    def test_good_server_exits_zero(self) -> None:
        """Recommended settings, least-privilege account, config URL: exit 0."""
        results = evaluate(make_facts(), overrides=UrlOverrides(system=CFG_SYS))
        assert problems(results) == {}
        assert exit_code(results) == 0

    def test_custom_field_lists_add_their_tables_to_the_select_check(self) -> None:
        """A list with custom fields needs SELECT on custom_<list_id>."""
        facts = make_facts(settings=settings(fields=(field_row(101, "color"),)), grants=per_table())
        results = by_name(evaluate(facts, overrides=UrlOverrides(system=CFG_SYS)))
        assert results["grant.select"].status is Status.FAIL
        assert "custom_101" in results["grant.select"].message
        assert results["grant.select"].fix.startswith("GRANT SELECT ON `asterisk`.* TO 'vicidial_cdc'@'%';")
        assert results["tables.custom"].status is Status.INFO  # not visible without a privilege


class TestRendering:
    """Exit codes, text and JSON output."""

    RESULTS: ClassVar[list[CheckResult]] = [
        CheckResult("a", Status.OK, "fine"),
        CheckResult("b", Status.INFO, "note"),
        CheckResult("c", Status.WARN, "hmm", "line one\nline two"),
    ]

    def test_exit_codes(self) -> None:
        """0 OK/INFO only, 1 with a WARN, 2 with a FAIL."""
        assert exit_code(self.RESULTS[:2]) == 0
        assert exit_code(self.RESULTS) == 1
        assert exit_code([*self.RESULTS, CheckResult("d", Status.FAIL, "no")]) == 2

    def test_text(self) -> None:
        """One line per check, the fix indented under it, a summary line."""
        assert render_text(self.RESULTS).splitlines() == [
            "OK    a  fine",
            "INFO  b  note",
            "WARN  c  hmm",
            "         fix: line one",
            "              line two",
            "1 warning(s) (exit 1)",
        ]

    def test_json(self) -> None:
        """A list of {name, status, message, fix}."""
        assert json.loads(render_json(self.RESULTS)) == [
            {"name": "a", "status": "OK", "message": "fine", "fix": ""},
            {"name": "b", "status": "INFO", "message": "note", "fix": ""},
            {"name": "c", "status": "WARN", "message": "hmm", "fix": "line one\nline two"},
        ]

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("86400", 86400.0), ("90m", 5400.0), ("12h", 43200.0), ("3d", 259200.0), ("1w", 604800.0),
         ("1h30m", 5400.0)],
    )  # fmt: skip
    def test_parse_duration(self, text: str, seconds: float) -> None:
        """Seconds, or the grammar of every other duration flag (``dlq --older-than 1w`` too)."""
        assert parse_duration_s(text) == seconds

    @pytest.mark.parametrize("text", ["0", "0h", "-5", "3y", "soon", ""])
    def test_parse_duration_rejects(self, text: str) -> None:
        """Zero, negative and unknown units are configuration errors."""
        with pytest.raises(ConfigError):
            parse_duration_s(text)

    def test_human_duration(self) -> None:
        """Whole units when exact, one decimal otherwise."""
        assert human_duration(86400) == "1 day (86400 s)"
        assert human_duration(5400) == "1.5 hours (5400 s)"
        assert human_duration(30) == "30 s"


class TestConnectFailure:
    """A failed connection is one FAIL line whose fix fits the error."""

    def _failure(self, code: int) -> CheckResult:
        try:
            try:
                raise pymysql.err.OperationalError(code, "boom")
            except pymysql.MySQLError as exc:
                raise SourceError("cannot connect to MySQL db:3306 as cdc: boom") from exc
        except SourceError as exc:
            return connect_failure(MysqlConfig(host="db", user="cdc"), exc)

    def test_access_denied_points_at_user_and_password(self) -> None:
        """1045: the user and password settings, and how to create the account."""
        result = self._failure(1045)
        assert result.status is Status.FAIL
        assert "VICIDIAL_CDC_MYSQL_PASSWORD" in result.fix
        assert "CREATE USER 'cdc'@'<this host>'" in result.fix

    def test_unreachable_points_at_host_and_port(self) -> None:
        """2003: host, port, bind-address, firewall."""
        result = self._failure(2003)
        assert "VICIDIAL_CDC_MYSQL_HOST" in result.fix and "bind-address" in result.fix


class TestTls:
    """``tls``: the session's Ssl_cipher, the ssl_mode and the host decide OK or WARN."""

    def test_plaintext_on_loopback_is_ok(self) -> None:
        """Nothing leaves the host: OK."""
        (result,) = check_tls(make_facts(), MysqlConfig(host="127.0.0.1"))
        assert result.status is Status.OK
        assert "not encrypted" in result.message

    def test_plaintext_to_another_host_warns_with_the_settings(self) -> None:
        """The binlog crossing the network in plaintext: WARN, my.cnf and [mysql] lines."""
        (result,) = check_tls(make_facts(), MysqlConfig(host="db.example.com"))
        assert result.status is Status.WARN
        assert "plaintext" in result.message
        assert "ssl_cert = " in result.fix and 'ssl_ca = "' in result.fix

    def test_verified_tls_is_ok_and_names_the_cipher(self) -> None:
        """verify_identity (implied by ssl_ca) with a cipher: OK, cipher and version shown."""
        facts = make_facts(ssl_cipher="TLS_AES_256_GCM_SHA384", ssl_version="TLSv1.3")
        (result,) = check_tls(facts, MysqlConfig(host="db.example.com", ssl_ca="/etc/ca.pem"))
        assert result.status is Status.OK
        assert "TLSv1.3, TLS_AES_256_GCM_SHA384" in result.message
        assert "name verified" in result.message

    @pytest.mark.parametrize("mode", ["preferred", "required"])
    def test_unverified_tls_to_another_host_warns(self, mode: str) -> None:
        """Encrypted but not verified: anyone on the path can pose as the server."""
        facts = make_facts(ssl_cipher="TLS_AES_256_GCM_SHA384")
        (result,) = check_tls(facts, MysqlConfig(host="10.1.2.3", ssl_mode=mode))
        assert result.status is Status.WARN
        assert "verify_identity" in result.fix

    def test_group_readable_key_warns(self, tmp_path: Path) -> None:
        """A client key readable by others: tls.key WARN with the chmod."""
        key = tmp_path / "client.key"
        key.write_text("x", encoding="ascii")
        key.chmod(0o640)
        mysql = MysqlConfig(ssl_cert=str(key), ssl_key=str(key))
        results = by_name(check_tls(make_facts(ssl_cipher="X"), mysql))
        assert results["tls.key"].status is Status.WARN
        assert results["tls.key"].fix == f"chmod 600 {key}"
        key.chmod(0o600)
        assert "tls.key" not in by_name(check_tls(make_facts(ssl_cipher="X"), mysql))


class TestState:
    """The state file's rule, from the facts gathered about it."""

    def test_no_state_file_yet_is_info(self, tmp_path: Path) -> None:
        """No file: the first start begins at reader.start, and the line says so."""
        (result,) = check_state(StateFacts(tmp_path / "state.db", exists=False), "current")
        assert (result.name, result.status) == ("state", Status.INFO)
        assert "reader.start (current)" in result.message

    def test_unreadable_state_or_server_is_info(self, tmp_path: Path) -> None:
        """The lock holder is shown; a state or server that cannot be read is not checked."""
        state = StateFacts(tmp_path / "state.db", exists=True, holder="pid 42", error="refused")
        results = check_state(state, "current")
        assert [(r.name, r.status) for r in results] == [
            ("state_lock", Status.INFO),
            ("state_server", Status.INFO),
        ]
        assert "pid 42" in results[0].message and results[1].message == "not checked: refused"
