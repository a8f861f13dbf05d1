"""Write rows the way VICIdial's PHP does: leads, API log rows, admin changes, noise.

Split by what is simulated: ``leads`` (add_lead and the other insert paths),
``admin`` (lists, custom fields, URLs, system settings), ``noise`` (the busy dialer
tables), ``url_log`` (VICIdial's own URL sender), ``hooks`` (each URL sender played
with real requests: PHP ``file()``, ``RUNurls``, ``AST_send_URL.pl``), ``steps`` (statements, runners,
interleaving) and ``simulator`` (:class:`Vicidial`, one connection using them all).

Every operation is a *step sequence*: a generator that yields one :class:`Statement`
at a time and receives that statement's :class:`Result` back; its return value is
the id the operation produced. To interleave many API calls, give each its own
connection and step them in any order::

    sims = [Vicidial.connect(server, database=db) for _ in range(50)]
    runners = [s.runner(s.add_lead_steps(phone_number=f"555{i:07d}", list_id=101))
               for i, s in enumerate(sims)]
    lead_ids = run_interleaved(runners, rng=random.Random(7))

Every table is MyISAM, so each statement is its own binlog event group, exactly as on
a real VICIdial server. Nothing here is used by the streamer itself.
"""

from .noise import NOISE_TABLES
from .simulator import Vicidial
from .steps import Result, Statement, StepRunner, Steps, execute, run_interleaved

__all__ = [
    "NOISE_TABLES",
    "Result",
    "Statement",
    "StepRunner",
    "Steps",
    "Vicidial",
    "execute",
    "run_interleaved",
]
