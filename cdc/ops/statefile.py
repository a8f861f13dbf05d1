"""The streamer's state file as the operator commands open it (``status``, ``dlq``,
``replay``, ``check``): the file of the same ``--config`` the service runs with.

A missing file is an error, never a new outbox. The store is single-writer by design,
but WAL mode and batched writes make ``dlq retry``/``purge`` and ``replay`` safe next to a
running streamer: each batch of :data:`~cdc.store.OPERATOR_BATCH_ROWS` is its own
short transaction, and the streamer's writes wait out the gaps. Run these commands as the
service user, so the state file keeps its owner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from ..config import Config
from ..errors import ConfigError
from ..store import SqliteStore

__all__ = ["CLI_BUSY_TIMEOUT_S", "open_store"]

#: A CLI write waits this long for the streamer's write lock.
CLI_BUSY_TIMEOUT_S: Final = 10.0


def open_store(config: Config, *, create: bool = False) -> SqliteStore:
    """Open the streamer's state file; without ``create``, a missing file is a
    :class:`ConfigError` (exit 2): a wrong ``--config`` must not start a second outbox."""
    path = Path(config.state.path)
    if not create and not path.exists():
        raise ConfigError(
            f"no state file at {path.absolute()}: state.path (from --config, or"
            " VICIDIAL_CDC_STATE_PATH) must name the running streamer's file; give the"
            " --config file the service runs with (the streamer creates its file when it"
            " first runs; `replay --create-state` starts a new one on purpose)"
        )
    store = SqliteStore(path, busy_timeout_s=CLI_BUSY_TIMEOUT_S, busy_limit_s=config.state.busy_limit_s)
    store.open()
    return store
