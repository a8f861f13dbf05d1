"""One exception tree for the whole package (a leaf module, to avoid import loops).

    CdcError
    ├── ConfigError            the config file or env is wrong; fix it and restart
    ├── SourceError            the VICIdial database or its binlog
    │   ├── BinlogPurgedError  the checkpoint's binlog file is gone from the server
    │   ├── SchemaError        a watched table is missing or has an unexpected shape
    │   └── ReaderFaultError   a reader fault reconnecting cannot heal (``kind``: ReaderFault)
    ├── StoreError             the local state store
    │   └── StateLockedError   another streamer runs on the same state file
    └── DeliveryError          one HTTP delivery
        ├── RetryableDeliveryError
        └── PermanentDeliveryError

Third-party errors are translated where they enter (``raise SourceError(...) from exc``);
each message says what to do next.
"""

import enum


class ExitCode(enum.IntEnum):
    """The process exit codes of every command (``check`` aside: 0 good, 1 warnings, 2 blockers)."""

    OK = 0
    ERROR = 1  # a CdcError the command could not get past
    USAGE = 2  # bad arguments or configuration
    PURGED = 3  # the checkpoint's binlog is gone: a replay is needed
    REFUSED = 4  # start refused: state file locked, or a different server
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class CdcError(Exception):
    """Base of every error vicidial-cdc raises on purpose."""


class ConfigError(CdcError):
    """The configuration is invalid."""


class SourceError(CdcError):
    """The VICIdial database or its binlog cannot be read."""


class BinlogPurgedError(SourceError):
    """The binlog file the checkpoint points into no longer exists on the server."""


class SchemaError(SourceError):
    """A watched table is missing or does not look like VICIdial's."""


class StoreError(CdcError):
    """The local state store failed."""


class StateLockedError(StoreError):
    """Another streamer holds the state file's lock: two would send every lead twice."""


class DeliveryError(CdcError):
    """One delivery attempt failed."""


class RetryableDeliveryError(DeliveryError):
    """The attempt failed in a way that a later attempt may not."""


class PermanentDeliveryError(DeliveryError):
    """The attempt failed in a way that no retry will fix."""


class ReaderFault(enum.StrEnum):
    """Why the reader cannot go on by reconnecting: the ``kind`` label of reader errors.

    Shared by the reader (which raises or reports it), the service (``/readyz`` reason,
    ``/status``), ``check`` and the ``vicidial_cdc_reader_errors_total{kind}`` metric.
    """

    CONNECTION = "connection"  # transient: network, server restart; healed by reconnecting
    ACCESS_DENIED = "access_denied"  # login refused or REPLICATION SLAVE/CLIENT missing
    TABLE_UNREADABLE = "table_unreadable"  # no SELECT on a watched table: its columns are unknown
    SCHEMA_AMBIGUOUS = "schema_ambiguous"  # no known definition decodes a row image with certainty
    UNSUPPORTED_COLUMN = "unsupported_column"  # a column type the reader does not decode
    COMPRESSED_EVENTS = "compressed_events"  # MariaDB log_bin_compress / MySQL TRANSACTION_PAYLOAD
    BINLOG_PURGED = "binlog_purged"  # the checkpoint's file is gone
    BINLOG_FATAL = "binlog_fatal"  # other error 1236 variants
    MALFORMED_EVENT = "malformed_event"  # an event that does not parse
    SERVER_CHANGED = "server_changed"  # reconnected to a different server (restore, promotion)
    BINLOG_SETTINGS = "binlog_settings"  # binlog_format / binlog_row_image no longer ROW / FULL


class ReaderFaultError(SourceError):
    """A fault that reconnecting cannot heal; ``kind`` names it, the message says the fix."""

    def __init__(self, kind: ReaderFault, message: str) -> None:
        super().__init__(message)
        self.kind = kind
