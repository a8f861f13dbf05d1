"""End to end: named endpoints, the three formats, signatures and fan-out, on a real receiver.

VICIdial-shaped writes on a private MariaDB → the streamer → real receivers on loopback.
Every expected request (target, body, headers) is written by hand from the documented
rules, never produced by the code under test; JSON bodies are also validated against
``schemas/lead.created.v1.json``; signatures are checked with the ``standardwebhooks``
package, an independent implementation. Configs are written as TOML and read by
``cdc.config.load``, the path a real deployment takes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from support.fence import WAIT_S, fence, fence_toml, headers_of, setup_fence, wait_for
from support.harness import Pipeline, StartPipeline, configure

from cdc.config import RetryPolicy
from cdc.testing.receiver import Receiver
from cdc.testing.schema import DEFAULT_API_USER, create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "lead.created.v1.json").read_text("utf-8"))
NEW_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OLD_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"z" * 32).decode()


# -- get ---------------------------------------------------------------------------------

EXACT_TEMPLATE = (
    "VAR{base}/new?id=--A--lead_id--B--&ph=--A--phone_number--B--&fn=--A--First_Name--B--"
    "&ln=--a--last_name--b--&list=--A--list_name--B--&g=--A--gender--B--&dob=--A--date_of_birth--B--"
    "&gmt=--A--gmt_offset_now--B--&unk=--A--nosuch--B--&v=--A--vendor_id--B--&c=--A--comments--B--"
)


def exact_expected(lead_id: int) -> str:
    """VICIdial's request target for the lead of TestGet, by hand: trim, UTF-8, PHP urlencode."""
    return (
        f"/new?id={lead_id}&ph=3125551234&fn=Jo+Ann&ln=Nguy%E1%BB%85n%26Co&list=Lista+A%C3%B1o&g=U"
        "&dob=0000-00-00&gmt=-5.00&unk=--A--nosuch--B--&v=V%2F1&c=a%7Eb+c"
    )


class TestGet:
    """format = "get": VICIdial's request byte for byte, to VICIdial's URL or the endpoint's own."""

    async def test_named_get_is_vicidials_request(
        self, pipeline: Pipeline, receivers: list[Receiver], tmp_path: Path
    ) -> None:
        """vicidial + a named GET of VICIdial's URL (with a token header) + a GET of its own URL."""
        own = receivers[0]
        pipeline.vicidial.set_system(use_non_latin=True)
        pipeline.vicidial.add_list(101, "Lista Año", "CAMP1", "")
        pipeline.vicidial.set_system_url(EXACT_TEMPLATE.format(base=pipeline.receiver.url))
        pipeline.setup_fence()
        toml = (
            "[endpoints.plain]\n"
            'headers = { X-Api-Token = "${ENV:PLAIN_TOKEN}" }\n'
            f'allowed_origins = ["{pipeline.receiver.url}"]\n'
            "[endpoints.own]\n"
            f'url = "{own.url}/own?fn=--A--first_name--B--&ln=--A--last_name--B--&id=--A--lead_id--B--"\n'
            'format = "get"\n'
            "[fanout]\n"
            'system = ["vicidial", "plain", "own"]\n' + fence_toml()
        )
        cfg = configure(
            pipeline.server, pipeline.database, tmp_path, toml, env={"PLAIN_TOKEN": "tok-plain-1"}
        )
        await pipeline.start(config=cfg)
        lead_id = await asyncio.to_thread(
            pipeline.vicidial.add_lead,
            phone_number="3125551234",
            list_id=101,
            first_name="  Jo Ann ",
            last_name="Nguyễn&Co",
            vendor_lead_code="V/1",
            comments="a~b c",
        )
        both = await wait_for(pipeline.receiver, lambda r: r.target.startswith("/new"), 2)
        [mine] = await wait_for(own, lambda r: True, 1)
        await pipeline.fence("get")

        assert [r.target for r in both] == [exact_expected(lead_id)] * 2
        by_key = {headers_of(r)["idempotency-key"]: r for r in both}
        assert set(by_key) == {f"test:{lead_id}:127.0.0.1:{pipeline.receiver.port}", f"test:{lead_id}:plain"}
        for key, request in by_key.items():
            assert (request.method, request.body) == ("GET", b"")
            sent = headers_of(request)
            assert not {"user-agent", "accept", "accept-encoding", "content-type"} & set(sent)
            assert sent.get("x-api-token") == ("tok-plain-1" if key.endswith(":plain") else None)
            assert "webhook-signature" not in sent
        assert (mine.method, mine.target, mine.body) == (
            "GET",
            f"/own?fn=Jo+Ann&ln=Nguy%E1%BB%85n%26Co&id={lead_id}",
            b"",
        )
        assert headers_of(mine)["idempotency-key"] == f"test:{lead_id}:own"


