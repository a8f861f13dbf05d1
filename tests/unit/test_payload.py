"""Unit tests for cdc.payload: post-form bodies and the lead.created JSON event.

Expected bodies are written by hand from the documented rules; every JSON event is also
validated against schemas/lead.created.v1.json.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from cdc.payload import form_request, lead_event
from cdc.records import ApiLead, Value
from cdc.settings import SettingsCache, SettingsSnapshot

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "lead.created.v1.json").read_text("utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
INSERTED_AT = 1_741_086_367  # 2025-03-04T11:06:07Z


def full_row(**columns: Value) -> dict[str, Value]:
    """A vicidial_list row image as the reader normalizes it, in table order."""
    row: dict[str, Value] = {
        "lead_id": 7,
        "entry_date": dt.datetime(2025, 3, 4, 5, 6, 7),
        "modify_date": dt.datetime(2025, 3, 4, 11, 6, 7),  # TIMESTAMP: naive UTC
        "status": "NEW",
        "user": "6666",
        "vendor_lead_code": "V/1",
        "source_id": "",
        "list_id": 101,
        "gmt_offset_now": decimal.Decimal("-5.00"),
        "called_since_last_reset": "N",
        "phone_code": "1",
        "phone_number": "3125550100",
        "title": "",
        "first_name": "José",
        "middle_initial": "",
        "last_name": "Nguyễn",
        "address1": "",
        "address2": None,
        "address3": "",
        "city": "Chicago",
        "state": "IL",
        "province": "",
        "postal_code": "60601",
        "country_code": "USA",
        "gender": "U",
        "date_of_birth": "0000-00-00",
        "alt_phone": "",
        "email": "",
        "security_phrase": "",
        "comments": "a~b c",
        "called_count": 0,
        "last_local_call_time": dt.datetime(2008, 1, 1, 0, 0, 0),
        "rank": -2,
        "owner": "",
        "entry_list_id": 101,
    }
    row.update(columns)
    return row


def api_lead(custom: Mapping[str, Value] | None = None, list_id: int = 101, **columns: Value) -> ApiLead:
    return ApiLead(
        lead_id=7,
        list_id=list_id,
        lead=full_row(list_id=list_id, **columns),
        custom=custom,
        inserted_at=INSERTED_AT,
    )


def snapshot(*, use_non_latin: bool = True, fields: list[tuple[str, str]] | None = None) -> SettingsSnapshot:
    cache = SettingsCache()
    cache.load(
        [],
        [
            {
                "list_id": 101,
                "list_name": "Web leads",
                "list_description": "From the site",
                "campaign_id": "CAMP1",
            }
        ],
        [
            {"list_id": 101, "field_label": label, "field_encrypt": enc, "field_duplicate": "N"}
            for label, enc in (fields or [])
        ],
        {
            "db_schema_version": 1728,
            "use_non_latin": "1" if use_non_latin else "0",
            "custom_fields_enabled": "1",
        },
    )
    return cache.snapshot()


def event(lead: ApiLead, snap: SettingsSnapshot, *, server_charset: str = "latin1") -> dict[str, Any]:
    body = lead_event(lead, snap, source="dialer1", event_id="dialer1:7:crm", server_charset=server_charset)
    parsed: dict[str, Any] = orjson.loads(body)
    VALIDATOR.validate(parsed)
    return parsed


EXPECTED_LEAD: dict[str, Any] = {
    "lead_id": 7,
    "entry_date": "2025-03-04T05:06:07",
    "modify_date": "2025-03-04T11:06:07Z",
    "status": "NEW",
    "user": "6666",
    "vendor_lead_code": "V/1",
    "source_id": "",
    "list_id": 101,
    "gmt_offset_now": "-5.00",
    "called_since_last_reset": "N",
    "phone_code": "1",
    "phone_number": "3125550100",
    "title": "",
    "first_name": "José",
    "middle_initial": "",
    "last_name": "Nguyễn",
    "address1": "",
    "address2": None,
    "address3": "",
    "city": "Chicago",
    "state": "IL",
    "province": "",
    "postal_code": "60601",
    "country_code": "USA",
    "gender": "U",
    "date_of_birth": None,
    "alt_phone": "",
    "email": "",
    "security_phrase": "",
    "comments": "a~b c",
    "called_count": 0,
    "last_local_call_time": "2008-01-01T00:00:00",
    "rank": -2,
    "owner": "",
    "entry_list_id": 101,
}


class TestLeadEvent:
    """lead_event() builds the documented lead.created body."""

    def test_full_event(self) -> None:
        """Envelope, typed lead columns, list row and non-encrypted custom fields."""
        snap = snapshot(fields=[("color", "N"), ("ssn", "Y")])
        lead = api_lead(custom={"lead_id": 7, "color": "dark red", "ssn": "c2VjcmV0", "visits": 3})
        assert event(lead, snap) == {
            "id": "dialer1:7:crm",
            "type": "lead.created",
            "schema_version": 1,
            "occurred_at": "2025-03-04T11:06:07Z",
            "source": "dialer1",
            "lead_id": 7,
            "list_id": 101,
            "data": {
                "lead": EXPECTED_LEAD,
                "list": {
                    "list_id": 101,
                    "list_name": "Web leads",
                    "list_description": "From the site",
                    "campaign_id": "CAMP1",
                },
                "custom_fields": {"color": "dark red", "visits": 3},
            },
        }

    def test_bytes_are_compact_utf8(self) -> None:
        """Non-ASCII text is UTF-8 in the body, not \\u escapes; columns keep table order."""
        body = lead_event(api_lead(), snapshot(), source="d", event_id="d:7:crm")
        assert '"first_name":"José"'.encode() in body
        assert '"last_name":"Nguyễn"'.encode() in body
        assert b"\\u" not in body and b": " not in body
        assert body.index(b'"lead_id":7,"entry_date"') < body.index(b'"entry_list_id":101}')

    def test_no_custom_row_and_unknown_list(self) -> None:
        """No custom row gives {}; a list the settings do not know gives null list columns."""
        parsed = event(api_lead(list_id=555), snapshot())
        assert parsed["data"]["custom_fields"] == {}
        assert parsed["data"]["list"] == {
            "list_id": 555,
            "list_name": None,
            "list_description": None,
            "campaign_id": None,
        }

    @pytest.mark.parametrize(
        ("column", "value", "expected"),
        [
            ("date_of_birth", dt.date(1980, 2, 29), "1980-02-29"),
            ("date_of_birth", "1980-00-00", None),  # partly zero: not a calendar date
            ("date_of_birth", "1980-02-30", None),
            ("date_of_birth", "1980-02-29", "1980-02-29"),  # replay reads dates as text
            ("entry_date", "2025-03-04 05:06:07", "2025-03-04T05:06:07"),
            ("entry_date", "2025-00-04 05:06:07", None),
            ("modify_date", "2025-03-04 05:06:07", None),  # text: its time zone is unknown
            ("entry_date", "0000-00-00 00:00:00", None),
            ("last_local_call_time", dt.datetime(2024, 1, 2, 3, 4, 5, 600), "2024-01-02T03:04:05.000600"),
            ("modify_date", dt.datetime(2025, 3, 4, 11, 6, 7, tzinfo=dt.UTC), "2025-03-04T11:06:07Z"),
            ("modify_date", "0000-00-00 00:00:00", None),
            ("gmt_offset_now", decimal.Decimal("10.50"), "10.50"),
            ("gmt_offset_now", decimal.Decimal("0.00"), "0.00"),
            ("called_count", 65535, 65535),
            ("gender", "", ""),
            ("status", None, None),
        ],
    )
    def test_typed_values(self, column: str, value: Value, expected: object) -> None:
        """Each lead column appears in the JSON event with its documented type; unknown time zones give
        null."""
        assert event(api_lead(**{column: value}), snapshot())["data"]["lead"][column] == expected

    def test_site_columns_are_kept(self) -> None:
        """Columns a site added to vicidial_list appear too, typed by the same rules."""
        lead = event(api_lead(x_score=decimal.Decimal("1.5"), x_seen=dt.date(2020, 1, 2)), snapshot())["data"]
        assert (lead["lead"]["x_score"], lead["lead"]["x_seen"]) == ("1.5", "2020-01-02")

    def test_custom_field_types(self) -> None:
        """Custom values typed like lead columns; zero dates null; encrypted labels match any case."""
        snap = snapshot(fields=[("Secret_Note", "Y"), ("born", "N")])
        custom: dict[str, Value] = {
            "lead_id": 7,
            "secret_note": "Y2lwaGVy",
            "born": dt.date(1990, 5, 6),
            "since": "0000-00-00",
            "at": dt.timedelta(hours=9, minutes=30),
            "price": decimal.Decimal("12.50"),
        }
        assert event(api_lead(custom=custom), snap)["data"]["custom_fields"] == {
            "born": "1990-05-06",
            "since": None,
            "at": "09:30:00",
            "price": "12.50",
        }


class TestText:
    """Text is what VICIdial's PHP reads, as UTF-8; JSON never carries lone surrogates."""

    def test_latin1_connection_double_encoded(self) -> None:
        """UTF-8 stored through a latin1 connection (JosÃ©) comes out as the original text."""
        lead = api_lead(
            first_name="JosÃ©", last_name="M\u00c3\u00bcller\u00e2\u201a\u00ac"
        )  # Müller€ via latin1
        parsed = event(lead, snapshot(use_non_latin=False))
        assert (parsed["data"]["lead"]["first_name"], parsed["data"]["lead"]["last_name"]) == (
            "José",
            "Müller€",
        )

    def test_latin1_connection_real_latin1(self) -> None:
        """Genuine latin1 text (its bytes are not UTF-8) stays as stored."""
        parsed = event(api_lead(first_name="Renée", city="Zürich"), snapshot(use_non_latin=False))
        assert (parsed["data"]["lead"]["first_name"], parsed["data"]["lead"]["city"]) == ("Renée", "Zürich")

    def test_latin1_connection_unencodable_text_stays(self) -> None:
        """Text a latin1 connection cannot hold (a utf8 column, use_non_latin=0) is sent as stored."""
        parsed = event(api_lead(first_name="日本"), snapshot(use_non_latin=False))
        assert parsed["data"]["lead"]["first_name"] == "日本"

    def test_undecodable_bytes(self) -> None:
        """Bytes that never decoded (surrogate escapes) become U+FFFD."""
        parsed = event(api_lead(first_name="Jo\udce9"), snapshot())
        assert parsed["data"]["lead"]["first_name"] == "Jo\ufffd"

    def test_emoji(self) -> None:
        """Four-byte characters survive on a UTF-8 connection."""
        assert event(api_lead(comments="ok 👍"), snapshot())["data"]["lead"]["comments"] == "ok 👍"


class TestFormRequest:
    """form_request() moves a rendered URL's query into the body."""

    @pytest.mark.parametrize(
        ("url", "target", "body"),
        [
            (
                "https://crm.example.com/new?id=7&fn=Jos%C3%A9",
                "https://crm.example.com/new",
                b"id=7&fn=Jos%C3%A9",
            ),
            ("http://h.example/p?a=1&b=%3F#frag", "http://h.example/p", b"a=1&b=%3F"),
            ("http://h.example/p", "http://h.example/p", b""),
            ("http://h.example/p?", "http://h.example/p", b""),
        ],
    )
    def test_split(self, url: str, target: str, body: bytes) -> None:
        """A post-form request sends the URL's query as the body to the URL without query or fragment."""
        assert form_request(url) == (target, body)
