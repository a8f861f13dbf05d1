"""The status page's HTTP handlers, added to the streamer's own aiohttp app.

``GET /`` is the page, ``GET /page/main`` the part its script refreshes, ``/static/*``
its script and stylesheet (package data: nothing from a CDN). ``POST /sign-in``,
``/sign-out`` and ``/dead-letters`` are the only state-changing requests; they answer
403 unless an admin token is configured, and the last two also unless the request
carries a signed-in session and its CSRF token. Every answer of the app (errors and
``/metrics`` included) carries the security headers (CSP without inline script, no
framing, no caching).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from . import render
from .guard import AdminGuard

log = logging.getLogger(__name__)

SESSION_COOKIE = "cdc_admin"
#: Dead letters one action may name by id.
MAX_IDS = 1000

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_STATIC = {"page.js": "text/javascript", "page.css": "text/css"}


class PageSource(Protocol):
    """What the page reads and does: the running service."""

    def status(self) -> dict[str, Any]: ...

    async def retry_dead(
        self, *, ids: Collection[int] | None = None, endpoint_id: str | None = None
    ) -> int: ...

    async def purge_dead(
        self, *, ids: Collection[int] | None = None, endpoint_id: str | None = None
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class _Page:
    source: PageSource
    guard: AdminGuard
    clock: Callable[[], float]


_PAGE = web.AppKey("status_page", _Page)


def install(
    app: web.Application, source: PageSource, admin_token: str, *, clock: Callable[[], float] = time.time
) -> None:
    """Add the page's routes to ``app``; ``admin_token`` "" leaves it read-only."""
    app[_PAGE] = _Page(source, AdminGuard(admin_token), clock)
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", _index)
    app.router.add_get("/page/main", _main)
    app.router.add_get("/static/{name}", _static)
    app.router.add_post("/sign-in", _sign_in)
    app.router.add_post("/sign-out", _sign_out)
    app.router.add_post("/dead-letters", _dead_letters)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer, errors included; a handler's own Cache-Control stays."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _viewer(request: web.Request, page: _Page) -> render.Viewer:
    session = request.cookies.get(SESSION_COOKIE)
    signed_in = page.guard.is_signed_in(session, page.clock())
    return render.Viewer(
        admin_enabled=page.guard.enabled,
        signed_in=signed_in,
        csrf=page.guard.csrf_token(session) if signed_in and session else "",
    )


async def _index(request: web.Request) -> web.Response:
    page = request.app[_PAGE]
    done = request.query.get("done", "")
    count = request.query.get("n", "0")
    body = render.page(
        page.source.status(), _viewer(request, page), page.clock(), done, int(count) if count.isdigit() else 0
    )
    return web.Response(text=body, content_type="text/html", charset="utf-8")


async def _main(request: web.Request) -> web.Response:
    page = request.app[_PAGE]
    body = render.main(page.source.status(), _viewer(request, page), page.clock())
    return web.Response(text=body, content_type="text/html", charset="utf-8")


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = _STATIC.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    body = resources.files(__package__).joinpath("static", name).read_bytes()
    # No lead data in it: a browser may keep it, and revalidates it.
    return web.Response(
        body=body, content_type=content_type, charset="utf-8", headers={"Cache-Control": "no-cache"}
    )


def _refused(reason: str) -> web.Response:
    return web.Response(status=403, text=f"403 Forbidden: {reason}\n")


def _back(done: str, count: int = 0) -> web.Response:
    return web.Response(status=303, headers={"Location": f"/?done={done}&n={count}"})


async def _sign_in(request: web.Request) -> web.Response:
    page = request.app[_PAGE]
    if not page.guard.enabled:
        return _refused("no admin token is configured (http.admin_token_file)")
    form = await request.post()
    session = page.guard.sign_in(str(form.get("token", "")), page.clock())
    if session is None:
        log.warning("page.sign_in_refused remote=%s", request.remote)
        return _back("refused")
    log.info("page.signed_in remote=%s", request.remote)
    response = _back("signed_in")
    response.set_cookie(
        SESSION_COOKIE, session, httponly=True, samesite="Strict", path="/", secure=request.secure
    )
    return response


async def _sign_out(request: web.Request) -> web.Response:
    page = request.app[_PAGE]
    form = await request.post()
    session = request.cookies.get(SESSION_COOKIE)
    if not page.guard.may_act(session, _field(form, "csrf"), page.clock()):
        return _refused("sign in first; the form's CSRF token is required")
    page.guard.sign_out(session)
    response = _back("signed_out")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def _dead_letters(request: web.Request) -> web.Response:
    page = request.app[_PAGE]
    if not page.guard.enabled:
        return _refused("no admin token is configured (http.admin_token_file)")
    form = await request.post()
    if not page.guard.may_act(request.cookies.get(SESSION_COOKIE), _field(form, "csrf"), page.clock()):
        return _refused("sign in with the admin token; the form's CSRF token is required")
    one = _field(form, "retry_one") or _field(form, "purge_one")
    action = "retry" if _field(form, "retry_one") else "purge" if one else _field(form, "action")
    if action not in ("retry", "purge"):
        raise web.HTTPBadRequest(text="action must be retry or purge\n")
    endpoint_id = _field(form, "endpoint")
    ids: list[int] | None = None
    if one:
        ids = [_id(one)]
    elif not endpoint_id:
        ids = [_id(str(v)) for v in form.getall("id", [])][:MAX_IDS]
        if not ids:
            return _back("none")
    act: Callable[..., Awaitable[int]] = (
        page.source.retry_dead if action == "retry" else page.source.purge_dead
    )
    count = await act(ids=ids, endpoint_id=endpoint_id or None)
    log.info(
        "page.dead_letters action=%s count=%d endpoint=%s ids=%d remote=%s",
        action,
        count,
        endpoint_id or "-",
        len(ids or ()),
        request.remote,
    )
    return _back("retried" if action == "retry" else "purged", count)


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value else None


def _id(text: str) -> int:
    if not text.isdigit():
        raise web.HTTPBadRequest(text="dead-letter ids are numbers\n")
    return int(text)
