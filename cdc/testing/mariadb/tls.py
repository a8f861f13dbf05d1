"""Short-lived test certificates, so a private MariaDB can serve TLS like a remote VICIdial.

Made by the ``openssl`` command on the spot: a CA, a server certificate for the
given names and a client certificate. Used by the TLS tests and the config tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...config import is_ip_address
from .install import MariaDBError

__all__ = ["TlsFiles", "make_tls_files"]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files made by :func:`make_tls_files`; keys are mode 0600."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls_files(
    directory: str | os.PathLike[str],
    *,
    server_names: Sequence[str] = ("127.0.0.1", "localhost"),
    ca_name: str = "vicidial-cdc test CA",
    days: int = 2,
) -> TlsFiles:
    """A new CA, a server certificate for ``server_names`` and a client certificate.

    Made by the ``openssl`` command (EC P-256 keys, short-lived). ``server_names`` go
    into the server certificate's subjectAltName: IP addresses as ``IP:``, others as ``DNS:``.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise MariaDBError("the openssl command is needed to make test certificates: install openssl")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise MariaDBError(f"openssl {args[0]} failed ({done.returncode}): {done.stderr.strip()}")

    def key(name: str) -> Path:
        path = out / f"{name}.key"
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
        path.chmod(0o600)
        return path

    def issue(name: str, subject: str, extensions: str) -> tuple[Path, Path]:
        private = key(name)
        csr, cert, ext = out / f"{name}.csr", out / f"{name}.pem", out / f"{name}.ext"
        ext.write_text(extensions, encoding="ascii")
        run("req", "-new", "-key", str(private), "-subj", subject, "-out", str(csr))
        run(
            "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", str(days), "-sha256", "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip
        return cert, private

    ca_key, ca = key("ca"), out / "ca.pem"
    run(
        "req", "-x509", "-new", "-key", str(ca_key), "-subj", f"/CN={ca_name}", "-days", str(days),
        "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", str(ca),
    )  # fmt: skip
    alt_names = ",".join(f"IP:{n}" if is_ip_address(n) else f"DNS:{n}" for n in server_names)
    server_cert, server_key = issue(
        "server",
        f"/CN={server_names[0]}",
        f"subjectAltName={alt_names}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    client_cert, client_key = issue(
        "client",
        "/CN=vicidial-cdc client",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    return TlsFiles(ca, server_cert, server_key, client_cert, client_key)
