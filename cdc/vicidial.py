"""VICIdial's vocabulary: the facts about VICIdial the streamer relies on, each once.

Table names, the ``apinewlead`` url type, ``---DISABLED---``, the first schema version
that sends the URL itself, the URL length and ``VAR`` rules, ``custom_<list_id>`` table
names, the api_log functions and results that add a lead, and the add_lead api_log
``data`` field. Sources: ``/work/shared/vicidial.md`` and
VICIdial's ``www/vicidial/non_agent_api.php`` (its ``apinewlead`` section). Pure; imports
nothing from the project, so every layer may use it.
"""

from __future__ import annotations

LEAD_TABLE = "vicidial_list"
API_LOG_TABLE = "vicidial_api_log"
URL_LOG_TABLE = "vicidial_url_log"
URL_MULTI_TABLE = "vicidial_url_multi"
LISTS_TABLE = "vicidial_lists"
LIST_FIELDS_TABLE = "vicidial_lists_fields"
SYSTEM_SETTINGS_TABLE = "system_settings"

#: The ``url_type`` of API New Lead URL rows (``vicidial_url_multi``, ``vicidial_url_log``).
URL_TYPE = "apinewlead"
#: ``vicidial_url_multi.campaign_id`` of the system-wide API New Lead URL row.
SYSTEM_CAMPAIGN_ID = "-SYSTEM-API-NEWLEAD-"
#: A list value that means "no request", even when the system level has a URL.
DISABLED = "---DISABLED---"
#: First ``db_schema_version`` whose PHP sends ``apinewlead`` itself.
SENDER_SCHEMA_VERSION = 1726
#: VICIdial sends only a URL longer than this many characters (``strlen($url) > 10``).
MIN_URL_CHARS = 10
#: The template prefix VICIdial removes (``preg_replace('/^VAR/', '', $url)``: upper case only).
VAR_PREFIX = "VAR"
CUSTOM_TABLE_PREFIX = "custom_"

#: ``vicidial_list`` columns in VICIdial's order.
LEAD_COLUMNS: tuple[str, ...] = (
    "lead_id", "entry_date", "modify_date", "status", "user", "vendor_lead_code",
    "source_id", "list_id", "gmt_offset_now", "called_since_last_reset", "phone_code",
    "phone_number", "title", "first_name", "middle_initial", "last_name", "address1",
    "address2", "address3", "city", "state", "province", "postal_code", "country_code",
    "gender", "date_of_birth", "alt_phone", "email", "security_phrase", "comments",
    "called_count", "last_local_call_time", "rank", "owner", "entry_list_id",
)  # fmt: skip
#: ``add_lead`` never writes a custom field whose label is one of these (case-sensitive,
#: VICIdial's ``$vicidial_list_fields``): the ``vicidial_list`` columns the call sets.
ADD_LEAD_FIELDS = frozenset(LEAD_COLUMNS) - {"entry_date", "modify_date", "status", "user", "entry_list_id"}


def is_disabled(value: str) -> bool:
    """Whether a URL value is ``---DISABLED---`` (surrounding blanks ignored)."""
    return value.strip() == DISABLED


def long_enough(url: str) -> bool:
    """VICIdial's length rule: a template of :data:`MIN_URL_CHARS` characters or fewer is not sent.

    It applies to the value as stored (no trim), before ``VAR`` is stripped and tokens are
    substituted: ``non_agent_api.php`` checks ``strlen($apinewlead_url) > 10`` first.
    """
    return len(url) > MIN_URL_CHARS


def strip_var(template: str) -> str:
    """``template`` without VICIdial's leading ``VAR`` (case-sensitive, as VICIdial's regex)."""
    return template[len(VAR_PREFIX) :] if template.startswith(VAR_PREFIX) else template


def custom_table(list_id: int) -> str:
    """The name of a list's custom-fields table."""
    return f"{CUSTOM_TABLE_PREFIX}{list_id:d}"


def custom_table_list_id(table: str) -> int | None:
    """The list_id of a ``custom_<list_id>`` table name, else ``None``."""
    if not table.startswith(CUSTOM_TABLE_PREFIX):
        return None
    digits = table[len(CUSTOM_TABLE_PREFIX) :]
    return int(digits) if digits.isascii() and digits.isdigit() else None


#: ``vicidial_api_log.function`` of the two calls that insert a lead.
ADD_LEAD = "add_lead"
UPDATE_LEAD = "update_lead"
#: ``vicidial_api_log.result`` of a call that did what it was asked.
API_SUCCESS = "SUCCESS"
#: In ``result_reason`` of an ``update_lead`` that inserted (``insert_if_not_found=Y``).
LEAD_ADDED_REASON = "LEAD HAS BEEN ADDED"

#: Fields of the add_lead api_log ``data`` column (``phone|list_id|lead_id|gmt``).
DATA_LIST_ID = 1
DATA_LEAD_ID = 2


def api_log_data_field(data: str, index: int) -> str | None:
    """Field ``index`` of an api_log ``data`` value (``|``-separated), ``None`` when absent."""
    fields = data.split("|")
    return fields[index] if len(fields) > index else None
