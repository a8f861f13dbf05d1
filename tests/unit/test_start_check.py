"""The service's start-up check: a callable it is given, whose findings it logs, never fatal."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import pymysql
import pytest

from cdc.cli import start_check_for
from cdc.config import Config, ReaderConfig
from cdc.ops import check
from cdc.ops.check.results import CheckResult, Status
from cdc.service import Finding, log_start_check


class TestLogStartCheck:
    """``log_start_check`` logs each finding as ``check.<name>`` and survives a failed check."""

    async def test_each_finding_is_a_warning_line(self, caplog: pytest.LogCaptureFixture) -> None:
        """One ``check.<name> status=<STATUS> <message>`` warning per finding, in order."""
        findings = [
            CheckResult("binlog_format", Status.FAIL, "binlog_format is MIXED", "fix it"),
            CheckResult("tls", Status.WARN, "not encrypted"),
        ]
        seen: list[Config] = []

        def check(cfg: Config) -> Sequence[Finding]:
            seen.append(cfg)
            return findings

        cfg = Config()
        with caplog.at_level(logging.WARNING, logger="cdc.service"):
            await log_start_check(check, cfg)
        assert seen == [cfg]
        assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
            (logging.WARNING, "check.binlog_format status=FAIL binlog_format is MIXED"),
            (logging.WARNING, "check.tls status=WARN not encrypted"),
        ]

    @pytest.mark.parametrize(
        "error", [OSError("unreachable"), pymysql.err.OperationalError(2003, "refused")]
    )
    async def test_a_check_that_fails_is_one_warning(
        self, error: Exception, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A check that raises is logged as ``check.not_run`` with the error's type only."""

        def check(cfg: Config) -> Sequence[Finding]:
            raise error

        with caplog.at_level(logging.WARNING, logger="cdc.service"):
            await log_start_check(check, Config())
        assert [r.getMessage() for r in caplog.records] == [f"check.not_run error={type(error).__name__}"]


class TestStartCheckFor:
    """``vicidial-cdc run`` gives the service ``check``'s start-up check, only when configured."""

    def test_check_at_start_gives_the_ops_check(self) -> None:
        """``reader.check_at_start`` on (the default): :func:`cdc.ops.check.start_check`."""
        assert start_check_for(Config()) is check.start_check

    def test_without_check_at_start_there_is_none(self) -> None:
        """Off: no start-up check at all."""
        cfg = dataclasses.replace(Config(), reader=ReaderConfig(check_at_start=False))
        assert start_check_for(cfg) is None
