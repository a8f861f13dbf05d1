"""Fan-out: one lead → one delivery per endpoint its list names, each resolved on its own.

Selection (``[fanout]``, VICIdial's precedence, per lead by its ``list_id``)
    The list's entry in ``[fanout.lists]`` when it has one: ``---DISABLED---`` means no
    endpoint at all (``LIST_DISABLED``), a list of names means those endpoints. A list
    without an entry (or with ``[]``) gets ``[fanout] system``; an empty system level
    means nothing is sent (``NO_URL``). Without ``[fanout]``, ``system`` is
    ``["vicidial"]``: VICIdial's own URL setting, exactly as before fan-out existed.

Per endpoint
    - ``vicidial``: :func:`cdc.resolve.resolve`, unchanged (GET, endpoint id
      ``host:port``, VICIdial's list/system precedence and ``---DISABLED---``).
    - a named endpoint with its own ``url``: that template, rendered by VICIdial's rules;
      ``url_source`` says which fan-out level chose the endpoint.
    - a named endpoint without ``url``: the URL VICIdial's setting resolves to for the
      lead's list (:meth:`SettingsSnapshot.url_for`), skipped when it resolves to none.
      When its origin is not one of the endpoint's ``allowed_origins`` the delivery is
      built ``refused`` (stored as a dead letter, never sent with the endpoint's secrets).

    The rendered URL passes the same checks as VICIdial's (:func:`cdc.resolve.check_url`),
    then :mod:`cdc.payload` shapes the request by the endpoint's format. Each delivery
    has its own outbox row (``(source, lead_id, endpoint_id)``), retries, dead letter and
    idempotency key; an endpoint that skips a lead gives a :class:`Skipped` carrying its
    ``endpoint_id`` and reason, so nothing is dropped silently.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from . import payload
from .config import VICIDIAL_ENDPOINT, DeliveryConfig, EndpointConfig, FanoutConfig, Format
from .modes import VicidialSender, streamer_sends
from .records import ApiLead, Delivery, Skipped, SkipReason, UrlSource
from .resolve import check_url, origin_refusal, render_url, resolve, template_needs_custom
from .resolve import needs_custom as url_needs_custom
from .settings import SettingsSnapshot
from .vicidial import long_enough

__all__ = ["fan_out", "needs_custom", "select"]


def select(fanout: FanoutConfig, list_id: int) -> tuple[tuple[str, ...], bool]:
    """(endpoint names for a lead of ``list_id``, whether the list level chose them)."""
    names = fanout.lists.get(list_id)
    if names is not None:
        return names, True
    return fanout.system, False


def fan_out(
    lead: ApiLead,
    snapshot: SettingsSnapshot,
    endpoints: Mapping[str, EndpointConfig],
    fanout: FanoutConfig,
    *,
    source: str,
    server_charset: str = "latin1",
    leave_to_vicidial: bool = False,
) -> tuple[list[Delivery], list[Skipped]]:
    """The deliveries of ``lead``, one per selected endpoint, and the endpoints that skip it.

    ``leave_to_vicidial``: VICIdial's own sender sends this lead's request (schema 1726+,
    see :mod:`cdc.modes`), so the endpoints that would repeat it, ``vicidial`` and named
    ``get`` endpoints without their own ``url``, skip it (``VICIDIAL_SENDS``); the others
    are sent as usual. With no endpoints configured the result is exactly
    :func:`cdc.resolve.resolve`'s: one delivery, or one skip.
    """
    names, at_list = select(fanout, lead.list_id)
    if not names:
        reason = SkipReason.LIST_DISABLED if at_list else SkipReason.NO_URL
        return [], [Skipped(lead.lead_id, lead.list_id, reason)]
    deliveries: list[Delivery] = []
    skipped: list[Skipped] = []
    for name in names:
        if name == VICIDIAL_ENDPOINT:
            result = _vicidial(lead, snapshot, source, server_charset, leave_to_vicidial)
        else:
            result = _named(
                lead, snapshot, endpoints[name], at_list, source, server_charset, leave_to_vicidial
            )
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            deliveries.append(result)
    return deliveries, skipped


def needs_custom(
    snapshot: SettingsSnapshot,
    list_id: int,
    endpoints: Mapping[str, EndpointConfig],
    fanout: FanoutConfig,
) -> bool:
    """:func:`cdc.resolve.needs_custom` over every endpoint a lead of ``list_id`` goes to.

    A ``post-json`` endpoint always carries the custom fields (and ``entry_list_id``), so
    its leads wait for the custom-field step whenever the list has custom fields.
    """
    if not snapshot.system.custom_fields_enabled or not snapshot.custom_fields(list_id):
        return False
    for name in select(fanout, list_id)[0]:
        endpoint = endpoints.get(name)
        if endpoint is not None and endpoint.format is Format.POST_JSON:
            return True
        if endpoint is None or endpoint.url is None:
            if url_needs_custom(snapshot, list_id):
                return True
        elif template_needs_custom(snapshot, list_id, endpoint.url):
            return True
    return False


def _vicidial(
    lead: ApiLead, snapshot: SettingsSnapshot, source: str, server_charset: str, leave_to_vicidial: bool
) -> Delivery | Skipped:
    if leave_to_vicidial:
        return Skipped(lead.lead_id, lead.list_id, SkipReason.VICIDIAL_SENDS, VICIDIAL_ENDPOINT)
    result = resolve(lead, snapshot, source=source, server_charset=server_charset)
    if isinstance(result, Skipped):
        return dataclasses.replace(result, endpoint_id=VICIDIAL_ENDPOINT)
    (delivery,) = result
    return delivery


def _named(
    lead: ApiLead,
    snapshot: SettingsSnapshot,
    endpoint: EndpointConfig,
    at_list: bool,
    source: str,
    server_charset: str,
    leave_to_vicidial: bool,
) -> Delivery | Skipped:
    def skip(reason: SkipReason) -> Skipped:
        return Skipped(lead.lead_id, lead.list_id, reason, endpoint.name)

    url_template: str | None
    url_source: UrlSource | None
    if endpoint.url is None:
        if leave_to_vicidial and endpoint.format is Format.GET:
            return skip(SkipReason.VICIDIAL_SENDS)
        url_template, url_source, reason = snapshot.url_for(lead.list_id)
        if url_template is None or url_source is None:
            return skip(reason or SkipReason.NO_URL)
    else:
        url_template = endpoint.url
        url_source = UrlSource.CONFIG_LIST if at_list else UrlSource.CONFIG_SYSTEM
        if not long_enough(url_template):
            return skip(SkipReason.URL_TOO_SHORT)
    url = render_url(lead, snapshot, url_template, server_charset=server_charset)
    problem = check_url(url)
    if problem is not None:
        return skip(problem)
    delivery = Delivery(
        source=source,
        lead_id=lead.lead_id,
        list_id=lead.list_id,
        endpoint_id=endpoint.name,
        method="GET",
        url=url,
        url_source=url_source,
        inserted_at=lead.inserted_at,
        # A URL from VICIdial's rows outside the endpoint's allowed origins: a dead
        # letter saying so, never a request carrying the endpoint's secrets.
        refused=origin_refusal(url, endpoint.allowed_origins) or "",
    )
    if endpoint.format is Format.POST_FORM:
        target, body = payload.form_request(url)
        return dataclasses.replace(
            delivery, method="POST", url=target, body=body, content_type=payload.FORM_CONTENT_TYPE
        )
    if endpoint.format is Format.POST_JSON:
        body = payload.lead_event(
            lead, snapshot, source=source, event_id=delivery.idempotency_key, server_charset=server_charset
        )
        return dataclasses.replace(delivery, method="POST", body=body, content_type=payload.JSON_CONTENT_TYPE)
    return delivery


@dataclasses.dataclass(frozen=True, slots=True)
class Router:
    """Everything that decides a lead's deliveries, shared by the live path and replay."""

    delivery: DeliveryConfig
    source: str
    server_charset: str
    sender: VicidialSender

    def route(self, lead: ApiLead, snapshot: SettingsSnapshot) -> tuple[list[Delivery], list[Skipped]]:
        """The mode decides whether VICIdial's own sender has this lead; fan-out does the rest."""
        leave = streamer_sends(self.delivery.mode, self.sender, snapshot, lead.list_id)
        return fan_out(
            lead,
            snapshot,
            self.delivery.named_endpoints,
            self.delivery.fanout,
            source=self.source,
            server_charset=self.server_charset,
            leave_to_vicidial=leave is not None,
        )

    def needs_custom(self, snapshot: SettingsSnapshot, list_id: int) -> bool:
        return needs_custom(snapshot, list_id, self.delivery.named_endpoints, self.delivery.fanout)
