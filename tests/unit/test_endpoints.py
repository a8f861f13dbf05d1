"""Unit tests for named endpoints: their config ([endpoints.NAME], [fanout]) and cdc.endpoints."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from cdc.config import (
    VICIDIAL_ENDPOINT,
    Config,
    EndpointConfig,
    EndpointHeaders,
    EndpointLimits,
    FanoutConfig,
    Format,
    Secret,
    load,
)
from cdc.endpoints import fan_out, needs_custom, select
from cdc.errors import ConfigError
from cdc.records import ApiLead, Delivery, Skipped, SkipReason, UrlSource, Value
from cdc.resolve import resolve
from cdc.settings import SettingsCache, SettingsSnapshot
from cdc.signing import webhook_headers

SECRET_A = "whsec_" + base64.b64encode(b"a" * 32).decode()
SECRET_B = "whsec_" + base64.b64encode(b"b" * 24).decode()
INSERTED_AT = 1_741_086_367


def load_toml(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> Config:
    path = tmp_path / "cdc.toml"
    path.write_text(text, encoding="utf-8")
    return load(path, env=dict(env or {}))


def api_lead(
    list_id: int = 101, custom: Mapping[str, Value] | None = None, lead_id: int = 7, **columns: Value
) -> ApiLead:
    row: dict[str, Value] = {
        "lead_id": lead_id,
        "list_id": list_id,
        "phone_number": "3125550100",
        "first_name": "José",
        "last_name": "O'Neil&Co",
        "entry_list_id": 0,
    }
    row.update(columns)
    return ApiLead(lead_id=lead_id, list_id=list_id, lead=row, custom=custom, inserted_at=INSERTED_AT)


def snapshot(
    *,
    system: str | None = "http://vici.example.com/new?id=--A--lead_id--B--&fn=--A--first_name--B--",
    lists: Mapping[int, str] | None = None,
    fields: list[tuple[int, str]] | None = None,
) -> SettingsSnapshot:
    urls: list[dict[str, Value]] = []
    if system is not None:
        urls.append(
            {
                "url_id": 1,
                "campaign_id": "-SYSTEM-API-NEWLEAD-",
                "entry_type": "system",
                "url_type": "apinewlead",
                "url_address": system,
            }
        )
    for i, (list_id, address) in enumerate((lists or {}).items(), start=2):
        urls.append(
            {
                "url_id": i,
                "campaign_id": str(list_id),
                "entry_type": "list",
                "url_type": "apinewlead",
                "url_address": address,
            }
        )
    cache = SettingsCache()
    cache.load(
        urls,
        [{"list_id": 101, "list_name": "Web leads", "list_description": "", "campaign_id": "CAMP1"}],
        [
            {"list_id": list_id, "field_label": label, "field_encrypt": "N", "field_duplicate": "N"}
            for list_id, label in (fields or [])
        ],
        {"db_schema_version": 1728, "use_non_latin": "1", "custom_fields_enabled": "1"},
    )
    return cache.snapshot()


ENDPOINTS_TOML = """
[endpoints.crm]
url = "https://crm.example.com/api/leads?list=--A--list_id--B--"
format = "post-json"
headers = { Authorization = "Bearer ${ENV:CRM_TOKEN}", X-Source = "dialer1" }
signing_secrets = ["${ENV:CRM_SECRET}", "${FILE:%(secret_file)s}"]
timeout_s = 5
rate_per_s = 20
concurrency = 4

[endpoints.form]
url = "VARhttp://forms.example.com/in?id=--A--lead_id--B--&fn=--A--first_name--B--&ln=--A--last_name--B--"
format = "post-form"

[endpoints.plain]
format = "get"

[endpoints.alerts]
url = "https://alerts.example.com/hook/--A--lead_id--B--"
format = "post-json"

[fanout]
system = ["vicidial", "crm"]

