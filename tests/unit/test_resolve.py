"""Unit tests for cdc.resolve: lead + settings → Delivery or Skipped, and needs_custom."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cdc.records import ApiLead, Delivery, Skipped, SkipReason, UrlSource, Value
from cdc.resolve import OVERFLOW_ENDPOINT, EndpointIds, check_url, needs_custom, resolve, sql_date
from cdc.settings import SettingsCache, SettingsSnapshot, UrlOverrides

INSERTED_AT = 1_741_064_767
ENTRY_DATE = dt.datetime(2025, 3, 4, 5, 6, 7)


def lead(
    lead_id: int = 7,
    list_id: int = 101,
    custom: Mapping[str, Value] | None = None,
    **columns: Value,
) -> ApiLead:
    row: dict[str, Value] = {
        "lead_id": lead_id,
        "list_id": list_id,
        "entry_date": ENTRY_DATE,
        "status": "NEW",
        "user": "apiuser",
        "vendor_lead_code": "V-1",
        "phone_code": "1",
        "phone_number": "3125550100",
        "first_name": "Ann",
        "last_name": "Lee",
        "entry_list_id": 0,
    }
    row.update(columns)
    return ApiLead(
        lead_id=lead_id, list_id=list_id, lead=row, custom=custom, inserted_at=INSERTED_AT, seen_monotonic=1.0
    )


def snapshot(
    *,
    system: str | None = None,
    lists: Mapping[int, str] | None = None,
    fields: list[tuple[int, str, str]] | None = None,
    use_non_latin: bool = True,
    custom_fields_enabled: bool = True,
    overrides: UrlOverrides | None = None,
) -> SettingsSnapshot:
    """Settings as the startup SELECTs would give them."""
    url_rows: list[dict[str, Value]] = []
    if system is not None:
        url_rows.append(
            {
                "url_id": 1,
                "campaign_id": "-SYSTEM-API-NEWLEAD-",
                "entry_type": "system",
                "url_type": "apinewlead",
                "url_address": system,
            }
        )
    for i, (list_id, address) in enumerate((lists or {}).items(), start=2):
        url_rows.append(
            {
                "url_id": i,
                "campaign_id": str(list_id),
                "entry_type": "list",
                "url_type": "apinewlead",
                "url_address": address,
            }
        )
    list_rows: list[dict[str, Value]] = [
        {
            "list_id": 101,
            "list_name": "Web Leads",
            "list_description": "From the site",
            "campaign_id": "CAMP1",
        }
    ]
    field_rows: list[dict[str, Value]] = [
        {"list_id": list_id, "field_label": label, "field_encrypt": enc, "field_duplicate": "N"}
        for list_id, label, enc in (fields or [])
    ]
    system_row: dict[str, Value] = {
        "db_schema_version": 1728,
        "use_non_latin": "1" if use_non_latin else "0",
        "custom_fields_enabled": "1" if custom_fields_enabled else "0",
    }
    cache = SettingsCache(overrides)
    cache.load(url_rows, list_rows, field_rows, system_row)
    return cache.snapshot()


def url_of(result: list[Delivery] | Skipped) -> str:
    assert isinstance(result, list), result
    [delivery] = result
    return delivery.url


class TestResolve:
    """resolve() renders the URL that applies into one GET Delivery."""

    def test_delivery(self) -> None:
        """An API lead on a list with a system URL becomes one GET delivery with the rendered URL, source
        and key fields."""
        snap = snapshot(
            system="http://hooks.example.com/new?phone=--A--phone_number--B--&id=--A--lead_id--B--"
        )
        result = resolve(lead(), snap, source="dialer1")
        assert result == [
            Delivery(
                source="dialer1",
                lead_id=7,
                list_id=101,
                endpoint_id="hooks.example.com:80",
                method="GET",
                url="http://hooks.example.com/new?phone=3125550100&id=7",
                url_source=UrlSource.VICIDIAL_SYSTEM,
                inserted_at=INSERTED_AT,
            )
        ]
        assert result[0].idempotency_key == "dialer1:7:hooks.example.com:80"

    def test_endpoint_id_and_list_source(self) -> None:
        """The delivery carries the endpoint id given and names the list row as its URL source."""
        snap = snapshot(system="http://sys.example.com/x", lists={101: "https://list.example.com/y"})
        [delivery] = resolve(lead(), snap, source="s", endpoint_id="crm")  # type: ignore[misc]
        assert (delivery.endpoint_id, delivery.url_source) == ("crm", UrlSource.VICIDIAL_LIST)
        assert delivery.url == "https://list.example.com/y"

    def test_endpoint_id_bounded_when_lead_data_fills_the_host(self) -> None:
        """A host made of lead data gives one endpoint id for the template, not one per lead."""
        snap = snapshot(system="VARhttp://--A--phone_number--B--.example/new?id=--A--lead_id--B--")
        first = resolve(lead(), snap, source="s")
        second = resolve(lead(lead_id=8, phone_number="3125550199"), snap, source="s")
        assert isinstance(first, list) and isinstance(second, list)
        assert first[0].url.startswith("http://3125550100.example/")
        assert first[0].endpoint_id == second[0].endpoint_id == "--a--phone_number--b--.example:80"
        assert "3125550100" not in first[0].endpoint_id

    def test_config_override(self) -> None:
        """A config-file list URL wins over VICIdial's and is named as the source."""
        snap = snapshot(
            system="http://sys.example.com/x", overrides=UrlOverrides(lists={101: "http://cfg.example.com/z"})
        )
        [delivery] = resolve(lead(), snap, source="s")  # type: ignore[misc]
        assert (delivery.url, delivery.url_source) == ("http://cfg.example.com/z", UrlSource.CONFIG_LIST)

    def test_list_tokens(self) -> None:
        """List tokens take the lead's list name, description and campaign."""
        template = (
            "http://h.example.com/?n=--A--list_name--B--&d=--A--list_description--B--&c=--A--campaign--B--"
        )
        url = url_of(resolve(lead(), snapshot(system=template), source="s"))
        assert url == "http://h.example.com/?n=Web+Leads&d=From+the+site&c=CAMP1"

    def test_unknown_list_tokens_empty(self) -> None:
        """List tokens of a list the cache does not know render empty."""
        template = "http://h.example.com/?n=--A--list_name--B--&c=--A--campaign--B--"
        url = url_of(resolve(lead(list_id=555), snapshot(system=template), source="s"))
        assert url == "http://h.example.com/?n=&c="

    def test_sqldate_and_epoch(self) -> None:
        """SQLdate and epoch come from the lead's entry date and insert time."""
        template = "http://h.example.com/?d=--A--SQLdate--B--&e=--A--epoch--B--"
        url = url_of(resolve(lead(), snapshot(system=template), source="s"))
        assert url == f"http://h.example.com/?d=2025-03-04+05%3A06%3A07&e={INSERTED_AT}"

    def test_custom_value(self) -> None:
        """A custom field token takes the lead's custom row value."""
        template = "http://h.example.com/?z=--A--zip_plus--B--"
        snap = snapshot(system=template, fields=[(101, "zip_plus", "N")])
        url = url_of(resolve(lead(custom={"lead_id": 7, "zip_plus": "60601 1234"}), snap, source="s"))
        assert url == "http://h.example.com/?z=60601+1234"

    def test_custom_token_literal_without_custom_row(self) -> None:
        """Without a custom row, custom tokens stay literal, as VICIdial leaves them."""
        template = "http://h.example.com/?z=--A--zip_plus--B--"
        snap = snapshot(system=template, fields=[(101, "zip_plus", "N")])
        assert url_of(resolve(lead(), snap, source="s")) == template

    def test_encrypted_custom_value_never_sent(self) -> None:
        """An encrypted custom field renders empty: its ciphertext is never sent."""
        template = "http://h.example.com/?s=--A--ssn--B--&z=--A--zip--B--"
        snap = snapshot(system=template, fields=[(101, "ssn", "Y"), (101, "zip", "N")])
        custom: dict[str, Value] = {"lead_id": 7, "ssn": "CIPHERTEXTxyz==", "zip": "60601"}
        url = url_of(resolve(lead(custom=custom), snap, source="s"))
        assert url == "http://h.example.com/?s=&z=60601"
        assert "CIPHER" not in url

    def test_utf8_connection(self) -> None:
        """On a utf8 connection (use_non_latin=1) text is sent as UTF-8, urlencoded."""
        template = "http://h.example.com/?f=--A--first_name--B--"
        url = url_of(
            resolve(lead(first_name="José"), snapshot(system=template, use_non_latin=True), source="s")
        )
        assert url == "http://h.example.com/?f=Jos%C3%A9"

    def test_latin1_connection_double_encoded(self) -> None:
        """A latin1 server stores UTF-8 input as latin1 characters; PHP gets the UTF-8 back."""
        template = "http://h.example.com/?f=--A--first_name--B--"
        snap = snapshot(system=template, use_non_latin=False)
        url = url_of(resolve(lead(first_name="JosÃ©"), snap, source="s", server_charset="latin1"))
        assert url == "http://h.example.com/?f=Jos%C3%A9"

    def test_var_prefix_stripped(self) -> None:
        """A leading VAR prefix is removed from the URL."""
        url = url_of(
            resolve(lead(), snapshot(system="VARhttp://h.example.com/?id=--A--lead_id--B--"), source="s")
        )
        assert url == "http://h.example.com/?id=7"

    def test_surrounding_whitespace_removed(self) -> None:
        """Whitespace around the URL is removed before sending."""
        url = url_of(
            resolve(lead(), snapshot(system="http://h.example.com/?id=--A--lead_id--B--\r\n"), source="s")
        )
        assert url == "http://h.example.com/?id=7"


