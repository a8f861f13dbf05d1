"""Unit tests for cdc.settings: URL precedence, loading, and live row changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from cdc.records import Op, RowChange, SkipReason, UrlSource, Value
from cdc.settings import (
    SETTINGS_TABLES,
    CustomField,
    ListInfo,
    SettingsCache,
    SystemInfo,
    UrlOverrides,
    url_host,
)

SYS = "http://sys.example.com/new?lead=--A--lead_id--B--"
LST = "https://list.example.com/hook?phone=--A--phone_number--B--"
CFG_LIST = "http://cfg-list.example.com/x?l=--A--lead_id--B--"
CFG_SYS = "http://cfg-sys.example.com/x?l=--A--lead_id--B--"
DISABLED = "---DISABLED---"


def url_row(
    url_id: int,
    campaign_id: str,
    address: str,
    *,
    entry_type: str = "list",
    url_type: str = "apinewlead",
    active: str = "Y",
) -> dict[str, Value]:
    return {
        "url_id": url_id,
        "campaign_id": campaign_id,
        "entry_type": entry_type,
        "url_type": url_type,
        "url_address": address,
        "active": active,
    }


def system_url_row(url_id: int, address: str) -> dict[str, Value]:
    return url_row(url_id, "-SYSTEM-API-NEWLEAD-", address, entry_type="system")


def list_row(list_id: int, name: str = "L", description: str = "D", campaign: str = "C") -> dict[str, Value]:
    return {
        "list_id": list_id,
        "list_name": name,
        "list_description": description,
        "campaign_id": campaign,
        "list_lastcalldate": "2025-01-01 00:00:00",
    }


def field_row(
    list_id: int,
    label: str,
    *,
    encrypt: str = "N",
    duplicate: str = "N",
    field_type: str = "TEXT",
    field_id: int = 0,
) -> dict[str, Value]:
    return {
        "field_id": field_id,
        "list_id": list_id,
        "field_label": label,
        "field_type": field_type,
        "field_encrypt": encrypt,
        "field_duplicate": duplicate,
    }


SYSTEM_ROW: dict[str, Value] = {
    "db_schema_version": 1728,
    "use_non_latin": "1",
    "custom_fields_enabled": "1",
}


def change(
    table: str,
    op: Op,
    before: Mapping[str, Value] | None = None,
    after: Mapping[str, Value] | None = None,
) -> RowChange:
    return RowChange(
        schema="asterisk", table=table, op=op, before=before, after=after, timestamp=1_700_000_000
    )


def cache_with(
    urls: list[dict[str, Value]] | None = None,
    lists: list[dict[str, Value]] | None = None,
    fields: list[dict[str, Value]] | None = None,
    system: Mapping[str, Value] | None = SYSTEM_ROW,
    overrides: UrlOverrides | None = None,
) -> SettingsCache:
    cache = SettingsCache(overrides)
    cache.load(urls or [], lists or [], fields or [], system)
    return cache


class TestPrecedence:
    """url_for applies list → system precedence, with the config file winning per level."""

    @pytest.mark.parametrize(
        ("urls", "overrides", "expected"),
        [
            pytest.param(
                [system_url_row(1, SYS), url_row(2, "101", LST)],
                UrlOverrides(),
                (LST, UrlSource.VICIDIAL_LIST, None),
                id="list-value-wins",
            ),
            pytest.param(
                [system_url_row(1, SYS), url_row(2, "101", "")],
                UrlOverrides(),
                (SYS, UrlSource.VICIDIAL_SYSTEM, None),
                id="blank-list-falls-back",
            ),
            pytest.param(  # non_agent_api.php: strlen > 0 picks the list value, then 3 <= 10
                [system_url_row(1, SYS), url_row(2, "101", "  \n")],
                UrlOverrides(),
                (None, None, SkipReason.URL_TOO_SHORT),
                id="whitespace-list-is-the-list-value-too-short",
            ),
            pytest.param(
                [system_url_row(1, SYS)],
                UrlOverrides(),
                (SYS, UrlSource.VICIDIAL_SYSTEM, None),
                id="absent-list-falls-back",
            ),
            pytest.param(
                [system_url_row(1, SYS), url_row(2, "101", DISABLED)],
                UrlOverrides(),
                (None, None, SkipReason.LIST_DISABLED),
                id="disabled-list-beats-system",
            ),
            pytest.param([], UrlOverrides(), (None, None, SkipReason.NO_URL), id="nothing"),
            pytest.param(
                [system_url_row(1, "")], UrlOverrides(), (None, None, SkipReason.NO_URL), id="blank-system"
            ),
            pytest.param(
                [system_url_row(1, SYS), url_row(2, "101", LST)],
                UrlOverrides(lists={101: CFG_LIST}),
                (CFG_LIST, UrlSource.CONFIG_LIST, None),
                id="config-list-beats-vicidial-list",
            ),
            pytest.param(
                [system_url_row(1, SYS)],
                UrlOverrides(system=CFG_SYS),
                (CFG_SYS, UrlSource.CONFIG_SYSTEM, None),
                id="config-system-beats-vicidial-system",
            ),
            pytest.param(
                [url_row(2, "101", LST)],
                UrlOverrides(system=CFG_SYS),
                (LST, UrlSource.VICIDIAL_LIST, None),
                id="vicidial-list-beats-config-system",
            ),
            pytest.param(
                [system_url_row(1, SYS), url_row(2, "101", LST)],
                UrlOverrides(lists={101: ""}),
                (SYS, UrlSource.VICIDIAL_SYSTEM, None),
                id="blank-config-list-means-system",
            ),
            pytest.param(
                [system_url_row(1, SYS)],
                UrlOverrides(lists={101: DISABLED}),
                (None, None, SkipReason.LIST_DISABLED),
                id="config-list-disabled",
            ),
            pytest.param(
                [url_row(2, "101", LST)],
                UrlOverrides(lists={101: DISABLED}),
                (None, None, SkipReason.LIST_DISABLED),
                id="config-disabled-beats-vicidial-list",
            ),
            pytest.param(
                [system_url_row(1, SYS)],
                UrlOverrides(system=DISABLED),
                (None, None, SkipReason.NO_URL),
                id="config-system-disabled",
            ),
            pytest.param(
                [system_url_row(1, SYS), url_row(2, "0101", LST)],
                UrlOverrides(),
                (SYS, UrlSource.VICIDIAL_SYSTEM, None),
                id="campaign-id-compared-as-text",
            ),
            pytest.param(
                [system_url_row(1, SYS), url_row(2, "101", LST, active="N")],
                UrlOverrides(),
                (LST, UrlSource.VICIDIAL_LIST, None),
                id="active-ignored",
            ),
            pytest.param(
                [url_row(9, "101", "http://b.example.com/xyz"), url_row(3, "101", LST)],
                UrlOverrides(),
                (LST, UrlSource.VICIDIAL_LIST, None),
                id="lowest-url-id-wins",
            ),
            pytest.param(
                [url_row(2, "101", LST, url_type="dispo"), url_row(3, "101", LST, entry_type="campaign")],
                UrlOverrides(),
                (None, None, SkipReason.NO_URL),
                id="other-url-types-and-entry-types-ignored",
            ),
            pytest.param(
                [url_row(1, "-SYSTEM-API-NEWLEAD-", SYS, entry_type="list")],
                UrlOverrides(),
                (None, None, SkipReason.NO_URL),
                id="system-row-needs-entry-type-system",
            ),
        ],
    )
    def test_url_for(
        self,
        urls: list[dict[str, Value]],
        overrides: UrlOverrides,
        expected: tuple[str | None, UrlSource | None, SkipReason | None],
    ) -> None:
        """List 101's URL follows VICIdial's precedence (config list, config system, list row, system row,
        ---DISABLED---)."""
        assert cache_with(urls, overrides=overrides).snapshot().url_for(101) == expected

    def test_other_list_unaffected(self) -> None:
        """A disabled list does not affect another list, which falls back to the system URL."""
        snap = cache_with([system_url_row(1, SYS), url_row(2, "101", DISABLED)]).snapshot()
        assert snap.url_for(102) == (SYS, UrlSource.VICIDIAL_SYSTEM, None)

    def test_set_overrides_takes_effect(self) -> None:
        """New config overrides make a new snapshot that uses them."""
        cache = cache_with([system_url_row(1, SYS)])
        first = cache.snapshot()
        cache.set_overrides(UrlOverrides(lists={101: CFG_LIST}))
        assert cache.snapshot() is not first
        assert cache.snapshot().url_for(101) == (CFG_LIST, UrlSource.CONFIG_LIST, None)


class TestLoad:
    """load() reads the startup SELECT rows into lists, custom fields and system info."""

    def test_lists(self) -> None:
        """vicidial_lists rows give each list's name, description and campaign; unknown lists have none."""
        snap = cache_with(lists=[list_row(101, "Leads", "Web leads", "CAMP1")]).snapshot()
        assert snap.list_info(101) == ListInfo(101, "Leads", "Web leads", "CAMP1")
        assert snap.list_info(999) is None

    def test_custom_fields(self) -> None:
        """Custom fields are the list's non-duplicate data fields, with their encryption flag; display and
        script fields are not."""
        fields = [
            field_row(101, "zip_plus", field_id=1),
            field_row(101, "ssn", encrypt="Y", field_id=2),
            field_row(101, "zip_plus", duplicate="Y", field_id=3),
            field_row(101, "header", field_type="DISPLAY", field_id=4),
            field_row(101, "pitch", field_type="SCRIPT", field_id=5),
            field_row(202, "other", field_id=6),
        ]
        snap = cache_with(fields=fields).snapshot()
        assert snap.custom_fields(101) == (
            CustomField(101, "ssn", True),
            CustomField(101, "zip_plus", False),
        )
        assert snap.encrypted_fields(101) == frozenset({"ssn"})
        assert snap.custom_fields(303) == ()
        assert snap.custom_field_lists() == frozenset({101, 202})

    def test_fields_without_field_id(self) -> None:
        """Field rows without field_id or field_type (older schemas) still give custom fields."""
        row = {k: v for k, v in field_row(101, "zip_plus").items() if k not in ("field_id", "field_type")}
        assert cache_with(fields=[row]).snapshot().custom_fields(101) == (
            CustomField(101, "zip_plus", False),
        )

    @pytest.mark.parametrize(
        ("row", "expected"),
        [
            (SYSTEM_ROW, SystemInfo(1728, True, True)),
            (
                {"db_schema_version": "1700", "use_non_latin": "0", "custom_fields_enabled": "0"},
                SystemInfo(1700, False, False),
            ),
            (
                {"db_schema_version": 1726, "use_non_latin": 1, "custom_fields_enabled": 0},
                SystemInfo(1726, True, False),
            ),
        ],
    )
    def test_system(self, row: Mapping[str, Value], expected: SystemInfo) -> None:
        """system_settings gives the schema version, use_non_latin and custom_fields_enabled, from text or
        numbers."""
        assert cache_with(system=row).snapshot().system == expected

    def test_missing_system_row_defaults(self) -> None:
        """Without a system_settings row, custom fields are enabled and use_non_latin is off."""
        system = cache_with(system=None).snapshot().system
        assert system.custom_fields_enabled is True
        assert system.use_non_latin is False

    def test_load_replaces_everything(self) -> None:
        """load() replaces every setting; nothing of the earlier load remains."""
        cache = cache_with([url_row(2, "101", LST)], [list_row(101)], [field_row(101, "a")])
        cache.load([], [], [], SYSTEM_ROW)
        snap = cache.snapshot()
        assert snap.list_urls == {} and snap.lists == {} and snap.fields == {}

    def test_bad_rows_ignored_and_counted(self) -> None:
        """Rows missing their key columns are ignored and counted."""
        cache = cache_with(
            [{"campaign_id": "101", "url_type": "apinewlead"}],
            [{"list_name": "x"}],
            [{"field_label": "a"}],
        )
        assert cache.statistics().ignored_rows == 3
        assert cache.snapshot().lists == {}


