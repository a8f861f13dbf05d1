"""Bounded waits: poll a predicate until it holds or a deadline passes (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _describe(predicate: object, message: str) -> str:
    return message or getattr(predicate, "__name__", repr(predicate))


def wait_until(
    predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.05, *, message: str = ""
) -> T:
    """Poll ``predicate`` until it returns a truthy value (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not true within {timeout_s:g} s: {_describe(predicate, message)} (last value: {value!r})"
            )
        time.sleep(interval_s)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout_s: float,
    interval_s: float = 0.05,
    *,
    message: str = "",
) -> T:
    """``wait_until`` for asyncio tests: sleeps without blocking the loop; may await the predicate."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not true within {timeout_s:g} s: {_describe(predicate, message)} (last value: {value!r})"
            )
        await asyncio.sleep(interval_s)
