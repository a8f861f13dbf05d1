"""Admin changes, as VICIdial's admin pages write them: lists, custom fields, URLs, system settings.

These are the rows the streamer's settings cache follows (``vicidial_url_multi``,
``vicidial_lists``, ``vicidial_lists_fields``, ``system_settings``) and the
``custom_<list_id>`` tables add_lead fills. Each call executes at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ... import vicidial
from ...vicidial import SYSTEM_CAMPAIGN_ID
from .steps import PhpText, Result, Statement

__all__ = ["AdminWrites", "check_label"]

_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}$")


def check_label(label: str) -> str:
    """``label`` when VICIdial accepts it as a custom field label (it becomes a column name)."""
    if not _LABEL.match(label):
        raise ValueError(f"custom field label must match {_LABEL.pattern}: {label!r}")
    return label


class AdminWrites:
    """The admin pages' writes, executed through ``run`` with text sent as ``text`` says."""

    def __init__(self, run: Callable[[Statement], Result], text: PhpText) -> None:
        self._run = run
        self._text = text

    def _execute(self, sql: str, *args: Any) -> Result:
        return self._run(Statement(sql, tuple(args)))

    def set_system_url(self, url: str, *, active: str = "Y") -> None:
        """Set the system-level API New Lead URL (insert or update its row)."""
        self._upsert_url(SYSTEM_CAMPAIGN_ID, "system", url, active)

    def delete_system_url(self) -> None:
        self._execute(
            f"DELETE FROM {vicidial.URL_MULTI_TABLE} WHERE campaign_id=%s AND entry_type='system'"
            " AND url_type=%s",
            SYSTEM_CAMPAIGN_ID,
            vicidial.URL_TYPE,
        )

    def set_list_url(self, list_id: int, url: str, *, active: str = "Y") -> None:
        """Set a list's API New Lead URL (``---DISABLED---`` turns it off)."""
        self._upsert_url(str(list_id), "list", url, active)

    def delete_list_url(self, list_id: int) -> None:
        self._execute(
            f"DELETE FROM {vicidial.URL_MULTI_TABLE} WHERE campaign_id=%s AND entry_type='list'"
            " AND url_type=%s",
            str(list_id),
            vicidial.URL_TYPE,
        )

    def add_list(
        self,
        list_id: int,
        name: str = "",
        campaign_id: str = "TESTCAMP",
        description: str = "",
        *,
        active: str = "Y",
    ) -> None:
        self._execute(
            f"INSERT INTO {vicidial.LISTS_TABLE} (list_id, list_name, campaign_id, active,"
            " list_description, list_changedate, web_form_address, web_form_address_two,"
            " na_call_url) VALUES (%s, %s, %s, %s, %s, NOW(), '', '', '')",
            list_id,
            self._text(name or f"List {list_id}"),
            self._text(campaign_id),
            active,
            self._text(description),
        )

    def update_list(
        self,
        list_id: int,
        *,
        name: str | None = None,
        campaign_id: str | None = None,
        description: str | None = None,
    ) -> None:
        changes = {"list_name": name, "campaign_id": campaign_id, "list_description": description}
        sets = [(column, value) for column, value in changes.items() if value is not None]
        if not sets:
            return
        assignments = ", ".join(f"{column}=%s" for column, _ in sets)
        self._execute(
            f"UPDATE {vicidial.LISTS_TABLE} SET {assignments}, list_changedate=NOW() WHERE list_id=%s",
            *[self._text(value) for _, value in sets],
            list_id,
        )

    def add_custom_fields(self, list_id: int, fields: Iterable[tuple[str, bool]]) -> None:
        """Create ``custom_<list_id>`` (if needed) and add one VARCHAR column per field.

        As VICIdial's admin page does: one ALTER TABLE and one ``vicidial_lists_fields``
        row per field. ``fields`` are ``(label, encrypt)`` pairs.
        """
        table = vicidial.custom_table(int(list_id))
        self._execute(
            f"CREATE TABLE IF NOT EXISTS `{table}` (lead_id INT(9) UNSIGNED PRIMARY KEY NOT NULL)"
            " ENGINE=MyISAM"
        )
        for rank, (label, encrypt) in enumerate(fields, start=1):
            size = 255 if encrypt else 100
            self._execute(f"ALTER TABLE `{table}` ADD `{check_label(label)}` VARCHAR({size})")
            self._execute(
                f"INSERT INTO {vicidial.LIST_FIELDS_TABLE} (list_id, field_label, field_name,"
                " field_description, field_rank, field_help, field_type, field_options,"
                " field_size, field_max, field_default, field_cost, field_required,"
                " field_order, field_encrypt, field_duplicate) VALUES (%s, %s, %s, '', %s, '',"
                " 'TEXT', '', 20, %s, '', 0, 'N', 1, %s, 'N')",
                list_id,
                label,
                label.replace("_", " ").title(),
                rank,
                size,
                "Y" if encrypt else "N",
            )

    def set_system(
        self,
        *,
        use_non_latin: bool | None = None,
        db_schema_version: int | None = None,
        custom_fields_enabled: bool | None = None,
    ) -> None:
        """Update the ``system_settings`` row; ``None`` leaves a column alone."""
        changes: dict[str, Any] = {}
        if use_non_latin is not None:
            changes["use_non_latin"] = "1" if use_non_latin else "0"
        if db_schema_version is not None:
            changes["db_schema_version"] = db_schema_version
        if custom_fields_enabled is not None:
            changes["custom_fields_enabled"] = "1" if custom_fields_enabled else "0"
        if changes:
            assignments = ", ".join(f"{column}=%s" for column in changes)
            self._execute(f"UPDATE {vicidial.SYSTEM_SETTINGS_TABLE} SET {assignments}", *changes.values())

    def _upsert_url(self, campaign_id: str, entry_type: str, url: str, active: str) -> None:
        found = self._execute(
            f"SELECT url_id FROM {vicidial.URL_MULTI_TABLE} WHERE campaign_id=%s AND entry_type=%s"
            " AND url_type=%s ORDER BY url_id LIMIT 1",
            campaign_id,
            entry_type,
            vicidial.URL_TYPE,
        ).rows
        if found:
            self._execute(
                f"UPDATE {vicidial.URL_MULTI_TABLE} SET url_address=%s, active=%s WHERE url_id=%s",
                self._text(url),
                active,
                found[0][0],
            )
            return
        self._execute(
            f"INSERT INTO {vicidial.URL_MULTI_TABLE} (campaign_id, entry_type, active, url_type, url_rank,"
            " url_statuses, url_description, url_address, url_lists, url_call_length)"
            " VALUES (%s, %s, %s, %s, 1, '', %s, %s, '', 0)",
            campaign_id,
            entry_type,
            active,
            vicidial.URL_TYPE,
            "API New Lead URL",
            self._text(url),
        )