class TestApplyUrlMulti:
    """apply() keeps vicidial_url_multi's apinewlead rows current."""

    def test_insert_list_row(self) -> None:
        """Inserting an apinewlead row for a list gives the list that URL."""
        cache = cache_with([system_url_row(1, SYS)])
        assert cache.apply(change("vicidial_url_multi", Op.INSERT, after=url_row(2, "101", LST)))
        assert cache.snapshot().url_for(101)[0] == LST

    def test_insert_other_url_type_is_not_a_settings_change(self) -> None:
        """Inserting a url_multi row of another url_type is not a settings change."""
        cache = cache_with([system_url_row(1, SYS)])
        first = cache.snapshot()
        row = url_row(2, "101", LST, url_type="dispo")
        assert not cache.apply(change("vicidial_url_multi", Op.INSERT, after=row))
        assert cache.snapshot() is first

    def test_update_address(self) -> None:
        """Updating a row's URL address changes the list's URL."""
        old = url_row(2, "101", LST)
        cache = cache_with([old])
        new = {**old, "url_address": CFG_LIST}
        assert cache.apply(change("vicidial_url_multi", Op.UPDATE, old, new))
        assert cache.snapshot().url_for(101)[0] == CFG_LIST

    def test_update_of_other_columns_changes_nothing(self) -> None:
        """Updating a url_multi column that does not matter changes nothing."""
        old = url_row(2, "101", LST)
        cache = cache_with([old])
        assert not cache.apply(change("vicidial_url_multi", Op.UPDATE, old, {**old, "active": "N"}))

    def test_update_url_type_away_removes(self) -> None:
        """A row whose url_type changes away from apinewlead no longer gives the list a URL."""
        old = url_row(2, "101", LST)
        cache = cache_with([system_url_row(1, SYS), old])
        assert cache.apply(change("vicidial_url_multi", Op.UPDATE, old, {**old, "url_type": "dispo"}))
        assert cache.snapshot().url_for(101)[1] is UrlSource.VICIDIAL_SYSTEM

    def test_update_url_type_to_apinewlead_adds(self) -> None:
        """A row whose url_type changes to apinewlead gives the list its URL."""
        old = url_row(2, "101", LST, url_type="dispo")
        cache = cache_with([])
        assert cache.apply(change("vicidial_url_multi", Op.UPDATE, old, {**old, "url_type": "apinewlead"}))
        assert cache.snapshot().url_for(101)[0] == LST

    def test_update_campaign_id_moves_entry(self) -> None:
        """Changing a row's campaign_id moves its URL from one list to the other."""
        old = url_row(2, "101", LST)
        cache = cache_with([old])
        assert cache.apply(change("vicidial_url_multi", Op.UPDATE, old, {**old, "campaign_id": "102"}))
        snap = cache.snapshot()
        assert snap.url_for(101)[2] is SkipReason.NO_URL
        assert snap.url_for(102)[0] == LST

    def test_delete(self) -> None:
        """Deleting the system URL row leaves lists without URL."""
        old = system_url_row(1, SYS)
        cache = cache_with([old])
        assert cache.apply(change("vicidial_url_multi", Op.DELETE, before=old))
        assert cache.snapshot().url_for(101)[2] is SkipReason.NO_URL

    def test_delete_of_unknown_row(self) -> None:
        """Deleting a row the cache never had is not a change."""
        cache = cache_with([])
        assert not cache.apply(change("vicidial_url_multi", Op.DELETE, before=url_row(5, "1", LST)))


