"""The fixtures every test directory shares (registered by ``tests/conftest.py``).

Servers and databases:

- ``mariadb`` (session): one private utf8mb4 server, binlog ROW/FULL metadata.
- ``mariadb_factory``: ``start(charset=..., row_metadata=..., **kwargs)`` starts an
  extra server, stopped at the end of the test.
- ``vicidial_db``: the name of a fresh VICIdial database on ``mariadb`` (dropped
  afterwards); parametrize it indirectly with ``{"charset": ..., "with_apinewlead": ...}``.
- ``vicidial``: a :class:`cdc.testing.simulate.Vicidial` writing to ``vicidial_db``.

The pipeline:

- ``receiver``: a real HTTP receiver on 127.0.0.1; ``receivers``: three more.
- ``start_pipeline``: ``await start_pipeline(server, database, state=..., config=...,
  **reader_settings)`` starts a Service in the test's loop (stopped at the end).
- ``pipeline``: the harness on the session server: server, database, simulator,
  receiver and ``start`` in one (:class:`support.harness.Pipeline`).

Both readers, one way: a test marked ``@pytest.mark.both_readers`` runs once per
``reader.decoder`` (ids ``[fast]`` and ``[library]``). Its ``decoder`` fixture names the
reader; every service ``start_pipeline`` starts in that test uses it, and
``reader_class`` is the reader class to build directly. Select with
``-m both_readers`` and ``-k library`` / ``-k fast``.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cdc.config import DECODERS, ReaderConfig
from cdc.reader import ReaderFactory, reader_for
from cdc.testing.mariadb import PrivateMariaDB, ensure_installed
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial
from support.harness import Pipeline, StartPipeline, pipeline_starter
from support.mariadb import MariaDBFactory

_db_numbers = itertools.count(1)
_SERVER_FIXTURES = frozenset({"mariadb", "mariadb_factory"})
BOTH_READERS = "both_readers"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A ``both_readers`` test runs once per reader; its ``decoder`` fixture names it."""
    if metafunc.definition.get_closest_marker(BOTH_READERS) is None:
        return
    if "decoder" not in metafunc.fixturenames:
        msg = f"{metafunc.definition.nodeid} is marked {BOTH_READERS} but uses no reader"
        raise pytest.UsageError(msg)
    metafunc.parametrize("decoder", DECODERS, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start or use a private server carry the ``mariadb`` marker."""
    for item in items:
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.mariadb)


@pytest.fixture
def decoder(request: pytest.FixtureRequest) -> str | None:
    """The reader of a ``both_readers`` test (``fast`` or ``library``); ``None`` elsewhere
    (services then use the configured default)."""
    value: str | None = getattr(request, "param", None)
    return value


@pytest.fixture
def reader_class(decoder: str | None) -> ReaderFactory:
    """The reader class ``decoder`` names, for tests that build a reader directly."""
    return reader_for(decoder or ReaderConfig().decoder)


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
            server = PrivateMariaDB(charset=charset, row_metadata=row_metadata, **kwargs)
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


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    """Three more receivers on loopback (the ``receiver`` fixture carries the fence)."""
    started = [Receiver(), Receiver(), Receiver()]
    for r in started:
        await r.start()
    try:
        yield started
    finally:
        for r in started:
            await r.stop()


@pytest.fixture
async def start_pipeline(tmp_path: Path, decoder: str | None) -> AsyncIterator[StartPipeline]:
    """``await start_pipeline(server, database, state=..., config=..., **reader_settings)``."""
    async with pipeline_starter(tmp_path, decoder) as start:
        yield start


@pytest.fixture
def pipeline(
    mariadb: PrivateMariaDB,
    vicidial_db: str,
    vicidial: Vicidial,
    receiver: Receiver,
    start_pipeline: StartPipeline,
) -> Pipeline:
    """The harness on the session server: ``pipeline.start(**reader_settings)`` and its parts."""
    return Pipeline(mariadb, vicidial_db, vicidial, receiver, start_pipeline)
