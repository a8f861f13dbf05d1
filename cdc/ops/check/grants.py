"""``SHOW GRANTS`` for ``vicidial-cdc check``: parsing, privilege logic, the GRANTs to print.

A line is parsed on arrival into a :class:`Grant` without its grantee or password hash,
so nothing printed can leak one. The recommended account is REPLICATION SLAVE,
REPLICATION CLIENT on ``*.*`` and SELECT on VICIdial's database (``deploy/sql/grants.sql``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ...vicidb import quote_name

__all__ = [
    "REPLICATION_CLIENT",
    "Grant",
    "account_sql",
    "extra_privileges",
    "has_database_select",
    "has_privilege",
    "is_harmless_grant_line",
    "least_privilege_grants",
    "parse_grant",
    "unquote",
]

#: REPLICATION CLIENT, which MariaDB 10.5.2+ renamed BINLOG MONITOR.
REPLICATION_CLIENT = frozenset({"REPLICATION CLIENT", "BINLOG MONITOR"})
_NEEDED_GLOBAL = frozenset({"USAGE", "REPLICATION SLAVE"}) | REPLICATION_CLIENT
_ALL = frozenset({"ALL PRIVILEGES", "ALL"})

_NAME = r"`(?:[^`]|``)*`|\*|[^\s.`]+"
_OBJECT_RE = re.compile(
    rf"(?:(?P<routine>PACKAGE\s+BODY|PACKAGE|PROCEDURE|FUNCTION|TABLE)\s+)?"
    rf"(?P<db>{_NAME})\.(?P<tbl>{_NAME})\s+TO\s+(?P<tail>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_QUOTED_RE = re.compile(r"`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_GRANT_OPTION_RE = re.compile(r"\bWITH\b.*\bGRANT\s+OPTION\b", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Grant:
    """One privilege line of ``SHOW GRANTS``, without its grantee or password hash.

    ``database`` and ``table`` are ``"*"`` for a wider level; a database-level name may
    hold ``LIKE`` wildcards (``%``, ``_``, with ``\\`` escapes), as MariaDB allows.
    """

    privileges: frozenset[str]
    database: str = "*"
    table: str = "*"
    #: Column-level privileges as printed, e.g. ``SELECT (`lead_id`)``: not table SELECT.
    column_privileges: tuple[str, ...] = ()
    grant_option: bool = False
    #: ``FUNCTION`` / ``PROCEDURE`` / ``PACKAGE`` / ``PACKAGE BODY`` for routine grants.
    routine: str = ""

    @property
    def on(self) -> str:
        """The object as SQL: ``*.*``, ```db`.*``, ```db`.`tbl```."""
        db = "*" if self.database == "*" else quote_name(self.database)
        tbl = "*" if self.table == "*" else quote_name(self.table)
        return f"{self.routine} {db}.{tbl}".lstrip()


def parse_grant(line: str) -> Grant | None:
    """A ``GRANT <privileges> ON <object> TO …`` line of ``SHOW GRANTS``, or ``None``.

    ``None`` for role grants (``GRANT `role` TO …``), ``PROXY`` grants and anything not
    understood. The grantee and any ``IDENTIFIED BY PASSWORD`` hash are dropped.
    """
    text = line.strip()
    if text[:6].upper() != "GRANT ":
        return None
    on_at = _find_on(text, 6)
    if on_at < 0:
        return None
    privileges: set[str] = set()
    column_privileges: list[str] = []
    for item in _split_top_level(text[6:on_at]):
        if "(" in item:
            name, _, columns = item.partition("(")
            column_privileges.append(f"{_normal(name)} ({columns.strip()}")
        elif item.strip():
            privileges.add(_normal(item))
    if privileges == {"PROXY"}:
        return None
    match = _OBJECT_RE.match(text[on_at + 4 :].lstrip())
    if match is None:
        return None
    tail = _QUOTED_RE.sub("", match.group("tail"))
    return Grant(
        privileges=frozenset(privileges),
        database=unquote(match.group("db")),
        table=unquote(match.group("tbl")),
        column_privileges=tuple(column_privileges),
        grant_option=_GRANT_OPTION_RE.search(tail) is not None,
        routine=_normal(match.group("routine") or "").replace("TABLE", ""),
    )


def _find_on(text: str, start: int) -> int:
    """Index of the `` ON `` that ends the privilege list (outside quotes and parentheses)."""
    return next((i for i in _top_level(text, start) if text[i : i + 4].upper() == " ON "), -1)


def _split_top_level(text: str) -> list[str]:
    """Split a privilege list at commas outside parentheses and quotes."""
    cuts = [i for i in _top_level(text) if text[i] == ","]
    bounds = zip([-1, *cuts], [*cuts, len(text)], strict=True)
    return [text[first + 1 : end].strip() for first, end in bounds]


def _top_level(text: str, start: int = 0) -> Iterator[int]:
    """Indexes from ``start`` outside quotes and parentheses (a doubled quote stays quoted)."""
    depth = 0
    quote_char = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote_char:
            if ch == quote_char:
                if text[i + 1 : i + 2] == quote_char:
                    i += 1
                else:
                    quote_char = ""
        elif ch in "`'\"":
            quote_char = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            yield i
        i += 1


def _normal(words: str) -> str:
    return " ".join(words.split()).upper()


def is_harmless_grant_line(line: str) -> bool:
    """Role grants, PROXY grants and ``SET DEFAULT ROLE``: no table privilege in them."""
    text = line.strip().upper()
    return text.startswith(("SET DEFAULT ROLE", "GRANT PROXY ON")) or (
        text.startswith("GRANT ") and _find_on(line.strip(), 6) < 0
    )


def unquote(name: str) -> str:
    """```a``b``` → ``a`b``; unquoted names and ``*`` pass through."""
    if len(name) >= 2 and name[0] == name[-1] == "`":
        return name[1:-1].replace("``", "`")
    return name


