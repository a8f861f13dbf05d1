"""Who sends what: VICIdial's own sender (its schema), the URL each list resolves to, and
the levels both would send (every lead twice).

A URL template may hold an API key, so only its host is ever shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...modes import VicidialSender, vicidial_sender
from ...records import UrlSource
from ...resolve import check_url
from ...settings import SettingsCache, SettingsSnapshot, url_host
from ...vicidial import (
    DISABLED,
    SENDER_SCHEMA_VERSION,
    SYSTEM_CAMPAIGN_ID,
    URL_TYPE,
    is_disabled,
    long_enough,
    strip_var,
)
from .facts import ServerFacts
from .results import CheckResult, Status, shown_ids

__all__ = ["VicidialBuild", "check_double_send", "check_schema_version", "check_urls", "vicidial_build"]

#: A list_id no list has: ``url_for`` falls back to the system level for it.
_NO_LIST = -1
_SOURCE_TEXT = {
    UrlSource.CONFIG_LIST: "config file [urls.lists]",
    UrlSource.CONFIG_SYSTEM: "config file [urls] system",
    UrlSource.VICIDIAL_LIST: "VICIdial's list setting",
    UrlSource.VICIDIAL_SYSTEM: "VICIdial's system setting",
}


@dataclass(frozen=True, slots=True)
class VicidialBuild:
    """What ``system_settings`` and the ``url_type`` ENUM say about VICIdial's own sender."""

    sender: VicidialSender
    db_schema_version: int


def vicidial_build(facts: ServerFacts) -> VicidialBuild | None:
    """VICIdial's build as the service sees it (:func:`cdc.modes.vicidial_sender`); ``None``: unknown."""
    if facts.settings is None or facts.settings.system_row is None or facts.url_type_labels is None:
        return None
    cache = SettingsCache()
    cache.load((), (), (), facts.settings.system_row)
    snapshot = cache.snapshot()
    sender = vicidial_sender(snapshot, URL_TYPE in facts.url_type_labels)
    return VicidialBuild(sender, snapshot.system.db_schema_version)


def check_schema_version(facts: ServerFacts) -> CheckResult:
    if facts.settings is None or facts.url_type_labels is None:
        return CheckResult(
            "vicidial.schema",
            Status.INFO,
            "unknown: system_settings or vicidial_url_multi is not readable (see the grant and table checks)",
        )
    build = vicidial_build(facts)
    if build is None:  # system_settings has no row
        return CheckResult(
            "vicidial.schema",
            Status.WARN,
            "system_settings has no row: the VICIdial version is unknown",
            "check [mysql] database: VICIdial's system_settings always has one row",
        )
    version = build.db_schema_version
    has_enum, new_enough = build.sender.enum_has_apinewlead, build.sender.schema_sends
    if build.sender.sends:
        return CheckResult(
            "vicidial.schema",
            Status.INFO,
            f"db_schema_version {version}: this VICIdial build sends API New Lead URLs itself "
            "(synchronously from PHP, once, no retry)",
        )
    if not new_enough and not has_enum:
        return CheckResult(
            "vicidial.schema",
            Status.INFO,
            f"db_schema_version {version}: this VICIdial build has no API New Lead URL sender "
            f"(before {SENDER_SCHEMA_VERSION}); only the streamer sends, with the config file's [urls]",
        )
    half = "lacks" if new_enough else "has"
    return CheckResult(
        "vicidial.schema",
        Status.WARN,
        f"db_schema_version {version} but vicidial_url_multi.url_type {half} 'apinewlead': "
        "a half-upgraded schema; treated as a build that does not send",
        "finish VICIdial's schema upgrade (the upgrade SQL of your VICIdial version), then run check again",
    )


def _own_level(snap: SettingsSnapshot, list_id: int) -> bool:
    """True when the list has its own value (config or VICIdial), even blank."""
    return list_id in snap.overrides.lists or list_id in snap.list_urls


def _sendable(template: str | None) -> bool:
    if template is None:
        return False
    return long_enough(template) and check_url(strip_var(template.strip())) is None


def check_urls(snap: SettingsSnapshot) -> list[CheckResult]:
    """Which URL (host only) each list resolves to, and from where."""
    results: list[CheckResult] = []
    resolved_any = False
    levels: list[int | None] = [None, *(i for i in sorted(_known_lists(snap)) if _own_level(snap, i))]
    for list_id in levels:
        template, source, _ = snap.url_for(_NO_LIST if list_id is None else list_id)
        name = "url.system" if list_id is None else f"url.list.{list_id}"
        who = "lists without their own URL" if list_id is None else f"list {list_id}"
        if template is None or source is None:
            results.append(CheckResult(name, Status.INFO, f"{who}: {_no_url_reason(snap, list_id)}"))
            continue
        where = _SOURCE_TEXT[source]
        if not _sendable(template):
            results.append(
                CheckResult(
                    name,
                    Status.WARN,
                    f"{who}: the URL from {where} is not a full http(s)://host URL longer than "
                    "10 characters: neither VICIdial nor the streamer sends it",
                    f"set a full URL in {where}, e.g. https://crm.example.com/lead?phone=--A--phone_number--B--",
                )
            )
            continue
        resolved_any = True
        results.append(CheckResult(name, Status.INFO, f"{who} → {url_host(template)} (from {where})"))
    inheriting = [i for i in sorted(_known_lists(snap)) if not _own_level(snap, i)]
    if inheriting:
        results.append(
            CheckResult(
                "url.lists",
                Status.INFO,
                f"{len(inheriting)} list(s) use the system level: {shown_ids(inheriting)}",
            )
        )
    if not resolved_any:
        results.append(
            CheckResult(
                "urls",
                Status.WARN,
                "no list resolves to a URL: the streamer has nothing to send",
                '[urls] system = "https://crm.example.com/lead?phone=--A--phone_number--B--" in the '
                "config file (or [urls.lists] per list), or the API New Lead URL in VICIdial "
                f"(db_schema_version {SENDER_SCHEMA_VERSION}+)",
            )
        )
    return results


