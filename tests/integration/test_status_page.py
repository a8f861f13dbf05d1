"""The status page in a real browser: Debian's headless Chromium driven by selenium.

A streamer on a private MariaDB, real add_lead traffic, a real receiver that works,
then fails (dead letters), then recovers: the numbers on the page equal ``/metrics``,
**Retry** clicked in the browser delivers the dead letters and the page shows it.
Without an admin token there are no buttons and every POST is refused; with one, a
POST without the session and its CSRF token is refused. No lead name or phone is in
the HTML unless ``http.show_lead_data`` is on.

Nothing downloads a browser: selenium gets ``/usr/bin/chromium`` and
``/usr/bin/chromedriver`` explicitly (``scripts/bootstrap --test`` installs them), so
Selenium Manager never runs. Screenshots go to ``build/screenshots/`` (or
``$VICIDIAL_CDC_SCREENSHOTS``); README shows the committed copies in docs/screenshots/.
Selenium blocks, and the service runs in this test's loop: every browser call runs in a
thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.support.wait import WebDriverWait
from support.harness import Pipeline, Running, fast_config
from support.waiting import wait_until_async
from yarl import URL

from cdc.config import Config, HttpConfig, Secret
from cdc.testing.receiver import Receiver
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(
    os.environ.get("VICIDIAL_CDC_SCREENSHOTS")
    or Path(__file__).resolve().parents[2] / "build" / "screenshots"
)
WAIT_S = 45.0
TOKEN = "correct horse battery staple"
LIST_ID = 101
#: Lead data that must never reach the HTML unless show_lead_data is on.
NAMES = ("Zebulon", "Quintessa", "Bartholomew", "Philippa", "Ignatius")
PHONES = ("3125550171", "3125550172", "3125550173", "3125550174", "3125550175")

T = TypeVar("T")

#: One JS call reads every number the test compares, so a refresh cannot split the read.
_READ_PAGE = """
const out = {totals: {}, endpoints: {}, buttons: 0, signin: !!document.getElementById('sign-in')};
for (const el of document.querySelectorAll('[id^="total-"], #dead-total, #updated')) {
  out.totals[el.id] = el.textContent.trim();
}
for (const row of document.querySelectorAll('#endpoints tr[data-endpoint]')) {
  out.endpoints[row.dataset.endpoint] = {
    state: row.querySelector('.state').textContent.trim(),
    dead: row.querySelector('.dead').textContent.trim(),
    backlog: row.querySelector('.backlog').textContent.trim(),
  };
}
out.buttons = document.querySelectorAll('#dead-letters button').length;
out.flash = (document.getElementById('flash') || {}).textContent || '';
return out;
"""


def _no_selenium_manager(*args: object, **kwargs: object) -> dict[str, str]:
    raise AssertionError("Selenium Manager would look for (and may download) a browser or driver")


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Debian Chromium through its chromedriver (never a downloaded browser)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are needed: run scripts/bootstrap --test")
    monkeypatch.setattr(SeleniumManager, "binary_paths", _no_selenium_manager)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1800",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    # An explicit driver path: Selenium Manager (which could download one) is not used.
    driver = webdriver.Chrome(options=options, service=ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def _config(pipeline: Pipeline, tmp_path: Path, http: HttpConfig, **delivery: Any) -> Config:
    """The harness's fast timers, two attempts 50-200 ms apart, a breaker that opens after two failures."""
    delivery.setdefault("max_attempts", 2)
    base = fast_config(
        pipeline.server,
        pipeline.database,
        tmp_path / "state.db",
        breaker_failures=2,
        breaker_cooldown_s=1.0,
        breaker_max_cooldown_s=2.0,
        **delivery,
    )
    retry = dataclasses.replace(base.delivery.retry, base_s=0.05, cap_s=0.2)
    return dataclasses.replace(base, http=http, delivery=dataclasses.replace(base.delivery, retry=retry))


def _page_url(run: Running) -> str:
    return f"http://127.0.0.1:{run.service.http_port}"


async def _in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


