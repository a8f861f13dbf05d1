"""The pipeline step: deliveries and a checkpoint that never passes a waiting insert."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cdc import endpoints
from cdc.config import Config, DeliveryConfig
from cdc.detect import LateMatch
from cdc.metrics import Metrics
from cdc.pipeline import FAILED_ENDPOINT, Pipeline, PipelineStatistics
from cdc.records import ApiLead, GroupEnd, Op, Position, RowChange, UnreadableRows, Value
from cdc.settings import SettingsCache

P0, P1, P2, P3 = (Position("binlog.000001", p) for p in (100, 200, 300, 400))


def pipeline(mode: str = "send") -> Pipeline:
    cache = SettingsCache()
    cache.load(
        [
            {
                "url_id": 1,
                "campaign_id": "-SYSTEM-API-NEWLEAD-",
                "entry_type": "system",
                "url_type": "apinewlead",
                "url_address": "http://crm.example/new?id=--A--lead_id--B--",
            }
        ],
        [],
        [],
        {"db_schema_version": 1728, "use_non_latin": "1", "custom_fields_enabled": "1"},
    )
    cfg = dataclasses.replace(Config(), delivery=DeliveryConfig(mode=mode))
    stats = PipelineStatistics(checkpoint=P0)
    return Pipeline(
        cfg,
        cache,
        Metrics(),
        stats,
        server_charset="utf8mb4",
        enum_has_apinewlead=True,
    )


def lead_insert(lead_id: int, ts: int = 1000) -> RowChange:
    row: dict[str, Value] = {
        "lead_id": lead_id,
        "list_id": 101,
        "phone_number": "3125550000",
        "status": "NEW",
    }
    return RowChange("asterisk", "vicidial_list", Op.INSERT, None, row, ts)


def api_log(lead_id: int, ts: int = 1000) -> RowChange:
    row: dict[str, Value] = {
        "function": "add_lead",
        "result": "SUCCESS",
        "result_reason": "add_lead LEAD HAS BEEN ADDED",
        "data": f"3125550000|101|{lead_id}|-5.00",
    }
    return RowChange("asterisk", "vicidial_api_log", Op.INSERT, None, row, ts)


class TestPipeline:
    """Matched inserts become deliveries; the checkpoint waits for unmatched ones."""

    def test_match_in_one_step(self) -> None:
        """Insert, group end, api_log, group end: one delivery, checkpoint at the last end."""
        p = pipeline()
        step = p.process([[lead_insert(7), GroupEnd(P1, 1000), api_log(7), GroupEnd(P2, 1000)]], seen=0.0)
        assert [d.url for d in step.deliveries] == ["http://crm.example/new?id=7"]
        assert step.checkpoint == P2

    def test_checkpoint_held_for_waiting_insert(self) -> None:
        """An insert still waiting pins the checkpoint before it, across steps."""
        p = pipeline()
        step = p.process([[lead_insert(7), GroupEnd(P1, 1000), GroupEnd(P2, 1000)]], seen=0.0)
        assert step.deliveries == [] and step.checkpoint is None  # held at P0, already stored
        p.committed(step)
        step = p.process([[api_log(7), GroupEnd(P3, 1001)]], seen=0.0)
        assert len(step.deliveries) == 1 and step.checkpoint == P3
        p.committed(step)
        assert p.stats.checkpoint == P3 and p.stats.deliveries == 1

    def test_unmatched_insert_expires_and_releases_checkpoint(self) -> None:
        """Past the match window the insert is skipped (not_api) and the checkpoint moves."""
        p = pipeline()
        p.committed(p.process([[lead_insert(7), GroupEnd(P1, 1000)]], seen=0.0))
        step = p.process([[GroupEnd(P2, 1100)]], seen=0.0)
        assert step.deliveries == [] and step.checkpoint == P2
        assert p.stats.skipped == {"not_api": 1}

    def test_watch_mode_sends_nothing_first(self) -> None:
        """watch: the lead is left to VICIdial's own sender (counted), nothing enqueued."""
        p = pipeline("watch")
        step = p.process([[lead_insert(7), GroupEnd(P1, 1000), api_log(7), GroupEnd(P2, 1000)]], seen=0.0)
        assert step.deliveries == [] and step.checkpoint == P2
        assert p.stats.skipped == {"vicidial_sends": 1}


