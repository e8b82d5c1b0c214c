"""A certificate authority for tests, made with the openssl command: a CA
certificate the server under test is told to trust (SSL_CERT_FILE), and
leaf certificates it signs for the names a test needs (an MX host, an
MTA-STS policy host).
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


class TestCA:
    __test__ = False  # not a pytest test class

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cert = self.root / "ca.pem"
        self.key = self.root / "ca.key"
        _run([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
            "-subj", "/CN=Pochta test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        self.serial = 1

    def leaf(self, name: str, *more: str) -> tuple[Path, Path]:
        """(certificate chain, key) for `name` and `more` names, signed by
        this CA."""
        self.serial += 1
        key, csr, cert = (self.root / f"{name}{ext}" for ext in (".key", ".csr", ".pem"))
        sans = ",".join(f"DNS:{n}" for n in (name, *more))
        _run([
            "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
            "-addext", f"subjectAltName={sans}",
        ])
        ext = self.root / f"{name}.ext"
        ext.write_text(
            f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        )
        _run([
            "openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-set_serial", str(self.serial), "-days", "2", "-out", str(cert), "-extfile", str(ext),
        ])
        chain = self.root / f"{name}.chain.pem"
        chain.write_text(cert.read_text() + self.cert.read_text())
        return chain, key
