"""The binlog reader: binlog bytes in, batches of records out; nothing about leads.

The service uses only what this module exports: the :class:`Reader` interface, its
:class:`ReaderStatistics`, and :func:`reader_for`, which turns ``reader.decoder`` into
a :data:`ReaderFactory`. Inside, one component (:mod:`cdc.reader.follower`: thread,
bounded channel, backoff, faults, resume position) reads through one of two sources
composed into it: raw packets (:mod:`cdc.reader.raw`, the default) or
``mysql-replication`` events (:mod:`cdc.reader.library`, the reference and fallback).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Unpack

from ..config import MysqlConfig
from ..records import Position
from .follower import BinlogReader
from .interface import Reader, ReaderFactory, ReaderOptions, ReaderStatistics
from .library import LibrarySource
from .raw import RawSource

__all__ = [
    "Reader",
    "ReaderFactory",
    "ReaderOptions",
    "ReaderStatistics",
    "fast_reader",
    "library_reader",
    "reader_for",
]


def fast_reader(
    mysql: MysqlConfig,
    tables: Iterable[str],
    start: Position | str,
    *,
    linger_s: float = 0.02,
    **options: Unpack[ReaderOptions],
) -> BinlogReader:
    """The reader on the raw source (``reader.decoder = "fast"``); ``linger_s`` as
    :class:`cdc.reader.raw.RawSource` takes it, ``options`` as :class:`cdc.reader.follower.ReaderOptions`."""
    return BinlogReader(mysql, tables, start, source=RawSource(linger_s=linger_s), **options)


def library_reader(
    mysql: MysqlConfig, tables: Iterable[str], start: Position | str, **options: Unpack[ReaderOptions]
) -> BinlogReader:
    """The reader on ``mysql-replication`` (``reader.decoder = "library"``)."""
    return BinlogReader(mysql, tables, start, source=LibrarySource(), **options)


def reader_for(decoder: str) -> ReaderFactory:
    """The reader ``reader.decoder`` names: the fast one unless it says ``library``."""
    if decoder == "library":
        return library_reader
    return fast_reader