class TestApplyLists:
    """apply() keeps list names, descriptions and campaigns current."""

    def test_insert_update_delete(self) -> None:
        """vicidial_lists inserts, updates and deletes show in the next snapshot."""
        cache = cache_with()
        row = list_row(101, "A")
        assert cache.apply(change("vicidial_lists", Op.INSERT, after=row))
        assert cache.snapshot().list_info(101) == ListInfo(101, "A", "D", "C")
        renamed = {**row, "list_name": "B"}
        assert cache.apply(change("vicidial_lists", Op.UPDATE, row, renamed))
        assert cache.snapshot().list_info(101) == ListInfo(101, "B", "D", "C")
        assert cache.apply(change("vicidial_lists", Op.DELETE, before=renamed))
        assert cache.snapshot().list_info(101) is None

    def test_update_of_unwatched_columns(self) -> None:
        """An update of unwatched list columns keeps the same snapshot."""
        row = list_row(101)
        cache = cache_with(lists=[row])
        first = cache.snapshot()
        later = {**row, "list_lastcalldate": "2025-06-01 10:00:00"}
        assert not cache.apply(change("vicidial_lists", Op.UPDATE, row, later))
        assert cache.snapshot() is first

    def test_list_id_change(self) -> None:
        """Changing a list's id moves its settings to the new id."""
        row = list_row(101)
        cache = cache_with(lists=[row])
        assert cache.apply(change("vicidial_lists", Op.UPDATE, row, {**row, "list_id": 102}))
        snap = cache.snapshot()
        assert snap.list_info(101) is None
        assert snap.list_info(102) is not None


