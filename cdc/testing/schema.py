"""Create a VICIdial-shaped database for tests, the demo and benchmarks.

The DDL lives in ``vicidial_schema.sql`` next to this module. Tables are MyISAM (the
hopper is MEMORY) and, like VICIdial's, declare no charset: they follow the database
default set here. ``vicidial_url_multi`` is a utf8 table, as in VICIdial.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from .. import vicidial
from ..hooks import configured
from .mariadb import Charset

__all__ = [
    "OLD_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "TABLES",
    "create_vicidial_schema",
    "schema_statements",
]

#: ``db_schema_version`` written by default (a current build).
SCHEMA_VERSION = 1728
#: ``db_schema_version`` written for an old build (``with_apinewlead=False``): the last
#: one before VICIdial sent the API New Lead URL itself.
OLD_SCHEMA_VERSION = vicidial.SENDER_SCHEMA_VERSION - 1
VERSION = "2.14b0.5"

#: Every table the DDL file creates, in file order.
TABLES: tuple[str, ...] = (
    vicidial.LEAD_TABLE, vicidial.API_LOG_TABLE, "vicidial_api_urls", vicidial.URL_MULTI_TABLE,
    vicidial.LISTS_TABLE, vicidial.LIST_FIELDS_TABLE, vicidial.URL_LOG_TABLE,
    vicidial.SYSTEM_SETTINGS_TABLE, "vicidial_users", "vicidial_list_alt_phones", "vicidial_hopper",
    "vicidial_callbacks", "vicidial_live_agents", "vicidial_auto_calls", "vicidial_log", "call_log",
    "vicidial_manager", configured.CAMPAIGNS, configured.INGROUPS,
)  # fmt: skip

#: ``url_type`` ENUM labels of a current build; an old build lacks ``apinewlead``.
_URL_TYPES_NEW = ("dispo", "start", "addlead", "noagent", vicidial.URL_TYPE, "")
_URL_TYPES_OLD = tuple(label for label in _URL_TYPES_NEW if label != vicidial.URL_TYPE)
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")

# The default API user, as a fresh VICIdial install has it. The password is a sentinel
# that tests can search for: nothing in vicidial-cdc may ever read or log it.
DEFAULT_API_USER = "6666"
DEFAULT_API_PASS = "s3cret-api-pass-1234"


def schema_statements(*, with_apinewlead: bool = True) -> list[str]:
    """The CREATE TABLE statements of ``vicidial_schema.sql``, placeholders filled."""
    text = resources.files(__package__).joinpath("vicidial_schema.sql").read_text("utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    labels = _URL_TYPES_NEW if with_apinewlead else _URL_TYPES_OLD
    body = "\n".join(lines).replace("{url_type_values}", ",".join(f"'{label}'" for label in labels))
    return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


def create_vicidial_schema(
    conn: Any,
    database: str = "asterisk",
    charset: Charset = "utf8mb4",
    *,
    with_apinewlead: bool = True,
) -> None:
    """Create ``database`` with VICIdial's tables, the system row and the API user.

    ``conn`` is a PyMySQL connection with CREATE rights; it is left using
    ``database``. ``with_apinewlead=False`` builds an old VICIdial: the ``url_type``
    ENUM lacks ``apinewlead`` and ``db_schema_version`` is below
    :data:`cdc.vicidial.SENDER_SCHEMA_VERSION`. Fails if the
    database exists.
    """
    if not _DATABASE_NAME.match(database):
        raise ValueError(f"database name must match {_DATABASE_NAME.pattern}: {database!r}")
    if charset not in ("utf8mb4", "latin1"):
        raise ValueError(f"charset must be utf8mb4 or latin1, got {charset!r}")
    version = SCHEMA_VERSION if with_apinewlead else OLD_SCHEMA_VERSION
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}` DEFAULT CHARACTER SET {charset}")
        cur.execute(f"USE `{database}`")
        for statement in schema_statements(with_apinewlead=with_apinewlead):
            cur.execute(statement)
        cur.execute(
            "INSERT INTO system_settings (version, install_date, use_non_latin,"
            " db_schema_version, db_schema_update_date, custom_fields_enabled,"
            " active_modules) VALUES (%s, DATE_FORMAT(NOW(), '%%Y-%%m-%%d'), '0', %s, NOW(),"
            " '1', '')",
            (VERSION, version),
        )
        cur.execute(
            "INSERT INTO vicidial_users (user, pass, full_name, user_level, user_group,"
            " vdc_agent_api_access, failed_login_count) VALUES (%s, %s, 'Admin', 9,"
            " 'ADMIN', '1', 0)",
            (DEFAULT_API_USER, DEFAULT_API_PASS),
        )
