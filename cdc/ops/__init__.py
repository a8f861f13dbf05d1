"""Operator tools run beside the service on the same config and state file: ``check``
(:mod:`.check`), ``status`` (:mod:`.status`), ``dlq`` (:mod:`.dlq`), ``replay``
(:mod:`.replay`). Imported only by the CLI (inside its command functions), the bench
and tests; the service never imports them (it is given its start-up check)."""
