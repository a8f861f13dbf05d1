"""What a receiver got, and the fence that proves "nothing else was sent".

A fence is a later API lead on :data:`FENCE_LIST`, whose request must arrive: binlog
order guarantees that everything written before it was processed, so a test can then
assert that some request never came.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable

from cdc.testing.receiver import ReceivedRequest, Receiver
from cdc.testing.simulate import Vicidial

FENCE_LIST = 999
#: How long a test waits for a request that must come.
WAIT_S = 30.0


def targets(receiver: Receiver, prefix: str) -> list[str]:
    """Request targets (path and query) the receiver got under ``prefix``, in arrival order."""
    return [r.target for r in receiver.requests if r.target.startswith(prefix)]


def ours(receiver: Receiver, prefix: str) -> Counter[str]:
    """Targets under ``prefix`` the streamer sent (its requests carry an Idempotency-Key), counted."""
    return Counter(
        r.target for r in receiver.requests if r.target.startswith(prefix) and r.header("Idempotency-Key")
    )


def theirs(receiver: Receiver, prefix: str) -> Counter[str]:
    """Targets under ``prefix`` that VICIdial's own senders sent (no Idempotency-Key), counted."""
    return Counter(
        r.target for r in receiver.requests if r.target.startswith(prefix) and not r.header("Idempotency-Key")
    )


def headers_of(request: ReceivedRequest) -> dict[str, str]:
    """A received request's headers by lower-case name."""
    return {k.lower(): v for k, v in request.headers}


async def wait_for(
    receiver: Receiver, match: Callable[[ReceivedRequest], object], count: int, timeout_s: float = WAIT_S
) -> list[ReceivedRequest]:
    """Wait until ``count`` received requests satisfy ``match``; return them."""
    async with asyncio.timeout(timeout_s):
        while len(got := [r for r in receiver.requests if match(r)]) < count:
            await asyncio.sleep(0.02)
    return got


async def wait_count(
    receiver: Receiver, prefix: str, count: int, busy: Vicidial | None = None, timeout_s: float = WAIT_S
) -> list[str]:
    """Wait for ``count`` requests under ``prefix``; ``busy``: write the dialer's noise meanwhile,
    so binlog time passes (what waits on it, such as a lead held for custom fields, is decided)."""
    async with asyncio.timeout(timeout_s):
        while len(targets(receiver, prefix)) < count:
            if busy is not None:
                await asyncio.to_thread(busy.noise, 3, api_log=False)
            await asyncio.sleep(0.05)
    return targets(receiver, prefix)


def setup_fence(vici: Vicidial, receiver: Receiver) -> None:
    """Create the fence list, its URL pointing at ``receiver``'s ``/fence``."""
    vici.add_list(FENCE_LIST, "Fence", "FENCE", "")
    vici.set_list_url(FENCE_LIST, f"{receiver.url}/fence?fence=--A--first_name--B--&id=--A--lead_id--B--")


def fence_toml(extra: str = "") -> str:
    """A [fanout.lists] entry sending the fence list to VICIdial's own URL (for configs with fan-out)."""
    return f'\n[fanout.lists]\n"{FENCE_LIST}" = ["vicidial"]\n{extra}'


async def fence(vici: Vicidial, receiver: Receiver, tag: str) -> None:
    """Add an API lead on the fence list and wait until its request arrives: all before is done."""
    phone = f"9{random.randrange(10**8, 10**9)}"
    await asyncio.to_thread(vici.add_lead, phone_number=phone, list_id=FENCE_LIST, first_name=tag)
    await wait_for(receiver, lambda r: r.target.startswith("/fence") and f"fence={tag}" in r.target, 1)