class TestApplyFields:
    """apply() keeps custom-field definitions current."""

    def test_insert(self) -> None:
        """An inserted field row adds the list's custom field."""
        cache = cache_with()
        assert cache.apply(
            change("vicidial_lists_fields", Op.INSERT, after=field_row(101, "zip", field_id=1))
        )
        assert cache.snapshot().custom_fields(101) == (CustomField(101, "zip", False),)

    def test_rename(self) -> None:
        """Renaming a field renames the custom field."""
        row = field_row(101, "zip", field_id=1)
        cache = cache_with(fields=[row])
        assert cache.apply(change("vicidial_lists_fields", Op.UPDATE, row, {**row, "field_label": "zip4"}))
        assert cache.snapshot().custom_fields(101) == (CustomField(101, "zip4", False),)

    def test_encrypt_toggle(self) -> None:
        """Turning a field's encryption on marks it encrypted."""
        row = field_row(101, "ssn", field_id=1)
        cache = cache_with(fields=[row])
        assert cache.apply(change("vicidial_lists_fields", Op.UPDATE, row, {**row, "field_encrypt": "Y"}))
        assert cache.snapshot().encrypted_fields(101) == frozenset({"ssn"})

    def test_becoming_duplicate_removes(self) -> None:
        """A field that becomes a duplicate is no longer a custom field."""
        row = field_row(101, "zip", field_id=1)
        cache = cache_with(fields=[row])
        assert cache.apply(change("vicidial_lists_fields", Op.UPDATE, row, {**row, "field_duplicate": "Y"}))
        assert cache.snapshot().custom_fields(101) == ()

    def test_deleting_a_duplicate_keeps_the_field(self) -> None:
        """Deleting a duplicate field row keeps the original field."""
        row = field_row(101, "zip", field_id=1)
        dup = field_row(101, "zip", duplicate="Y", field_id=2)
        cache = cache_with(fields=[row, dup])
        assert not cache.apply(change("vicidial_lists_fields", Op.DELETE, before=dup))
        assert cache.snapshot().custom_fields(101) == (CustomField(101, "zip", False),)

    def test_delete(self) -> None:
        """Deleting a field row removes the field, and the list no longer has custom fields."""
        row = field_row(101, "zip", field_id=1)
        cache = cache_with(fields=[row])
        assert cache.apply(change("vicidial_lists_fields", Op.DELETE, before=row))
        assert cache.snapshot().custom_fields(101) == ()
        assert cache.snapshot().custom_field_lists() == frozenset()


