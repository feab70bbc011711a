"""Certificates for the DICOM TLS tests, made with the ``openssl`` command line.

A test CA signs this machine's certificate (for ``127.0.0.1`` and ``localhost``)
and a client's; a stranger CA signs a second client certificate, which the
listener must refuse.  RSA 2048, valid for two days, unencrypted PEM keys.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from peers import require_tool

#: Extensions of every leaf certificate: usable by a server and by a client.
_LEAF = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = {san}
"""


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path

    def dcmtk(self, ca: Path) -> list[str]:
        """dcmtk's options to present this pair and trust ``ca`` (``+tls key cert +cf``)."""
        return ["+tls", str(self.key), str(self.cert), "+cf", str(ca)]


@dataclass(frozen=True)
class Pki:
    ca: Path
    #: 127.0.0.1 and localhost, signed by ``ca``.
    server: KeyPair
    #: A client (CN ECG-CLIENT), signed by ``ca``.
    client: KeyPair
    #: Another CA, which nobody trusts, and a client certificate it signed.
    stranger_ca: Path
    stranger: KeyPair


def _openssl(*args: str, cwd: Path) -> None:
    run = subprocess.run([require_tool("openssl"), *args], cwd=cwd, capture_output=True,
                         text=True, check=False, timeout=60)
    if run.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{run.stderr}")


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/O=ecg-dicom tests/CN={name}", "-keyout", str(key), "-out", str(cert),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    return cert, key


def _leaf(folder: Path, name: str, cn: str, san: str, ca: tuple[Path, Path],
          serial: int) -> KeyPair:
    cert, key, csr = folder / f"{name}.pem", folder / f"{name}.key", folder / f"{name}.csr"
    ext = folder / f"{name}.ext"
    ext.write_text(_LEAF.format(san=san))
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
             "-keyout", str(key), "-out", str(csr), cwd=folder)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-set_serial", str(serial), "-days", "2", "-extfile", str(ext), "-out", str(cert),
             cwd=folder)
    return KeyPair(cert, key)


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca(folder, "test-ca")
    stranger_ca = _ca(folder, "stranger-ca")
    server = _leaf(folder, "server", "localhost", "IP:127.0.0.1, DNS:localhost", ca, 1)
    client = _leaf(folder, "client", "ECG-CLIENT", "DNS:client.test", ca, 2)
    stranger = _leaf(folder, "stranger", "ECG-CLIENT", "DNS:client.test", stranger_ca, 3)
    return Pki(ca[0], server, client, stranger_ca[0], stranger)
