"""The HTTP server: what /metrics, /healthz, /readyz and /status answer, and where it binds.

Requests go to the real aiohttp application on an aiohttp test server (127.0.0.1, a
port the OS chooses); readiness and status are plain callables standing in for the service.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter

from cdc import server
from cdc.config import HttpConfig

READY = server.Readiness(ready=True, checks={"binlog": True, "store": True})
NOT_READY = server.Readiness(
    ready=False,
    checks={"binlog": False, "store": True},
    reasons=("binlog: not connected; check mysql.host and the REPLICATION grants",),
)


class _App:
    """The state a test hands to the app: it changes between requests, the app reads it."""

    def __init__(self) -> None:
        self.readiness = READY
        self.status: dict[str, Any] = {"source": "test", "pending": 3}
        self.status_calls = 0
        self.registry = CollectorRegistry()
        self.counter = Counter(
            "vicidial_cdc_example", "An example counter.", ["endpoint"], registry=self.registry
        )

    def ready(self) -> server.Readiness:
        return self.readiness

    def read_status(self) -> dict[str, Any]:
        self.status_calls += 1
        return self.status


@pytest.fixture
def state() -> _App:
    return _App()


@pytest.fixture
async def client(state: _App) -> AsyncIterator[TestClient[Any, Any]]:
    app = server.make_app(state.registry, state.ready, state.read_status)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


class TestHealth:
    """/healthz says the process serves; /readyz mirrors the service's readiness."""

    async def test_healthz_is_ok(self, client: TestClient[Any, Any]) -> None:
        """/healthz answers 200 "ok" whatever the readiness."""
        response = await client.get("/healthz")
        assert response.status == 200
        assert await response.text() == "ok\n"

    async def test_readyz_ready(self, client: TestClient[Any, Any]) -> None:
        """Ready: 200 with each check and no reasons, as JSON."""
        response = await client.get("/readyz")
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == {
            "ready": True,
            "checks": {"binlog": True, "store": True},
            "reasons": [],
        }

    async def test_readyz_not_ready(self, state: _App, client: TestClient[Any, Any]) -> None:
        """Not ready: 503 naming the failed check and the reason with its fix."""
        state.readiness = NOT_READY
        response = await client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["ready"] is False
        assert body["checks"] == {"binlog": False, "store": True}
        assert body["reasons"] == list(NOT_READY.reasons)

    async def test_readyz_follows_changes(self, state: _App, client: TestClient[Any, Any]) -> None:
        """Readiness is asked on every request, never cached."""
        assert (await client.get("/readyz")).status == 200
        state.readiness = NOT_READY
        assert (await client.get("/readyz")).status == 503
        state.readiness = READY
        assert (await client.get("/readyz")).status == 200


class TestMetrics:
    """/metrics serves the registry it was given in Prometheus' text format."""

    async def test_registry_served(self, state: _App, client: TestClient[Any, Any]) -> None:
        """A counter's current value and labels appear in the exposition, with its content type."""
        state.counter.labels("crm").inc(2)
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
        assert "# TYPE vicidial_cdc_example_total counter" in text
        assert 'vicidial_cdc_example_total{endpoint="crm"} 2.0' in text

    async def test_only_the_given_registry(self, client: TestClient[Any, Any]) -> None:
        """Metrics of the process-wide default registry are not served."""
        text = await (await client.get("/metrics")).text()
        assert "python_gc_objects_collected_total" not in text


class TestStatus:
    """/status serves the service's status document, read when asked."""

    async def test_status_json(self, state: _App, client: TestClient[Any, Any]) -> None:
        """200 with the status dict as JSON; integer keys become strings."""
        state.status = {"source": "test", "lists": {101: "Web"}, "pending": 0}
        response = await client.get("/status")
        assert response.status == 200
        assert response.content_type == "application/json"
        assert json.loads(await response.read()) == {"source": "test", "lists": {"101": "Web"}, "pending": 0}

    async def test_status_read_per_request(self, state: _App, client: TestClient[Any, Any]) -> None:
        """Each GET reads the status once; nothing else calls it."""
        await client.get("/status")
        await client.get("/status")
        await client.get("/healthz")
        assert state.status_calls == 2


class TestRoutes:
    """Only the four GET routes exist; GET handlers never change state."""

    @pytest.mark.parametrize("path", ["/", "/restart", "/metrics/extra"])
    async def test_unknown_path_is_404(self, client: TestClient[Any, Any], path: str) -> None:
        """A path the server does not serve answers 404."""
        assert (await client.get(path)).status == 404

    @pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/status"])
    async def test_post_is_not_allowed(self, client: TestClient[Any, Any], path: str) -> None:
        """Every route is GET only: a POST answers 405."""
        assert (await client.post(path)).status == 405


class TestStart:
    """``server.start`` binds where it is told, loopback by default, and reports the port."""

    def test_default_listen_is_loopback(self) -> None:
        """Without configuration the server listens on 127.0.0.1 only."""
        host, port = HttpConfig().host_port()
        assert host == "127.0.0.1"
        assert port == 9108

    def test_empty_host_means_loopback(self) -> None:
        """``listen = ":9200"`` keeps the loopback address rather than all interfaces."""
        assert HttpConfig(listen=":9200").host_port() == ("127.0.0.1", 9200)

    async def test_port_zero_reports_the_bound_port(self, state: _App) -> None:
        """Port 0: the OS chooses, and ``start`` returns the port really bound on 127.0.0.1."""
        app = server.make_app(state.registry, state.ready, state.read_status)
        runner, port = await server.start(app, "127.0.0.1", 0)
        try:
            assert port > 0
            assert [addr[:2] for addr in runner.addresses] == [("127.0.0.1", port)]
            async with ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
        finally:
            await runner.cleanup()

    def test_bound_port_without_sites_is_the_default(self) -> None:
        """A runner with no bound address falls back to the configured port."""
        runner = _RunnerWithoutAddresses()
        assert server.bound_port(runner, 9108) == 9108  # type: ignore[arg-type]


class _RunnerWithoutAddresses:
    """Stands in for an ``AppRunner`` whose sites have not bound (only ``addresses`` is read)."""

    def __init__(self) -> None:
        self.addresses: list[object] = []
