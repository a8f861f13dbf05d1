"""Every ``vicidial_url_log.url_type`` VICIdial writes: who sends it, how, and what we may do.

Read from VICIdial's SVN trunk (2.14, 2025): each sender INSERTs a row with
``url_response=''``, fetches the URL, then UPDATEs the row with ``response_sec`` and the
response (see :mod:`cdc.hooks.response` for the forms). ``url_type`` is VARCHAR(10): a
longer name is stored cut (``TILTX_SHAKEN`` → ``TILTX_SHAK``), so this table holds the
stored spelling. Pure; imports nothing from the project.

Kinds:

- ``notify``: a notification whose response nothing waits for: a re-send later still
  has its effect, so rescue may be turned on (``[hooks] rescue``);
- ``lookup``: the call waits for the answer (routing, filtering, audio): a re-send after
  the call moved on does nothing useful, so it is only watched;
- ``log``: a row that records something other than an outbound request (a web form the
  agent's browser opened, an API call VICIdial received, a 2FA code that expires):
  watched, never re-sent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    NOTIFY = "notify"
    LOOKUP = "lookup"
    LOG = "log"


class Sender(enum.StrEnum):
    """How the request is made, which sets how long its UPDATE may take."""

    #: PHP ``file()`` inside the web request that wrote the INSERT (``default_socket_timeout`` 60 s).
    PHP = "php"
    #: PHP ``file()`` in ``vdc_db_query.php ACTION=RUNurls``, called later by the agent's browser.
    BROWSER = "browser"
    #: ``wget`` from a Perl script (``bin/AST_send_URL.pl`` and others): 900 s read timeout, 20 tries.
    WGET = "wget"


@dataclass(frozen=True, slots=True)
class HookType:
    """One ``url_type``: its stored spelling, sender, kind and never-completed default."""

    url_type: str
    #: VICIdial files that write it.
    written_by: str
    sender: Sender
    kind: Kind
    #: Binlog seconds after the INSERT without an UPDATE before it counts as never completed.
    timeout_s: float
    #: What it is, for docs and ``check``.
    description: str
    #: ``vicidial_url_multi.url_type`` of its ALT rows, "" when it has none.
    multi_type: str = ""

    @property
    def rescuable(self) -> bool:
        return self.kind is Kind.NOTIFY


#: The ``url_type`` of API New Lead URL rows; its rescue follows ``delivery.mode``.
APINEWLEAD = "apinewlead"
#: The label of every ``url_type`` not in :data:`HOOK_TYPES` (and of VICIdial's own ``other``).
OTHER = "other"

_PHP_S = 120.0
_BROWSER_S = 300.0
_WGET_S = 1800.0

HOOK_TYPES: dict[str, HookType] = {
    t.url_type: t
    for t in (
        HookType("dispo", "www/agc/vdc_db_query.php (RUNurls)", Sender.BROWSER, Kind.NOTIFY, _BROWSER_S,
                 "Dispo Call URL: campaign/in-group, ALT rows by status, list and call length", "dispo"),
        HookType("start", "www/agc/vdc_db_query.php, www/agc/api.php", Sender.PHP, Kind.NOTIFY, _PHP_S,
                 "Start Call URL of an agent's call", "start"),
        HookType("dead", "www/agc/vdc_db_query.php", Sender.PHP, Kind.NOTIFY, _PHP_S,
                 "Dead Call trigger URL"),
        HookType("pause_max", "www/agc/vdc_db_query.php", Sender.PHP, Kind.NOTIFY, _PHP_S,
                 "Pause Max URL: an agent paused too long"),
        HookType(APINEWLEAD, "www/vicidial/non_agent_api.php", Sender.PHP, Kind.NOTIFY, 60.0,
                 "API New Lead URL of add_lead (schema 1726+)", "apinewlead"),
        HookType("na_callurl", "bin/AST_send_URL.pl (NA_CALL_URL, from AST_VDauto_dial.pl)", Sender.WGET,
                 Kind.NOTIFY, _WGET_S, "No-Agent Call URL: a call dropped with no agent", "noagent"),
        HookType("add_lead", "bin/AST_send_URL.pl (INGROUP_ADD_LEAD_URL, from agi-VDAD_ALL_inbound.agi)",
                 Sender.WGET, Kind.NOTIFY, _WGET_S, "In-group Add Lead URL: an inbound call made a lead",
                 "addlead"),
        HookType("enter_ig", "bin/AST_send_URL.pl (ENTER_INGROUP_URL)", Sender.WGET, Kind.NOTIFY, _WGET_S,
                 "Enter In-Group URL: a call entered an in-group"),
        HookType("start_ra", "bin/AST_send_URL.pl (REMOTE_AGENT_START_CALL_URL, from AST_VDremote_agents.pl)",
                 Sender.WGET, Kind.NOTIFY, _WGET_S, "Start Call URL of a remote agent's call", "start"),
        HookType("wcu_on", "bin/AST_send_URL.pl (INGROUP_WCU_ON, from AST_VDadapt.pl)", Sender.WGET,
                 Kind.NOTIFY, _WGET_S, "In-group Waiting Call URL On"),
        HookType("wcu_off", "bin/AST_send_URL.pl (INGROUP_WCU_OFF, from AST_VDadapt.pl)", Sender.WGET,
                 Kind.NOTIFY, _WGET_S, "In-group Waiting Call URL Off"),
        HookType("sc_callurl", "bin/AST_send_URL.pl (SC_CALL_URL[POST], from cm_sc_send_url*.agi)",
                 Sender.WGET, Kind.NOTIFY, _WGET_S, "Call-menu settings-container URL (GET, or POST)"),
        HookType("qm_socket", "bin/AST_send_URL.pl (QM_SOCKET_SEND)", Sender.WGET, Kind.NOTIFY, _WGET_S,
                 "QueueMetrics socket-send URL"),
        HookType("abandonchk", "bin/AST_VDadapt.pl", Sender.WGET, Kind.NOTIFY, _WGET_S,
                 "Abandon check queue URL"),
        HookType("DID_FILTER", "agi/agi-DID_route.agi", Sender.WGET, Kind.LOOKUP, _PHP_S,
                 "DID filter lookup: routes the inbound call on the answer"),
        HookType("nva_phone", "agi/agi-NVA_recording*.agi", Sender.WGET, Kind.LOOKUP, _PHP_S,
                 "NVA phone lookup during a recording"),
        HookType("TILTX_SHAK", "agi/agi-TILTX_SHAKEN.agi (url_type TILTX_SHAKEN, cut to 10)", Sender.WGET,
                 Kind.LOOKUP, _PHP_S, "STIR/SHAKEN lookup of the call"),
        HookType("ccc_look", "agi/cm_sc_ccc_lookup_insert.agi", Sender.WGET, Kind.LOOKUP, _PHP_S,
                 "Call-menu lookup"),
        HookType("park_ivr_c", "agi/park_call_IVR_cf_collect.agi (url_type park_ivr_cf, cut to 10)",
                 Sender.WGET, Kind.LOOKUP, _PHP_S, "Park IVR custom-field collect"),
        HookType("amd_fhg", "agi/VD_amd.agi", Sender.WGET, Kind.LOOKUP, _PHP_S,
                 "AMD message audio download for playback"),
        HookType("DNCcom", "www/vicidial/DNCcom_inbound_filter.php", Sender.PHP, Kind.LOOKUP, _PHP_S,
                 "DNC.com inbound filter lookup"),
        HookType("TCPAlit", "www/vicidial/TCPAlitigatorlist_inbound_filter.php", Sender.PHP, Kind.LOOKUP,
                 _PHP_S, "TCPA litigator list inbound filter lookup"),
        HookType("2FA_SMS", "www/agc/vicidial.php, www/vicidial/admin.php", Sender.PHP, Kind.LOG, _PHP_S,
                 "Two-factor login code by SMS: expires, never re-sent"),
        HookType("webform", "www/agc/vdc_db_query.php (Log_Webform_Click)", Sender.BROWSER, Kind.LOG, 0.0,
                 "A web form the agent's browser opened: no request by the server, no UPDATE"),
        HookType("non-agent", "www/vicidial/non_agent_api.php ($api_url_log)", Sender.PHP, Kind.LOG, 0.0,
                 "An API call VICIdial received (inbound, logged when $api_url_log=1): no UPDATE"),
        HookType(OTHER, "bin/AST_send_URL.pl (its default url_type)", Sender.WGET, Kind.LOOKUP, _WGET_S,
                 "AST_send_URL.pl's default type, and every url_type not listed here"),
    )
}  # fmt: skip

#: Labels a metric may carry (bounded): the known types; anything else is :data:`OTHER`.
LABELS: tuple[str, ...] = tuple(HOOK_TYPES)

#: ``vicidial_url_multi.url_type`` names operators know, to the ``url_type`` the log holds.
MULTI_ALIASES: dict[str, str] = {"noagent": "na_callurl", "addlead": "add_lead"}


def label_of(url_type: str) -> str:
    """The bounded metric label of a stored ``url_type``."""
    return url_type if url_type in HOOK_TYPES else OTHER


def hook_type(url_type: str) -> HookType:
    """The facts of a stored ``url_type`` (unknown ones: those of :data:`OTHER`)."""
    return HOOK_TYPES[label_of(url_type)]


def is_watched(url_type: str) -> bool:
    """Whether a row of this type is a request whose UPDATE we wait for (``log`` rows without one are not)."""
    return hook_type(url_type).timeout_s > 0
