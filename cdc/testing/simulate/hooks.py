"""VICIdial's URL senders, played for tests: the ``vicidial_url_log`` rows each one writes.

Written from how VICIdial's own code does it (read, not copied): the INSERT with
``url_response=''``, the request, then the UPDATE with ``response_sec`` and the
response in that sender's form (see :mod:`cdc.hooks.response`):

- :meth:`HookSenders.php_send`: a PHP page fetching with ``file()`` while it serves
  (``start``, ``dead``, ``pause_max`` in ``vdc_db_query.php``; ``apinewlead``);
- :meth:`HookSenders.dispo_insert` + :meth:`HookSenders.run_urls`: the Dispo Call URL,
  INSERTed by ``vdc_db_query.php`` and sent later when the agent's browser calls
  ``ACTION=RUNurls`` (its response prefixed with an RFC 2822 date and ``|``);
- :meth:`HookSenders.perl_send`: ``bin/AST_send_URL.pl`` running ``wget`` (``na_callurl``,
  ``add_lead``, ``sc_callurl`` …): ``<body>|<wget log>``, ``|HTTP-POST|`` for a POST.

The requests are real (urllib, blocking: call from a thread) and carry no
``Idempotency-Key``, so a receiver tells them from the streamer's.
"""

from __future__ import annotations

import email.utils
import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ... import vicidial
from .simulator import Vicidial
from .steps import PhpText
from .url_log import url_log_insert, url_log_update

_PHP_LINE = 16520
_PHP_FILE = "/srv/www/htdocs/agc/vdc_db_query.php"


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one request got: the status (0: none) and the body."""

    status: int
    reason: str
    body: bytes
    error: str = ""


def fetch(url: str, *, data: bytes | None = None, timeout_s: float = 5.0) -> Fetched:
    """One plain request, as PHP's ``file()`` or ``wget`` make it (GET, or POST with ``data``)."""
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Fetched(response.status, response.reason, response.read())
    except urllib.error.HTTPError as exc:
        return Fetched(exc.code, str(exc.reason), b"")
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        text = getattr(reason, "strerror", None) or str(reason)
        return Fetched(0, "", b"", text)


def php_response(url: str, got: Fetched) -> str:
    """``url_response`` of PHP's ``file()``: the body (``;`` removed), or its error text."""
    if got.status and got.status < 400 and got.body:
        return got.body.decode("utf-8", "replace").replace(";", "")
    if got.status and got.status < 400:
        return "PHP ERROR: Type= - Message= - Line= - File="  # file() of an empty body: no warning
    detail = f"HTTP request failed! HTTP/1.1 {got.status} {got.reason}\r\n" if got.status else got.error
    return (
        f"PHP ERROR: Type=2 - Message=file({url}): Failed to open stream: {detail}"
        f" - Line={_PHP_LINE} - File={_PHP_FILE}"
    )


def wget_response(url: str, got: Fetched, when: str, *, post: bool = False) -> str:
    """``url_response`` of ``AST_send_URL.pl``: ``<body>|<wget log>``, flattened as it does."""
    host = urllib.parse.urlsplit(url).netloc
    lines = [f"--{when}--  {url}"]
    if got.status:
        lines += [
            f"Connecting to {host}... connected.",
            f"HTTP request sent, awaiting response... {got.status} {got.reason}",
        ]
        if got.status >= 400:
            lines.append(f"{when} ERROR {got.status}: {got.reason}.")
        else:
            lines.append(f"Length: {len(got.body)} [text/plain]")
    else:
        lines.append(f"Connecting to {host}... failed: {got.error}.")
    body = _flatten(got.body.decode("utf-8", "replace")) or "<RESPONSE EMPTY>"
    log = _flatten("\n".join(lines) + "\n") or "<HEADER EMPTY>"
    return f"{body}|{log}" + ("|HTTP-POST|" if post else "")


def _flatten(text: str) -> str:
    """What the Perl sender keeps of a file: line breaks as ``!``, no double spaces, tabs or quotes."""
    for old, new in (("\n", "!"), ("\r", "!"), ("  ", ""), ("\t", ""), ("'", ""), ("`", "")):
        text = text.replace(old, new)
    return text


class HookSenders:
    """Plays VICIdial's senders on a simulated VICIdial (its connection, its statements)."""

    def __init__(self, db: Vicidial, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._text = PhpText(db.send_utf8_bytes)

    def insert(self, url_type: str, uniqueid: str, url: str, *, perl: bool = False) -> int:
        """The INSERT every sender writes first (PHP: ``url_date=NOW()``; Perl: its local time)."""
        date = self._now() if perl else None
        statement = url_log_insert(uniqueid, url, self._text, url_type=url_type, url_date=date)
        return self._db.execute_statement(statement).lastrowid

    def update(self, url_log_id: int, response: str, response_sec: int) -> None:
        """The UPDATE after the request."""
        self._db.execute_statement(url_log_update(url_log_id, response, response_sec, self._text))

    def php_send(self, url_type: str, uniqueid: str, url: str, *, update: bool = True) -> int:
        """A PHP page's synchronous ``file()``: INSERT, fetch, UPDATE (``update=False``: the page died)."""
        url_log_id = self.insert(url_type, uniqueid, url)
        if update:
            started = self._clock()
            got = fetch(url)
            self.update(url_log_id, php_response(url, got), int(self._clock() - started))
        return url_log_id

    def dispo_insert(self, uniqueid: str, url: str) -> int:
        """``vdc_db_query.php`` at dispo time: the INSERT only; the id goes to the agent's browser."""
        return self.insert("dispo", uniqueid, url)

    def run_urls(self, url_log_ids: Sequence[int]) -> None:
        """``ACTION=RUNurls`` from the agent's browser: SELECT each url, fetch, UPDATE date-prefixed."""
        for url_log_id in url_log_ids:
            sql = f"SELECT url FROM {vicidial.URL_LOG_TABLE} WHERE url_log_id=%s"
            rows = self._db.execute(sql, url_log_id).rows
            if not rows:
                continue
            url = str(rows[0][0])
            started = self._clock()
            got = fetch(url)
            stamp = email.utils.formatdate(self._clock(), localtime=True)
            self.update(url_log_id, f"{stamp}|{php_response(url, got)}", int(self._clock() - started))

    def perl_send(
        self, url_type: str, uniqueid: str, url: str, *, post: bool = False, update: bool = True
    ) -> int:
        """``AST_send_URL.pl``: INSERT, ``wget`` (a POST of the query when ``post``), UPDATE."""
        url_log_id = self.insert(url_type, uniqueid, url, perl=True)
        if update:
            started = self._clock()
            if post:
                page, _, query = url.partition("?")
                got = fetch(page, data=query.encode())
            else:
                got = fetch(url)
            self.update(
                url_log_id, wget_response(url, got, self._now(), post=post), int(self._clock() - started)
            )
        return url_log_id

    def _now(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self._clock()))
