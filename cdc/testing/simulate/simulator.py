"""The simulated VICIdial web server: one connection, every kind of write the simulator knows.

:class:`Vicidial` composes the writers by what they simulate: lead inserts
(``leads``), admin changes (``admin``), dialer noise (``noise``) and VICIdial's own
URL sender (``url_log``). Each step sequence is exposed twice: ``<name>_steps`` (run
it with :meth:`Vicidial.run`, :meth:`Vicidial.runner` or interleaved with others) and
``<name>`` (run now on this connection; its id).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, Self

from ..mariadb import PrivateMariaDB
from ..schema import DEFAULT_API_PASS
from .admin import AdminWrites
from .leads import LeadWrites
from .noise import DialerNoise
from .steps import PhpText, Result, Statement, StepRunner, Steps, execute
from .url_log import url_log_insert, url_log_update

__all__ = ["Vicidial"]

_P = ParamSpec("_P")


class Vicidial:
    """A simulated VICIdial web server writing to one database over one connection.

    ``send_utf8_bytes`` sends text as raw UTF-8 bytes, as PHP does: over a latin1
    connection (``use_non_latin=0`` on a latin1 server) MariaDB then stores
    double-encoded text such as ``JosÃ©``, exactly as a real VICIdial does. One
    ``seed`` drives every writer, so the same calls replay the same statements.
    """

    def __init__(
        self,
        conn: Any,
        *,
        database: str = "asterisk",
        send_utf8_bytes: bool = False,
        seed: int | None = None,
        api_pass: str = DEFAULT_API_PASS,
    ) -> None:
        self._conn = conn
        self.database = database
        self._text = PhpText(send_utf8_bytes)
        rng = random.Random(seed)
        leads = LeadWrites(self._text, rng, api_pass)
        noise = DialerNoise(rng)
        admin = AdminWrites(self.execute_statement, self._text)
        # Lead inserts: step sequences, and the same run now (the new lead_id; api_id).
        self.add_lead_steps = leads.add_lead
        self.add_lead = self._now(leads.add_lead)
        self.update_lead_insert_steps = leads.update_lead_insert
        self.update_lead_insert = self._now(leads.update_lead_insert)
        self.loader_insert_steps = leads.loader_insert
        self.loader_insert = self._now(leads.loader_insert)
        self.agent_insert_steps = leads.agent_insert
        self.agent_insert = self._now(leads.agent_insert)
        self.failed_add_lead_steps = leads.failed_add_lead
        self.failed_add_lead = self._now(leads.failed_add_lead)
        # Dialer noise (returns the number of statements).
        self.noise_steps = noise.steps
        self.noise = self._now(noise.steps)
        # Admin changes, executed at once.
        self.set_system_url = admin.set_system_url
        self.delete_system_url = admin.delete_system_url
        self.set_list_url = admin.set_list_url
        self.delete_list_url = admin.delete_list_url
        self.add_list = admin.add_list
        self.update_list = admin.update_list
        self.add_custom_fields = admin.add_custom_fields
        self.set_system = admin.set_system
        conn.select_db(database)

    @classmethod
    def connect(
        cls,
        server: PrivateMariaDB,
        *,
        database: str = "asterisk",
        connection_charset: str = "utf8mb4",
        seed: int | None = None,
    ) -> Self:
        """Open a connection to ``server``; a latin1 connection sends PHP's raw bytes."""
        conn = server.connect(db=database, charset=connection_charset)
        try:
            return cls(
                conn,
                database=database,
                send_utf8_bytes=connection_charset == "latin1",
                seed=seed,
            )
        except BaseException:
            conn.close()
            raise

    @property
    def conn(self) -> Any:
        return self._conn

    @property
    def send_utf8_bytes(self) -> bool:
        return self._text.send_utf8_bytes

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- running sequences ------------------------------------------------------------

    def runner(self, steps: Steps) -> StepRunner:
        """A runner for ``steps`` on this instance's connection."""
        return StepRunner(self._conn, steps)

    def run(self, steps: Steps) -> int:
        """Run a whole step sequence now; its return value."""
        return self.runner(steps).run()

    def execute(self, sql: str, *args: Any) -> Result:
        """One ad-hoc statement on this instance's connection."""
        return self.execute_statement(Statement(sql, tuple(args)))

    def execute_statement(self, statement: Statement) -> Result:
        """One built statement on this instance's connection."""
        return execute(self._conn, statement)

    def _now(self, steps: Callable[_P, Steps]) -> Callable[_P, int]:
        """``steps`` run to its end on this connection when called; its return value."""

        @functools.wraps(steps)
        def run_now(*args: _P.args, **kwargs: _P.kwargs) -> int:
            return self.run(steps(*args, **kwargs))

        return run_now

    # -- VICIdial's own URL sender ----------------------------------------------------

    def log_url_request(self, lead_id: int, url: str) -> int:
        """VICIdial's own sender, before the fetch: the ``vicidial_url_log`` INSERT."""
        return self.execute_statement(url_log_insert(lead_id, url, self._text)).lastrowid

    def log_url_response(self, url_log_id: int, url_response: str, response_sec: int) -> None:
        """VICIdial's own sender, after the fetch (``PHP ERROR: ...`` when it failed)."""
        self.execute_statement(url_log_update(url_log_id, url_response, response_sec, self._text))
