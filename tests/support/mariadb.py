"""Private MariaDB servers for tests: the factory fixture's type, client settings, grants.sql accounts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from cdc.config import MysqlConfig
from cdc.testing.mariadb import PrivateMariaDB
from support.host import REPO

#: What the ``mariadb_factory`` fixture yields: ``start(charset=..., row_metadata=..., **kwargs)``.
MariaDBFactory = Callable[..., PrivateMariaDB]
GRANTS_SQL = REPO / "deploy" / "sql" / "grants.sql"


def mysql_config(server: PrivateMariaDB, database: str = "asterisk", heartbeat_s: float = 0.2) -> MysqlConfig:
    """Client settings for a reader built directly on ``server`` (root, no password, fast heartbeat)."""
    return MysqlConfig(
        host=server.host,
        port=server.port,
        user="root",
        database=database,
        source="test",
        heartbeat_s=heartbeat_s,
        read_timeout_s=10.0,
    )


def apply_grants(conn: Any, *, database: str, user: str, password: str) -> None:
    """Run deploy/sql/grants.sql with its placeholders filled (password, database, user)."""
    text = GRANTS_SQL.read_text("utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    body = body.replace("asterisk.", f"`{database}`.").replace("'vicidial_cdc'@", f"'{user}'@")
    with conn.cursor() as cur:
        for statement in (s.strip() for s in body.split(";")):
            if statement:
                # The only parameter is the password; every other % is literal.
                sql = statement.replace("%", "%%").replace("'CHANGE-ME'", "%(password)s")
                cur.execute(sql, {"password": password})


@contextlib.contextmanager
def grants_user(server: PrivateMariaDB, database: str, user: str, password: str) -> Iterator[None]:
    """The account grants.sql creates, for ``database`` on ``server``, dropped afterwards."""
    with contextlib.closing(server.connect()) as conn:
        apply_grants(conn, database=database, user=user, password=password)
    try:
        yield
    finally:
        with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