def _known_lists(snap: SettingsSnapshot) -> set[int]:
    return set(snap.lists) | set(snap.list_urls) | set(snap.overrides.lists)


def _no_url_reason(snap: SettingsSnapshot, list_id: int | None) -> str:
    if list_id is not None:
        from_config = list_id in snap.overrides.lists
        value = snap.overrides.lists[list_id] if from_config else snap.list_urls.get(list_id, "")
        if is_disabled(value):
            where = _SOURCE_TEXT[UrlSource.CONFIG_LIST if from_config else UrlSource.VICIDIAL_LIST]
            return f"{DISABLED} in {where}: no request"
        return "no URL at the list or system level: no request"
    if snap.overrides.system is not None and is_disabled(snap.overrides.system):
        return f"{DISABLED} in {_SOURCE_TEXT[UrlSource.CONFIG_SYSTEM]}: no request"
    return "no system-level URL: no request"


def check_double_send(
    facts: ServerFacts, ours: SettingsSnapshot, vicidial_view: SettingsSnapshot
) -> list[CheckResult]:
    """Levels whose leads VICIdial sends itself and the streamer sends too.

    The streamer (no watch mode yet) sends every URL it resolves, from the config file
    or from VICIdial's own rows, so on a build that sends, any level both resolve gets
    two requests per lead.
    """
    build = vicidial_build(facts)
    if build is None or not build.sender.sends:
        why = "unknown build" if build is None else f"db_schema_version {build.db_schema_version}"
        return [
            CheckResult(
                "double_send",
                Status.OK,
                f"VICIdial does not send API New Lead URLs itself ({why}): only the streamer sends",
            )
        ]
    results: list[CheckResult] = []
    levels: list[int | None] = [None, *(i for i in sorted(_known_lists(ours)) if _own_level(ours, i))]
    for list_id in levels:
        key = _NO_LIST if list_id is None else list_id
        theirs, their_source, _ = vicidial_view.url_for(key)
        mine, my_source, _ = ours.url_for(key)
        if not (_sendable(theirs) and _sendable(mine)) or their_source is None or my_source is None:
            continue
        name = "double_send.system" if list_id is None else f"double_send.list.{list_id}"
        who = "lists without their own URL" if list_id is None else f"list {list_id}"
        results.append(
            CheckResult(
                name,
                Status.WARN,
                f"{who}: every lead is sent twice, by VICIdial ({url_host(theirs)}, "
                f"{_SOURCE_TEXT[their_source]}) and by the streamer ({url_host(mine)}, "
                f"{_SOURCE_TEXT[my_source]})",
                _double_send_fix(list_id, their_source, my_source, vicidial_view),
            )
        )
    if not results:
        results.append(
            CheckResult("double_send", Status.OK, "no list is sent by both VICIdial and the streamer")
        )
    return results


def _double_send_fix(
    list_id: int | None, their_source: UrlSource, my_source: UrlSource, vicidial_view: SettingsSnapshot
) -> str:
    """Two exact ways out: the streamer leaves the level alone, or VICIdial does."""
    if list_id is None:
        table, key = "[urls]", "system"
    else:
        table, key = "[urls.lists]", str(list_id)
    lines = [f'either leave it to VICIdial: in the config file, under {table}: {key} = "{DISABLED}"']
    if my_source in (UrlSource.CONFIG_LIST, UrlSource.CONFIG_SYSTEM):
        lines.append("or let the streamer send it (with retries), and turn VICIdial's off:")
    else:
        lines.append(
            "or let the streamer send it (with retries): copy VICIdial's URL into the config file, "
            f'under {table}: {key} = "<the URL>", then turn VICIdial\'s off:'
        )
    url_type = f"url_type='{URL_TYPE}'"
    if list_id is None:
        lines.append(
            "UPDATE vicidial_url_multi SET url_address='' WHERE "
            f"campaign_id='{SYSTEM_CAMPAIGN_ID}' AND entry_type='system' AND {url_type};"
        )
    elif their_source is UrlSource.VICIDIAL_LIST or list_id in vicidial_view.list_urls:
        lines.append(
            f"UPDATE vicidial_url_multi SET url_address='{DISABLED}' WHERE "
            f"campaign_id='{list_id}' AND entry_type='list' AND {url_type};"
        )
    else:  # VICIdial sends this list its system URL: a list row turns off only this list
        lines.append(
            "INSERT INTO vicidial_url_multi (campaign_id, entry_type, active, url_type, url_address) "
            f"VALUES ('{list_id}', 'list', 'Y', '{URL_TYPE}', '{DISABLED}');"
        )
    return "\n".join(lines)
