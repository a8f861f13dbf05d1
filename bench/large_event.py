"""Time and peak memory of the fast reader through one huge row event.

    .venv/bin/python -m bench.large_event [--mib 64] [--reader cdc.reader]

Starts a private MariaDB (``max_allowed_packet=512M``), writes one ``--mib`` MiB row
into an unwatched table (the reader skips it), then one into a watched ``custom_<id>``
table (the reader decodes it), and after each, in a fresh process, reads the binlog
from before that row to the group end after it (``skip``, ``decode``): wall seconds,
and peak RSS (VmHWM) minus the RSS before reading. One JSON line per case.
``--reader`` names the module whose ``fast_reader`` factory runs (to compare with a copy
of an older version).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import subprocess
import sys
import time
from typing import Any

import pymysql

from cdc.config import MysqlConfig
from cdc.records import GroupEnd, Position
from cdc.testing.mariadb import PrivateMariaDB, ensure_installed

DATABASE = "big"


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


async def _read(module: str, port: int, start: Position, stop: Position) -> dict[str, Any]:
    factory = importlib.import_module(module).fast_reader
    mysql = MysqlConfig(host="127.0.0.1", port=port, user="root", database=DATABASE, read_timeout_s=120.0)
    reader = factory(mysql, {"custom_777"}, start)
    base = _rss_kib("VmRSS")
    if os.environ.get("LARGE_EVENT_TRACE"):
        import tracemalloc

        tracemalloc.start(15)
    began = time.perf_counter()
    reader.start()
    rows = 0
    try:
        while True:
            batch = await reader.get_batch()
            rows += sum(1 for item in batch if not isinstance(item, GroupEnd))
            if any(isinstance(i, GroupEnd) and i.position >= stop for i in batch):
                break
    finally:
        await reader.stop()
    if os.environ.get("LARGE_EVENT_TRACE"):
        import tracemalloc

        print("traced peak MiB", tracemalloc.get_traced_memory()[1] / 2**20, file=sys.stderr)
        for stat in tracemalloc.take_snapshot().statistics("traceback")[:2]:
            print(stat, *stat.traceback.format()[-10:], sep="\n", file=sys.stderr)
    return {
        "seconds": round(time.perf_counter() - began, 3),
        "peak_rss_over_base_mib": round((_rss_kib("VmHWM") - base) / 1024, 1),
        "rows_decoded": rows,
    }


def _position(conn: pymysql.Connection[Any]) -> Position:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    assert row is not None
    return Position(str(row[0]), int(row[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--reader", default="cdc.reader")
    parser.add_argument("--child", nargs=4, metavar=("PORT", "START", "STOP", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        port, start, stop, case = args.child
        f1, _, p1 = start.rpartition(":")
        f2, _, p2 = stop.rpartition(":")
        result = asyncio.run(_read(args.reader, int(port), Position(f1, int(p1)), Position(f2, int(p2))))
        print(json.dumps({"case": case, "mib": args.mib, "reader": args.reader, **result}), flush=True)
        return
    ensure_installed(allow_install=False)
    size = args.mib * 1024 * 1024
    with PrivateMariaDB(options={"max_allowed_packet": "512M"}) as server:
        conn = pymysql.connect(
            host=server.host, port=server.port, user="root", autocommit=True, max_allowed_packet=4 * size
        )
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE}")
            cur.execute(
                f"CREATE TABLE {DATABASE}.big_noise (id INT PRIMARY KEY, data LONGBLOB) ENGINE=MyISAM"
            )
            cur.execute(
                f"CREATE TABLE {DATABASE}.custom_777 (lead_id INT UNSIGNED PRIMARY KEY, notes LONGTEXT)"
                " ENGINE=MyISAM"
            )
            # Each case reads a binlog that ends with its row (a reader reads ahead).
            for case, sql, value in (
                ("skip", f"INSERT INTO {DATABASE}.big_noise VALUES (1, %s)", b"\x01" * size),
                ("decode", f"INSERT INTO {DATABASE}.custom_777 VALUES (1, %s)", "n" * size),
            ):
                begin = _position(conn)
                cur.execute(sql, (value,))
                finish = _position(conn)
                subprocess.run(
                    [sys.executable, "-m", "bench.large_event", "--mib", str(args.mib),
                     "--reader", args.reader, "--child", str(server.port), str(begin), str(finish), case],
                    check=True,
                    timeout=600,
                )  # fmt: skip

if __name__ == "__main__":
    main()
