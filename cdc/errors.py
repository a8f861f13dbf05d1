"""One exception tree for the whole package (a leaf module, to avoid import loops).

    CdcError
    ├── ConfigError            the config file or env is wrong; fix it and restart
    ├── SourceError            the VICIdial database or its binlog
    │   ├── BinlogPurgedError  the checkpoint's binlog file is gone from the server
    │   └── SchemaError        a watched table is missing or has an unexpected shape
    ├── StoreError             the local state store
    └── DeliveryError          one HTTP delivery
        ├── RetryableDeliveryError
        └── PermanentDeliveryError

Third-party errors are translated where they enter (``raise SourceError(...) from exc``);
each message says what to do next.
"""


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


class DeliveryError(CdcError):
    """One delivery attempt failed."""


class RetryableDeliveryError(DeliveryError):
    """The attempt failed in a way that a later attempt may not."""


class PermanentDeliveryError(DeliveryError):
    """The attempt failed in a way that no retry will fix."""