# -- post-form ---------------------------------------------------------------------------


class TestPostForm:
    """format = "post-form": VICIdial's variables, same encoding, in a form body."""

    async def test_form_body_and_rotation_signatures(
        self, pipeline: Pipeline, receivers: list[Receiver], tmp_path: Path
    ) -> None:
        """The documented body and headers; two secrets (rotation) each verify; a retry re-signs."""
        hook = receivers[0]
        hook.respond_with([500])  # the first attempt fails: the retry sends the same bytes again
        old_file = tmp_path / "old.whsec"
        old_file.write_text(OLD_SECRET + "\n", encoding="utf-8")
        pipeline.vicidial.set_system(use_non_latin=True)
        pipeline.vicidial.add_list(101, "Web leads", "CAMP1", "")
        pipeline.setup_fence()
        toml = (
            "[endpoints.form]\n"
            f'url = "{hook.url}/form?id=--A--lead_id--B--&fn=--A--first_name--B--&ln=--A--last_name--B--'
            '&camp=--A--campaign--B--&unk=--A--nosuch--B--"\n'
            'format = "post-form"\n'
            'headers = { X-Source = "dialer-1" }\n'
            f'signing_secrets = ["${{ENV:HOOK_SECRET}}", "${{FILE:{old_file}}}"]\n'
            "[fanout]\n"
            'system = ["form"]\n' + fence_toml()
        )
        cfg = configure(
            pipeline.server,
            pipeline.database,
            tmp_path,
            toml,
            env={"HOOK_SECRET": NEW_SECRET},
            retry=RetryPolicy(base_s=0.2),
        )
        await pipeline.start(config=cfg)
        lead_id = await asyncio.to_thread(
            pipeline.vicidial.add_lead,
            phone_number="3125550001",
            list_id=101,
            first_name="José María",
            last_name="O'Neil&Co",
        )
        first, second = await wait_for(hook, lambda r: True, 2)
        await pipeline.fence("form")

        expected_body = (
            f"id={lead_id}&fn=Jos%C3%A9+Mar%C3%ADa&ln=O%27Neil%26Co&camp=CAMP1&unk=--A--nosuch--B--"
        )
        for request in (first, second):
            sent = headers_of(request)
            assert (request.method, request.target, request.body) == ("POST", "/form", expected_body.encode())
            assert sent["content-type"] == "application/x-www-form-urlencoded"
            assert sent["content-length"] == str(len(expected_body))
            assert sent["x-source"] == "dialer-1"
            assert sent["idempotency-key"] == sent["webhook-id"] == f"test:{lead_id}:form"
            assert abs(int(sent["webhook-timestamp"]) - request.received_at) < 5
            assert len(sent["webhook-signature"].split(" ")) == 2
            assert all(part.startswith("v1,") for part in sent["webhook-signature"].split(" "))
            for secret in (NEW_SECRET, OLD_SECRET):  # a receiver on either side of the rotation
                Webhook(secret).verify(request.body, sent, json_parse=False)
            with pytest.raises(WebhookVerificationError):
                Webhook(OTHER_SECRET).verify(request.body, sent, json_parse=False)
            with pytest.raises(WebhookVerificationError):
                Webhook(NEW_SECRET).verify(request.body.replace(b"CAMP1", b"CAMP2"), sent, json_parse=False)
        parsed = urllib.parse.parse_qs(first.body.decode("ascii"), keep_blank_values=True)
        assert parsed["fn"] == ["José María"] and parsed["ln"] == ["O'Neil&Co"]


# -- post-json ---------------------------------------------------------------------------