class TestRouterFollowsSettings:
    """The router is built once per settings snapshot and server charset, never kept stale."""

    def test_a_settings_change_reaches_the_next_lead(self) -> None:
        """auto: schema 1728 leaves the lead to VICIdial; after an update to 1700 we send it."""
        p = pipeline("auto")
        assert p.router() is p.router()
        step = p.process([[lead_insert(7), GroupEnd(P1, 1000), api_log(7), GroupEnd(P2, 1000)]], seen=0.0)
        assert step.deliveries == [] and p.stats.skipped == {"vicidial_sends": 1}
        old = {"db_schema_version": 1728, "use_non_latin": "1", "custom_fields_enabled": "1"}
        new = {**old, "db_schema_version": 1700}
        change = RowChange("asterisk", "system_settings", Op.UPDATE, old, new, 1001)
        step = p.process(
            [[change, lead_insert(8, 1001), GroupEnd(P3, 1001), api_log(8, 1001), GroupEnd(P3, 1001)]],
            seen=0.0,
        )
        assert [d.url for d in step.deliveries] == ["http://crm.example/new?id=8"]
        assert not p.router().sender.schema_sends

    def test_a_charset_change_builds_a_new_router(self) -> None:
        """set_server_charset: the next router renders with the new charset."""
        p = pipeline()
        before = p.router()
        p.set_server_charset("latin1")
        assert before.server_charset == "utf8mb4" and p.router().server_charset == "latin1"


def custom_pipeline() -> Pipeline:
    """List 105's URL uses its custom field ``size``; other lists use the system URL."""
    cache = SettingsCache()
    url_row: dict[str, Value] = {
        "url_id": 2,
        "campaign_id": "105",
        "entry_type": "list",
        "url_type": "apinewlead",
        "url_address": "http://crm.example/c?id=--A--lead_id--B--&size=--A--size--B--",
    }
    system_row: dict[str, Value] = {
        "url_id": 1,
        "campaign_id": "-SYSTEM-API-NEWLEAD-",
        "entry_type": "system",
        "url_type": "apinewlead",
        "url_address": "http://crm.example/new?id=--A--lead_id--B--",
    }
    field: dict[str, Value] = {
        "field_id": 1,
        "list_id": 105,
        "field_label": "size",
        "field_type": "TEXT",
        "field_encrypt": "N",
        "field_duplicate": "N",
    }
    cache.load(
        [system_row, url_row],
        [],
        [field],
        {"db_schema_version": 1728, "use_non_latin": "1", "custom_fields_enabled": "1"},
    )
    cfg = dataclasses.replace(Config(), delivery=DeliveryConfig(mode="send"))
    return Pipeline(
        cfg,
        cache,
        Metrics(),
        PipelineStatistics(checkpoint=P0),
        server_charset="utf8mb4",
        enum_has_apinewlead=True,
    )


def api_lead(lead_id: int, list_id: int, custom: dict[str, Value] | None = None) -> ApiLead:
    return ApiLead(lead_id, list_id, {"lead_id": lead_id, "list_id": list_id}, custom, 1000)


def unreadable(table: str) -> UnreadableRows:
    return UnreadableRows("asterisk", table, Op.INSERT, 1, "table_unreadable", 1000)


