"""The small HTTP server: ``/metrics``, ``/healthz``, ``/readyz``, ``/status``, and the status page.

Started by the service with ``AppRunner`` + ``TCPSite`` (never ``run_app``, which would
take over the loop and the signals). GET handlers only read state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .page import routes as page_routes


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, bool] = field(default_factory=dict)
    #: Why not ready, one line each with the fix (empty when ready).
    reasons: tuple[str, ...] = ()


_REGISTRY = web.AppKey("registry", CollectorRegistry)
_READY: web.AppKey[Callable[[], Readiness]] = web.AppKey("ready")
_STATUS: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("status")


def make_app(
    registry: CollectorRegistry,
    readiness: Callable[[], Readiness],
    status: Callable[[], dict[str, Any]],
    *,
    page: page_routes.PageSource | None = None,
    admin_token: str = "",
) -> web.Application:
    """The app; with ``page``, also the status page at ``/`` (cdc.page.routes)."""
    app = web.Application()
    app[_REGISTRY] = registry
    app[_READY] = readiness
    app[_STATUS] = status
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/status", _status)
    if page is not None:
        page_routes.install(app, page, admin_token)
    return app


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    r = request.app[_READY]()
    body = orjson.dumps({"ready": r.ready, "checks": r.checks, "reasons": list(r.reasons)})
    return web.Response(body=body, status=200 if r.ready else 503, content_type="application/json")


async def _status(request: web.Request) -> web.Response:
    body = orjson.dumps(request.app[_STATUS](), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    return web.Response(body=body, content_type="application/json")


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns the runner (for cleanup) and the bound port (for port 0)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, bound_port(runner, port)


def bound_port(runner: web.AppRunner, default: int) -> int:
    """The port a site really listens on (the one the OS chose for port 0)."""
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            return int(addr[1])
    return default
