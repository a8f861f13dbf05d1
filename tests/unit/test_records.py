"""Value conversion: one pair of converters for every module that reads column values."""

from __future__ import annotations

import decimal

import pytest

from cdc.records import Value, as_int, as_text, has_undecodable


class TestAsText:
    """Text of any column value; bytes keep every byte."""

    @pytest.mark.parametrize(
        ("value", "text"),
        [("abc", "abc"), (None, ""), (42, "42"), (b"http://x/", "http://x/"), ("é".encode(), "é")],
    )
    def test_values(self, value: Value, text: str) -> None:
        """str as is, None empty, numbers as text, bytes as UTF-8."""
        assert as_text(value) == text

    def test_undecodable_bytes_are_kept(self) -> None:
        """A latin-1 byte is not replaced by ``?``: it round-trips and is reported as undecodable."""
        text = as_text(b"caf\xe9")
        assert has_undecodable(text)
        assert text.encode("utf-8", "surrogateescape") == b"caf\xe9"


class TestAsInt:
    """Integers of ids, versions and counts."""

    @pytest.mark.parametrize(
        ("value", "number"),
        [
            (7, 7),
            ("101", 101),
            (" 101 ", 101),
            (b"101", 101),
            (decimal.Decimal("101"), 101),
            (None, None),
            (True, None),
            ("", None),
            ("-5", None),
            ("1.5", None),
            (1.0, None),
            ("١٢", None),
            (b"\xe9", None),
        ],
    )
    def test_values(self, value: Value, number: int | None) -> None:
        """ASCII digits (text or bytes) and ints; a bool, a sign, a fraction or other digits are not ids."""
        assert as_int(value) == number
