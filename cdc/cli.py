"""``vicidial-cdc``: argparse subcommands, each a ``cmd_x(args) -> int`` exit code.

Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error, 3 the binlog the
checkpoint needs was purged (see the message for the recovery), 4 start refused: another
streamer holds the state file, or the state follows another database server.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, config, logs, runtime
from .errors import (
    BinlogPurgedError,
    CdcError,
    ConfigError,
    ExitCode,
    ReaderFault,
    ReaderFaultError,
    StateLockedError,
)

if TYPE_CHECKING:  # the service is imported by `run` only, when it starts
    from .service import StartCheck

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return ExitCode.USAGE
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"vicidial-cdc: configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except BinlogPurgedError as exc:
        print(f"vicidial-cdc: {exc}", file=sys.stderr)
        return ExitCode.PURGED
    except StateLockedError as exc:
        print(f"vicidial-cdc: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    except ReaderFaultError as exc:
        print(f"vicidial-cdc: {exc}", file=sys.stderr)
        return ExitCode.REFUSED if exc.kind is ReaderFault.SERVER_CHANGED else ExitCode.ERROR
    except CdcError as exc:
        print(f"vicidial-cdc: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vicidial-cdc",
        description="VICIdial's API New Lead URL, sent from the binlog. Exit codes: 0 ok, "
        "1 runtime error, 2 usage or configuration error, 3 the binlog the checkpoint needs was purged, "
        "4 start refused (state file in use, or it follows another database server).",
    )
    p.add_argument("--version", action="version", version=f"vicidial-cdc {__version__}")
    sub = p.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="follow the binlog and deliver API New Lead URLs")
    run.add_argument("--config", "-c", help="TOML config file (settings also from VICIDIAL_CDC_* env)")
    run.add_argument(
        "--start", help="override reader.start for a first start (current, earliest, FILE:POS, GTID)"
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser(
        "check",
        help="preflight: binlog settings, privileges, VICIdial schema, URL sources (exit 0/1/2)",
        description="One line per check (OK, INFO, WARN, FAIL) with the exact fix. "
        "Exit 0 all good, 1 warnings, 2 blockers.",
    )
    check.add_argument("--config", "-c", help="TOML config file (settings also from VICIDIAL_CDC_* env)")
    check.add_argument("--json", action="store_true", help="a JSON list of {name, status, message, fix}")
    check.add_argument(
        "--max-downtime",
        default=None,
        metavar="DURATION",
        help="longest outage to survive: binlogs must be kept at least this long "
        "(seconds, or 90m, 12h, 3d, 1w, 1h30m; default: reader.max_downtime_s, 86400)",
    )
    check.set_defaults(func=cmd_check)

    demo = sub.add_parser("demo", help="private MariaDB + simulated add_lead traffic + local receiver")
    demo.add_argument("--leads", type=int, default=300, help="API leads to simulate (default 300)")
    demo.add_argument("--rate", type=float, default=50.0, help="add_lead calls per second (default 50)")
    demo.add_argument("--noise", type=int, default=20, help="noise row events per lead (default 20)")
    demo.add_argument("--latency-ms", type=float, default=20.0, help="receiver latency (default 20 ms)")
    demo.add_argument("--no-install", action="store_true", help="never apt-get install mariadb-server")
    demo.add_argument("--keep", action="store_true", help="keep the demo's temp dir (state, datadir)")
    demo.set_defaults(func=cmd_demo)
    _add_operator_parsers(sub)
    return p


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    if args.start:
        cfg = dataclasses.replace(cfg, reader=dataclasses.replace(cfg.reader, start=args.start))
    logs.setup(cfg.log.level, cfg.log.format)
    log.info("service.config %s", _files_used(args.config, cfg))
    return runtime.run(_run(cfg, replace_checkpoint=bool(args.start)))


def _files_used(config_path: str | None, cfg: config.Config) -> str:
    """Which config file, state file and env overrides a command uses (names, never values).

    Every command loads its settings with the same ``config.load``; this line makes a
    difference between the service's and an operator's view visible at once.
    """
    overrides = sorted(k for k in os.environ if k.startswith(config.ENV_PREFIX))
    return (
        f"config={Path(config_path).absolute() if config_path else '-'}"
        f" state_file={Path(cfg.state.path).absolute()}"
        f" env_overrides={','.join(overrides) or '-'}"
    )


def _operator_config(args: argparse.Namespace) -> config.Config:
    """The config of an operator command, after a stderr line naming the files it uses."""
    cfg = config.load(args.config)
    if not args.config:
        print("vicidial-cdc: no --config given: defaults and VICIDIAL_CDC_* env only", file=sys.stderr)
    print(f"vicidial-cdc: {_files_used(args.config, cfg)}", file=sys.stderr)
    return cfg


def start_check_for(cfg: config.Config) -> StartCheck | None:
    """The service's start-up check: ``vicidial-cdc check``'s when ``reader.check_at_start``.

    The only part of :mod:`cdc.ops` a running streamer imports, and only then.
    """
    if not cfg.reader.check_at_start:
        return None
    from .ops import check

    return check.start_check


async def _run(cfg: config.Config, *, replace_checkpoint: bool = False) -> int:
    from .service import Service

    stop = asyncio.Event()
    install_signal_handlers(stop)
    service = Service(cfg, replace_checkpoint=replace_checkpoint, start_check=start_check_for(cfg))
    try:
        await service.run(stop)
    except ExceptionGroup as group:
        raise _primary_error(group) from group
    return ExitCode.OK


def _primary_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a task group failed with, preferring ours (they carry the fix) over others."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for kind in (BinlogPurgedError, StateLockedError, ReaderFaultError, CdcError):
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return leaves[0] if leaves else group


def install_signal_handlers(stop: asyncio.Event) -> None:
    """First SIGTERM/SIGINT drains and exits; a second one cancels at once."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("service.second_signal signal=%d cancelling", signum)
            if main_task is not None:
                main_task.cancel()
            return
        log.info("service.stopping signal=%d", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


def cmd_demo(args: argparse.Namespace) -> int:
    from .testing.demo import main as demo_main

    return demo_main(args)


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 all good, 1 warnings, 2 blockers (a config error is 2 as well)."""
    from .ops import check

    cfg = _operator_config(args)
    max_downtime_s = (
        check.parse_duration_s(args.max_downtime) if args.max_downtime else cfg.reader.max_downtime_s
    )
    results = check.run_checks(cfg, max_downtime_s=max_downtime_s)
    out = check.render_json(results) if args.json else check.render_text(results)
    sys.stdout.write(out)
    return check.exit_code(results)


# -- operator commands: status, dlq, replay (cdc/ops/status.py, dlq.py, replay.py) ------------


def _add_operator_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cfg = argparse.ArgumentParser(add_help=False)
    cfg.add_argument(
        "--config",
        "-c",
        help="the TOML config file the service runs with (settings also from VICIDIAL_CDC_* env)",
    )

    status = sub.add_parser(
        "status", parents=[cfg], help="checkpoint, server position and lag, outbox per endpoint"
    )
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.set_defaults(func=cmd_status)

    select = argparse.ArgumentParser(add_help=False)
    select.add_argument("--id", type=int, nargs="+", default=[], metavar="N", help="delivery ids")
    select.add_argument("--endpoint", metavar="E", help="endpoint id")
    select.add_argument("--lead-id", type=int, nargs="+", default=[], metavar="N", help="lead ids")
    select.add_argument("--older-than", metavar="DURATION", help="dead for longer than (90m, 2h, 3d, 1w)")
    dlq = sub.add_parser("dlq", help="dead deliveries: list, show, retry, purge")
    dlq_sub = dlq.add_subparsers(metavar="ACTION", dest="action", required=True)
    dlq_list = dlq_sub.add_parser("list", parents=[cfg, select], help="table of dead deliveries")
    dlq_list.add_argument("--limit", type=int, default=100, help="rows to show (default 100)")
    dlq_list.add_argument("--json", action="store_true", help="JSON instead of a table")
    dlq_list.add_argument("--show-path", action="store_true", help="URL paths too (they may hold a secret)")
    dlq_show = dlq_sub.add_parser("show", parents=[cfg], help="one delivery's details")
    dlq_show.add_argument("--id", type=int, nargs=1, required=True, metavar="N", help="delivery id")
    dlq_show.add_argument("--json", action="store_true", help="JSON instead of text")
    dlq_show.add_argument("--show-path", action="store_true", help="the URL path (it may hold a secret)")
    dlq_show.add_argument(
        "--show-url", action="store_true", help="print the full URL (its query carries personal data)"
    )
    dlq_retry = dlq_sub.add_parser("retry", parents=[cfg, select], help="make them pending again")
    dlq_retry.add_argument("--all", action="store_true", help="every dead delivery")
    dlq_purge = dlq_sub.add_parser("purge", parents=[cfg, select], help="delete them for good")
    dlq_purge.add_argument("--all", action="store_true", help="every dead delivery")
    dlq_purge.add_argument("--yes", action="store_true", help="confirm: deleting cannot be undone")
    dlq.set_defaults(func=cmd_dlq)

    replay = sub.add_parser(
        "replay", parents=[cfg], help="rebuild deliveries by SELECT for leads whose binlog is gone"
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--lead-id", nargs="+", default=[], metavar="N", help="lead ids or FIRST-LAST ranges")
    which.add_argument("--since", metavar="T", help="add_lead calls since T (server time, or 6h ago)")
    replay.add_argument("--until", metavar="T", help="... and before T (with --since)")
    replay.add_argument("--list", type=int, nargs="+", default=[], metavar="L", help="only these lists")
    replay.add_argument("--force", action="store_true", help="send again even leads already stored")
    replay.add_argument("--dry-run", action="store_true", help="count only; write nothing")
    replay.add_argument("--json", action="store_true", help="the counts as JSON")
    replay.add_argument(
        "--create-state",
        action="store_true",
        help="create state.path when it does not exist (a replay before the streamer's first"
        " start); without it a missing state file is an error, never a new outbox",
    )
    replay.set_defaults(func=cmd_replay)


def cmd_status(args: argparse.Namespace) -> int:
    import time

    from .ops.status import status_command

    return status_command(_operator_config(args), as_json=args.json, out=sys.stdout, now=time.time())


def cmd_dlq(args: argparse.Namespace) -> int:
    import time

    from .duration import parse_duration
    from .ops.dlq import DeadSelector, dlq_command

    selector = DeadSelector(
        ids=tuple(args.id),
        endpoint_id=getattr(args, "endpoint", None),
        lead_ids=tuple(getattr(args, "lead_id", ())),
        older_than_s=parse_duration(args.older_than) if getattr(args, "older_than", None) else None,
        all=getattr(args, "all", False),
    )
    return dlq_command(
        _operator_config(args),
        args.action,
        selector,
        out=sys.stdout,
        err=sys.stderr,
        now=time.time(),
        as_json=getattr(args, "json", False),
        show_path=getattr(args, "show_path", False),
        show_url=getattr(args, "show_url", False),
        yes=getattr(args, "yes", False),
        limit=getattr(args, "limit", 100),
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from .ops.replay import replay_command

    return replay_command(
        _operator_config(args),
        lead_ids=args.lead_id,
        since=args.since,
        until=args.until,
        lists=args.list,
        force=args.force,
        dry_run=args.dry_run,
        as_json=args.json,
        create_state=args.create_state,
        out=sys.stdout,
    )


if __name__ == "__main__":
    raise SystemExit(main())
