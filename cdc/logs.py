"""Logging set-up: stdlib ``logging``, one JSON object per line.

Messages are stable event names with ``key=value`` fields (``delivery.failed
delivery_id=7 endpoint=crm:443``). Never log full URLs, query strings, bodies, row
images, phones or names: only ids, hosts and counts.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson


class JsonFormatter(logging.Formatter):
    """``{"ts":…, "level":…, "logger":…, "msg":…}``; exceptions as their type and text."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            doc["error"] = f"{type(exc).__name__}: {exc}"
        return orjson.dumps(doc).decode()


def setup(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The replication library logs its parameters (including the password) at INFO.
    logging.getLogger("pymysqlreplication").setLevel(logging.WARNING)
