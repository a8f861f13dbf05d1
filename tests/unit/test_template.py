"""cdc.template: VICIdial's URL substitution, against hand-written golden cases."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc import charset
from cdc.records import Value
from cdc.template import (
    LEAD_TOKENS,
    format_value,
    lead_tokens,
    php_trim,
    php_urlencode,
    render,
    token_names,
)

GOLDEN = json.loads(
    (Path(__file__).parents[1] / "golden" / "template_cases.json").read_text(encoding="utf-8")
)
DEFAULTS: dict[str, Any] = GOLDEN["defaults"]
RENDER_CASES: list[dict[str, Any]] = GOLDEN["render_cases"]
FORMAT_CASES: list[dict[str, Any]] = GOLDEN["format_cases"]


def typed(raw: Any) -> Value:
    """Decode one golden value (tagged JSON object or plain JSON scalar)."""
    if not isinstance(raw, dict):
        assert raw is None or isinstance(raw, str | int)
        return raw
    ((tag, text),) = raw.items()
    if tag == "datetime":
        return dt.datetime.fromisoformat(text)
    if tag == "date":
        return dt.date.fromisoformat(text)
    if tag == "decimal":
        return decimal.Decimal(text)
    if tag == "float":
        return float(text)
    if tag == "time_s":
        return dt.timedelta(seconds=text)
    if tag == "bytes_hex":
        return bytes.fromhex(text)
    raise AssertionError(f"unknown golden tag {tag!r}")


def typed_row(raw: dict[str, Any] | None) -> dict[str, Value] | None:
    return None if raw is None else {k: typed(v) for k, v in raw.items()}


def render_case(case: dict[str, Any]) -> str:
    """Run lead_tokens + render for one golden case, merged over the defaults."""
    merged = {**DEFAULTS, **{k: v for k, v in case.items() if k not in ("lead", "lead_drop")}}
    lead_raw = {**DEFAULTS["lead"], **case.get("lead", {})}
    for column in case.get("lead_drop", []):
        del lead_raw[column]
    lead = typed_row(lead_raw)
    assert lead is not None
    tokens = lead_tokens(
        lead,
        list_name=merged["list_name"],
        list_description=merged["list_description"],
        campaign=merged["campaign"],
        custom=typed_row(merged["custom"]),
        encrypted_fields=frozenset(merged["encrypted_fields"]),
        sql_date=merged["sql_date"],
        epoch=merged["epoch"],
    )
    codec = charset.connection_codec(merged["use_non_latin"], merged["server_charset"])
    return render(merged["template"], tokens, codec)


class TestGoldenRender:
    """Each rule of vicidial.md renders the URL written by hand in the golden file."""

    @pytest.mark.parametrize("case", RENDER_CASES, ids=[c["id"] for c in RENDER_CASES])
    def test_case(self, case: dict[str, Any]) -> None:
        """Each golden template case renders to its hand-written expected URL."""
        assert render_case(case) == case["expected"], case["rule"]

    def test_case_ids_unique(self) -> None:
        """Golden case ids are unique."""
        ids = [c["id"] for c in RENDER_CASES]
        assert len(ids) == len(set(ids))


class TestFormatValue:
    """A stored value prints as PHP reads it from a MySQL SELECT."""

    @pytest.mark.parametrize("case", FORMAT_CASES, ids=[c["id"] for c in FORMAT_CASES])
    def test_case(self, case: dict[str, Any]) -> None:
        """Each typed value is formatted as VICIdial's PHP prints it."""
        assert format_value(typed(case["value"])) == case["expected"]

    def test_datetime_fraction_kept(self) -> None:
        """A datetime keeps its microseconds."""
        assert format_value(dt.datetime(2025, 6, 1, 10, 11, 12, 500)) == "2025-06-01 10:11:12.000500"

    def test_time_fraction_kept(self) -> None:
        """A negative TIME keeps its fraction and sign."""
        assert format_value(dt.timedelta(seconds=-1, microseconds=250000)) == "-00:00:00.750000"


