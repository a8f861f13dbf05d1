"""The state file's schema: ordered migrations, versioned with ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from ..errors import StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

#: Ordered migrations; migration ``i`` takes ``user_version`` from ``i`` to ``i + 1``.
#: Append only: never edit a migration that has shipped.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE delivery (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after pruning
            source TEXT NOT NULL,
            lead_id INTEGER NOT NULL,
            endpoint_id TEXT NOT NULL,
            list_id INTEGER NOT NULL,
            method TEXT NOT NULL,
            url TEXT NOT NULL,
            body BLOB NOT NULL,
            content_type TEXT NOT NULL,
            url_source TEXT NOT NULL,
            inserted_at INTEGER NOT NULL,
            idempotency_key TEXT NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead')),
            attempts INTEGER NOT NULL,
            next_attempt_at REAL NOT NULL,
            last_status INTEGER NOT NULL,
            last_error TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            delivered_at REAL,
            UNIQUE (source, lead_id, endpoint_id)
        )""",
        # claim_due without exclusions, next_due_at
        "CREATE INDEX delivery_due ON delivery (state, next_attempt_at)",
        # claim_due per endpoint (its order is next_attempt_at, id), counts, list_dead
        "CREATE INDEX delivery_endpoint ON delivery (state, endpoint_id, next_attempt_at)",
        # prune_delivered
        "CREATE INDEX delivery_delivered ON delivery (delivered_at) WHERE state = 'delivered'",
        """CREATE TABLE checkpoint (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            file TEXT NOT NULL,
            pos INTEGER NOT NULL,
            gtid TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
    # 2: the schema history of watched tables (cdc.reader.schemahistory), written by the reader.
    (
        """CREATE TABLE schema_history (
            db TEXT NOT NULL,
            table_name TEXT NOT NULL,
            file TEXT NOT NULL,  -- the columns hold from this binlog position on
            pos INTEGER NOT NULL,
            columns TEXT NOT NULL,  -- JSON (cdc.reader.schemahistory.columns_to_json)
            learned_at REAL NOT NULL,
            PRIMARY KEY (db, table_name, file, pos)
        ) WITHOUT ROWID""",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`, inside the caller's write transaction.

    A newer schema (a downgrade) and another application's database are refused.
    """
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        msg = (
            f"{path} has schema version {version}, newer than this vicidial-cdc"
            f" understands ({SCHEMA_VERSION}); upgrade vicidial-cdc"
        )
        raise StoreError(msg)
    if version == 0 and conn.execute("SELECT 1 FROM sqlite_master").fetchone():
        msg = f"{path} is an SQLite database of another application; point state.path at a new file"
        raise StoreError(msg)
    for statements in MIGRATIONS[version:]:
        for statement in statements:
            conn.execute(statement)
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
