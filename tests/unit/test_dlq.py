"""Tests for cdc.ops.dlq's pure parts: --older-than durations, URL redaction, selectors."""

from __future__ import annotations

import pytest

from cdc.duration import parse_duration
from cdc.errors import ConfigError
from cdc.ops.dlq import DeadSelector, url_host_path

T0 = 1_700_000_000.0


class TestParseDuration:
    """Durations are <number><s|m|h|d|w>, summed; anything else is a ConfigError."""

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("90s", 90), ("30m", 1800), ("2h", 7200), ("3d", 259200), ("1w", 604800), ("1h30m", 5400),
         ("1.5h", 5400), (" 2H ", 7200)],
    )  # fmt: skip
    def test_valid(self, text: str, seconds: float) -> None:
        """Each unit and a sum of units."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "2", "h", "2x", "2h-", "-2h", "yesterday", "2h 3"])
    def test_invalid(self, text: str) -> None:
        """No unit, unknown unit, trailing junk."""
        with pytest.raises(ConfigError):
            parse_duration(text)


class TestUrlHostPath:
    """Only host[:port] and path survive: no credentials, query or fragment."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("http://crm.example/hook?ph=3125551234&fn=Jo", ("crm.example", "/hook")),
            ("https://u:secret@crm.example:8443/a/b?x=1#f", ("crm.example:8443", "/a/b")),
            ("http://[::1]:9000/x?y", ("[::1]:9000", "/x")),
            ("http://host:notaport/x", ("", "")),
        ],
    )
    def test_redaction(self, url: str, expected: tuple[str, str]) -> None:
        """The examples from the docstring and a malformed port."""
        assert url_host_path(url) == expected


class TestDeadSelector:
    """An empty selector selects nothing by itself (retry/purge then need --all)."""

    def test_is_empty(self) -> None:
        """Any filter makes it non-empty; --all alone does not."""
        assert DeadSelector().is_empty() and DeadSelector(all=True).is_empty()
        assert not DeadSelector(older_than_s=0.0).is_empty()
        assert DeadSelector(older_than_s=60.0).older_than(T0) == T0 - 60
