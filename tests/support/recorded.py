"""The cases recorded on a real VICIdial (``tests/golden/vicidial-recorded/``), loaded for tests.

Each case's ``binlog.bin`` is replayed through the fast reader's own framing and
decoding (:func:`cdc.reader.recorded.read_recorded`), with :data:`COLUMNS` standing in
for ``information_schema`` (the recording server ran ``binlog_row_metadata=NO_LOG``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cdc.reader.framing import file_events
from cdc.reader.recorded import read_recorded
from cdc.reader.schemahistory import ColumnInfo
from cdc.records import SourceItem

ROOT = Path(__file__).parents[1] / "golden" / "vicidial-recorded"
#: The recorded tables' charset: their VARCHAR lengths in the table maps are 3 bytes a character.
_TEXT = "utf8mb3"


def _col(name: str, data_type: str, unsigned: bool = False, labels: tuple[str, ...] = ()) -> ColumnInfo:
    text = data_type in ("varchar", "text", "enum")
    return ColumnInfo(name, data_type, unsigned, _TEXT if text else None, labels)


def _varchars(*names: str) -> list[ColumnInfo]:
    return [_col(n, "varchar") for n in names]


#: The watched tables the recordings write, in VICIdial's column order (the order of
#: the rows in each case.json; types and labels as docs/vicidial.md lists them).
COLUMNS: dict[str, tuple[ColumnInfo, ...]] = {
    "vicidial_list": (
        _col("lead_id", "int", True),
        _col("entry_date", "datetime"),
        _col("modify_date", "timestamp"),
        *_varchars("status", "user", "vendor_lead_code", "source_id"),
        _col("list_id", "bigint", True),
        _col("gmt_offset_now", "decimal"),
        _col("called_since_last_reset", "enum", labels=("Y", "N", *(f"Y{i}" for i in range(1, 11)), "D")),
        *_varchars(
            "phone_code",
            "phone_number",
            "title",
            "first_name",
            "middle_initial",
            "last_name",
            "address1",
            "address2",
            "address3",
            "city",
            "state",
            "province",
            "postal_code",
            "country_code",
        ),
        _col("gender", "enum", labels=("M", "F", "U")),
        _col("date_of_birth", "date"),
        *_varchars("alt_phone", "email", "security_phrase", "comments"),
        _col("called_count", "smallint", True),
        _col("last_local_call_time", "datetime"),
        _col("rank", "smallint"),
        _col("owner", "varchar"),
        _col("entry_list_id", "bigint", True),
    ),
    "vicidial_api_log": (
        _col("api_id", "int", True),
        _col("user", "varchar"),
        _col("api_date", "datetime"),
        *_varchars("api_script", "function", "agent_user", "value", "result", "result_reason", "source"),
        _col("data", "text"),
        _col("run_time", "varchar"),
        _col("webserver", "smallint", True),
        _col("api_url", "int", True),
    ),
    "vicidial_url_log": (
        _col("url_log_id", "int", True),
        _col("uniqueid", "varchar"),
        _col("url_date", "datetime"),
        _col("url_type", "varchar"),
        _col("response_sec", "smallint", True),
        _col("url", "text"),
        _col("url_response", "text"),
    ),
    "custom_102": (_col("lead_id", "int", True), _col("favorite_color", "varchar"), _col("cf_notes", "text")),
}


@dataclass(frozen=True, slots=True)
class RecordedCase:
    """One recorded case: what VICIdial was asked, wrote and sent."""

    name: str
    case: dict[str, Any]
    binlog: bytes

    @property
    def binlog_file(self) -> str:
        return str(self.case["binlog_file"])

    @property
    def request_lines(self) -> list[str]:
        """The request lines VICIdial sent, in order (``requests.txt``)."""
        text = (ROOT / self.name / "requests.txt").read_text(encoding="utf-8")
        return [line for line in text.splitlines() if line.startswith("GET ")]

    def rows(self, table: str) -> list[dict[str, str]]:
        return list(self.case["rows"].get(table, []))

    def items(self, tables: Sequence[str], chunk_bytes: int = 1 << 16) -> list[SourceItem]:
        """The binlog replayed through the fast reader."""
        return read_recorded(
            file_events(self.binlog), COLUMNS, file=self.binlog_file, tables=tables, chunk_bytes=chunk_bytes
        )


def names() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if (p / "case.json").is_file())


@cache
def load(name: str) -> RecordedCase:
    folder = ROOT / name
    case = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    return RecordedCase(name, case, (folder / "binlog.bin").read_bytes())


@cache
def settings() -> dict[str, Any]:
    """The reconstructed settings in force (``settings.json``; see its ``_doc``)."""
    return dict(json.loads((ROOT / "settings.json").read_text(encoding="utf-8")))