async def _metrics(
    http: aiohttp.ClientSession, base: str
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _total(metrics: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> int:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return int(
        sum(
            value
            for key, value in metrics.get(name, {}).items()
            if all((k, v) in key for k, v in labels.items())
        )
    )


def _expected(metrics: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> dict[str, Any]:
    """What the page must show for these metrics."""
    endpoints = {
        dict(key)["endpoint"]
        for name in ("vicidial_cdc_deliveries_dead", "vicidial_cdc_deliveries_pending")
        for key in metrics.get(name, {})
    }
    return {
        "totals": {
            "total-detected": str(_total(metrics, "vicidial_cdc_leads_detected_total")),
            "total-sent": str(
                _total(metrics, "vicidial_cdc_deliveries_total", outcome="delivered", sender="cdc")
            ),
            "total-skipped": str(_total(metrics, "vicidial_cdc_leads_skipped_total")),
            "total-dead": str(_total(metrics, "vicidial_cdc_deliveries_total", outcome="dead", sender="cdc")),
            "dead-total": str(_total(metrics, "vicidial_cdc_deliveries_dead")),
        },
        "endpoints": {
            e: {
                "dead": str(_total(metrics, "vicidial_cdc_deliveries_dead", endpoint=e)),
                "backlog": str(_total(metrics, "vicidial_cdc_deliveries_pending", endpoint=e)),
            }
            for e in endpoints
        },
    }


async def _page_equals_metrics(driver: Any, http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """Load the page between two equal scrapes of /metrics: its numbers must be theirs."""
    for _ in range(40):
        before = _expected(await _metrics(http, base))
        await _in_thread(lambda: driver.get(f"{base}/"))
        page = await _in_thread(lambda: driver.execute_script(_READ_PAGE))
        after = _expected(await _metrics(http, base))
        if before != after:
            await asyncio.sleep(0.25)  # something moved during the read: read again
            continue
        totals = {k: v for k, v in page["totals"].items() if k != "updated"}
        assert totals == after["totals"]
        for endpoint_id, numbers in after["endpoints"].items():
            row = page["endpoints"][endpoint_id]
            assert {"dead": row["dead"], "backlog": row["backlog"]} == numbers, endpoint_id
        return page
    raise AssertionError("/metrics never held still for one page load")


async def _status(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/status") as response:
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result


def _screenshot(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _click(driver: Any, selector: str, flash: str) -> Any:
    """Click a button (again if a refresh replaced it), wait for the page the POST led to."""
    for _ in range(3):
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            break
        except StaleElementReferenceException:
            continue

    def arrived(d: Any) -> bool:
        return flash in str(d.execute_script(_READ_PAGE)["flash"])

    WebDriverWait(driver, 20, ignored_exceptions=(WebDriverException,)).until(arrived)
    return driver.execute_script(_READ_PAGE)


def _no_lead_data(text: str) -> None:
    for secret in (*NAMES, *PHONES):
        assert secret not in text


async def _add_leads(vicidial: Vicidial, indexes: range) -> list[int]:
    return [
        await asyncio.to_thread(
            vicidial.add_lead, phone_number=PHONES[i], list_id=LIST_ID, first_name=NAMES[i], last_name="Page"
        )
        for i in indexes
    ]


def _setup(vicidial: Vicidial, receiver: Receiver) -> None:
    vicidial.add_list(LIST_ID, "Web leads", "CAMP1", "From the web")
    vicidial.set_system_url(
        f"{receiver.url}/new?id=--A--lead_id--B--&fn=--A--first_name--B--&ph=--A--phone_number--B--"
    )


class TestStatusPageInBrowser:
    """Healthy, endpoint down, dead letters, Retry in the browser: the page tells the truth."""

    async def test_healthy_down_dead_and_retried(
        self,
        pipeline: Pipeline,
        tmp_path: Path,
        browser: Any,
        http: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """The page's numbers equal /metrics at every stage; Retry delivers the dead letters."""
        vicidial, receiver = pipeline.vicidial, pipeline.receiver
        caplog.set_level(logging.DEBUG)
        _setup(vicidial, receiver)
        http_config = HttpConfig(listen="127.0.0.1:0", admin_token=Secret(TOKEN))
        run = await pipeline.start(config=_config(pipeline, tmp_path, http_config))
        base = _page_url(run)

        # Healthy: three leads delivered.
        await _add_leads(vicidial, range(3))
        await receiver.wait_for(3, WAIT_S)
        page = await _page_equals_metrics(browser, http, base)
        assert page["totals"]["total-detected"] == "3" and page["totals"]["total-sent"] == "3"
        assert page["signin"] and page["buttons"] == 0  # not signed in: no actions
        (endpoint_id,) = page["endpoints"]
        assert page["endpoints"][endpoint_id]["state"] == "ok"
        _no_lead_data(await _in_thread(lambda: browser.page_source))
        await _in_thread(lambda: _screenshot(browser, "healthy"))

        # The endpoint goes down: two leads fail, the breaker opens, they go dead.
        receiver.respond_with([500] * 1000)
        dead_ids = await _add_leads(vicidial, range(3, 5))

        async def breaker_open() -> bool:
            rows = (await _status(http, base))["endpoints"]
            return any(r["state"] == "breaker open" for r in rows)

        await wait_until_async(breaker_open, WAIT_S, 0.1, message="breaker open on the page's data")
        await _in_thread(lambda: browser.get(f"{base}/"))
        down = await _in_thread(lambda: browser.execute_script(_READ_PAGE))
        await _in_thread(lambda: _screenshot(browser, "endpoint-down"))
        assert down["endpoints"][endpoint_id]["state"].startswith(("breaker open", "breaker half-open"))

        async def all_dead() -> bool:
            return bool((await _status(http, base))["dead_letters"]["total"] == 2)

        await wait_until_async(all_dead, WAIT_S, 0.1, message="two dead letters")
        page = await _page_equals_metrics(browser, http, base)
        assert page["totals"]["dead-total"] == "2" and page["buttons"] == 0
        status = await _status(http, base)
        assert sorted(r["lead_id"] for r in status["dead_letters"]["recent"]) == sorted(dead_ids)
        _no_lead_data(await _in_thread(lambda: browser.page_source))
        async with http.get(f"{base}/status") as response:
            _no_lead_data(await response.text())

        # Forged POSTs change nothing: no session, a session without or with a wrong CSRF token.
        await _forged_posts_refused(http, base, endpoint_id)
        assert (await _status(http, base))["dead_letters"]["total"] == 2

        # Sign in in the browser: the buttons appear.
        def sign_in() -> Any:
            browser.find_element(By.ID, "admin-token").send_keys(TOKEN)
            return _click(browser, "#sign-in", "Signed in")

        signed = await _in_thread(sign_in)
        assert "Signed in" in signed["flash"] and signed["buttons"] > 0 and not signed["signin"]
        await _in_thread(lambda: _screenshot(browser, "dead-letters"))

        # The receiver recovers; Retry all in the browser delivers both.
        receiver.statuses.clear()
        sent_before = len(receiver.requests)

        def retry_all() -> Any:
            return _click(browser, f'button.retry-all[data-endpoint="{endpoint_id}"]', "queued again")

        retried = await _in_thread(retry_all)
        assert "2 dead letter(s) queued again" in retried["flash"]

        def delivered_again() -> bool:
            late = [r for r in receiver.requests[sent_before:] if r.target.startswith("/new")]
            return sorted(int(re.search(r"id=(\d+)", r.target).group(1)) for r in late) == sorted(dead_ids)  # type: ignore[union-attr]

        await wait_until_async(delivered_again, WAIT_S, 0.1, message="dead letters delivered after Retry")

        # The page, refreshing itself (no reload), shows them sent and no dead letter left.
        def refreshed_shows_it() -> Any:
            now = browser.execute_script(_READ_PAGE)
            return now if now["totals"]["total-sent"] == "5" and now["totals"]["dead-total"] == "0" else None

        async def shows_it() -> Any:
            return await _in_thread(refreshed_shows_it)

        await wait_until_async(shows_it, WAIT_S, 0.5, message="the self-refreshing page shows the retry")
        await _in_thread(lambda: _screenshot(browser, "retried"))
        page = await _page_equals_metrics(browser, http, base)
        assert page["totals"]["total-sent"] == "5" and page["totals"]["dead-total"] == "0"
        _no_lead_data(await _in_thread(lambda: browser.page_source))
        _no_lead_data("\n".join(r.getMessage() for r in caplog.records))  # not logged, at any level


async def _forged_posts_refused(http: aiohttp.ClientSession, base: str, endpoint_id: str) -> None:
    form = {"action": "retry", "endpoint": endpoint_id}
    async with http.post(f"{base}/dead-letters", data=form, allow_redirects=False) as response:
        assert response.status == 403  # no session
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=10)) as admin:
        async with admin.post(f"{base}/sign-in", data={"token": "wrong"}, allow_redirects=False) as response:
            assert response.status == 303 and not jar.filter_cookies(URL(base))
        async with admin.post(f"{base}/sign-in", data={"token": TOKEN}, allow_redirects=False) as response:
            assert response.status == 303 and jar.filter_cookies(URL(base))
        for csrf in ({}, {"csrf": "0" * 64}):
            async with admin.post(
                f"{base}/dead-letters", data={**form, **csrf}, allow_redirects=False
            ) as response:
                assert response.status == 403  # a session, but not the page's CSRF token
        async with admin.get(f"{base}/") as response:
            html = await response.text()
        found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
        assert found is not None  # the signed-in page carries its CSRF token
        # With it the action is accepted: here one that selects nothing, so nothing changes.
        valid = {"action": "retry", "csrf": found.group(1)}
        async with admin.post(f"{base}/dead-letters", data=valid, allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"].startswith("/?done=none")


class TestReadOnlyPage:
    """Without an admin token: no buttons, every POST refused; lead data only when asked for."""

    async def test_no_token_no_actions_and_lead_data_shown_when_on(
        self,
        pipeline: Pipeline,
        tmp_path: Path,
        browser: Any,
        http: aiohttp.ClientSession,
    ) -> None:
        """show_lead_data on: the name is on the page; no token: no button, 403 for every POST."""
        vicidial, receiver = pipeline.vicidial, pipeline.receiver
        _setup(vicidial, receiver)
        receiver.respond_with([500] * 1000)
        http_config = HttpConfig(listen="127.0.0.1:0", show_lead_data=True)
        config = _config(pipeline, tmp_path, http_config, max_attempts=1)
        run = await pipeline.start(config=config)
        base = _page_url(run)
        await _add_leads(vicidial, range(1))

        async def one_dead() -> bool:
            return bool((await _status(http, base))["dead_letters"]["total"] == 1)

        await wait_until_async(one_dead, WAIT_S, 0.1, message="one dead letter")
        page = await _page_equals_metrics(browser, http, base)
        assert page["buttons"] == 0 and not page["signin"]
        source = await _in_thread(lambda: browser.page_source)
        assert NAMES[0] in source and PHONES[0] in source  # show_lead_data: the URL is shown
        assert not await _in_thread(
            lambda: browser.find_elements(By.CSS_SELECTOR, "form[action='/dead-letters']")
        )

        for path, form in (
            ("/dead-letters", {"action": "retry", "endpoint": next(iter(page["endpoints"]))}),
            ("/dead-letters", {"action": "purge", "id": "1", "csrf": "x"}),
            ("/sign-in", {"token": ""}),
        ):
            async with http.post(f"{base}{path}", data=form, allow_redirects=False) as response:
                assert response.status == 403, path
        assert (await _status(http, base))["dead_letters"]["total"] == 1

        async with http.get(f"{base}/") as response:
            headers = response.headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"
        async with http.get(f"{base}/no-such-page") as response:
            assert response.status == 404 and response.headers["X-Frame-Options"] == "DENY"
        async with http.get(f"{base}/static/page.js") as response:
            assert response.status == 200 and "fetch(" in await response.text()
        # The browser enforced the CSP without complaint: no inline script was blocked.
        try:
            logs = await _in_thread(lambda: browser.get_log("browser"))
        except WebDriverException:
            logs = []
        assert not [entry for entry in logs if "Content Security Policy" in entry.get("message", "")]


class TestSelectionAndPurge:
    """A ticked selection is retried; one row is purged after the browser's confirmation."""

    async def test_retry_selected_and_purge_one(
        self,
        pipeline: Pipeline,
        tmp_path: Path,
        browser: Any,
        http: aiohttp.ClientSession,
    ) -> None:
        """Retry selected sends only the ticked lead; Purge deletes the other, never sent."""
        vicidial, receiver = pipeline.vicidial, pipeline.receiver
        _setup(vicidial, receiver)
        receiver.respond_with([500] * 1000)
        http_config = HttpConfig(listen="127.0.0.1:0", admin_token=Secret(TOKEN))
        config = _config(pipeline, tmp_path, http_config, max_attempts=1)
        run = await pipeline.start(config=config)
        base = _page_url(run)
        kept, purged = await _add_leads(vicidial, range(2))

        async def two_dead() -> bool:
            return bool((await _status(http, base))["dead_letters"]["total"] == 2)

        await wait_until_async(two_dead, WAIT_S, 0.1, message="two dead letters")
        receiver.statuses.clear()
        failed = len(receiver.requests)

        def act() -> tuple[Any, Any]:
            browser.get(f"{base}/")
            browser.find_element(By.ID, "admin-token").send_keys(TOKEN)
            _click(browser, "#sign-in", "Signed in")
            browser.find_element(By.CSS_SELECTOR, f'tr[data-lead="{kept}"] input[type=checkbox]').click()
            selected = _click(browser, "#retry-selected", "1 dead letter(s) queued again")
            button = browser.find_element(By.CSS_SELECTOR, f'tr[data-lead="{purged}"] button.purge-one')
            button.click()
            WebDriverWait(browser, 10).until(lambda d: d.switch_to.alert).accept()  # page.js confirm()

            def deleted(d: Any) -> bool:
                return "1 dead letter(s) deleted" in str(d.execute_script(_READ_PAGE)["flash"])

            WebDriverWait(browser, 20, ignored_exceptions=(WebDriverException,)).until(deleted)
            return selected, browser.execute_script(_READ_PAGE)

        selected, after = await _in_thread(act)
        assert selected["totals"]["dead-total"] == "1"  # the ticked one left the dead letters
        assert after["totals"]["dead-total"] == "0"

        def kept_delivered() -> bool:
            return any(f"id={kept}&" in r.target for r in receiver.requests[failed:])

        await wait_until_async(kept_delivered, WAIT_S, 0.1, message="the retried lead delivered")
        await asyncio.sleep(0.5)  # a wrongly re-sent purged lead would arrive in this time too
        assert not any(f"id={purged}&" in r.target for r in receiver.requests[failed:])
        assert (await _status(http, base))["dead_letters"]["total"] == 0
        await _page_equals_metrics(browser, http, base)


#: What VICIdial stores in url_response when its fetch got HTTP 500.
_PHP_500 = "PHP ERROR: failed to open stream: HTTP request failed! HTTP/1.1 500 Internal Server Error"


class TestVicidialSender:
    """watch mode: VICIdial's own attempts and failures, and what we re-sent, as /metrics has them."""

    async def test_watch_mode_counts(
        self,
        pipeline: Pipeline,
        tmp_path: Path,
        browser: Any,
        http: aiohttp.ClientSession,
    ) -> None:
        """One send of VICIdial's succeeds, one gets HTTP 500 and is re-sent by us: 2, 1, 1."""
        vicidial, receiver = pipeline.vicidial, pipeline.receiver
        _setup(vicidial, receiver)
        config = _config(pipeline, tmp_path, HttpConfig(listen="127.0.0.1:0"), mode="watch")
        run = await pipeline.start(config=config)
        base = _page_url(run)
        ok, failed = await _add_leads(vicidial, range(2))
        # VICIdial's PHP: the url_log INSERT, its fetch (not made here), the UPDATE with the answer.
        for lead_id, response in ((ok, "OK"), (failed, _PHP_500)):
            url_log_id = await asyncio.to_thread(
                vicidial.log_url_request, lead_id, f"{receiver.url}/new?id={lead_id}&"
            )
            await asyncio.to_thread(vicidial.log_url_response, url_log_id, response, 0)

        async def resent() -> bool:
            return bool((await _status(http, base))["vicidial_sender"]["resent"] == 1)

        await wait_until_async(resent, WAIT_S, 0.1, message="VICIdial's failed send re-sent by us")
        page = await _page_equals_metrics(browser, http, base)
        metrics = await _metrics(http, base)

        def shown() -> dict[str, str]:
            ids = ("vicidial-attempts", "vicidial-failures", "vicidial-resent")
            return {i: browser.find_element(By.ID, i).text for i in ids}

        assert await _in_thread(shown) == {
            "vicidial-attempts": str(_total(metrics, "vicidial_cdc_deliveries_total", sender="vicidial")),
            "vicidial-failures": str(
                _total(metrics, "vicidial_cdc_deliveries_total", sender="vicidial", outcome="failed")
            ),
            "vicidial-resent": "1",
        }
        assert _total(metrics, "vicidial_cdc_deliveries_total", sender="vicidial") == 2
        assert page["totals"]["total-sent"] == "1"  # the re-sent one: our only delivery
