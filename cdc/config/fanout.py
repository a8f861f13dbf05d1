"""``[endpoints.NAME]`` and ``[fanout]``: named receivers, their secrets, and which leads go where.

``[endpoints.NAME]``  url (template; absent: VICIdial's resolved URL), format, headers,
                      signing_secrets, allowed_origins, and the per-endpoint limits of
                      ``[delivery.endpoints]``.
``[fanout]``          system = [NAMES], ``[fanout.lists]`` "<list_id>" = [NAMES] | "---DISABLED---".

Secrets in headers and signing_secrets are read from ``${ENV:NAME}`` or ``${FILE:/path}``
only; an endpoint that sends them must say where to (its own url or ``allowed_origins``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..vicidial import DISABLED, is_disabled, strip_var
from .sections import (
    VICIDIAL_ENDPOINT,
    Config,
    EndpointConfig,
    EndpointHeaders,
    EndpointLimits,
    FanoutConfig,
    Format,
    Secret,
)
from .validation import URL_TEMPLATE
from .values import build_section

__all__ = ["with_endpoints"]

_ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_REFERENCE = re.compile(r"\$\{(ENV|FILE):([^}]*)\}")
#: Set by the sender itself (or by aiohttp); an endpoint's headers may not replace them.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "idempotency-key",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
#: Header names whose value must come from ${ENV:...} or ${FILE:...}, never the TOML.
_SENSITIVE_HEADER = re.compile(r"auth|token|secret|key|pass|cookie|session|signature", re.IGNORECASE)
_ENDPOINT_KEYS = frozenset({"url", "format", "headers", "signing_secrets", "allowed_origins"})
#: An ``allowed_origins`` entry: ``scheme://host[:port]``, nothing after but an optional ``/``.
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?/?", re.IGNORECASE)
#: The scheme and authority of a URL template (after VICIdial's optional ``VAR``).
_TEMPLATE_ORIGIN = re.compile(r"\s*(https?://[^/?#\s]+)", re.IGNORECASE)


def with_endpoints(config: Config, raw: Any, fanout_raw: Any, env: Mapping[str, str]) -> Config:
    """Add ``[endpoints.*]`` and ``[fanout]`` to ``delivery``, with their limits and headers."""
    if not isinstance(raw, dict):
        raise ConfigError("[endpoints] must be a table of [endpoints.NAME] tables")
    limit_keys = {f.name for f in dataclasses.fields(EndpointLimits)}
    delivery = config.delivery
    limits = dict(delivery.endpoints)
    extras: dict[str, EndpointHeaders] = {}
    endpoints: dict[str, EndpointConfig] = {}
    for name, table in raw.items():
        where = f"endpoints.{name}"
        if name == VICIDIAL_ENDPOINT:
            raise ConfigError(
                f"[endpoints.{VICIDIAL_ENDPOINT}] is reserved for VICIdial's own URL setting: "
                "give your endpoint another name"
            )
        if not _ENDPOINT_NAME.fullmatch(name):
            raise ConfigError(
                f"endpoint name {name!r} must be 1-63 letters, digits, '_', '-' or '.' (it is a metric label)"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table")
        unknown = set(table) - _ENDPOINT_KEYS - limit_keys
        if unknown:
            raise ConfigError(f"unknown key(s) in [{where}]: {', '.join(sorted(unknown))}")
        endpoint = _endpoint(name, table, where, env)
        endpoints[name] = endpoint
        own_limits = {k: v for k, v in table.items() if k in limit_keys}
        if own_limits:
            if name in limits:
                raise ConfigError(
                    f"limits of endpoint {name!r} are set in [{where}] and "
                    f"[delivery.endpoints.{name}]: keep one"
                )
            merged = {**{k: getattr(delivery.defaults, k) for k in limit_keys}, **own_limits}
            lim: EndpointLimits = build_section(EndpointLimits, merged, where, {})
            if lim.concurrency < 1 or lim.rate_per_s <= 0 or lim.burst < 1 or lim.timeout_s <= 0:
                raise ConfigError(
                    f"[{where}] limits must be positive (concurrency, rate_per_s, burst, timeout_s)"
                )
            limits[name] = lim
        if endpoint.headers or endpoint.signing_secrets:
            extras[name] = EndpointHeaders(
                endpoint.headers, endpoint.signing_secrets, endpoint.allowed_origins
            )
    fanout = _load_fanout(fanout_raw, endpoints)
    delivery = dataclasses.replace(
        delivery, endpoints=limits, endpoint_headers=extras, named_endpoints=endpoints, fanout=fanout
    )
    result: Config = dataclasses.replace(config, delivery=delivery)
    return result


def _endpoint(name: str, table: Mapping[str, Any], where: str, env: Mapping[str, str]) -> EndpointConfig:
    url = table.get("url")
    if url is not None:
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"{where}.url must be a URL template (leave it out to use VICIdial's URL)")
        if "${" in url:
            raise ConfigError(f"{where}.url: ${{ENV:...}} and ${{FILE:...}} are read in headers only")
        if not URL_TEMPLATE.match(strip_var(url)):
            raise ConfigError(f"{where}.url must start with http:// or https://")
    fmt = table.get("format", Format.GET.value)
    if fmt not in {f.value for f in Format}:
        raise ConfigError(f"{where}.format must be one of {', '.join(f.value for f in Format)}, got {fmt!r}")
    headers_raw = table.get("headers", {})
    if not isinstance(headers_raw, dict):
        raise ConfigError(f"{where}.headers must be a table of header = value")
    headers: list[tuple[str, Secret]] = []
    for header, value in headers_raw.items():
        headers.append((header, _header_value(header, value, f"{where}.headers.{header}", env)))
    secrets_raw = table.get("signing_secrets", [])
    if not isinstance(secrets_raw, list):
        raise ConfigError(f'{where}.signing_secrets must be a list of "${{ENV:NAME}}" or "${{FILE:/path}}"')
    secrets: list[Secret] = []
    for i, ref in enumerate(secrets_raw):
        secrets.extend(_signing_secrets(ref, f"{where}.signing_secrets[{i}]", env))
    # A header written with ${ENV:...}/${FILE:...} is a secret (credential-like names must be).
    has_secrets = bool(secrets) or any(
        isinstance(value, str) and _REFERENCE.search(value) for value in headers_raw.values()
    )
    return EndpointConfig(
        name=name,
        url=url,
        format=Format(fmt),
        headers=tuple(headers),
        signing_secrets=tuple(secrets),
        allowed_origins=_allowed_origins(table.get("allowed_origins", []), url, has_secrets, where),
    )


def _allowed_origins(raw: Any, url: str | None, has_secrets: bool, where: str) -> tuple[str, ...]:
    """``allowed_origins`` normalized, plus a fixed ``url``'s origin; secrets that could go anywhere: error.

    Without its own ``url`` (or with a host made of tokens) an endpoint's requests go where
    VICIdial's settings rows (or the lead) say, and whoever can edit a list's URL in
    VICIdial would receive its headers and signatures.
    """
    from ..resolve import origin_of  # pure; imported here as resolve depends on config

    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(f'{where}.allowed_origins must be a list such as ["https://crm.example.com"]')
    origins: list[str] = []
    for text in raw:
        if not _ORIGIN.fullmatch(text.strip()):
            raise ConfigError(
                f"{where}.allowed_origins: {text!r} is not an origin: write scheme://host[:port]"
                " (http or https) without user, path or query"
            )
        origins.append(origin_of(text.strip())[0])
    fixed = _TEMPLATE_ORIGIN.match(strip_var(url.lstrip())) if url is not None else None
    if fixed is not None and "--a--" not in fixed.group(1).lower():
        origins.append(origin_of(fixed.group(1))[0])
    if has_secrets and not origins:
        source = (
            "it has no url, so its URL comes from VICIdial's settings rows, which anyone who can"
            " edit a list's URL in VICIdial controls"
            if url is None
            else "its url takes the host from lead data (a token before the path)"
        )
        raise ConfigError(
            f"[{where}] sends secrets (headers from ${{ENV:...}}/${{FILE:...}} or signing_secrets) but"
            f' {source}: add allowed_origins = ["https://crm.example.com"] (the scheme://host[:port]'
            " they may be sent to), or give the endpoint its own url"
        )
    return tuple(dict.fromkeys(origins))


def _header_value(header: str, value: Any, where: str, env: Mapping[str, str]) -> Secret:
    if not _HEADER_NAME.fullmatch(header):
        raise ConfigError(f"{where}: not a valid HTTP header name")
    if header.lower() in _RESERVED_HEADERS:
        raise ConfigError(f"{where}: the sender sets {header} itself")
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    if _SENSITIVE_HEADER.search(header) and not _REFERENCE.search(value):
        raise ConfigError(
            f"{where} looks like a credential: write it as ${{ENV:NAME}} or ${{FILE:/path}} "
            '(for example "Bearer ${ENV:CRM_TOKEN}"), never in the config file'
        )
    text = _expand(value, where, env)
    if not text.isascii() or any(ch < " " or ch == "\x7f" for ch in text):
        raise ConfigError(f"{where}: the value must be printable ASCII (no line breaks)")
    return Secret(text)


def _signing_secrets(ref: Any, where: str, env: Mapping[str, str]) -> list[Secret]:
    """One ``${ENV:...}``/``${FILE:...}`` entry: one secret, or several separated by whitespace."""
    from ..signing import decode_secret  # pure; imported here so that signing stays config-free

    if not isinstance(ref, str) or not _REFERENCE.fullmatch(ref.strip()):
        raise ConfigError(
            f'{where} must be "${{ENV:NAME}}" or "${{FILE:/path}}": signing secrets are never '
            "written in the config file"
        )
    out: list[Secret] = []
    for secret in _expand(ref.strip(), where, env).split():
        try:
            decode_secret(secret)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        out.append(Secret(secret))
    return out


def _expand(value: str, where: str, env: Mapping[str, str]) -> str:
    """``value`` with each ``${ENV:NAME}`` and ``${FILE:/path}`` replaced; errors name no secret."""

    def read(match: re.Match[str]) -> str:
        kind, arg = match.group(1), match.group(2)
        if kind == "ENV":
            text = env.get(arg)
            if text is None:
                raise ConfigError(f"{where}: the environment variable {arg} is not set")
        else:
            if not Path(arg).is_absolute():
                raise ConfigError(f"{where}: ${{FILE:{arg}}} must be an absolute path")
            try:
                text = Path(arg).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
                raise ConfigError(f"{where}: cannot read {arg}: {reason}") from None
        if not text.strip():
            raise ConfigError(f"{where}: ${{{kind}:{arg}}} is empty")
        return text

    if "${" in _REFERENCE.sub("", value):
        raise ConfigError(f"{where}: only ${{ENV:NAME}} and ${{FILE:/path}} are understood after '$'")
    return _REFERENCE.sub(read, value)


def _load_fanout(raw: Any, endpoints: Mapping[str, EndpointConfig]) -> FanoutConfig:
    known = set(endpoints) | {VICIDIAL_ENDPOINT}
    if raw is None:
        fanout = FanoutConfig()
    else:
        if not isinstance(raw, dict):
            raise ConfigError("[fanout] must be a table")
        unknown = set(raw) - {"system", "lists"}
        if unknown:
            raise ConfigError(f"unknown key(s) in [fanout]: {', '.join(sorted(unknown))}")
        system = _names(raw.get("system", [VICIDIAL_ENDPOINT]), "fanout.system", known)
        lists_raw = raw.get("lists", {})
        if not isinstance(lists_raw, dict):
            raise ConfigError('[fanout.lists] must be a table of "<list_id>" = [endpoint names]')
        lists: dict[int, tuple[str, ...]] = {}
        for key, value in lists_raw.items():
            if not str(key).isdigit():
                raise ConfigError(f"[fanout.lists] key {key!r} is not a numeric list_id")
            if value == []:
                continue  # blank: the system level, as in VICIdial
            lists[int(key)] = _names(value, f"fanout.lists.{key}", known)
        fanout = FanoutConfig(system=system, lists=lists)
    used = set(fanout.system).union(*fanout.lists.values())
    unused = sorted(set(endpoints) - used)
    if unused:
        raise ConfigError(
            f"endpoint(s) {', '.join(unused)} defined but not named in [fanout] "
            "(system = [...] or [fanout.lists]): add them there or remove them"
        )
    return fanout


def _names(value: Any, where: str, known: set[str]) -> tuple[str, ...]:
    if isinstance(value, str) and is_disabled(value):
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of endpoint names or {DISABLED!r}")
    missing = [v for v in value if v not in known]
    if missing:
        raise ConfigError(
            f"{where} names undefined endpoint(s) {', '.join(missing)} "
            f"(define [endpoints.NAME]; {VICIDIAL_ENDPOINT!r} is VICIdial's own URL)"
        )
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} names an endpoint twice")
    return tuple(value)
