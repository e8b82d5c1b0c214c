"""A real DNS server on loopback for tests: dnsmasq (Debian `dnsmasq-base`)
answering from records the test writes, authoritative for the test
domains (names it does not know there get NXDOMAIN, never a lookup on the
internet).

    dns = DnsServer(tmp_path, domains=["a.test", "b.test"])
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.3")
    dns.txt("b.test", "v=spf1 ip4:127.0.0.3 -all")
    dns.start()                      # or dns.restart() after changes
    ... config: [dns] servers = [dns.server]
    dns.stop()

TXT values longer than 255 octets are split into several strings, as DKIM
keys must be (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host`."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for DNS")


def _quote_txt(value: str) -> str:
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return ",".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


class DnsServer:
    def __init__(self, root: Path, domains: list[str], host: str = "127.0.0.1"):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.domains = list(domains)
        self.host = host
        self.port = free_port(host)
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None

    @property
    def server(self) -> str:
        """`ip:port` for Pochta's `[dns] servers`."""
        return f"{self.host}:{self.port}"

    # -- records -------------------------------------------------------

    def a(self, name: str, address: str) -> None:
        self.lines.append(f"host-record={name},{address}")

    def mx(self, domain: str, host: str, preference: int = 10) -> None:
        self.lines.append(f"mx-host={domain},{host},{preference}")

    def txt(self, name: str, value: str) -> None:
        self.lines.append(f"txt-record={name},{_quote_txt(value)}")

    def srv(self, name: str, target: str, port: int, priority: int = 0, weight: int = 1) -> None:
        self.lines.append(f"srv-host={name},{target},{port},{priority},{weight}")

    def cname(self, name: str, target: str) -> None:
        self.lines.append(f"cname={name},{target}")

    def clear(self) -> None:
        self.lines.clear()

    # -- process -------------------------------------------------------

    def conf_text(self) -> str:
        base = [
            "no-resolv",
            "no-hosts",
            "no-poll",
            "bind-interfaces",
            f"listen-address={self.host}",
            f"port={self.port}",
            # Not a DHCP server, no caching of anything but our own data.
            "cache-size=0",
            "log-queries=extra",
            f"log-facility={self.root / 'dnsmasq.log'}",
        ]
        # Authoritative for the test domains: unknown names there are
        # NXDOMAIN, and nothing is forwarded anywhere.
        base += [f"local=/{d}/" for d in self.domains]
        return "\n".join(base + self.lines) + "\n"

    def start(self, timeout: float = 10.0) -> None:
        conf = self.root / "dnsmasq.conf"
        conf.write_text(self.conf_text())
        self.proc = subprocess.Popen(
            [DNSMASQ, "--keep-in-foreground", f"--conf-file={conf}", f"--pid-file={self.root / 'pid'}"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "dnsmasq.err", "wb"),
        )
        deadline = time.monotonic() + timeout
        probe = self.domains[0] if self.domains else "test"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"dnsmasq exited {self.proc.returncode}: "
                    f"{(self.root / 'dnsmasq.err').read_text(errors='replace')}"
                )
            if query(self.host, self.port, probe, "SOA", timeout=0.3) is not None:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dnsmasq did not answer on {self.server} within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


QTYPES = {"A": 1, "MX": 15, "TXT": 16, "AAAA": 28, "SOA": 6, "SRV": 33, "CNAME": 5}


def _ask(host: str, port: int, name: str, qtype: str, timeout: float) -> bytes | None:
    """One query over UDP: the response, or None when nothing answered."""
    qid = 0x5A5A
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = header + qname + struct.pack(">HH", QTYPES[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, (host, port))
            data, _ = s.recvfrom(4096)
        except OSError:
            return None
    if len(data) < 12 or struct.unpack(">H", data[:2])[0] != qid:
        return None
    return data


def query(host: str, port: int, name: str, qtype: str, timeout: float = 2.0) -> int | None:
    """The response code (0 NOERROR, 3 NXDOMAIN ...), or None when nothing
    answered. Enough to know the server is up."""
    data = _ask(host, port, name, qtype, timeout)
    return None if data is None else data[3] & 0x0F


def answer_count(host: str, port: int, name: str, qtype: str, timeout: float = 2.0) -> int:
    """How many answer records the server gives for `name`/`qtype`."""
    data = _ask(host, port, name, qtype, timeout)
    assert data is not None, f"no DNS answer for {name} {qtype} from {host}:{port}"
    return struct.unpack(">H", data[6:8])[0]