[fanout.lists]
"201" = ["form", "plain"]
"202" = "---DISABLED---"
"203" = []
"204" = ["alerts", "crm", "vicidial"]
"""


def routes(cfg: Config) -> tuple[Mapping[str, EndpointConfig], FanoutConfig]:
    """What the service passes to fan_out(): the named endpoints and the fan-out."""
    return cfg.delivery.named_endpoints, cfg.delivery.fanout


def full_config(tmp_path: Path) -> Config:
    secret_file = tmp_path / "old.secret"
    secret_file.write_text(SECRET_B + "\n", encoding="utf-8")
    return load_toml(
        tmp_path,
        ENDPOINTS_TOML % {"secret_file": secret_file},
        env={"CRM_TOKEN": "tok-123", "CRM_SECRET": SECRET_A},
    )


class TestEndpointConfig:
    """[endpoints.NAME] and [fanout] load into frozen config; the sender's parts go to [delivery]."""

    def test_loads(self, tmp_path: Path) -> None:
        """Every key of a complete example lands where the resolver and the sender read it."""
        cfg = full_config(tmp_path)
        crm = cfg.delivery.named_endpoints["crm"]
        assert crm.format is Format.POST_JSON
        assert crm.url == "https://crm.example.com/api/leads?list=--A--list_id--B--"
        assert [(name, value.value) for name, value in crm.headers] == [
            ("Authorization", "Bearer tok-123"),
            ("X-Source", "dialer1"),
        ]
        assert [s.value for s in crm.signing_secrets] == [SECRET_A, SECRET_B]
        assert (
            cfg.delivery.named_endpoints["plain"].url is None
            and cfg.delivery.named_endpoints["plain"].format is Format.GET
        )
        assert cfg.delivery.fanout == FanoutConfig(
            system=("vicidial", "crm"),
            lists={201: ("form", "plain"), 202: (), 204: ("alerts", "crm", "vicidial")},
        )
        assert cfg.delivery.endpoints["crm"] == dataclasses.replace(
            EndpointLimits(), timeout_s=5.0, rate_per_s=20.0, concurrency=4
        )
        assert "form" not in cfg.delivery.endpoints  # no limits of its own: defaults or origin
        assert cfg.delivery.endpoint_headers == {
            "crm": EndpointHeaders(crm.headers, crm.signing_secrets, ("https://crm.example.com:443",)),
        }

    def test_secrets_never_print(self, tmp_path: Path) -> None:
        """repr of the config holds no token, secret or URL."""
        text = repr(full_config(tmp_path))
        for secret in ("tok-123", SECRET_A, SECRET_B, "crm.example.com"):
            assert secret not in text

    def test_defaults_without_endpoints(self, tmp_path: Path) -> None:
        """No [endpoints], no [fanout]: VICIdial's URL only, nothing added to [delivery]."""
        cfg = load_toml(tmp_path, "[delivery]\nrate_per_s = 5\n")
        assert cfg.delivery.named_endpoints == {} and cfg.delivery.fanout == FanoutConfig(
            system=(VICIDIAL_ENDPOINT,), lists={}
        )
        assert cfg.delivery.endpoint_headers == {} and cfg.delivery.endpoints == {}
        assert load(None, env={}).delivery.fanout == Config().delivery.fanout

    def test_file_may_hold_two_secrets(self, tmp_path: Path) -> None:
        """A secrets file with two lines gives two secrets (rotation without editing the TOML)."""
        path = tmp_path / "secrets"
        path.write_text(f"{SECRET_A}\n{SECRET_B}\n", encoding="utf-8")
        cfg = load_toml(
            tmp_path,
            f'[endpoints.x]\nurl = "https://x.example.com/h"\nsigning_secrets = ["${{FILE:{path}}}"]\n'
            '[fanout]\nsystem = ["x"]\n',
        )
        assert [s.value for s in cfg.delivery.named_endpoints["x"].signing_secrets] == [SECRET_A, SECRET_B]

    @pytest.mark.parametrize(
        ("toml", "message"),
        [
            ('[endpoints.vicidial]\nurl = "https://x.example/"\n', "reserved"),
            ('[endpoints."a b"]\nurl = "https://x.example/"\n', "endpoint name"),
            ('[endpoints.x]\nurl = "https://x.example/"\nmethod = "post"\n', "unknown key"),
            ('[endpoints.x]\nurl = "https://x.example/"\nformat = "xml"\n', "format must be one of"),
            ('[endpoints.x]\nurl = "/relative"\n', "http:// or https://"),
            ('[endpoints.x]\nurl = "https://x.example.com/?k=${ENV:K}"\n', "headers only"),
            (
                '[endpoints.x]\nurl = "https://x.example/"\nheaders = { Authorization = "Bearer s3cr3t" }\n',
                "looks like a credential",
            ),
            (
                '[endpoints.x]\nurl = "https://x.example/"\nheaders = { X-Api-Key = "s3cr3t" }\n',
                "looks like a credential",
            ),
            (
                '[endpoints.x]\nurl = "https://x.example/"\nheaders = { Content-Type = "text/plain" }\n',
                "sets Content-Type itself",
            ),
            ('[endpoints.x]\nurl = "https://x.example/"\nheaders = { webhook-id = "1" }\n', "itself"),
            (
                '[endpoints.x]\nurl = "https://x.example/"\nheaders = { X-T = "${ENV:MISSING}" }\n',
                "MISSING is not set",
            ),
            (
                '[endpoints.x]\nurl = "https://x.example/"\nheaders = { X-T = "${VAULT:a}" }\n',
                "only ${ENV:NAME}",
            ),
            (
                '[endpoints.x]\nurl = "https://x.example/"\nheaders = { X-T = "${FILE:rel/path}" }\n',
                "absolute path",
            ),
            (
                '[endpoints.x]\nurl = "https://x.example/"\nsigning_secrets = ["whsec_s3cr3t"]\n',
                "never written in the config file",
            ),
            (
                '[endpoints.x]\nurl = "https://x.example/"\nsigning_secrets = ["${ENV:BAD}"]\n',
                "must start with 'whsec_'",
            ),
            ('[endpoints.x]\nurl = "https://x.example/"\nconcurrency = 0\n', "must be positive"),
            ('[endpoints.x]\nurl = "https://x.example/"\n', "not named in [fanout]"),
            ('[fanout]\nsystem = ["nosuch"]\n', "undefined endpoint(s) nosuch"),
            ('[fanout]\nsystem = ["vicidial", "vicidial"]\n', "twice"),
            ('[fanout.lists]\nabc = ["vicidial"]\n', "not a numeric list_id"),
            ('[fanout.lists]\n"101" = "off"\n', "list of endpoint names"),
            ("[fanout]\nother = 1\n", "unknown key"),
            (
                '[delivery.endpoints.x]\nrate_per_s = 1\n[endpoints.x]\nurl = "https://x.example/"\n'
                'rate_per_s = 2\n[fanout]\nsystem = ["x"]\n',
                "keep one",
            ),
        ],
    )
    def test_errors(self, tmp_path: Path, toml: str, message: str) -> None:
        """A bad [endpoints]/[fanout] config is refused with a message that names the problem and never
        echoes a secret."""
        with pytest.raises(ConfigError) as info:
            load_toml(tmp_path, toml, env={"BAD": "s3cr3t"})
        assert message in str(info.value)
        assert "s3cr3t" not in str(info.value)  # errors never echo a secret


