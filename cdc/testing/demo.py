"""``vicidial-cdc demo``: the whole pipeline on one machine, nothing to configure.

Starts a private MariaDB with binlog (installing Debian's ``mariadb-server`` when
missing and allowed), creates a VICIdial-shaped schema, starts a local receiver, then
simulates ``add_lead`` traffic (VICIdial's full write sequence) mixed with lead-loader
inserts, ``update_lead`` inserts and busy-dialer noise, while the streamer follows the
binlog and sends. Prints a live progress line and a final table. Ctrl-C stops
everything it started. The names and phones are invented.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .. import logs, runtime, vicidial
from ..config import Config, DeliveryConfig, DeliveryMode, HttpConfig, MysqlConfig, ReaderConfig, StateConfig
from ..service import Service
from .mariadb import PrivateMariaDB, ensure_installed
from .receiver import Receiver
from .schema import create_vicidial_schema
from .simulate import Vicidial

DATABASE = "asterisk"
LISTS = (
    (101, "Web leads", "Leads from the web form", "WEBCAMP"),
    (102, "Partner feed", "Leads a partner pushes", "PARTNER"),
    (103, "Do not send", "Disabled for the CRM", "WEBCAMP"),
)
FIRST = ("José", "Zoë", "Ana", "Li", "Mark", "Søren", "Ines", "Ólafur")
LAST = ("García", "Müller", "Smith", "O'Brien", "Nguyễn", "Kowalski")


@dataclass(slots=True)
class _Traffic:
    api_leads: Counter[int] = field(default_factory=Counter)
    other_inserts: int = 0
    noise: int = 0
    done: bool = False
    error: BaseException | None = None


def main(args: argparse.Namespace) -> int:
    logs.setup("WARNING", "text")
    ensure_installed(allow_install=not args.no_install)
    workdir = Path(tempfile.mkdtemp(prefix="vicidial-cdc-demo-"))
    print(f"demo: working in {workdir}", flush=True)
    db = PrivateMariaDB(workdir / "mariadb", charset="utf8mb4", row_metadata="FULL")
    try:
        db.start()
        print(f"demo: private MariaDB with binlog on 127.0.0.1:{db.port}", flush=True)
        conn = db.connect()
        try:
            create_vicidial_schema(conn, database=DATABASE)
        finally:
            conn.close()
        return runtime.run(_demo(args, db, workdir))
    finally:
        db.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"demo: kept {workdir}")


async def _demo(args: argparse.Namespace, db: PrivateMariaDB, workdir: Path) -> int:
    receiver = Receiver(latency_s=args.latency_ms / 1000.0)
    await receiver.start()
    try:
        return await _run(args, db, workdir, receiver)
    finally:
        await receiver.stop()


async def _run(args: argparse.Namespace, db: PrivateMariaDB, workdir: Path, receiver: Receiver) -> int:
    base = receiver.url
    setup = Vicidial.connect(db, database=DATABASE)
    try:
        for list_id, name, description, campaign in LISTS:
            setup.add_list(list_id, name, campaign, description)
        setup.set_system_url(
            f"VAR{base}/crm/new_lead?lead_id=--A--lead_id--B--&phone=--A--phone_number--B--"
            "&name=--A--first_name--B--+--A--last_name--B--&list=--A--list_name--B--"
            "&campaign=--A--campaign--B--&dob=--A--date_of_birth--B--&gender=--A--gender--B--"
            "&gmt=--A--gmt_offset_now--B--&added=--A--SQLdate--B--"
        )
        setup.set_list_url(102, f"{base}/partner/hook?id=--A--lead_id--B--&vendor=--A--vendor_id--B--")
        setup.set_list_url(103, vicidial.DISABLED)
    finally:
        setup.close()

    cfg = Config(
        mysql=MysqlConfig(host=db.host, port=db.port, user="root", database=DATABASE, source="demo"),
        # The start-up check's advice is for a real VICIdial: this one's PHP never sends
        # (no double send) and the demo connects as root.
        reader=ReaderConfig(start="current", match_window_s=5.0, check_at_start=False),
        state=StateConfig(path=str(workdir / "state" / "state.db")),
        http=HttpConfig(listen="127.0.0.1:0"),
        # The simulated VICIdial's PHP does not send by itself: the streamer sends everything.
        delivery=DeliveryConfig(mode=DeliveryMode.SEND),
    )
    stop = asyncio.Event()
    traffic_stop = threading.Event()
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        stop.set()
        traffic_stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    # The state file is the one made above: a fresh start is what a demo is, not a lost state.
    service_log = logging.getLogger("cdc.service")
    service_log.addFilter(_not_fresh_start)
    print("demo: new state file, reading the binlog from its current position", flush=True)
    service = Service(cfg)
    traffic = _Traffic()
    async with asyncio.TaskGroup() as tg:
        running = tg.create_task(service.run(stop))
        await _wait_ready(service, running)
        print(f"demo: streamer up, metrics on http://127.0.0.1:{service.http_port}/metrics", flush=True)
        print(f"demo: status page on http://127.0.0.1:{service.http_port}/", flush=True)
        sim = threading.Thread(
            target=_simulate, args=(db, args, traffic, traffic_stop), name="demo-traffic", daemon=True
        )
        sim.start()
        expected = 0
        deadline: float | None = None
        while not stop.is_set():
            expected = traffic.api_leads[101] + traffic.api_leads[102]
            _progress(service, receiver, traffic, expected)
            if traffic.error is not None:
                print(f"\ndemo: traffic failed: {traffic.error}", file=sys.stderr)
                break
            if traffic.done:
                deadline = deadline or time.monotonic() + 30.0
                if len(receiver.requests) >= expected or time.monotonic() > deadline:
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        traffic_stop.set()
        await asyncio.to_thread(sim.join)
        stop.set()
    _progress(service, receiver, traffic, expected)
    print()
    _summary(service, receiver, traffic)
    return 0 if len(receiver.requests) >= expected and traffic.error is None else 1


def _not_fresh_start(record: logging.LogRecord) -> bool:
    """Drop the service's ``state.fresh_start`` warning (the demo says it in its own words)."""
    return not str(record.msg).startswith("state.fresh_start ")


