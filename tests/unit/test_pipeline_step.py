"""The pipeline step: deliveries and a checkpoint that never passes a waiting insert."""

from __future__ import annotations

import dataclasses

from cdc.config import Config, DeliveryConfig
from cdc.metrics import Metrics
from cdc.pipeline import Pipeline, PipelineStatistics
from cdc.records import GroupEnd, Op, Position, RowChange, Value
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