class TestSelect:
    """select() applies VICIdial's precedence to [fanout]."""

    FANOUT = FanoutConfig(system=("a", "b"), lists={1: ("c",), 2: ()})

    @pytest.mark.parametrize(
        ("list_id", "expected"),
        [(1, (("c",), True)), (2, ((), True)), (3, (("a", "b"), False))],
    )
    def test_levels(self, list_id: int, expected: tuple[tuple[str, ...], bool]) -> None:
        """A list's own [fanout.lists] entry wins (even empty); other lists take the system entry."""
        assert select(self.FANOUT, list_id) == expected


class TestFanOut:
    """fan_out() gives one delivery per selected endpoint, or its reason to skip."""

    def test_no_endpoints_is_resolve(self) -> None:
        """The default config gives exactly resolve()'s delivery (GET, endpoint id host:port)."""
        snap = snapshot()
        deliveries, skipped = fan_out(api_lead(), snap, {}, FanoutConfig(), source="d")
        assert deliveries == resolve(api_lead(), snap, source="d") and skipped == []
        assert deliveries == [
            Delivery(
                source="d",
                lead_id=7,
                list_id=101,
                endpoint_id="vici.example.com:80",
                method="GET",
                url="http://vici.example.com/new?id=7&fn=Jos%C3%A9",
                url_source=UrlSource.VICIDIAL_SYSTEM,
                inserted_at=INSERTED_AT,
            )
        ]

    def test_no_endpoints_skip_is_resolve(self) -> None:
        """Without a URL the default config skips with resolve()'s reason."""
        deliveries, skipped = fan_out(api_lead(), snapshot(system=None), {}, FanoutConfig(), source="d")
        assert deliveries == [] and [(s.reason, s.endpoint_id) for s in skipped] == [
            (SkipReason.NO_URL, VICIDIAL_ENDPOINT)
        ]

    def test_system_level(self, tmp_path: Path) -> None:
        """System level: VICIdial's GET plus the JSON event, each with its own key and source."""
        cfg = full_config(tmp_path)
        deliveries, skipped = fan_out(api_lead(), snapshot(), *routes(cfg), source="d")
        assert skipped == []
        vici, crm = deliveries
        assert (vici.endpoint_id, vici.method, vici.url) == (
            "vici.example.com:80",
            "GET",
            "http://vici.example.com/new?id=7&fn=Jos%C3%A9",
        )
        assert (crm.endpoint_id, crm.method, crm.url, crm.content_type, crm.url_source) == (
            "crm",
            "POST",
            "https://crm.example.com/api/leads?list=101",
            "application/json",
            UrlSource.CONFIG_SYSTEM,
        )
        assert crm.idempotency_key == "d:7:crm" != vici.idempotency_key
        body = orjson.loads(crm.body)
        assert (body["id"], body["type"], body["lead_id"], body["data"]["lead"]["first_name"]) == (
            "d:7:crm",
            "lead.created",
            7,
            "José",
        )

    def test_list_level_form_and_plain(self, tmp_path: Path) -> None:
        """A list's entry replaces the system's: a form POST and a named GET of VICIdial's URL."""
        cfg = full_config(tmp_path)
        snap = snapshot(lists={201: "http://vici.example.com/l201?ph=--A--phone_number--B--"})
        deliveries, skipped = fan_out(api_lead(list_id=201), snap, *routes(cfg), source="d")
        assert skipped == []
        assert [
            (d.endpoint_id, d.method, d.url, d.body, d.content_type, d.url_source) for d in deliveries
        ] == [
            (
                "form",
                "POST",
                "http://forms.example.com/in",
                b"id=7&fn=Jos%C3%A9&ln=O%27Neil%26Co",
                "application/x-www-form-urlencoded",
                UrlSource.CONFIG_LIST,
            ),
            ("plain", "GET", "http://vici.example.com/l201?ph=3125550100", b"", "", UrlSource.VICIDIAL_LIST),
        ]

    def test_disabled_and_blank_lists(self, tmp_path: Path) -> None:
        """---DISABLED--- sends nothing; [] falls back to the system level."""
        cfg = full_config(tmp_path)
        assert fan_out(api_lead(list_id=202), snapshot(), *routes(cfg), source="d") == (
            [],
            [Skipped(7, 202, SkipReason.LIST_DISABLED)],
        )
        blank, _ = fan_out(api_lead(list_id=203), snapshot(), *routes(cfg), source="d")
        assert [d.endpoint_id for d in blank] == ["vici.example.com:80", "crm"]

    def test_empty_system_level(self) -> None:
        """An empty system level sends nothing for lists without an entry."""
        assert fan_out(api_lead(), snapshot(), {}, FanoutConfig(system=()), source="d") == (
            [],
            [Skipped(7, 101, SkipReason.NO_URL)],
        )

    def test_partial_skip(self, tmp_path: Path) -> None:
        """VICIdial's list value ---DISABLED--- stops the endpoints that use VICIdial's URL only."""
        cfg = full_config(tmp_path)
        snap = snapshot(lists={204: "---DISABLED---"})
        deliveries, skipped = fan_out(api_lead(list_id=204), snap, *routes(cfg), source="d")
        assert [d.endpoint_id for d in deliveries] == ["alerts", "crm"]
        assert deliveries[0].url == "https://alerts.example.com/hook/7"
        assert skipped == [Skipped(7, 204, SkipReason.LIST_DISABLED, VICIDIAL_ENDPOINT)]

    def test_own_url_checked(self) -> None:
        """A named endpoint's rendered URL passes VICIdial's checks, with its own skip reason."""
        endpoints = {"x": dataclasses.replace(_endpoint("x"), url="http://--A--first_name--B--.example.com/")}
        _, skipped = fan_out(api_lead(), snapshot(), endpoints, FanoutConfig(system=("x",)), source="d")
        assert skipped == [Skipped(7, 101, SkipReason.URL_INVALID, "x")]

    def test_leave_to_vicidial(self, tmp_path: Path) -> None:
        """When VICIdial sends the lead itself, only the requests that would repeat it are skipped."""
        cfg = full_config(tmp_path)
        snap = snapshot(lists={201: "http://vici.example.com/l201"})
        sys_d, sys_s = fan_out(api_lead(), snap, *routes(cfg), source="d", leave_to_vicidial=True)
        assert [d.endpoint_id for d in sys_d] == ["crm"]
        assert sys_s == [Skipped(7, 101, SkipReason.VICIDIAL_SENDS, VICIDIAL_ENDPOINT)]
        list_d, list_s = fan_out(
            api_lead(list_id=201), snap, *routes(cfg), source="d", leave_to_vicidial=True
        )
        assert [d.endpoint_id for d in list_d] == ["form"]
        assert list_s == [Skipped(7, 201, SkipReason.VICIDIAL_SENDS, "plain")]


