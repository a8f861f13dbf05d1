"""Who sends a lead's request: the streamer, or VICIdial's own built-in sender.

VICIdial builds with ``db_schema_version`` 1726 and later send the API New Lead URL
themselves (synchronously, once, no retry); older builds lack the feature. Running the
streamer against the same settings on a new build would send every lead twice, so
``delivery.mode`` decides per lead:

- ``send``: the streamer sends every URL it resolves (config file or VICIdial rows).
- ``watch``: the streamer sends nothing of its own; it follows VICIdial's
  ``vicidial_url_log`` rows and re-sends, through its outbox, only the attempts VICIdial
  logged as failed (or never finished).
- ``auto`` (default): per lead, when VICIdial's own rows resolve a URL on a build that
  sends, watch that lead; otherwise send it. Never both for one lead.

VICIdial's other URL hooks (dispo, start, no-agent, …) are watched for every mode and
rescued per ``[hooks] rescue`` (:mod:`cdc.hooks`); only ``apinewlead`` follows the mode.

Pure functions: the service feeds them the settings snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import DeliveryMode
from .records import SkipReason
from .settings import SettingsSnapshot
from .vicidial import SENDER_SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class VicidialSender:
    """What the server says about VICIdial's own sender."""

    #: ``system_settings.db_schema_version`` >= 1726.
    schema_sends: bool
    #: ``vicidial_url_multi.url_type`` has the ``apinewlead`` label.
    enum_has_apinewlead: bool

    @property
    def sends(self) -> bool:
        return self.schema_sends and self.enum_has_apinewlead


def vicidial_sender(snapshot: SettingsSnapshot, enum_has_apinewlead: bool) -> VicidialSender:
    return VicidialSender(snapshot.system.db_schema_version >= SENDER_SCHEMA_VERSION, enum_has_apinewlead)


def vicidial_template(snapshot: SettingsSnapshot, list_id: int) -> str | None:
    """The template VICIdial itself resolves for a list (its rows only, its precedence)."""
    return snapshot.vicidial_url_for(list_id)


def streamer_sends(
    mode: DeliveryMode, sender: VicidialSender, snapshot: SettingsSnapshot, list_id: int
) -> SkipReason | None:
    """``None`` when the streamer sends this lead itself, else why it leaves it to VICIdial."""
    if mode is DeliveryMode.SEND:
        return None
    if mode is DeliveryMode.WATCH:
        return SkipReason.VICIDIAL_SENDS
    if sender.sends and vicidial_template(snapshot, list_id) is not None:
        return SkipReason.VICIDIAL_SENDS
    return None


def retries_vicidial_failures(mode: DeliveryMode) -> bool:
    """Whether attempts VICIdial logged as failed go into our outbox."""
    return mode is not DeliveryMode.SEND
