"""Lead inserts, as VICIdial's PHP writes them: the non-agent API's add_lead and the other paths.

``add_lead`` writes, in VICIdial's order, the ``vicidial_users`` touch, the lead, its
``vicidial_api_log`` SUCCESS row and ``vicidial_api_urls`` row, then the optional alt
phones, custom fields (with ``entry_list_id``), hopper and callback rows, each with
its NOTICE api_log row (see ``../shared/vicidial.md`` and the recorded cases in
``tests/golden/vicidial-recorded/``). The other insert paths (``update_lead`` with
``insert_if_not_found``, the lead loader, an agent's manual dial) and a failed add_lead
write leads or log rows that must fire no URL. Every method is a step sequence.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Generator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from ... import vicidial
from ..schema import DEFAULT_API_USER
from .admin import check_label
from .steps import PhpText, Result, Statement, Steps
from .url_log import url_log_insert, url_log_update

__all__ = ["LeadWrites"]

_SETTABLE_COLUMNS = frozenset(vicidial.LEAD_COLUMNS) - {"lead_id", "modify_date"}
_WEB_IP = "10.10.10.20"


def _gmt(value: object) -> str:
    return f"{Decimal(str(value)):.2f}"


def _ciphertext(value: str) -> str:
    """Stand-in for VICIdial's field encryption: never contains the plain value."""
    return base64.b64encode(hashlib.sha256(value.encode("utf-8")).digest()).decode("ascii")