def expected_event(lead_id: int, modify_date: str, occurred_at: str) -> dict[str, Any]:
    """The lead.created body of TestPostJson's lead, written from the documented rules."""
    return {
        "id": f"test:{lead_id}:crm",
        "type": "lead.created",
        "schema_version": 1,
        "occurred_at": occurred_at,
        "source": "test",
        "lead_id": lead_id,
        "list_id": 101,
        "data": {
            "lead": {
                "lead_id": lead_id,
                "entry_date": "2025-03-04T05:06:07",
                "modify_date": modify_date,
                "status": "NEW",
                "user": DEFAULT_API_USER,
                "vendor_lead_code": "V-9",
                "source_id": "",
                "list_id": 101,
                "gmt_offset_now": "-6.00",
                "called_since_last_reset": "N",
                "phone_code": "1",
                "phone_number": "3125550002",
                "title": "",
                "first_name": "José",
                "middle_initial": "",
                "last_name": "Nguyễn 👍",
                "address1": "",
                "address2": "",
                "address3": "",
                "city": "São Paulo",
                "state": "",
                "province": "",
                "postal_code": "",
                "country_code": "",
                "gender": "F",
                "date_of_birth": "1980-02-29",
                "alt_phone": "",
                "email": "",
                "security_phrase": "",
                "comments": "",
                "called_count": 0,
                "last_local_call_time": "2008-01-01T00:00:00",
                "rank": 0,
                "owner": "",
                "entry_list_id": 101,
            },
            "list": {
                "list_id": 101,
                "list_name": "Web leads",
                "list_description": "Formulário",
                "campaign_id": "CAMP1",
            },
            "custom_fields": {"color": "rojo oscuro ñ"},
        },
    }