async def _wait_ready(service: Service, running: asyncio.Task[None]) -> None:
    ready = asyncio.ensure_future(service.ready.wait())
    await asyncio.wait({ready, running}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        running.result()  # raises what stopped the service


def _simulate(db: PrivateMariaDB, args: argparse.Namespace, traffic: _Traffic, stop: threading.Event) -> None:
    try:
        vici = Vicidial.connect(db, database=DATABASE, seed=7)
        try:
            interval = 1.0 / args.rate if args.rate > 0 else 0.0
            started = time.monotonic()
            for i in range(args.leads):
                if stop.is_set():
                    break
                list_id = (101, 101, 102, 103)[i % 4]
                vici.add_lead(
                    phone_number=f"555{1000000 + i:07d}",
                    list_id=list_id,
                    first_name=FIRST[i % len(FIRST)],
                    last_name=LAST[i % len(LAST)],
                    vendor_lead_code=f"V{i:05d}",
                )
                traffic.api_leads[list_id] += 1
                if i % 5 == 0:
                    vici.loader_insert(phone_number=f"556{1000000 + i:07d}", list_id=101)
                    traffic.other_inserts += 1
                if i % 7 == 0:
                    vici.update_lead_insert(phone_number=f"557{1000000 + i:07d}", list_id=101)
                    traffic.other_inserts += 1
                traffic.noise += vici.noise(args.noise)
                pause = started + (i + 1) * interval - time.monotonic()
                if pause > 0:
                    stop.wait(pause)
        finally:
            vici.close()
    except BaseException as exc:  # reported by the progress loop
        traffic.error = exc
    finally:
        traffic.done = True


def _progress(service: Service, receiver: Receiver, traffic: _Traffic, expected: int) -> None:
    st = service.status()
    line = (
        f"\rdemo: add_lead {sum(traffic.api_leads.values()):5d}  other inserts {traffic.other_inserts:4d}"
        f"  noise rows {traffic.noise:6d}  detected {st['leads']:5d}"
        f"  sent {len(receiver.requests):5d}/{expected:<5d}"
        f"  lag {st['lag_s']:.2f}s"
    )
    print(line, end="", flush=True)


def _summary(service: Service, receiver: Receiver, traffic: _Traffic) -> None:
    by_path = Counter(urlsplit(r.target).path for r in receiver.requests)
    st = service.status()
    print("\nwhat was sent")
    print(f"  {'list':<6}{'add_lead calls':>16}{'requests':>10}  path")
    paths = {101: "/crm/new_lead", 102: "/partner/hook", 103: "(disabled)"}
    for list_id, _name, _d, _c in LISTS:
        path = paths[list_id]
        sent = by_path.get(path, 0)
        print(f"  {list_id:<6}{traffic.api_leads[list_id]:>16}{sent:>10}  {path}")
    print(f"  skipped by reason: {st['skipped']}")
    print(f"  loader/update_lead inserts (must not be sent): {traffic.other_inserts}")
    crm = [r for r in receiver.requests if r.target.startswith("/crm/")]
    if crm:
        sample = crm[-1].target
        query = parse_qs(urlsplit(sample).query)
        print(f"  a request as received: {sample}")
        print(f"  decoded name field: {query.get('name', [''])[0]!r}")
