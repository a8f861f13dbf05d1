"""vicidial-cdc: VICIdial's "API New Lead URL", sent from the binlog."""

__version__ = "0.1.0"