class LeadWrites:
    """Step sequences of the lead-writing PHP scripts, with text sent as ``text`` says.

    ``rng`` draws the api_log ``run_time``; ``api_pass`` is the password the API user
    puts in the logged ``vicidial_api_urls`` URL (a sentinel tests search for).
    """

    def __init__(self, text: PhpText, rng: random.Random, api_pass: str) -> None:
        self._text = text
        self._rng = rng
        self.api_pass = api_pass

    def add_lead(
        self,
        *,
        phone_number: str,
        list_id: int,
        first_name: str = "",
        last_name: str = "",
        user: str = DEFAULT_API_USER,
        custom: Mapping[str, str] | None = None,
        alt_phones: Sequence[str] = (),
        add_to_hopper: bool = True,
        hopper_campaign_id: str = "TESTCAMP",
        callback: bool = False,
        touch_user: bool = True,
        source: str = "test",
        sent_url: str | None = None,
        **columns: Any,
    ) -> Steps:
        """The statements of one successful non-agent API ``add_lead``, in VICIdial's order.

        ``columns`` are other ``vicidial_list`` columns. ``custom`` fills the list's
        custom fields (``custom_fields=Y``); ``callback`` schedules a callback and sets
        status CBHOLD; ``sent_url`` adds the ``vicidial_url_log`` INSERT + UPDATE of
        VICIdial's own sender (schema 1726+).
        """
        if callback:
            columns.setdefault("status", "CBHOLD")
        lead = self._lead_values(
            phone_number=phone_number,
            list_id=list_id,
            first_name=first_name,
            last_name=last_name,
            user=user,
            columns=columns,
        )
        gmt = lead["gmt_offset_now"]
        if touch_user:
            yield self._touch_user(user)
        lead_id = (yield self._insert_lead(lead)).lastrowid
        yield from self._api_log(
            user=user,
            function="add_lead",
            result="SUCCESS",
            reason="add_lead LEAD HAS BEEN ADDED",
            source=source,
            data=f"{phone_number}|{list_id}|{lead_id}|{gmt}",
            query=f"function=add_lead&phone_number={phone_number}&list_id={list_id}",
        )
        if alt_phones:
            for count, alt in enumerate(alt_phones, start=1):
                yield Statement(
                    "INSERT INTO vicidial_list_alt_phones (lead_id, phone_code, phone_number,"
                    " alt_phone_note, alt_phone_count, active) VALUES (%s, %s, %s, %s, %s, 'Y')",
                    (lead_id, lead["phone_code"], alt, self._text(f"ALT{count}"), count),
                )
            yield from self._add_lead_notice(
                user,
                source,
                "add_lead MULTI-ALT-PHONE NUMBERS LOADED",
                f"{len(alt_phones)}|{lead_id}|{phone_number}",
            )
        if custom is not None:
            yield from self._custom_row(lead_id, list_id, custom)
            yield Statement(
                f"UPDATE {vicidial.LEAD_TABLE} SET entry_list_id=%s WHERE lead_id=%s", (list_id, lead_id)
            )
            yield from self._add_lead_notice(
                user, source, "add_lead CUSTOM FIELDS VALUES ADDED", f"{phone_number}|{lead_id}|{list_id}"
            )
        if add_to_hopper:
            hopper_id = (
                yield Statement(
                    "INSERT INTO vicidial_hopper (lead_id, campaign_id, status, user, list_id,"
                    " gmt_offset_now, state, alt_dial, priority, source, vendor_lead_code)"
                    " VALUES (%s, %s, 'READY', '', %s, %s, %s, 'NONE', 99, 'A', %s)",
                    (
                        lead_id,
                        hopper_campaign_id,
                        list_id,
                        gmt,
                        lead["state"],
                        lead["vendor_lead_code"],
                    ),
                )
            ).lastrowid
            yield from self._add_lead_notice(
                user, source, "add_lead ADDED TO HOPPER", f"{phone_number}|{lead_id}|{hopper_id}"
            )
        if callback:
            callback_id = (
                yield Statement(
                    "INSERT INTO vicidial_callbacks (lead_id, list_id, campaign_id, status,"
                    " entry_time, callback_time, user, recipient, comments, user_group,"
                    " lead_status) VALUES (%s, %s, %s, 'ACTIVE', NOW(),"
                    " NOW() + INTERVAL 1 DAY, %s, 'ANYONE', '', 'ADMIN', 'CALLBK')",
                    (lead_id, list_id, hopper_campaign_id, user),
                )
            ).lastrowid
            yield from self._add_lead_notice(
                user, source, "add_lead SCHEDULED CALLBACK ADDED", f"{phone_number}|{lead_id}|{callback_id}"
            )
        if sent_url is not None:
            url_log_id = (yield url_log_insert(lead_id, sent_url, self._text)).lastrowid
            yield url_log_update(url_log_id, "OK", 0, self._text)
        return lead_id

    def update_lead_insert(
        self,
        *,
        phone_number: str,
        list_id: int,
        user: str = DEFAULT_API_USER,
        source: str = "test",
        **columns: Any,
    ) -> Steps:
        """``update_lead`` with ``insert_if_not_found=Y``: a lead that fires no URL."""
        lead = self._lead_values(phone_number=phone_number, list_id=list_id, user=user, columns=columns)
        yield self._touch_user(user)
        lead_id = (yield self._insert_lead(lead)).lastrowid
        yield from self._api_log(
            user=user,
            function="update_lead",
            result="SUCCESS",
            reason="update_lead LEAD HAS BEEN ADDED",
            source=source,
            data=f"{phone_number}|{list_id}|{lead_id}|{lead['gmt_offset_now']}",
            query=f"function=update_lead&insert_if_not_found=Y&phone_number={phone_number}",
        )
        return lead_id

    def loader_insert(self, *, phone_number: str, list_id: int, **columns: Any) -> Steps:
        """The web lead loader: one ``vicidial_list`` INSERT, no API log row."""
        columns.setdefault("user", "")
        lead = self._lead_values(phone_number=phone_number, list_id=list_id, columns=columns)
        return (yield self._insert_lead(lead)).lastrowid

    def agent_insert(self, *, phone_number: str, list_id: int, agent: str = "1001", **columns: Any) -> Steps:
        """An agent's manual dial of a new number: the lead, then the agent's live row."""
        columns.setdefault("status", "QUEUE")
        columns.setdefault("called_count", 1)
        lead = self._lead_values(phone_number=phone_number, list_id=list_id, user=agent, columns=columns)
        lead_id = (yield self._insert_lead(lead)).lastrowid
        yield Statement(
            "UPDATE vicidial_live_agents SET lead_id=%s, status='INCALL', last_call_time=NOW() WHERE user=%s",
            (lead_id, agent),
        )
        return lead_id

    def failed_add_lead(
        self,
        *,
        phone_number: str,
        list_id: int,
        user: str = DEFAULT_API_USER,
        reason: str = "add_lead INVALID PHONE NUMBER LENGTH",
        source: str = "test",
    ) -> Steps:
        """An ``add_lead`` that fails validation: an ERROR api_log row and no lead."""
        yield self._touch_user(user)
        return (
            yield from self._api_log(
                user=user,
                function="add_lead",
                result="ERROR",
                reason=reason,
                source=source,
                data=f"{phone_number}|{list_id}",
                query=f"function=add_lead&phone_number={phone_number}&list_id={list_id}",
            )
        )

    def _lead_values(
        self,
        *,
        phone_number: str,
        list_id: int,
        first_name: str = "",
        last_name: str = "",
        user: str = "",
        columns: Mapping[str, Any],
    ) -> dict[str, Any]:
        unknown = set(columns) - _SETTABLE_COLUMNS
        if unknown:
            raise TypeError(f"not settable vicidial_list column(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {
            "entry_date": None,  # NOW()
            "status": "NEW",
            "user": user,
            "vendor_lead_code": "",
            "source_id": "",
            "list_id": list_id,
            "gmt_offset_now": "-5.00",
            "called_since_last_reset": "N",
            "phone_code": "1",
            "phone_number": phone_number,
            "title": "",
            "first_name": first_name,
            "middle_initial": "",
            "last_name": last_name,
            "address1": "",
            "address2": "",
            "address3": "",
            "city": "",
            "state": "",
            "province": "",
            "postal_code": "",
            "country_code": "",
            "gender": "U",
            "date_of_birth": "0000-00-00",
            "alt_phone": "",
            "email": "",
            "security_phrase": "",
            "comments": "",
            "called_count": 0,
            "last_local_call_time": "2008-01-01 00:00:00",
            "rank": 0,
            "owner": "",
            "entry_list_id": 0,
        }
        values.update(columns)
        values["gmt_offset_now"] = _gmt(values["gmt_offset_now"])
        return values

    def _insert_lead(self, lead: Mapping[str, Any]) -> Statement:
        names = [name for name in vicidial.LEAD_COLUMNS if name in lead]
        placeholders = ["NOW()" if name == "entry_date" and lead[name] is None else "%s" for name in names]
        args = tuple(
            self._text(lead[name]) for name, holder in zip(names, placeholders, strict=True) if holder == "%s"
        )
        column_list = ",".join(f"`{name}`" if name == "rank" else name for name in names)
        return Statement(
            f"INSERT INTO {vicidial.LEAD_TABLE} ({column_list}) VALUES ({','.join(placeholders)})", args
        )

    def _touch_user(self, user: str) -> Statement:
        return Statement(
            "UPDATE vicidial_users SET last_login_date=NOW(), last_ip=%s, failed_login_count=0 WHERE user=%s",
            (_WEB_IP, self._text(user)),
        )

    def _add_lead_notice(
        self, user: str, source: str, reason: str, data: str
    ) -> Generator[Statement, Result, int]:
        """An add_lead NOTICE row: a step after the lead (alt phones, custom fields, hopper, callback)."""
        return self._api_log(
            user=user,
            function="add_lead",
            result="NOTICE",
            reason=reason,
            source=source,
            data=data,
            query=None,
        )

    def _api_log(
        self,
        *,
        user: str,
        function: str,
        result: str,
        reason: str,
        source: str,
        data: str,
        query: str | None,
    ) -> Generator[Statement, Result, int]:
        """The api_log row and, for the call's main row, its ``vicidial_api_urls`` row."""
        api_id = (
            yield Statement(
                f"INSERT INTO {vicidial.API_LOG_TABLE} (user, api_date, api_script, `function`,"
                " agent_user, value, result, result_reason, source, data, run_time, webserver,"
                " api_url) VALUES (%s, NOW(), 'non-agent', %s, '', '', %s, %s, %s, %s, %s, 1, 0)",
                (
                    self._text(user),
                    function,
                    result,
                    reason,
                    self._text(source),
                    self._text(data),
                    f"{self._rng.uniform(0.002, 0.05):.6f}",
                ),
            )
        ).lastrowid
        if query is not None:
            yield Statement(
                "INSERT INTO vicidial_api_urls (api_id, api_date, remote_ip, url) VALUES (%s, NOW(), %s, %s)",
                (
                    api_id,
                    "192.0.2.10",
                    self._text(
                        f"http://{_WEB_IP}/vicidial/non_agent_api.php?source={source}"
                        f"&user={user}&pass={self.api_pass}&{query}"
                    ),
                ),
            )
        return api_id

    def _custom_row(
        self, lead_id: int, list_id: int, custom: Mapping[str, str]
    ) -> Generator[Statement, Result, None]:
        defined = (
            yield Statement(
                f"SELECT field_label, field_encrypt FROM {vicidial.LIST_FIELDS_TABLE}"
                " WHERE list_id=%s ORDER BY field_rank, field_order",
                (list_id,),
            )
        ).rows
        encrypted = {str(label): flag == "Y" for label, flag in defined}
        unknown = set(custom) - set(encrypted)
        if unknown:
            raise ValueError(f"list {list_id} has no custom field(s): {', '.join(sorted(unknown))}")
        labels = list(encrypted)
        values = []
        for label in labels:
            value = str(custom.get(label, ""))
            values.append(_ciphertext(value) if encrypted[label] and value else self._text(value))
        columns = "".join(f", `{check_label(label)}`" for label in labels)
        holders = ", %s" * len(labels)
        yield Statement(
            f"INSERT INTO {vicidial.custom_table(int(list_id))} (lead_id{columns}) VALUES (%s{holders})",
            (lead_id, *values),
        )
