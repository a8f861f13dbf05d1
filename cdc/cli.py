"""``vicidial-cdc``: argparse subcommands, each a ``cmd_x(args) -> int`` exit code.

Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error, 3 the binlog the
checkpoint needs was purged (see the message for the recovery).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence

from . import __version__, config, logs
from .errors import BinlogPurgedError, CdcError, ConfigError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PURGED = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"vicidial-cdc: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BinlogPurgedError as exc:
        print(f"vicidial-cdc: {exc}", file=sys.stderr)
        return EXIT_PURGED
    except CdcError as exc:
        print(f"vicidial-cdc: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vicidial-cdc", description=__doc__)
    p.add_argument("--version", action="version", version=f"vicidial-cdc {__version__}")
    sub = p.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="follow the binlog and deliver API New Lead URLs")
    run.add_argument("--config", "-c", help="TOML config file (settings also from VICIDIAL_CDC_* env)")
    run.add_argument(
        "--start", help="override reader.start for a first start (current, earliest, FILE:POS, GTID)"
    )
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="private MariaDB + simulated add_lead traffic + local receiver")
    demo.add_argument("--leads", type=int, default=300, help="API leads to simulate (default 300)")
    demo.add_argument("--rate", type=float, default=50.0, help="add_lead calls per second (default 50)")
    demo.add_argument("--noise", type=int, default=20, help="noise row events per lead (default 20)")
    demo.add_argument("--latency-ms", type=float, default=20.0, help="receiver latency (default 20 ms)")
    demo.add_argument("--no-install", action="store_true", help="never apt-get install mariadb-server")
    demo.add_argument("--keep", action="store_true", help="keep the demo's temp dir (state, datadir)")
    demo.set_defaults(func=cmd_demo)
    return p


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    if args.start:
        cfg = dataclasses.replace(cfg, reader=dataclasses.replace(cfg.reader, start=args.start))
    logs.setup(cfg.log.level, cfg.log.format)
    return asyncio.run(_run(cfg))


async def _run(cfg: config.Config) -> int:
    from .service import Service

    stop = asyncio.Event()
    install_signal_handlers(stop)
    service = Service(cfg)
    await service.run(stop)
    return EXIT_OK


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
    from .demo import main as demo_main

    return demo_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