class TestLeadTokens:
    """lead_tokens lists exactly the tokens that have a value source."""

    def lead(self) -> dict[str, Value]:
        row = typed_row(DEFAULTS["lead"])
        assert row is not None
        return row

    def tokens(self, **overrides: Any) -> dict[str, str]:
        args: dict[str, Any] = {
            "list_name": "L",
            "list_description": "D",
            "campaign": "C",
            "custom": None,
            "encrypted_fields": frozenset(),
            "sql_date": "2025-06-01 10:11:12",
            "epoch": 1748772672,
        }
        lead = overrides.pop("lead", self.lead())
        args.update(overrides)
        return lead_tokens(lead, **args)

    @given(st.frozensets(st.sampled_from([*LEAD_TOKENS, "list_name", "budget", "nope"])))
    def test_only_limits_to_the_same_values(self, only: frozenset[str]) -> None:
        """With ``only``, the standard tokens are those of the full set that ``only`` names."""
        full = self.tokens()
        limited = self.tokens(only=only)
        fixed = {"list_name", "list_description", "campaign", "sqldate", "epoch"}
        assert limited == {k: v for k, v in full.items() if k in only or k in fixed}

    def test_every_table_token_present(self) -> None:
        """Every vicidial_list token, the list tokens, SQLdate and epoch are offered."""
        tokens = self.tokens()
        expected = set(LEAD_TOKENS) | {"list_name", "list_description", "campaign"}
        assert set(tokens) == expected | {"sqldate", "epoch"}

    def test_values_formatted_not_trimmed(self) -> None:
        """Token values are formatted but not trimmed (trimming happens at render)."""
        lead = self.lead()
        lead["first_name"] = "  Ann "
        tokens = self.tokens(lead=lead)
        assert tokens["first_name"] == "  Ann "
        assert tokens["gmt_offset_now"] == "-5.00"
        assert tokens["entry_date"] == "2025-06-01 10:11:12"
        assert tokens["epoch"] == "1748772672"

    def test_missing_columns_absent(self) -> None:
        """Columns missing from the row give no token."""
        tokens = self.tokens(lead={"lead_id": 5})
        assert tokens["lead_id"] == "5"
        assert "first_name" not in tokens
        assert "phone" not in tokens

    def test_columns_outside_table_absent(self) -> None:
        """Columns outside VICIdial's token table give no token."""
        tokens = self.tokens()
        for column in ("modify_date", "last_local_call_time", "called_since_last_reset"):
            assert column not in tokens

    def test_custom_none_adds_nothing(self) -> None:
        """Without a custom row no custom token is added."""
        assert "favorite_color" not in self.tokens(custom=None)

    def test_custom_labels_lower_cased_and_lead_id_skipped(self) -> None:
        """Custom labels are lower-cased and the custom row's lead_id is not a token."""
        custom: dict[str, Value] = {"lead_id": 77, "Favorite_Color": "Red"}
        tokens = self.tokens(lead={"list_id": 1}, custom=custom)
        assert tokens["favorite_color"] == "Red"
        assert "lead_id" not in tokens

    def test_encrypted_label_empty_any_case(self) -> None:
        """An encrypted custom field is empty whatever the case of its label."""
        custom: dict[str, Value] = {"lead_id": 1, "SSN": "cipher"}
        tokens = self.tokens(custom=custom, encrypted_fields=frozenset({"ssn"}))
        assert tokens["ssn"] == ""


class TestLeadTokenTable:
    """LEAD_TOKENS is vicidial.md's token table, no more, no less."""

    def test_same_name_columns(self) -> None:
        """The token table's same-name columns are exactly VICIdial's."""
        same = {t for t, c in LEAD_TOKENS.items() if t == c}
        assert same == {
            "lead_id", "list_id", "entry_list_id", "phone_code", "phone_number", "title",
            "first_name", "middle_initial", "last_name", "address1", "address2", "address3",
            "city", "state", "province", "postal_code", "country_code", "gender",
            "date_of_birth", "alt_phone", "email", "security_phrase", "comments",
            "called_count", "rank", "owner", "source_id", "status", "entry_date",
            "gmt_offset_now", "vendor_lead_code", "user",
        }  # fmt: skip

    def test_aliases(self) -> None:
        """vendor_id and phone are the only aliases."""
        aliases = {t: c for t, c in LEAD_TOKENS.items() if t != c}
        assert aliases == {"vendor_id": "vendor_lead_code", "phone": "phone_number"}

    def test_read_only(self) -> None:
        """The token table cannot be modified."""
        with pytest.raises(TypeError):
            LEAD_TOKENS["x"] = "y"  # type: ignore[index]


