"""The event loop choice: uvloop by default, asyncio's own when the env says so."""

from __future__ import annotations

import asyncio

import pytest

from cdc import runtime


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop is a dependency: without the env switch the service runs on it."""
    monkeypatch.delenv(runtime.ENV_KEY, raising=False)
    assert runtime.run(_loop_module()) == "uvloop"


def test_env_switches_to_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    """VICIDIAL_CDC_EVENT_LOOP=asyncio: the standard library's loop."""
    monkeypatch.setenv(runtime.ENV_KEY, "asyncio")
    assert runtime.run(_loop_module()) == "asyncio"