class TestGroupCommit:
    """Steps committed together keep every delivery and a checkpoint that is still safe."""

    def test_later_checkpoint_wins(self) -> None:
        """Two matched leads in two steps: one commit of both, at the later checkpoint."""
        p = pipeline()
        first = p.process([[lead_insert(7), GroupEnd(P1, 1000), api_log(7), GroupEnd(P2, 1000)]], seen=0.0)
        then = p.process([[lead_insert(8), api_log(8), GroupEnd(P3, 1001)]], seen=0.0)
        both = first.followed_by(then)
        assert [d.lead_id for d in both.deliveries] == [7, 8] and both.checkpoint == P3
        p.committed(both)
        assert p.stats.checkpoint == P3 and p.stats.deliveries == 2

    def test_held_later_step_keeps_the_earlier_checkpoint(self) -> None:
        """A later step held back (an insert waits) leaves the earlier checkpoint: the insert is after it."""
        p = pipeline()
        first = p.process([[GroupEnd(P1, 1000)]], seen=0.0)
        then = p.process([[lead_insert(9), GroupEnd(P2, 1000)]], seen=0.0)
        assert first.checkpoint == P1 and then.checkpoint is None
        assert first.followed_by(then).checkpoint == P1

    def test_only_completed_steps(self) -> None:
        """A step with late matches still to fetch is not merged: its leads would be lost."""
        p = pipeline()
        first = p.process([[GroupEnd(P1, 1000)]], seen=0.0)
        late = dataclasses.replace(first, late=[LateMatch(lead_id=7, list_id=101, api_ts=1000)])
        with pytest.raises(ValueError, match="completed"):
            first.followed_by(late)


class TestUnreadableCustomTable:
    """Leads that need rows of an unreadable custom table wait; the others are routed."""

    def test_leads_of_the_unreadable_list_wait(self) -> None:
        """After UnreadableRows for custom_105, a lead of 105 without custom values waits."""
        p = custom_pipeline()
        step = p.process([[unreadable("custom_105"), GroupEnd(P1, 1000)]], seen=0.0)
        assert p.unreadable_lists == {105}
        fetched = p.route_released([])
        assert fetched.deliveries == []
        step = p.route_fetched([], [api_lead(7, 105), api_lead(8, 101)])
        assert [lead.lead_id for lead in step.waiting] == [7]
        assert [d.url for d in step.deliveries] == ["http://crm.example/new?id=8"]

    def test_released_leads_are_routed_with_their_custom_row(self) -> None:
        """route_released never holds: the fetch read the now readable table."""
        p = custom_pipeline()
        p.process([[unreadable("custom_105"), GroupEnd(P1, 1000)]], seen=0.0)
        step = p.route_released([api_lead(7, 105, {"lead_id": 7, "size": "XL"})])
        assert [d.url for d in step.deliveries] == ["http://crm.example/c?id=7&size=XL"]
        assert step.waiting == []

    def test_a_decoded_custom_row_clears_the_mark(self) -> None:
        """Once the reader decodes custom_105 again, its leads are routed as usual."""
        p = custom_pipeline()
        p.process([[unreadable("custom_105"), GroupEnd(P1, 1000)]], seen=0.0)
        row = RowChange("asterisk", "custom_105", Op.INSERT, None, {"lead_id": 9, "size": "M"}, 1001)
        p.process([[row, GroupEnd(P2, 1001)]], seen=0.0)
        assert p.unreadable_lists == set()

    def test_fetch_that_saw_no_custom_columns_makes_the_lead_wait(self) -> None:
        """A late lead whose custom table showed no columns to the SELECT waits too."""
        p = custom_pipeline()
        step = p.route_fetched([LateMatch(7, 105, 1000)], [api_lead(7, 105)], frozenset({105}))
        assert [lead.lead_id for lead in step.waiting] == [7] and step.deliveries == []


class TestFailingLead:
    """A lead whose routing raises is a dead letter of that step; the others go on."""

    def test_routing_error_becomes_a_dead_letter(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A lead whose routing raises becomes a dead letter naming the error; the next lead is sent and
        the checkpoint moves on."""
        real = endpoints.fan_out

        def fan_out(lead: ApiLead, *args: Any, **kwargs: Any) -> Any:
            if lead.lead_id == 7:
                raise KeyError("boom")
            return real(lead, *args, **kwargs)

        monkeypatch.setattr(endpoints, "fan_out", fan_out)
        p = pipeline()
        items = [
            lead_insert(7),
            lead_insert(8),
            GroupEnd(P1, 1000),
            api_log(7),
            api_log(8),
            GroupEnd(P2, 1000),
        ]
        step = p.process([items], seen=0.0)
        dead, sent = step.deliveries
        assert sent.url == "http://crm.example/new?id=8" and not sent.refused
        assert (dead.lead_id, dead.endpoint_id, dead.url) == (7, FAILED_ENDPOINT, "")
        assert dead.refused.startswith("processing_error: KeyError at ")
        assert step.checkpoint == P2
