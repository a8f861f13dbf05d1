"""RSS of the real service during a 100k-row list load (issue 11: "Memory").

A lead loader writes ``--rows`` single-row ``vicidial_list`` INSERTs with no api_log row
(not API leads) as fast as one connection can, with ``reader.match_window_s`` longer
than the load, so every insert is unmatched and waiting at once: the detector's worst
case, bounded by ``reader.max_pending_bytes``. The service runs as its own process (``vicidial-cdc run``
with a config written here); its ``VmRSS`` is sampled every 0.2 s from ``/proc`` until
it has read and processed every row, and its ``VmHWM`` (peak) is read at the end.

    .venv/bin/python -m bench.listload [--rows 100000] [--out bench/results/listload-100k.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

DATABASE = "asterisk"
LIST_ID = 4242
TARGET_MB = 200.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _scrape(port: int) -> tuple[float, float]:
    """(rows of vicidial_list inserts read, reader batches not yet processed) from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    rows = queued = 0.0
    for line in text.splitlines():
        value = line.rsplit(" ", 1)[-1]
        if line.startswith("vicidial_cdc_binlog_rows_total{"):
            if 'table="vicidial_list"' in line and 'op="insert"' in line:
                rows = float(value)
        elif line.startswith('vicidial_cdc_queue_depth{queue="reader_batches"}'):
            queued = float(value)
    return rows, queued


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", default="bench/results/listload-100k.json")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument(
        "--max-pending-bytes", type=int, default=0, help="reader.max_pending_bytes (0: the default)"
    )
    parser.add_argument(
        "--match-window-s",
        type=float,
        default=3600.0,
        help="reader.match_window_s: longer than the load, so no insert expires during it (worst case)",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vcdc-listload-"))
    http_port = _free_port()
    samples: list[tuple[float, int]] = []
    with PrivateMariaDB(charset="utf8mb4", row_metadata="FULL") as server:
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, DATABASE, charset="utf8mb4")
        config = work / "cdc.toml"
        config.write_text(
            f'[mysql]\nhost = "127.0.0.1"\nport = {server.port}\nuser = "root"\ndatabase = "{DATABASE}"\n'
            f'[state]\npath = "{work / "state.db"}"\n[http]\nlisten = "127.0.0.1:{http_port}"\n'
            f'[delivery]\nmode = "send"\n[reader]\nmatch_window_s = {args.match_window_s}\n'
            + (f"max_pending_bytes = {args.max_pending_bytes}\n" if args.max_pending_bytes else ""),
            encoding="utf-8",
        )
        os.chmod(config, 0o600)
        with Vicidial.connect(server, database=DATABASE, seed=7) as vici:
            vici.add_list(LIST_ID, "Loaded list", "LOAD", "a lead loader file")
            service = subprocess.Popen(
                [str(Path(sys.executable).parent / "vicidial-cdc"), "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 60
                while True:  # ready: /metrics answers
                    try:
                        _scrape(http_port)
                        break
                    except OSError:
                        if time.monotonic() > deadline or service.poll() is not None:
                            raise SystemExit("listload: the service did not start") from None
                        time.sleep(0.2)
                rss_idle_kb = _status_kb(service.pid, "VmRSS")
                started = time.monotonic()
                last_sample = 0.0
                for i in range(args.rows):
                    vici.loader_insert(phone_number=f"3{i:09d}", list_id=LIST_ID, first_name="Load")
                    if time.monotonic() - last_sample >= 0.2:
                        last_sample = time.monotonic()
                        samples.append((last_sample - started, _status_kb(service.pid, "VmRSS")))
                load_s = time.monotonic() - started
                deadline = time.monotonic() + args.timeout_s
                idle = 0  # until every row is read and processed (no batch queued twice running)
                while idle < 2:
                    if time.monotonic() > deadline:
                        raise SystemExit("listload: the service did not process every row in time")
                    rows, queued = _scrape(http_port)
                    idle = idle + 1 if rows >= args.rows and not queued else 0
                    samples.append((time.monotonic() - started, _status_kb(service.pid, "VmRSS")))
                    time.sleep(0.5)
                read_s = time.monotonic() - started
                peak_kb = _status_kb(service.pid, "VmHWM")
            finally:
                service.terminate()
                service.wait(timeout=60)
    result: dict[str, Any] = {
        "rows": args.rows,
        "max_pending_bytes": args.max_pending_bytes or "default (64 MiB)",
        "match_window_s": args.match_window_s,
        "load_s": round(load_s, 1),
        "read_all_s": round(read_s, 1),
        "rss_idle_mb": round(rss_idle_kb / 1024, 1),
        "rss_max_sampled_mb": round(max(kb for _, kb in samples) / 1024, 1),
        "rss_peak_vmhwm_mb": round(peak_kb / 1024, 1),
        "target_mb": TARGET_MB,
        "under_target": peak_kb / 1024 < TARGET_MB,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0 if result["under_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