class TestSkips:
    """resolve() returns Skipped with the reason when no request is to be made."""

    @pytest.mark.parametrize(
        ("system", "lists", "reason"),
        [
            (None, {}, SkipReason.NO_URL),
            ("http://sys.example.com/x", {101: "---DISABLED---"}, SkipReason.LIST_DISABLED),
            ("http://a.b", {}, SkipReason.URL_TOO_SHORT),
            ("/api/new_lead.php?id=--A--lead_id--B--", {}, SkipReason.URL_RELATIVE),
            ("ftp://files.example.com/--A--lead_id--B--", {}, SkipReason.URL_SCHEME),
            ("http://h.example.com/?n=--A--first_name--B-- x", {}, SkipReason.URL_INVALID),
        ],
    )
    def test_reason(self, system: str | None, lists: Mapping[int, str], reason: SkipReason) -> None:
        """Each case without a request gives Skipped with its reason."""
        result = resolve(lead(), snapshot(system=system, lists=lists), source="s")
        assert result == Skipped(7, 101, reason)

    def test_length_checked_on_the_stored_template(self) -> None:
        """The length rule is the stored template's (VAR and tokens included), not the rendered URL's."""
        result = resolve(lead(first_name=""), snapshot(system="http://x/--A--first_name--B--"), source="s")
        assert isinstance(result, list) and [d.url for d in result] == ["http://x/"]
        result = resolve(lead(), snapshot(system="VARhttp://a"), source="s")  # 11 stored, 8 sent
        assert isinstance(result, list) and [d.url for d in result] == ["http://a"]
        assert resolve(lead(), snapshot(system="VARhttp://"), source="s") == Skipped(
            7, 101, SkipReason.URL_TOO_SHORT
        )


