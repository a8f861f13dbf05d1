"""``vicidial-cdc demo`` (the README's first command): end to end as a real process.

It starts its own private MariaDB, receiver and streamer in a fresh temp dir; what it
prints must be the demo's own lines, never a production warning that cannot apply
there (a fresh state is what a demo always starts with; its simulated VICIdial does
not send, so nothing is sent twice).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.mariadb

#: A short run: a few seconds of traffic, no apt-get.
DEMO_ARGS = ("--leads", "20", "--rate", "20", "--noise", "2", "--no-install")
#: A log line at WARNING or above, as ``logs.setup(..., "text")`` writes it.
ALARM = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ", re.MULTILINE)


def test_short_demo_sends_every_lead_and_prints_nothing_alarming() -> None:
    """A 20-lead demo exits 0, sends its leads, and logs no warning or error."""
    done = subprocess.run(
        [sys.executable, "-m", "cdc.cli", "demo", *DEMO_ARGS],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "what was sent" in done.stdout, output[-4000:]
    page = re.compile(r"^demo: status page on http://127\.0\.0\.1:\d+/$", re.MULTILINE)
    assert page.search(done.stdout), output[-4000:]
    assert ALARM.findall(output) == [], output[-4000:]