def _endpoint(name: str, **kwargs: Any) -> EndpointConfig:
    return EndpointConfig(name=name, **kwargs)


class TestNeedsCustom:
    """Leads wait for the custom-field step when any of their endpoints uses custom values."""

    def test_post_json_waits_when_list_has_fields(self) -> None:
        """A post-json endpoint makes a lead wait for custom fields only when its list has them."""
        endpoints = {"j": _endpoint("j", url="https://j.example.com/", format=Format.POST_JSON)}
        fanout = FanoutConfig(system=("vicidial", "j"))
        assert needs_custom(snapshot(fields=[(101, "color")]), 101, endpoints, fanout)
        assert not needs_custom(snapshot(), 101, endpoints, fanout)  # no custom fields

    def test_templates(self) -> None:
        """A named endpoint's own template or VICIdial's URL decides, as for VICIdial alone."""
        fields = [(101, "color")]
        own = {"g": _endpoint("g", url="https://g.example.com/?c=--A--color--B--")}
        assert needs_custom(snapshot(fields=fields), 101, own, FanoutConfig(system=("g",)))
        plain = {"g": _endpoint("g", url="https://g.example.com/?id=--A--lead_id--B--")}
        assert not needs_custom(snapshot(fields=fields), 101, plain, FanoutConfig(system=("g",)))
        vici = snapshot(system="http://v.example.com/?c=--A--color--B--", fields=fields)
        assert needs_custom(vici, 101, {}, FanoutConfig())
        assert not needs_custom(vici, 101, {}, FanoutConfig(lists={101: ()}))


