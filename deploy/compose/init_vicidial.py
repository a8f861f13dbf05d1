"""One-shot set-up for the compose demo: a VICIdial-shaped `asterisk` database on the
"mariadb" service (skipped when it exists) and the streamer's account from
deploy/sql/grants.sql, with the password from the secret file the streamer reads too
(mysql.password_file) and host '%' (the streamer connects from another container). Not for production servers: there, an
administrator runs grants.sql by hand.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pymysql

from cdc.testing.schema import create_vicidial_schema

GRANTS = Path("/init/grants.sql")
PASSWORD_FILE = Path("/run/secrets/cdc_mysql_password")


def connect() -> pymysql.connections.Connection:
    deadline = time.monotonic() + 120
    while True:
        try:
            return pymysql.connect(
                host=os.environ.get("MARIADB_HOST", "mariadb"),
                user="root",
                password=os.environ["MARIADB_ROOT_PASSWORD"],
                autocommit=True,
            )
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def grant_statements(password: str) -> list[str]:
    text = "\n".join(
        line for line in GRANTS.read_text("utf-8").splitlines() if not line.lstrip().startswith("--")
    )
    text = text.replace("'CHANGE-ME'", "%(password)s").replace("'127.0.0.1'", "'%%'")
    return [stmt.strip() for stmt in text.split(";") if stmt.strip()]


def main() -> None:
    password = PASSWORD_FILE.read_text("utf-8").rstrip("\r\n")  # as cdc.config reads it
    if not password.strip():
        raise SystemExit(f"init: {PASSWORD_FILE} is empty: put the streamer's MySQL password in it")
    with contextlib.closing(connect()) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'asterisk'")
        if cur.fetchone() is None:
            create_vicidial_schema(conn, "asterisk")
            print("init: created the VICIdial-shaped database asterisk")
        for statement in grant_statements(password):
            cur.execute(statement, {"password": password})
        print("init: account vicidial_cdc@'%' ready")


if __name__ == "__main__":
    main()
