"""The event loop the streamer runs on: uvloop when installed, else asyncio's own.

The sender's cost per request is mostly event-loop work (transports, callbacks,
timers); uvloop does that work in C. Measured with ``bench.run`` on 2 cores it
delivers about a fifth more leads per CPU second (README, Performance). Everything
the service uses (signal handlers, executors, ``call_soon_threadsafe``) behaves the
same on both, so ``VICIDIAL_CDC_EVENT_LOOP=asyncio`` can switch it off.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["ENV_KEY", "run"]

_T = TypeVar("_T")
ENV_KEY = "VICIDIAL_CDC_EVENT_LOOP"


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if os.environ.get(ENV_KEY, "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)
