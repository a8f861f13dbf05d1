"""The shared test tooling lives in ``tests/support``; its fixtures are registered here."""

pytest_plugins = ["support.plugin"]