class TestEndpointIds:
    """URLs with no known template: at most ``limit`` distinct ids, then ``other``."""

    def test_bounded(self) -> None:
        """Known hosts keep their id; hosts past the bound share the overflow id."""
        ids = EndpointIds(limit=2)
        assert ids.of("http://a.example/x") == "a.example:80"
        assert ids.of("https://b.example/y") == "b.example:443"
        assert ids.of("http://3125550100.example/z") == OVERFLOW_ENDPOINT
        assert ids.of("http://a.example/again") == "a.example:80"


class TestCheckUrl:
    """check_url() checks scheme/host, scheme and syntax of a rendered URL (length: the template's)."""

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("http://a.b", None),
            ("", SkipReason.URL_RELATIVE),
            ("http://a.bc", None),
            ("https://hooks.example.com/new?a=1&b=%C3%A9#frag", None),
            ("HTTP://Hooks.Example.COM/x", None),
            ("http://user:pw@hooks.example.com:8443/x", None),
            ("http://127.0.0.1:80/x", None),
            ("http://[2001:db8::1]:8080/x", None),
            ("http://crm_host.internal/x", None),
            ("http://h.example.com/?t=--A--unknown--B--", None),
            ("/relative/path?x=1", SkipReason.URL_RELATIVE),
            ("www.example.com/new?x=1", SkipReason.URL_RELATIVE),
            ("mailto:someone@example.com", SkipReason.URL_RELATIVE),
            ("http:/one.example.com/x", SkipReason.URL_RELATIVE),
            ("http:///path/only", SkipReason.URL_RELATIVE),
            (" http://h.example.com/", SkipReason.URL_RELATIVE),
            ("ftp://files.example.com/x", SkipReason.URL_SCHEME),
            ("file://localhost/etc/passwd", SkipReason.URL_SCHEME),
            ("javascript://example.com/%0Aalert(1)", SkipReason.URL_SCHEME),
            ("http://h.example.com/a b", SkipReason.URL_INVALID),
            ("http://h.example.com/a\tb", SkipReason.URL_INVALID),
            ("http://h.example.com/a\x7fb", SkipReason.URL_INVALID),
            ("http://h.example.com/\u00e9", SkipReason.URL_INVALID),
            ("http://exämple.com/x", SkipReason.URL_INVALID),
            ("http://h.example.com:99999/x", SkipReason.URL_INVALID),
            ("http://h.example.com:80a/x", SkipReason.URL_INVALID),
            ("http://user@:80/xyz", SkipReason.URL_INVALID),
            ("http://[2001:db8::1/x", SkipReason.URL_INVALID),
            ("http://[not:an:ip]/x", SkipReason.URL_INVALID),
            ("http://h%20x.example.com/x", SkipReason.URL_INVALID),
        ],
    )
    def test_check(self, url: str, reason: SkipReason | None) -> None:
        """check_url accepts absolute http(s) URLs and names the reason for each it refuses."""
        assert check_url(url) is reason


