"""Preflight (``vicidial-cdc check``): is this MariaDB ready for the streamer, and who sends?

Three steps, kept apart so that every rule is unit-tested without a server:

1. :mod:`.facts` connects with the configured credentials and runs the SHOW statements
   and SELECTs (the only I/O here), and reads the state file. It returns frozen
   :class:`~.facts.ServerFacts` and :class:`~.facts.StateFacts`.
2. The rules turn facts plus configuration into :class:`CheckResult` lines, one per
   check, each ``OK`` / ``INFO`` / ``WARN`` / ``FAIL`` (a blocker) and, when not OK, the
   exact fix: the ``my.cnf`` lines or the SQL to run. :mod:`.rules` holds the server's
   (binlog settings, retention, server_id, privileges, state file) and runs them all;
   :mod:`.grants` parses ``SHOW GRANTS`` and decides what a grant covers; :mod:`.tables`
   checks VICIdial's tables, :mod:`.urls` VICIdial's own sender and the URL sources,
   :mod:`.hooks` the other URL hooks VICIdial is set to fire (campaigns, in-groups,
   lists) and whether ``[hooks] rescue`` covers them, :mod:`.connection` the
   connection (its failure, TLS).
3. :mod:`.rendering` prints them: :func:`render_text` / :func:`render_json`;
   :func:`exit_code` is 0 when everything is OK or INFO, 1 with warnings, 2 with at least
   one blocker.

:func:`run_checks` does all three steps but printing; a connection failure is itself a
``FAIL`` line with its fix. :func:`start_check` is what the service runs at start-up.

Nothing printed carries lead data, passwords, password hashes (``SHOW GRANTS`` lines are
parsed on arrival and never kept) or URL templates: a template may hold an API key, so
only its host is shown.
"""

from .rendering import exit_code, render_json, render_text
from .results import CheckResult, Status
from .runner import parse_duration_s, run_checks, start_check
from .tables import READ_TABLES

__all__ = [
    "READ_TABLES",
    "CheckResult",
    "Status",
    "exit_code",
    "parse_duration_s",
    "render_json",
    "render_text",
    "run_checks",
    "start_check",
]
