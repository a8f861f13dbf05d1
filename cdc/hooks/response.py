"""What a ``vicidial_url_log.url_response`` says about VICIdial's request.

The forms VICIdial's senders write (read in VICIdial's source):

- PHP ``file()`` succeeded: the body (``;`` removed, slashes added) → ok;
- PHP ``file()`` failed: ``PHP ERROR: Type=<n> - Message=<warning> - Line=… - File=…``
  → error, with the HTTP status when the warning names one (``HTTP/1.1 500 …``).
  ``file()`` of an empty body returns no lines without a warning, and PHP writes the
  same text with an empty ``Message=``: that one is ok (an empty body);
- ``ACTION=RUNurls`` (the Dispo Call URL, sent by the agent's browser): either of the
  two, prefixed with an RFC 2822 date and ``|``;
- the Perl senders (``bin/AST_send_URL.pl``, ``AST_VDadapt.pl``, the AGIs) run ``wget``
  and write ``<body>|<wget log>`` (line breaks as ``!``, double spaces, tabs, quotes and
  backticks removed; ``<RESPONSE EMPTY>`` / ``<HEADER EMPTY>`` when either is empty), then
  ``|HTTP-POST|<headers>`` when the request was a POST. The last ``awaiting response...
  NNN`` of the log is the final status; none (refused, DNS, timeout) is an error;
- empty (an UPDATE that wrote none: ``extras/get2post.php`` whose ``curl_exec`` failed or
  got an empty body): unknown, counted ok and never re-sent.

Pure; no I/O.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

PHP_ERROR = "PHP ERROR:"
#: ``date("r")|`` that ``ACTION=RUNurls`` puts before the response.
_RUNURLS_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\|"
)
_PHP_MESSAGE = re.compile(r"Message=(.*?) - Line=", re.DOTALL)
_HTTP_STATUS = re.compile(r"HTTP/\d(?:\.\d)?\s+(\d{3})")
_WGET_STATUS = re.compile(r"awaiting response\.\.\. ?(\d{3})")
#: Text only a wget log holds (its first line is ``--YYYY-MM-DD HH:MM:SS--`` + the URL).
_WGET_LOG = re.compile(r"<HEADER EMPTY>|awaiting response\.\.\.|--\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}--")
_WGET_EMPTY_BODY = "<RESPONSE EMPTY>"
_WGET_POST = "|HTTP-POST|"


class Form(enum.StrEnum):
    """Which sender's form the response has."""

    PHP = "php"
    RUNURLS = "runurls"
    WGET = "wget"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    #: The HTTP status the response shows (200 for a PHP body), 0 when none.
    status: int
    form: Form
    #: The Perl sender sent a POST (``|HTTP-POST|``).
    post: bool = False
    #: ... with extra headers from a settings container (we cannot know their values).
    post_headers: bool = False


def classify(response: str) -> Verdict:
    """The verdict of one ``url_response`` written by an UPDATE."""
    if not response:
        return Verdict(True, 0, Form.EMPTY)
    date = _RUNURLS_DATE.match(response)
    if date is not None:
        ok, status = _php(response[date.end() :])
        return Verdict(ok, status, Form.RUNURLS)
    if _WGET_LOG.search(response) is not None:
        return _wget(response)
    ok, status = _php(response)
    return Verdict(ok, status, Form.PHP)


def _php(text: str) -> tuple[bool, int]:
    if not text.startswith(PHP_ERROR):
        return True, 200
    message = _PHP_MESSAGE.search(text)
    if message is not None and not message.group(1).strip():
        return True, 0  # file() of an empty body: no warning, PHP's error branch anyway
    status = _HTTP_STATUS.search(text)
    return False, int(status.group(1)) if status else 0


def _wget(text: str) -> Verdict:
    log, sep, post_headers = text.partition(_WGET_POST)
    statuses = _WGET_STATUS.findall(log)
    if statuses:
        status = int(statuses[-1])
        ok = 200 <= status < 400
    else:
        status = 0
        body = log.split("|", 1)[0]
        ok = bool(body) and body != _WGET_EMPTY_BODY and "<HEADER EMPTY>" in log
    return Verdict(ok, status, Form.WGET, post=bool(sep), post_headers=bool(post_headers.strip()))
