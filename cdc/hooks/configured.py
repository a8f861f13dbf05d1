"""Which hooks this VICIdial is set to fire: its campaign, in-group and list URL settings.

Read by ``vicidial-cdc check`` from ``vicidial_campaigns``, ``vicidial_inbound_groups``,
``vicidial_lists`` and ``vicidial_url_multi`` (the ALT rows a setting of ``ALT`` points
to), to report each configured ``url_type`` and whether ``[hooks] rescue`` covers it.
Pure: the check's facts collector runs the SELECTs (:func:`setting_columns` names the
columns) and hands the rows here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config import HooksConfig
from .types import HOOK_TYPES, Kind

#: A setting that points to the ``vicidial_url_multi`` rows of its owner.
ALT = "ALT"
CAMPAIGNS = "vicidial_campaigns"
INGROUPS = "vicidial_inbound_groups"
LISTS = "vicidial_lists"

#: Per table: its id column, and each URL column with the ``url_type`` it fires.
SETTING_COLUMNS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    CAMPAIGNS: (
        "campaign_id",
        (
            ("dispo_call_url", "dispo"),
            ("start_call_url", "start"),
            ("na_call_url", "na_callurl"),
            ("dead_trigger_url", "dead"),
            ("pause_max_url", "pause_max"),
        ),
    ),
    INGROUPS: (
        "group_id",
        (
            ("dispo_call_url", "dispo"),
            ("start_call_url", "start"),
            ("na_call_url", "na_callurl"),
            ("add_lead_url", "add_lead"),
            ("waiting_call_url_on", "wcu_on"),
            ("waiting_call_url_off", "wcu_off"),
            ("enter_ingroup_url", "enter_ig"),
        ),
    ),
    LISTS: ("list_id", (("na_call_url", "na_callurl"),)),
}
#: ``entry_type`` of ALT rows per table.
_ENTRY_TYPE = {CAMPAIGNS: "campaign", INGROUPS: "ingroup", LISTS: "list"}
#: ``vicidial_url_multi.url_type`` → the ``url_type`` its sends are logged with.
MULTI_TO_LOG = {"dispo": "dispo", "start": "start", "noagent": "na_callurl", "addlead": "add_lead"}
#: The campaign's dead-call trigger sends its URL only for these actions.
_DEAD_URL_ACTIONS = frozenset({"URL", "AUDIO_AND_URL"})


@dataclass(frozen=True, slots=True)
class AltRow:
    """An active ``vicidial_url_multi`` row (``active='Y'``)."""

    campaign_id: str
    entry_type: str
    url_type: str


@dataclass(frozen=True, slots=True)
class ConfiguredHook:
    """One ``url_type`` this VICIdial fires, where it is set, and what the streamer does."""

    url_type: str
    #: Owners (campaign, in-group, list ids) per table that set it, ALT rows included.
    owners: Mapping[str, tuple[str, ...]]
    rescuable: bool
    rescue: bool

    @property
    def summary(self) -> str:
        parts = [f"{len(ids)} {table.removeprefix('vicidial_')}" for table, ids in self.owners.items() if ids]
        return ", ".join(parts)


def setting_columns(table: str, present: Iterable[str]) -> tuple[str, ...]:
    """The id and URL columns of ``table`` that this build has (older builds lack some)."""
    id_column, columns = SETTING_COLUMNS[table]
    have = set(present)
    extra = ("dead_trigger_action",) if table == CAMPAIGNS and "dead_trigger_action" in have else ()
    return (id_column, *(c for c, _ in columns if c in have), *extra)


def configured_hooks(
    settings: Mapping[str, Iterable[Mapping[str, object]]],
    alt_rows: Iterable[AltRow],
    hooks: HooksConfig,
) -> list[ConfiguredHook]:
    """Every hook type set somewhere, in :data:`HOOK_TYPES` order.

    ``settings``: per table, the active rows with the columns :func:`setting_columns`
    named. A value counts when it is not blank; ``ALT`` counts when its owner has an
    active ALT row of that type.
    """
    alts = {(row.campaign_id, row.entry_type, MULTI_TO_LOG.get(row.url_type, "")) for row in alt_rows}
    owners: dict[str, dict[str, set[str]]] = {}
    for table, rows in settings.items():
        id_column, columns = SETTING_COLUMNS[table]
        for row in rows:
            owner = str(row.get(id_column) or "")
            for column, url_type in columns:
                value = str(row.get(column) or "").strip()
                if not value:
                    continue
                if value == ALT and (owner, _ENTRY_TYPE[table], url_type) not in alts:
                    continue
                if url_type == "dead" and str(row.get("dead_trigger_action") or "") not in _DEAD_URL_ACTIONS:
                    continue
                owners.setdefault(url_type, {}).setdefault(table, set()).add(owner)
    out: list[ConfiguredHook] = []
    for url_type, hook in HOOK_TYPES.items():
        if url_type not in owners:
            continue
        by_table = {table: tuple(sorted(ids)) for table, ids in owners[url_type].items()}
        rescuable = hook.kind is Kind.NOTIFY
        out.append(ConfiguredHook(url_type, by_table, rescuable, url_type in hooks.rescue))
    return out