class TestRender:
    """render substitutes known tokens and leaves the rest of the template alone."""

    def test_value_trimmed_then_encoded(self) -> None:
        """A value is trimmed, then urlencoded."""
        assert render("--A--x--B--", {"x": " a b "}, "utf-8") == "a+b"

    def test_unknown_token_kept_as_typed(self) -> None:
        """An unknown token stays as typed."""
        assert render("?q=--a--Nope--B--", {"x": "1"}, "utf-8") == "?q=--a--Nope--B--"

    def test_result_is_ascii_for_any_value(self) -> None:
        """The rendered URL is ASCII for any value; what the connection cannot hold becomes ?."""
        url = render("h?a=--A--x--B--", {"x": "\udc81\x00\u20ac\U0001f600"}, "mariadb_latin1")
        assert url == "h?a=%81%00%80%3F"

    def test_surrogate_escape_restored_under_utf8(self) -> None:
        """A surrogate-escaped byte is sent as that byte under UTF-8."""
        assert render("--A--x--B--", {"x": "a\udcff"}, "utf-8") == "a%FF"


def regex_render(template: str, tokens: dict[str, str], codec: str) -> str:
    """VICIdial's substitution as one ``preg_replace`` pass: the reference for :func:`render`."""
    if template.startswith("VAR"):
        template = template[3:]

    def substitute(match: re.Match[str]) -> str:
        value = tokens.get(match.group(1).lower())
        if value is None:
            return match.group(0)
        return php_urlencode(charset.encode_for_connection(php_trim(value), codec))

    return re.sub(r"--A--([0-9A-Za-z_]+)--B--", substitute, template, flags=re.IGNORECASE)


#: Template pieces: literal text (marker fragments too), known and unknown tokens in any case.
_PIECES = st.one_of(
    st.text(alphabet="abc?&=/:-AB_ ", max_size=8),
    st.sampled_from(["--A--", "--B--", "--a--x--b--", "VAR", "--A----B--"]),
    st.builds(
        lambda name, upper: f"--{'A' if upper else 'a'}--{name}--{'B' if upper else 'b'}--",
        st.sampled_from(["x", "X", "phone", "Phone_Number", "nope", "lead_id"]),
        st.booleans(),
    ),
)


class TestRenderEqualsOnePass:
    """render (templates cut once, then filled) substitutes exactly what one regex pass does."""

    @given(st.lists(_PIECES, max_size=12).map("".join), st.sampled_from(["utf-8", "mariadb_latin1"]))
    def test_same_url(self, template: str, codec: str) -> None:
        """Any template, adjacent and broken markers included, renders as the regex pass does."""
        tokens = {"x": " a&b ", "phone": "555 0100", "phone_number": "é€", "lead_id": "7"}
        assert render(template, tokens, codec) == regex_render(template, tokens, codec)
        assert render(template, {}, codec) == regex_render(template, {}, codec)


class TestTokenNames:
    """token_names reports the lower-cased names a template uses."""

    def test_names(self) -> None:
        """token_names gives the template's token names, lower-cased."""
        template = "VARhttp://x/?a=--A--Budget--B--&b=--a--lead_id--b--&c=--A--SQLdate--B--"
        assert token_names(template) == frozenset({"budget", "lead_id", "sqldate"})

    def test_no_tokens(self) -> None:
        """An empty token is not a name."""
        assert token_names("http://x/?a=--A----B--") == frozenset()


class TestPhpTrim:
    """php_trim strips PHP trim()'s default set and nothing else."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (" \t\n\r\x00\x0ba\x0b\x00\r\n\t ", "a"),
            ("\x0ca\xa0", "\x0ca\xa0"),
            ("\u2003a\u3000", "\u2003a\u3000"),
            ("a b", "a b"),
            ("", ""),
            ("  ", ""),
        ],
    )
    def test_trim(self, text: str, expected: str) -> None:
        """php_trim removes exactly the characters PHP's trim removes."""
        assert php_trim(text) == expected


class TestPhpUrlencodeTable:
    """php_urlencode follows PHP's byte rules (full comparison with PHP: test_php_urlencode)."""

    def test_unreserved_kept(self) -> None:
        """Unreserved characters are kept as they are."""
        safe = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        assert php_urlencode(safe) == safe.decode("ascii")

    def test_space_plus_tilde_encoded(self) -> None:
        """Space becomes + and ~ * + are percent-encoded, as PHP's urlencode does."""
        assert php_urlencode(b" ~*+") == "+%7E%2A%2B"

    def test_high_and_control_bytes_upper_hex(self) -> None:
        """Control and high bytes are encoded with upper-case hex."""
        assert php_urlencode(b"\x00\x0a\x7f\x80\xff") == "%00%0A%7F%80%FF"

    def test_empty(self) -> None:
        """An empty value encodes to nothing."""
        assert php_urlencode(b"") == ""