class TestPostJson:
    """format = "post-json": the lead.created event, schema-valid, signed, non-ASCII intact."""

    async def test_event(self, pipeline: Pipeline, receivers: list[Receiver], tmp_path: Path) -> None:
        """Typed columns, list row, non-encrypted custom fields; Authorization from env; signature."""
        crm = receivers[0]
        pipeline.vicidial.set_system(use_non_latin=True)
        pipeline.vicidial.add_list(101, "Web leads", "CAMP1", "Formulário")
        pipeline.vicidial.add_custom_fields(101, [("color", False), ("ssn", True)])
        pipeline.setup_fence()
        secret_file = tmp_path / "crm.whsec"
        secret_file.write_text(NEW_SECRET, encoding="utf-8")
        toml = (
            "[endpoints.crm]\n"
            f'url = "{crm.url}/crm/leads"\n'
            'format = "post-json"\n'
            'headers = { Authorization = "Bearer ${ENV:CRM_TOKEN}" }\n'
            f'signing_secrets = ["${{FILE:{secret_file}}}"]\n'
            "timeout_s = 5\n"
            "[fanout]\n"
            'system = ["crm"]\n' + fence_toml()
        )
        cfg = configure(pipeline.server, pipeline.database, tmp_path, toml, env={"CRM_TOKEN": "tok-crm-9"})
        await pipeline.start(config=cfg)
        before = time.time()
        lead_id = await asyncio.to_thread(
            pipeline.vicidial.add_lead,
            phone_number="3125550002",
            list_id=101,
            first_name="José",
            last_name="Nguyễn 👍",
            city="São Paulo",
            gender="F",
            date_of_birth="1980-02-29",
            gmt_offset_now="-6.00",
            vendor_lead_code="V-9",
            entry_date="2025-03-04 05:06:07",
            custom={"color": "rojo oscuro ñ", "ssn": "123-45-6789"},
        )
        after = time.time()
        [request] = await wait_for(crm, lambda r: True, 1)
        await pipeline.fence("json")

        with contextlib.closing(pipeline.server.connect(db=pipeline.database)) as conn, conn.cursor() as cur:
            cur.execute("SELECT UNIX_TIMESTAMP(modify_date) FROM vicidial_list WHERE lead_id=%s", (lead_id,))
            (modify_epoch,) = cur.fetchone()
        modify_date = dt.datetime.fromtimestamp(int(modify_epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        sent = headers_of(request)
        assert (request.method, request.target) == ("POST", "/crm/leads")
        assert sent["content-type"] == "application/json"
        assert sent["authorization"] == "Bearer tok-crm-9"
        body = json.loads(request.body)
        occurred = dt.datetime.strptime(body["occurred_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        assert before - 2 <= occurred.timestamp() <= after + 1
        assert body == expected_event(lead_id, modify_date, body["occurred_at"])
        jsonschema.Draft202012Validator(SCHEMA).validate(body)
        assert "Nguyễn 👍".encode() in request.body  # raw UTF-8, not \u escapes
        assert b"123-45-6789" not in request.body and b"ssn" not in request.body
        assert body["id"] == sent["webhook-id"] == sent["idempotency-key"]
        assert Webhook(NEW_SECRET).verify(request.body, sent) == body
        with pytest.raises(WebhookVerificationError):
            Webhook(NEW_SECRET).verify(request.body.replace("José".encode(), b"Jose"), sent)

    async def test_latin1_server(
        self,
        mariadb_factory: Any,
        receiver: Receiver,
        receivers: list[Receiver],
        start_pipeline: StartPipeline,
        tmp_path: Path,
    ) -> None:
        """use_non_latin=0 on a latin1 server (double-encoded storage): the JSON has the real text."""
        crm = receivers[0]
        server = mariadb_factory(charset="latin1", row_metadata="NO_LOG")
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk", charset="latin1")
        with Vicidial.connect(server, database="asterisk", connection_charset="latin1", seed=3) as vici:
            vici.add_list(101, "Lista Año", "C", "")
            setup_fence(vici, receiver)
            toml = (
                f'[endpoints.crm]\nurl = "{crm.url}/crm"\nformat = "post-json"\n[fanout]\nsystem = ["crm"]\n'
            )
            cfg = configure(server, "asterisk", tmp_path, toml + fence_toml())
            await start_pipeline(server, "asterisk", config=cfg)
            await asyncio.to_thread(
                vici.add_lead, phone_number="3125550003", list_id=101, first_name="José", last_name="Müller€"
            )
            [request] = await wait_for(crm, lambda r: True, 1)
            await fence(vici, receiver, "latin1")
        body = json.loads(request.body)
        jsonschema.Draft202012Validator(SCHEMA).validate(body)
        lead = body["data"]["lead"]
        assert (lead["first_name"], lead["last_name"], body["data"]["list"]["list_name"]) == (
            "José",
            "Müller€",
            "Lista Año",
        )


# -- fan-out -----------------------------------------------------------------------------


class TestFanOut:
    """Three endpoints, one down: the others deliver at once, the down one catches up from the outbox."""

    async def test_one_endpoint_down(
        self, pipeline: Pipeline, receivers: list[Receiver], tmp_path: Path
    ) -> None:
        """get + post-form up, post-json down; 20 leads; then the down one comes back."""
        leads = 20
        up_get, up_form, down = receivers
        await down.stop()  # its port now refuses connections
        pipeline.vicidial.add_list(101, "Web leads", "CAMP1", "")
        pipeline.setup_fence()
        toml = (
            f'[endpoints.a]\nurl = "{up_get.url}/a?id=--A--lead_id--B--"\n'
            f'[endpoints.b]\nurl = "{up_form.url}/b?id=--A--lead_id--B--"\nformat = "post-form"\n'
            f'[endpoints.c]\nurl = "{down.url}/c"\nformat = "post-json"\nconcurrency = 2\n'
            '[fanout]\nsystem = ["a", "b", "c"]\n' + fence_toml()
        )
        cfg = configure(
            pipeline.server,
            pipeline.database,
            tmp_path,
            toml,
            retry=RetryPolicy(base_s=0.2, factor=2.0, cap_s=1.0),
            breaker_failures=3,
            breaker_cooldown_s=0.5,
            breaker_max_cooldown_s=1.0,
        )
        run = await pipeline.start(config=cfg)
        ids = [
            await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=f"31255520{i:02d}", list_id=101)
            for i in range(leads)
        ]
        added = time.monotonic()
        await wait_for(up_get, lambda r: True, leads, timeout_s=10)
        await wait_for(up_form, lambda r: True, leads, timeout_s=10)
        elapsed = time.monotonic() - added
        assert elapsed < 10, elapsed  # not held back by the dead endpoint's retries or breaker
        await pipeline.fence("fanout")
        assert down.requests == []
        assert run.service.store is not None
        waiting = {c.endpoint_id: c for c in await run.service.store.counts()}
        assert waiting["c"].pending + waiting["c"].in_flight == leads and waiting["c"].delivered == 0
        assert waiting["c"].dead == 0

        revived = Receiver(port=down.port)
        await revived.start()
        try:
            await wait_for(revived, lambda r: True, leads)
            await asyncio.sleep(0.5)  # a duplicate, if any, would show now
        finally:
            await revived.stop()
        assert Counter(int(r.target.split("id=")[1]) for r in up_get.requests) == Counter(ids)
        assert Counter(r.body.decode() for r in up_form.requests) == Counter(f"id={i}" for i in ids)
        events = [json.loads(r.body) for r in revived.requests]
        assert Counter(e["lead_id"] for e in events) == Counter(ids)
        assert {e["id"] for e in events} == {f"test:{i}:c" for i in ids}
        keys = {headers_of(r)["idempotency-key"] for r in [*up_get.requests, *up_form.requests]}
        assert len(keys) == 2 * leads  # each lead has one key per endpoint
        async with asyncio.timeout(WAIT_S):
            while True:
                counts = {c.endpoint_id: c for c in await run.service.store.counts()}
                if all(counts[e].delivered == leads for e in ("a", "b", "c")):
                    break
                await asyncio.sleep(0.1)
        assert all(counts[e].dead == 0 for e in ("a", "b", "c"))
