"""The process exit codes every command shares (cdc.errors.ExitCode) and the CLI's mapping."""

from __future__ import annotations

from cdc.cli import main
from cdc.errors import ExitCode


class TestExitCodes:
    """One set of exit codes for every command, the values the README and runbook name."""

    def test_documented_values(self) -> None:
        """0 done, 1 error, 2 usage/config, 3 binlog purged, 4 start refused, 130 Ctrl-C."""
        assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130]

    def test_cli_maps_a_config_error_to_usage(self) -> None:
        """A config error exits with :attr:`ExitCode.USAGE`, whichever command raised it."""
        assert main(["check", "--max-downtime", "1y"]) == ExitCode.USAGE