class TestApplySystem:
    """apply() follows system_settings, reporting only changes that matter."""

    def test_use_non_latin_change(self) -> None:
        """A use_non_latin change in system_settings applies."""
        cache = cache_with()
        after = {**SYSTEM_ROW, "use_non_latin": "0"}
        assert cache.apply(change("system_settings", Op.UPDATE, SYSTEM_ROW, after))
        assert cache.snapshot().system.use_non_latin is False

    def test_unrelated_column_change(self) -> None:
        """A change of unrelated system_settings columns is not a settings change."""
        cache = cache_with()
        after = {**SYSTEM_ROW, "version": "2.14-999"}
        assert not cache.apply(change("system_settings", Op.UPDATE, SYSTEM_ROW, after))

    def test_delete_ignored(self) -> None:
        """Deleting the system_settings row is ignored."""
        cache = cache_with()
        assert not cache.apply(change("system_settings", Op.DELETE, before=SYSTEM_ROW))


class TestSnapshot:
    """snapshot() is immutable and rebuilt only after a change."""

    def test_reused_until_change(self) -> None:
        """snapshot() returns the same object until a change; earlier snapshots never move."""
        cache = cache_with([system_url_row(1, SYS)])
        first = cache.snapshot()
        assert cache.snapshot() is first
        assert not cache.apply(change("vicidial_list", Op.INSERT, after={"lead_id": 1}))
        assert cache.snapshot() is first
        cache.apply(change("vicidial_url_multi", Op.INSERT, after=url_row(2, "101", LST)))
        second = cache.snapshot()
        assert second is not first
        assert second.version > first.version
        assert first.url_for(101)[0] == SYS  # the old snapshot did not move

    def test_immutable(self) -> None:
        """Snapshots and their mappings cannot be modified."""
        snap = cache_with([url_row(2, "101", LST)], [list_row(101)]).snapshot()
        with pytest.raises(dataclasses.FrozenInstanceError):
            snap.system_url = "x"  # type: ignore[misc]
        with pytest.raises(TypeError):
            snap.list_urls[5] = "x"  # type: ignore[index]
        with pytest.raises(TypeError):
            snap.lists[5] = ListInfo(5, "", "", "")  # type: ignore[index]

    def test_settings_tables(self) -> None:
        """The settings tables are exactly url_multi, lists, lists_fields and system_settings."""
        assert {
            "vicidial_url_multi",
            "vicidial_lists",
            "vicidial_lists_fields",
            "system_settings",
        } == SETTINGS_TABLES