def _db_matches(pattern: str, database: str) -> bool:
    """Database-level grant names are ``LIKE`` patterns (``%``, ``_``; ``\\`` escapes)."""
    if pattern == "*":
        return True
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(parts), database, re.DOTALL) is not None


def has_privilege(
    grants: Iterable[Grant], privileges: Iterable[str], database: str = "*", table: str = "*"
) -> bool:
    """True when a grant gives one of ``privileges`` on ``database.table``.

    With the default ``database="*"`` only global grants count (``REPLICATION …``).
    ``ALL PRIVILEGES`` at a level covers every privilege of that level.
    """
    wanted = frozenset(privileges) | _ALL
    for grant in grants:
        if grant.routine or not (grant.privileges & wanted):
            continue
        if grant.database == "*":
            return True
        if database == "*":
            continue
        if grant.table == "*":
            if _db_matches(grant.database, database):
                return True
        elif grant.database == database and grant.table == table:
            return True
    return False


def _names_database(pattern: str, database: str) -> bool:
    """A database-level grant name that is ``database`` itself, not a wider pattern."""
    if pattern == database:
        return True
    return pattern.replace("\\_", "_").replace("\\%", "%") == database


def has_database_select(grants: Iterable[Grant], database: str) -> bool:
    """SELECT on every table of ``database``, present and future (database or global level)."""
    wanted = {"SELECT"} | _ALL
    return any(
        not g.routine and g.table == "*" and g.privileges & wanted and _db_matches(g.database, database)
        for g in grants
    )


def extra_privileges(grants: Iterable[Grant], database: str, tables: Iterable[str]) -> list[str]:
    """Privileges held beyond what the streamer uses, one text per grant (no grantee)."""
    needed_tables = frozenset(tables)
    out: list[str] = []
    for grant in grants:
        note = ""
        if grant.routine:
            extra = set(grant.privileges)
        elif grant.database == "*":
            extra = set(grant.privileges - _NEEDED_GLOBAL)
            if "SELECT" in extra or extra & _ALL:
                note = " (every database on the server, not only VICIdial's)"
        elif grant.table == "*":
            extra = set(grant.privileges - {"USAGE"})
            if _names_database(grant.database, database):
                extra.discard("SELECT")  # the recommended grant
            elif _db_matches(grant.database, database) and ({"SELECT"} | _ALL) & extra:
                note = " (a pattern: every database whose name it matches)"
        elif grant.database == database and grant.table in needed_tables:
            extra = set(grant.privileges - {"SELECT", "USAGE"})
        else:
            extra = set(grant.privileges - {"USAGE"})
        parts = sorted(extra, key=lambda p: (p not in _ALL, p))
        parts.extend(grant.column_privileges)
        if parts:
            option = " WITH GRANT OPTION" if grant.grant_option else ""
            out.append(f"{', '.join(parts)} ON {grant.on}{option}{note}")
        elif grant.grant_option:
            out.append(f"GRANT OPTION ON {grant.on}")
    return out


def account_sql(account: str) -> str:
    """``user@host`` (from CURRENT_USER()) as ``'user'@'host'``."""
    user, sep, host = account.rpartition("@")
    if not sep:
        user, host = account, "%"
    return "'{}'@'{}'".format(user.replace("'", "''"), host.replace("'", "''"))


def least_privilege_grants(account: str, database: str) -> list[str]:
    """The GRANT statements of the recommended account (deploy/sql/grants.sql)."""
    return [
        f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {account};",
        f"GRANT SELECT ON {quote_name(database)}.* TO {account};",
    ]
