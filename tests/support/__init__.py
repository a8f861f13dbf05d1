"""Test tooling shared by every test directory; test modules import from here, never from each other.

- :mod:`support.plugin`: the fixtures (private MariaDB servers, VICIdial databases, the
  simulator, receivers, the pipeline harness) and the ``both_readers`` marker.
- :mod:`support.harness`: configs for tests, a running service, the ``Pipeline`` bundle.
- :mod:`support.fence`: what a receiver got, and the fence that proves nothing else was sent.
- :mod:`support.expected`: hand-written expectations several modules share (the exact-request lead).
- :mod:`support.waiting`: bounded waits.
- :mod:`support.mariadb`: the factory type, reader client settings, grants.sql accounts.
- :mod:`support.binlog`: a SQL-only view of the binlog.
- :mod:`support.state`: a state file read from a test.
- :mod:`support.cli`: the operator CLI from a test.
- :mod:`support.host`: the checkout's path, a free port.
- :mod:`support.opstools`: promtool/prometheus/amtool, dashboard and alert-rule readers.
- :mod:`support.recorded`: the cases recorded on a real VICIdial.
"""
