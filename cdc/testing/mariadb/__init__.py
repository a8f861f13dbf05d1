"""A private ``mariadbd`` with the binlog on, standing in for a VICIdial server.

``install`` gets the binaries and a fresh datadir, ``tls`` makes test certificates,
``server`` runs one server process (option file, lifecycle, connections).
"""

from .install import MariaDBError, ensure_installed, find_binaries
from .server import Charset, OptionValue, PrivateMariaDB, RowMetadata
from .tls import TlsFiles, make_tls_files

__all__ = [
    "Charset",
    "MariaDBError",
    "OptionValue",
    "PrivateMariaDB",
    "RowMetadata",
    "TlsFiles",
    "ensure_installed",
    "find_binaries",
    "make_tls_files",
]