class TestSqlDate:
    """sql_date() formats the lead's entry_date, falling back to the insert time."""

    def test_datetime(self) -> None:
        """A datetime entry_date is formatted as VICIdial's SQLdate."""
        assert sql_date(ENTRY_DATE, 0) == "2025-03-04 05:06:07"

    @given(st.datetimes())
    @example(dt.datetime(999, 1, 2, 3, 4, 5))
    @example(dt.datetime(2025, 12, 31, 23, 59, 59, 999999))
    def test_datetime_as_strftime(self, value: dt.datetime) -> None:
        """Every datetime (years before 1000 too, fractions dropped) formats as strftime does."""
        assert sql_date(value, 0) == value.strftime("%Y-%m-%d %H:%M:%S")

    def test_text(self) -> None:
        """A text entry_date is used as it is."""
        assert sql_date("2025-03-04 05:06:07", 0) == "2025-03-04 05:06:07"

    @pytest.mark.parametrize("value", [None, "0000-00-00 00:00:00", "garbage", 12])
    def test_fallback_local_time(self, value: Value) -> None:
        """A missing, zero or unreadable entry_date falls back to the insert time in local time."""
        expected = dt.datetime.fromtimestamp(INSERTED_AT).strftime("%Y-%m-%d %H:%M:%S")
        assert sql_date(value, INSERTED_AT) == expected


class TestNeedsCustom:
    """needs_custom() is true only when the URL depends on add_lead's custom-field step."""

    TEMPLATE = "http://h.example.com/?z=--A--Zip_Plus--B--&p=--A--phone--B--"

    def test_custom_label_used(self) -> None:
        """A lead waits for custom data when the URL uses one of the list's custom field labels."""
        assert needs_custom(snapshot(system=self.TEMPLATE, fields=[(101, "zip_plus", "N")]), 101)

    def test_encrypted_label_used(self) -> None:
        """An encrypted custom field label used in the URL also needs custom data."""
        assert needs_custom(snapshot(system=self.TEMPLATE, fields=[(101, "zip_plus", "Y")]), 101)

    def test_entry_list_id_used(self) -> None:
        """entry_list_id in the URL needs custom data when the list has custom fields."""
        snap = snapshot(
            system="http://h.example.com/?e=--A--entry_list_id--B--", fields=[(101, "other", "N")]
        )
        assert needs_custom(snap, 101)

    def test_entry_list_id_without_custom_fields(self) -> None:
        """entry_list_id on a list without custom fields needs no wait."""
        assert not needs_custom(snapshot(system="http://h.example.com/?e=--A--entry_list_id--B--"), 101)

    def test_label_not_used(self) -> None:
        """A URL without the list's custom labels needs no wait."""
        assert not needs_custom(snapshot(system=self.TEMPLATE, fields=[(101, "other", "N")]), 101)

    def test_other_list_fields(self) -> None:
        """Custom fields of another list do not count."""
        assert not needs_custom(snapshot(system=self.TEMPLATE, fields=[(202, "zip_plus", "N")]), 101)

    def test_custom_fields_disabled(self) -> None:
        """With custom fields disabled in system settings, no lead waits."""
        snap = snapshot(system=self.TEMPLATE, fields=[(101, "zip_plus", "N")], custom_fields_enabled=False)
        assert not needs_custom(snap, 101)

    def test_standard_column_label(self) -> None:
        """A field labelled like a standard column is read from the lead, not waited for."""
        snap = snapshot(
            system="http://h.example.com/?f=--A--first_name--B--", fields=[(101, "first_name", "N")]
        )
        assert not needs_custom(snap, 101)

    def test_label_shadowed_by_standard_token(self) -> None:
        """A label shadowed by a standard token (case-insensitive) needs no wait."""
        snap = snapshot(system="http://h.example.com/?s=--A--STATUS--B--", fields=[(101, "status", "N")])
        assert not needs_custom(snap, 101)

    def test_no_url(self) -> None:
        """A list without URL needs no wait."""
        assert not needs_custom(snapshot(fields=[(101, "zip_plus", "N")]), 101)

    def test_list_disabled(self) -> None:
        """A disabled list needs no wait."""
        snap = snapshot(system=self.TEMPLATE, lists={101: "---DISABLED---"}, fields=[(101, "zip_plus", "N")])
        assert not needs_custom(snap, 101)