def test_secret_repr() -> None:
    """Header values are Secrets: their repr never shows the value."""
    assert "tok" not in repr(EndpointHeaders(headers=(("Authorization", Secret("tok")),)))


class TestReadmeExamples:
    """The README's endpoint example loads, fans out as it says, and its verifier works."""

    @staticmethod
    def _block(language: str) -> str:
        readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
        section = readme.split("## Endpoints and payload formats", 1)[1].split("\n## ", 1)[0]
        return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]

    def test_config_example(self, tmp_path: Path) -> None:
        """The README's endpoint example loads and fans a lead out as the README says."""
        (tmp_path / "crm.whsec").write_text(SECRET_A + "\n", encoding="utf-8")
        (tmp_path / "reports.key").write_text("key-1\n", encoding="utf-8")
        toml = self._block("toml").replace("/etc/vicidial-cdc/", f"{tmp_path}/")
        cfg = load_toml(tmp_path, toml, env={"CRM_TOKEN": "t"})
        lead = api_lead(lead_id=1234, list_id=101, first_name="José")
        snap = snapshot()
        deliveries, skipped = fan_out(lead, snap, *routes(cfg), source="dialer1")
        assert skipped == []
        reports = next(d for d in deliveries if d.endpoint_id == "reports")
        assert (reports.method, reports.url, reports.body) == (
            "POST",
            "https://reports.example.com/ingest",
            b"lead=1234&list=101&name=Jos%C3%A9",
        )
        assert [d.endpoint_id for d in deliveries] == ["crm", "reports", "alerts"]
        system, _ = fan_out(api_lead(list_id=555), snap, *routes(cfg), source="dialer1")
        assert [d.endpoint_id for d in system] == ["vici.example.com:80", "crm"]

    def test_verifier(self) -> None:
        """The README's verifier accepts a body signed with any current secret and refuses a changed body."""
        namespace: dict[str, Any] = {}
        exec(self._block("python"), namespace)
        body = b'{"a":1}'
        headers = webhook_headers([SECRET_A, SECRET_B], "d:1:crm", int(time.time()), body)
        assert namespace["verify"](SECRET_B, headers, body)
        assert not namespace["verify"](SECRET_A, headers, body + b" ")