class TestSources:
    """sources() tells which URL applies per list, with the host only."""

    def test_sources(self) -> None:
        """sources() lists the system URL and each list's URL source, host or skip reason, including
        config-only lists."""
        cache = cache_with(
            [system_url_row(1, SYS), url_row(2, "101", LST), url_row(3, "102", DISABLED)],
            [list_row(101), list_row(102), list_row(103)],
            overrides=UrlOverrides(lists={104: CFG_LIST}),
        )
        rows = {s.list_id: s for s in cache.snapshot().sources()}
        assert list(rows) == [None, 101, 102, 103, 104]
        assert (rows[None].source, rows[None].url_host) == (UrlSource.VICIDIAL_SYSTEM, "sys.example.com")
        assert (rows[101].source, rows[101].url_host) == (UrlSource.VICIDIAL_LIST, "list.example.com")
        assert (rows[102].skip, rows[102].url_host) == (SkipReason.LIST_DISABLED, "")
        assert rows[103].source is UrlSource.VICIDIAL_SYSTEM
        assert (rows[104].source, rows[104].url_host) == (UrlSource.CONFIG_LIST, "cfg-list.example.com")
        assert all("--A--" not in repr(s) for s in rows.values())

    @pytest.mark.parametrize(
        ("template", "host"),
        [
            ("VARhttp://Host.example.com:8080/x?a=1", "host.example.com"),
            ("/relative/path", ""),
            ("http://[::1/bad", ""),
            (None, ""),
        ],
    )
    def test_url_host(self, template: str | None, host: str) -> None:
        """url_host gives the lower-case host of a template, or nothing for relative, broken or missing
        URLs."""
        assert url_host(template) == host


class TestStatistics:
    """statistics() counts lists, URLs, changes and rebuilds."""

    def test_counts(self) -> None:
        """statistics() counts lists, lists with a URL, lists with custom fields and whether a system URL
        exists."""
        cache = cache_with(
            [url_row(2, "101", LST), url_row(3, "102", DISABLED)],
            [list_row(101), list_row(102)],
            [field_row(101, "zip")],
        )
        cache.apply(change("vicidial_lists", Op.INSERT, after=list_row(103)))
        stats = cache.statistics()
        assert stats.lists == 3
        assert stats.lists_with_url == 1
        assert stats.lists_with_custom_fields == 1
        assert stats.system_url_defined is False
        assert stats.changes_applied == 1
        assert stats.rebuilds == 1
