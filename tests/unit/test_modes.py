"""Who sends a lead: the streamer or VICIdial's own sender (pure decisions)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from cdc.config import DeliveryMode
from cdc.modes import VicidialSender, streamer_sends, vicidial_sender, vicidial_template
from cdc.records import SkipReason, Value
from cdc.settings import SettingsCache, SettingsSnapshot, UrlOverrides

SENDS = VicidialSender(schema_sends=True, enum_has_apinewlead=True)
OLD = VicidialSender(schema_sends=False, enum_has_apinewlead=False)


def snapshot(
    *, system: str | None = None, lists: Mapping[int, str] | None = None, version: int = 1728, **over: str
) -> SettingsSnapshot:
    rows: list[Mapping[str, Value]] = []
    if system is not None:
        rows.append(
            {
                "url_id": 1,
                "campaign_id": "-SYSTEM-API-NEWLEAD-",
                "entry_type": "system",
                "url_type": "apinewlead",
                "url_address": system,
            }
        )
    for i, (list_id, url) in enumerate((lists or {}).items(), start=2):
        rows.append(
            {
                "url_id": i,
                "campaign_id": str(list_id),
                "entry_type": "list",
                "url_type": "apinewlead",
                "url_address": url,
            }
        )
    cache = SettingsCache(UrlOverrides(system=over.get("config_system"), lists={}))
    cache.load(
        rows, [], [], {"db_schema_version": version, "use_non_latin": "1", "custom_fields_enabled": "1"}
    )
    return cache.snapshot()


class TestVicidialTemplate:
    """VICIdial's own precedence over its own rows only (config file ignored)."""

    @pytest.mark.parametrize(
        ("system", "lists", "expected"),
        [
            ("http://sys.example/x", {}, "http://sys.example/x"),
            ("http://sys.example/x", {101: "http://list.example/y"}, "http://list.example/y"),
            # non_agent_api.php: strlen("  ") > 0 picks the list value, then 2 <= 10 sends nothing
            ("http://sys.example/x", {101: "  "}, None),
            ("http://sys.example/x", {101: ""}, "http://sys.example/x"),
            ("http://sys.example/x", {101: "---DISABLED---"}, None),
            (None, {101: "http://a.b"}, None),  # 10 characters: VICIdial does not send it
            (None, {}, None),
        ],
    )
    def test_precedence(self, system: str | None, lists: dict[int, str], expected: str | None) -> None:
        """List value, empty → system, DISABLED → none, too short (whitespace too) → none."""
        assert vicidial_template(snapshot(system=system, lists=lists), 101) == expected


class TestStreamerSends:
    """send: always us; watch: never us first; auto: us unless VICIdial sends this lead."""

    def test_send_and_watch(self) -> None:
        """The two fixed modes ignore the settings."""
        snap = snapshot(system="http://sys.example/x")
        assert streamer_sends(DeliveryMode.SEND, SENDS, snap, 101) is None
        assert streamer_sends(DeliveryMode.WATCH, OLD, snap, 101) is SkipReason.VICIDIAL_SENDS

    @pytest.mark.parametrize(
        ("sender", "system", "config_system", "watched"),
        [
            (SENDS, "http://vici.example/x", None, True),  # VICIdial row on a sending build
            (SENDS, "http://vici.example/x", "http://cfg.example/x", True),  # both: VICIdial's wins
            (SENDS, None, "http://cfg.example/x", False),  # config only: VICIdial sends nothing
            (OLD, "http://vici.example/x", None, False),  # old build never sends
            (OLD, None, "http://cfg.example/x", False),
        ],
    )
    def test_auto(
        self, sender: VicidialSender, system: str | None, config_system: str | None, watched: bool
    ) -> None:
        """Never both for one lead."""
        over = {"config_system": config_system} if config_system else {}
        snap = snapshot(system=system, **over)
        reason = streamer_sends(DeliveryMode.AUTO, sender, snap, 101)
        assert (reason is SkipReason.VICIDIAL_SENDS) is watched

    def test_sender_needs_schema_and_enum(self) -> None:
        """Schema 1726+ alone is not enough: the url_type enum must know apinewlead."""
        assert vicidial_sender(snapshot(version=1728), True).sends
        assert not vicidial_sender(snapshot(version=1728), False).sends
        assert not vicidial_sender(snapshot(version=1725), True).sends
