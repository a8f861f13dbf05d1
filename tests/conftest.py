"""Shared fixtures: private MariaDB servers and fresh VICIdial databases.

- ``mariadb`` (session): one private utf8mb4 server, binlog ROW/FULL metadata.
- ``mariadb_factory``: ``start(charset=..., row_metadata=..., **kwargs)`` starts an
  extra server, stopped at the end of the test.
- ``vicidial_db``: the name of a fresh VICIdial database on ``mariadb`` (dropped
  afterwards); parametrize it indirectly with ``{"charset": ..., "with_apinewlead": ...}``.
- ``vicidial``: a :class:`cdc.testing.simulate.Vicidial` writing to ``vicidial_db``.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import MariaDBFactory

from cdc.testing.mariadb import PrivateMariaDB, ensure_installed
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

_db_numbers = itertools.count(1)
_SERVER_FIXTURES = frozenset({"mariadb", "mariadb_factory"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start or use a private server carry the ``mariadb`` marker."""
    for item in items:
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.mariadb)


@pytest.fixture(scope="session")
def mariadb() -> Iterator[PrivateMariaDB]:
    ensure_installed(allow_install=True)
    server = PrivateMariaDB(charset="utf8mb4", row_metadata="FULL")
    with server:
        yield server


@pytest.fixture
def mariadb_factory() -> Iterator[MariaDBFactory]:
    ensure_installed(allow_install=True)
    with contextlib.ExitStack() as stack:

        def start(*, charset: str = "utf8mb4", row_metadata: str = "FULL", **kwargs: Any) -> PrivateMariaDB:
            server = PrivateMariaDB(charset=charset, row_metadata=row_metadata, **kwargs)  # type: ignore[arg-type]
            stack.callback(server.close)
            server.start()
            return server

        yield start


@pytest.fixture
def vicidial_db(mariadb: PrivateMariaDB, request: pytest.FixtureRequest) -> Iterator[str]:
    params: dict[str, Any] = getattr(request, "param", {})
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")
    name = f"vd{next(_db_numbers)}_{slug}"[:64]
    with contextlib.closing(mariadb.connect()) as conn:
        create_vicidial_schema(conn, name, **params)
    yield name
    with contextlib.closing(mariadb.connect()) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def vicidial(mariadb: PrivateMariaDB, vicidial_db: str) -> Iterator[Vicidial]:
    with Vicidial.connect(mariadb, database=vicidial_db, seed=0) as sim:
        yield sim