class TestAllowedOrigins:
    """Secrets go only where the operator said: allowed_origins, checked at load and at routing."""

    TOKEN_ENV: Mapping[str, str] = MappingProxyType({"CRM_TOKEN": "tok-123", "CRM_SECRET": SECRET_A})

    @pytest.mark.parametrize(
        "endpoint",
        [
            'headers = { Authorization = "Bearer ${ENV:CRM_TOKEN}" }',
            'signing_secrets = ["${ENV:CRM_SECRET}"]',
            'url = "https://--A--city--B--.example.com/h"\nheaders = { X-T = "${ENV:CRM_TOKEN}" }',
        ],
    )
    def test_secrets_that_could_go_anywhere_are_refused(self, tmp_path: Path, endpoint: str) -> None:
        """No url (or a host made of tokens), secrets, no allowed_origins: a ConfigError with the fix."""
        with pytest.raises(ConfigError) as info:
            load_toml(tmp_path, f'[endpoints.crm]\n{endpoint}\n[fanout]\nsystem = ["crm"]\n', self.TOKEN_ENV)
        assert "allowed_origins = [" in str(info.value) and "[endpoints.crm]" in str(info.value)
        assert "tok-123" not in str(info.value)

    def test_origins_normalized_and_implied(self, tmp_path: Path) -> None:
        """Listed origins are scheme://host:port; a fixed url adds its own; no secrets, no origins needed."""
        cfg = load_toml(
            tmp_path,
            "[endpoints.crm]\n"
            'headers = { Authorization = "Bearer ${ENV:CRM_TOKEN}" }\n'
            'allowed_origins = ["HTTPS://CRM.Example.com/", "http://127.0.0.1:8080", "http://[::1]:9"]\n'
            "[endpoints.own]\n"
            'url = "VAR https://hook.example.com/x?id=--A--lead_id--B--"\n'
            'signing_secrets = ["${ENV:CRM_SECRET}"]\n'
            "[endpoints.plain]\n"
            'headers = { X-Source = "dialer1" }\n'
            '[fanout]\nsystem = ["crm", "own", "plain"]\n',
            self.TOKEN_ENV,
        )
        named = cfg.delivery.named_endpoints
        assert named["crm"].allowed_origins == (
            "https://crm.example.com:443",
            "http://127.0.0.1:8080",
            "http://[::1]:9",
        )
        assert named["own"].allowed_origins == ("https://hook.example.com:443",)
        assert named["plain"].allowed_origins == ()
        assert cfg.delivery.endpoint_headers["crm"].allowed_origins == named["crm"].allowed_origins

    @pytest.mark.parametrize(
        "origin",
        ["https://crm.example.com/api", "ftp://crm.example.com", "https://u:p@crm.example.com", "crm"],
    )
    def test_bad_origin(self, tmp_path: Path, origin: str) -> None:
        """An allowed origin with a path, another scheme, credentials or no scheme is refused."""
        with pytest.raises(ConfigError, match="is not an origin"):
            load_toml(
                tmp_path,
                f'[endpoints.crm]\nallowed_origins = ["{origin}"]\n[fanout]\nsystem = ["crm"]\n',
            )

    def test_routing_refuses_other_origins(self) -> None:
        """A URL from VICIdial's rows outside allowed_origins is a refused delivery naming the origin only."""
        crm = EndpointConfig(
            name="crm",
            format=Format.POST_JSON,
            headers=(("Authorization", Secret("tok")),),
            allowed_origins=("https://crm.example.com:443",),
        )
        snap = snapshot(
            system="https://crm.example.com/new?id=--A--lead_id--B--",
            lists={102: "https://evil.example.net:8443/steal?ph=--A--phone_number--B--"},
        )
        fanout = FanoutConfig(system=("crm",))
        [ok], _ = fan_out(api_lead(101), snap, {"crm": crm}, fanout, source="d")
        [bad], _ = fan_out(api_lead(102), snap, {"crm": crm}, fanout, source="d")
        assert ok.refused == "" and ok.url.startswith("https://crm.example.com/new")
        assert bad.refused == "origin_refused https://evil.example.net:8443"
        assert bad.endpoint_id == "crm" and bad.list_id == 102
