"""FETCH ENVELOPE, BODY and BODYSTRUCTURE served from the store's structure
cache (filled by the background indexer) are byte for byte what FETCH
computes from the message file.

The computed forms come from a FETCH that also asks for a body section:
such a FETCH reads the file and never consults the cache. The cached forms
come from the same FETCH without the section, once the database shows that
the indexer has cached every message (polled, bounded). The messages are
the conformance fixtures, with CRLF and with bare LF, and a few more.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from harness import wait_until
from imap_wire import append, connect

FIXTURES = Path(__file__).parent / "imap_scripts" / "messages"
FOLDER = "cache-check"
EXTRA = [
    "Subject: =?utf-8?B?w5xiZXIgZGllIEJyw7xja2U=?= and \"quotes\" \\ too\r\n"
    "From: =?utf-8?Q?J=C3=B6rg?= <j@example.de>, \"Smith, J.\" <jj@example.com>\r\n"
    "To: Zoë <zoe@example.com>\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200 (CEST)\r\n\r\n"
    "body\r\n".encode(),
    b"From: a@example.com\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
    b"--o\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
    b"--o\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: b@example.com\r\nSubject: original\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n"
    b"--i\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n"
    b"--i\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--i--\r\n--o--\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nnever closed",
    b"no header at all\r\n",
]
SECTION = re.compile(rb" BODY\[HEADER\] \{(\d+)\}\r\n")


def messages() -> list[bytes]:
    fixtures = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]
    crlf = [f.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for f in fixtures]
    lf = [f.replace(b"\r\n", b"\n") for f in fixtures]
    return crlf + lf + EXTRA


def without_section(response: bytes) -> bytes:
    """`* n FETCH (... BODY[HEADER] {k}\\r\\n<k bytes>)` without the section."""
    for m in SECTION.finditer(response):
        if m.end() + int(m.group(1)) + 1 == len(response):
            return response[: m.start()] + b")"
    raise AssertionError(f"no trailing BODY[HEADER] in {response[:300]!r}")


def cached_count(db_path: Path) -> int:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(
            "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id "
            "JOIN blob_structure s ON s.blob = m.blob "
            "WHERE b.name = ? AND s.envelope IS NOT NULL",
            (FOLDER,),
        ).fetchone()[0]
    finally:
        db.close()


def test_cached_structure_is_what_fetch_computes(server):
    sent = messages()
    with connect(server) as c:
        c.ok(f"CREATE {FOLDER}")
        for m in sent:
            append(c, FOLDER, m)
        c.ok(f"SELECT {FOLDER}")
        items = "UID ENVELOPE BODY BODYSTRUCTURE"
        computed = c.ok(f"UID FETCH 1:* ({items} BODY.PEEK[HEADER])")
        computed = [without_section(r) for r in computed if b" FETCH (" in r]
        assert len(computed) == len(sent)

        wait_until(lambda: cached_count(server.db_path) == len(sent), 60,
                   "the indexer to cache every message's structure")
        cached = [r for r in c.ok(f"UID FETCH 1:* ({items})") if b" FETCH (" in r]
        assert len(cached) == len(sent)
        for i, (want, got) in enumerate(zip(computed, cached)):
            assert got == want, f"message {i + 1}:\n{sent[i][:500]!r}"
