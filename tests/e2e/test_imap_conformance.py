"""IMAP conformance: sessions scripted from the examples and rules of the
RFCs, run against a real `pochta serve` over implicit TLS (and the STARTTLS
port where the RFC is about it), checked response by response.

The scripts are in `imap_scripts/*.imap` (format: `imap_script.py`), one
file per RFC or per part of RFC 3501, each scenario on a fresh server. The
checks that need arithmetic rather than fixed lines (EXPUNGE numbering,
INTERNALDATE instants, UIDVALIDITY across mailboxes) are Python tests below.

Covered, per RFC:

RFC 3501 IMAP4rev1 (and RFC 9051 where they agree)
- greeting with CAPABILITY; CAPABILITY before and after login and after
  STARTTLS (STARTTLS/LOGINDISABLED before TLS, AUTH=PLAIN only before login);
  LOGIN refused before TLS, with a wrong password, and once logged in;
  STARTTLS refused when TLS is on; tags echoed verbatim
- state rules: every authenticated- and selected-state command before login,
  and every selected-state command without a mailbox, gets BAD or NO; NOOP,
  CAPABILITY, LOGOUT in every state; CHECK only when selected; a failed
  SELECT leaves no mailbox selected; LOGOUT sends BYE, OK and closes
- SELECT: FLAGS, EXISTS, RECENT, UNSEEN, PERMANENTFLAGS, UIDVALIDITY,
  UIDNEXT and [READ-WRITE]; EXAMINE: PERMANENTFLAGS () and [READ-ONLY],
  does not set \\Seen, refuses STORE/EXPUNGE/MOVE; an empty mailbox;
  SELECT of a missing mailbox is NO
- CREATE (trailing delimiter, parents, INBOX, existing names, over a
  \\Noselect name), DELETE (RFC examples: a parent with children becomes
  \\Noselect, empty, unselectable, and cannot be deleted while it has
  children; INBOX; the selected mailbox; LIST % shows the \\Noselect
  parent), RENAME (RFC example with
  children; INBOX moves its messages and stays; superiors created; onto an
  existing name), SUBSCRIBE/UNSUBSCRIBE/LSUB (kept after DELETE)
- mailbox names: INBOX case-insensitive, quoted names with spaces,
  modified UTF-7 names round-trip, invalid or non-canonical modified UTF-7
  refused with NO [CANNOT], `%` and `*` refused
- LIST: `LIST "" ""` gives the delimiter, `%` stops at the delimiter, `*`
  does not, a reference with a trailing delimiter, no match is just OK
- UIDVALIDITY: a mailbox deleted or renamed away and created again does not
  reuse a (UIDVALIDITY, UID) pair (§2.3.1.1)
- STATUS items MESSAGES, RECENT, UIDNEXT, UIDVALIDITY, UNSEEN; missing
  mailbox is NO
- APPEND: the RFC example with a synchronizing literal and `+`, flags and
  date-time kept, [TRYCREATE] for a missing mailbox, EXISTS when the
  mailbox is selected; the INTERNALDATE instant of a -0700 date-time
- FETCH: FLAGS, INTERNALDATE format, RFC822.SIZE, ENVELOPE (RFC example
  exactly; NIL date and subject; sender and reply-to default to from;
  groups, including an empty group), BODY and BODYSTRUCTURE of a single
  part and of multipart/mixed with an attachment and a message/rfc822
  holding a multipart/alternative; sections 1, 2, 3, 3.1, 1.MIME, 3.2.MIME,
  HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, the part numbering example
  of §6.4.5 (4.1, 4.1.MIME, 4.2.2.1 ...), n.HEADER/n.TEXT/n.HEADER.FIELDS of
  an enclosed message; partial <0.10>, <origin.len> and past the end;
  RFC822, RFC822.HEADER, RFC822.TEXT; FAST, ALL, FULL; BODY[] sets \\Seen
  and reports FLAGS, BODY.PEEK does not
- STORE FLAGS/+FLAGS/-FLAGS with and without .SILENT, keywords, the RFC
  example; \\Recent cannot be set
- sequence sets 1:*, *, 2,4:5, *:3, 3:1, out of range (BAD/NO), 0; UID
  ranges past the last UID (n:* includes the last message); UID FETCH,
  STORE, COPY, SEARCH, EXPUNGE on UIDs that do not exist: OK and nothing
- EXPUNGE: the RFC example (3, 4, 7, 11 of 11) checked against a model of
  the sequence numbers; CLOSE expunges silently, not after EXAMINE; another
  session's expunge is not announced during FETCH, STORE or SEARCH, only
  at NOOP (§7.4.1)
- COPY: the RFC example, flags and INTERNALDATE kept, [TRYCREATE]; COPY
  into the selected mailbox reports EXISTS
- SEARCH: every flag key, KEYWORD/UNKEYWORD, NEW/OLD/RECENT, LARGER/SMALLER,
  BEFORE/ON/SINCE, SENTBEFORE/SENTON/SENTSINCE, FROM/TO/CC/BCC/SUBJECT
  (case-insensitive substrings), HEADER (with an empty value), BODY, TEXT,
  UID and sequence sets, OR, NOT, parenthesised lists, the RFC examples;
  CHARSET UTF-8 with a literal; an unknown CHARSET gets NO [BADCHARSET];
  bad keys and dates get BAD; BODY/TEXT match decoded quoted-printable and
  base64 text, case-insensitively beyond ASCII, and strings of 1-2
  characters; SUBJECT matches a decoded encoded-word; a 12-OR chain
- literals: synchronizing `{n}` gets `+` in LOGIN and APPEND

RFC 9051 IMAP4rev2, where it differs from RFC 3501 (rfc9051-imap4rev2.imap):
IMAP4rev2 advertised beside IMAP4rev1 before and after login; ENABLE
IMAP4rev2 answered ENABLED once; after it SELECT sends neither RECENT nor
UNSEEN but a LIST response with the folder's attributes, and [CLOSED] when
it replaces a selection; every SEARCH and UID SEARCH answers ESEARCH (ALL,
UID, the empty result, RETURN options, CHARSET UTF-8); STATUS DELETED;
UTF-8 mailbox names in CREATE, LIST, STATUS (quoted UTF-8 on the wire),
the same folders seen by an IMAP4rev1 session in modified UTF-7 (SELECT,
CREATE, GETQUOTAROOT) and the other way round; without ENABLE a session
keeps RFC 3501 behaviour (SEARCH, RECENT).

RFC 5182 SEARCHRES (rfc5182-searchres.imap): RETURN (SAVE) alone returns no
ESEARCH; SAVE with MIN/MAX keeps only those, with ALL keeps and returns
all; `$` in FETCH, UID FETCH, STORE, UID COPY, MOVE, UID EXPUNGE, as a
search key combined with AND/OR/NOT and as the UID argument; `$` after
SUBJECT is text; an empty `$` matches nothing and FETCH $ is OK; expunged
messages leave `$`; SELECT empties it.

RFC 4315 UIDPLUS: APPENDUID <uidvalidity> <uid> matching SELECT and STATUS;
COPYUID <uidvalidity> <source set> <destination set> with ranges; no
COPYUID when nothing was copied; UID EXPUNGE removes only the listed
\\Deleted messages, with the right EXPUNGE numbers; UID EXPUNGE needs a
selected mailbox and a writable one.

RFC 6851 MOVE: untagged OK [COPYUID] first, then EXPUNGE per message
(highest first or any order that stays right), then the tagged OK; UID MOVE;
flags travel; [TRYCREATE] and nothing expunged for a missing target;
read-only mailbox refused; no-match UID MOVE is OK; another session on the
source sees the EXPUNGEs.

RFC 6154 SPECIAL-USE: \\Sent \\Drafts \\Junk \\Trash \\Archive on the account's
folders, none on INBOX or user folders.

RFC 7888 LITERAL+: `{n+}` gets no continuation in LOGIN, APPEND and SEARCH;
mixed with synchronizing literals in one command.

RFC 2177 IDLE: `+` continuation, EXISTS for a delivery, EXPUNGE and FETCH
FLAGS for another session's changes, DONE (any case) ends it with OK,
anything else is BAD.

RFC 3691 UNSELECT: leaves the mailbox without expunging; needs a selected
mailbox; works after EXAMINE.

RFC 2342 NAMESPACE: one personal namespace "" with "/" and NIL NIL.

RFC 2971 ID: ID NIL and ID with a list, before and after login.

RFC 3348 CHILDREN: \\HasChildren / \\HasNoChildren follow CREATE and DELETE.

RFC 4959 SASL-IR: AUTHENTICATE PLAIN with an initial response, with an
empty challenge, cancelled with `*`, refused before TLS.

RFC 5161 ENABLE: ENABLED lists what was enabled (CONDSTORE, QRESYNC),
unknown names are ignored, CAPABILITY does not change, not before login.

RFC 7162 CONDSTORE: SELECT (CONDSTORE) gives [HIGHESTMODSEQ] equal to
STATUS HIGHESTMODSEQ; FETCH MODSEQ; MODSEQ in every FETCH afterwards;
FETCH/UID FETCH (CHANGEDSINCE) returns only changed messages; STORE
(UNCHANGEDSINCE) reports MODSEQ even with .SILENT, [MODIFIED] for messages
changed meanwhile, UNCHANGEDSINCE 0 always fails; SEARCH MODSEQ (also with
an entry name) appends (MODSEQ n); ESEARCH with MODSEQ; the first enabling
command with a mailbox selected sends [HIGHESTMODSEQ]; another session's
flag change carries MODSEQ.
RFC 7162 QRESYNC: the QRESYNC select parameter and the VANISHED modifier
need ENABLE QRESYNC (BAD otherwise); SELECT (QRESYNC (uidvalidity
modseq [known-uids])) answers [CLOSED] when reselecting, VANISHED (EARLIER)
and FETCH (UID FLAGS MODSEQ) for what changed; a wrong UIDVALIDITY is
ignored; EXPUNGE and other sessions' expunges arrive as VANISHED; UID FETCH
(CHANGEDSINCE n VANISHED); FETCH that sets \\Seen carries UID and MODSEQ.

RFC 9208 QUOTA: QUOTAROOT with no root when unlimited, QUOTAROOT INBOX ""
and QUOTA "" (STORAGE used limit) in KiB, GETQUOTA, unknown root and
SETQUOTA refused, APPEND and COPY over quota NO [OVERQUOTA] (MOVE is not),
STATUS DELETED-STORAGE.

RFC 7889 APPENDLIMIT: APPENDLIMIT=n after login, a larger synchronizing
APPEND is NO [TOOBIG] without +, STATUS (APPENDLIMIT) and LIST RETURN
(STATUS (APPENDLIMIT)).

RFC 4731 ESEARCH: the RFC's examples: MIN, MAX, COUNT, ALL, RETURN (),
UID, an empty result, an unknown return option is BAD.

RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 §5: LIST
(SUBSCRIBED) with \\Subscribed, RETURN (SUBSCRIBED), (SUBSCRIBED
RECURSIVEMATCH) with CHILDINFO, RECURSIVEMATCH alone is BAD, several
patterns, LIST "" "" still gives the delimiter, a deleted but subscribed
name is \\NonExistent, LIST (SPECIAL-USE) and RETURN (SPECIAL-USE), RETURN
(STATUS (...)) follows each LIST with its STATUS.

RFC 5256 SORT and THREAD, RFC 5957 SORT=DISPLAY: SUBJECT (base subject),
REVERSE DATE, SIZE, DISPLAYFROM, UID SORT, empty result, bad key BAD,
unknown charset NO [BADCHARSET]; THREAD REFERENCES and ORDEREDSUBJECT,
UID THREAD.

RFC 4978 COMPRESS=DEFLATE: the session goes on deflated both ways (select,
fetch with a literal, logout), a second COMPRESS is NO
[COMPRESSIONACTIVE], an unknown algorithm is refused.

RFC 8438 STATUS=SIZE: STATUS (MESSAGES SIZE UIDNEXT) as in the RFC's
example, an empty mailbox, and LIST RETURN (STATUS (MESSAGES SIZE)).

RFC 3516 BINARY (Python tests below): decoded base64 section with NULs in
a literal8 and BINARY.SIZE equal to it, quoted-printable decoded, partial on
decoded octets, PEEK keeps \\Seen, unknown CTE NO [UNKNOWN-CTE], BINARY[]
of the whole message, APPEND with a literal8.

Scenarios that find a server bug are strict xfail (SERVER_BUGS below, and
the marks on the Python tests): they fail for the reason given and will
turn the suite red once fixed, so that the mark is removed.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest

from imap_script import all_scenarios, fixture, run_scenario
from imap_wire import append, connect

# Scenarios that find a server bug: they stay, failing for the right reason.
SERVER_BUGS = {
}


def scenario_params():
    params = []
    for sc in all_scenarios():
        marks = []
        if sc.id in SERVER_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason="server bug: " + SERVER_BUGS[sc.id]))
        params.append(pytest.param(sc, id=f"{sc.file[:-5]}:{sc.id}", marks=marks))
    return params


@pytest.mark.parametrize("scenario", scenario_params())
def test_script(server, scenario):
    run_scenario(server, scenario)


# ---------------------------------------------------------------------------
# Checks that need a model rather than fixed lines


def select(conn, mailbox="INBOX") -> list[bytes]:
    return conn.ok(f'SELECT "{mailbox}"')


def test_expunge_example_numbers(server):
    """RFC 3501 §7.4.1: messages 3, 4, 7 and 11 of 11 are \\Deleted; each
    EXPUNGE number must be right at the moment it is sent (the RFC shows
    3, 3, 5, 8; highest-first 11, 7, 4, 3 is just as right)."""
    c = connect(server)
    for i in range(1, 12):
        append(c, "INBOX", fixture("s4"), "\\Deleted" if i in (3, 4, 7, 11) else "")
    select(c)
    untagged = c.ok("EXPUNGE")
    model = list(range(1, 12))  # sequence number - 1 -> UID
    for r in untagged:
        m = re.fullmatch(rb"\* (\d+) EXPUNGE", r)
        assert m, f"unexpected response to EXPUNGE: {r!r}"
        n = int(m.group(1))
        assert 1 <= n <= len(model), f"EXPUNGE {n} with {len(model)} messages left: {untagged}"
        del model[n - 1]
    assert model == [1, 2, 5, 6, 8, 9, 10], f"EXPUNGE responses {untagged} remove the wrong messages"
    fetched = c.ok("FETCH 1:* (UID)")
    assert [int(re.search(rb"UID (\d+)", f).group(1)) for f in fetched] == model
    c.close()


def apply_expunges(model: list[int], untagged: list[bytes], what: str) -> None:
    for r in untagged:
        m = re.fullmatch(rb"\* (\d+) EXPUNGE", r)
        if not m:
            continue
        n = int(m.group(1))
        assert 1 <= n <= len(model), f"{what}: EXPUNGE {n} with {len(model)} messages: {untagged}"
        del model[n - 1]


def test_uid_expunge_and_move_numbers(server):
    """RFC 4315 §2.1 and RFC 6851 §4.3: UID EXPUNGE and MOVE of scattered
    messages send EXPUNGE numbers that are right one after the other."""
    c = connect(server)
    for i in range(1, 13):
        append(c, "INBOX", fixture("s4"), "\\Deleted" if i % 2 else "")
    select(c)
    model = list(range(1, 13))
    untagged = c.ok("UID EXPUNGE 1,5,7:11")  # \Deleted among them: 1, 5, 7, 9, 11
    apply_expunges(model, untagged, "UID EXPUNGE")
    assert model == [2, 3, 4, 6, 8, 10, 12], f"UID EXPUNGE answered {untagged}"
    untagged = c.ok("UID MOVE 2,4,8,12 Archive")
    assert untagged and untagged[0].startswith(b"* OK [COPYUID "), untagged
    apply_expunges(model, untagged[1:], "UID MOVE")
    assert model == [3, 6, 10], f"UID MOVE answered {untagged}"
    fetched = c.ok("FETCH 1:* (UID)")
    assert [int(re.search(rb"UID (\d+)", f).group(1)) for f in fetched] == model
    c.close()


def test_append_internaldate_keeps_the_instant(server):
    """RFC 3501 §6.3.11: the date-time given to APPEND SHOULD become the
    internal date; another zone is fine, another instant is not."""
    c = connect(server)
    append(c, "INBOX", fixture("rfc3501-append"), "", "17-Jul-1996 02:44:25 -0700")
    select(c)
    (line,) = c.ok("FETCH 1 (INTERNALDATE)")
    m = re.fullmatch(rb'\* 1 FETCH \(INTERNALDATE "([ \d]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4})"\)', line)
    assert m, f"INTERNALDATE not in RFC 3501 date-time form: {line!r}"
    got = datetime.strptime(m.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    want = datetime.strptime("17-Jul-1996 02:44:25 -0700", "%d-%b-%Y %H:%M:%S %z")
    assert got == want, f"INTERNALDATE {m.group(1)!r} is not the instant given to APPEND"
    c.close()


def test_uidvalidity_of_copyuid_is_the_destination(server):
    """RFC 4315 §3: COPYUID and APPENDUID carry the destination's
    UIDVALIDITY; a mailbox made a second later has a different one."""
    c = connect(server)
    append(c, "INBOX", fixture("s1"))
    time.sleep(1.1)
    c.ok("CREATE Later")
    (status,) = c.ok("STATUS Later (UIDVALIDITY)")
    later = re.search(rb"UIDVALIDITY (\d+)", status).group(1)
    (inbox_status,) = c.ok("STATUS INBOX (UIDVALIDITY)")
    inbox = re.search(rb"UIDVALIDITY (\d+)", inbox_status).group(1)
    select(c)
    _, tagged = c.command("COPY 1 Later")
    assert re.match(rb"t\d+ OK \[COPYUID " + later + rb" 1 1\]", tagged), (tagged, later, inbox)
    _, tagged = c.command(b"APPEND Later {%d+}\r\n" % len(fixture("s2")) + fixture("s2"))
    assert re.match(rb"t\d+ OK \[APPENDUID " + later + rb" 2\]", tagged), (tagged, later)
    c.close()


# ---------------------------------------------------------------------------
# RFC 3516 BINARY: decoded bytes with NULs cannot be written as script lines.

BINARY_MESSAGE = (
    b"From: a@example.com\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAwBoZWxsbw==\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"caf=C3=A9 =3D ok\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 x\r\nend\r\n"
    b"--b--\r\n"
)


def binary_session(server):
    c = connect(server)
    append(c, "INBOX", BINARY_MESSAGE)
    select(c)
    return c


def test_binary_decodes_sections(server):
    """RFC 3516 §4.2, §4.3: BINARY[n] is the decoded section, in a literal8
    when it holds NUL, with BINARY.SIZE equal to its length; <partial>
    counts decoded octets; BINARY.PEEK leaves \\Seen alone."""
    c = binary_session(server)
    (r,) = c.ok("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])")
    assert r == b"* 1 FETCH (BINARY.SIZE[1] 10 BINARY[1] ~{10}\r\n\x00\x01\x02\x03\x00hello)", r
    (r,) = c.ok("FETCH 1 BINARY.PEEK[2]")
    assert r in (b'* 1 FETCH (BINARY[2] {10}\r\ncaf\xc3\xa9 = ok)',), r
    (r,) = c.ok("FETCH 1 BINARY.PEEK[1]<2.3>")
    assert r == b"* 1 FETCH (BINARY[1]<2> ~{3}\r\n\x02\x03\x00)", r
    (r,) = c.ok("FETCH 1 FLAGS")
    assert r == b"* 1 FETCH (FLAGS ())", r
    c.close()


def test_binary_unknown_cte(server):
    """RFC 3516 §4.3: a CTE the server cannot decode fails with NO [UNKNOWN-CTE]."""
    c = binary_session(server)
    for item in ("BINARY.PEEK[3]", "BINARY.SIZE[3]"):
        _, tagged = c.command(f"FETCH 1 {item}")
        assert re.match(rb"t\d+ NO \[UNKNOWN-CTE\]", tagged), (item, tagged)
    c.close()


def test_binary_whole_message(server):
    """RFC 3516 §7: section-binary = "[" [section-part] "]": BINARY[] is the
    whole message, which has no transfer encoding of its own."""
    c = binary_session(server)
    (r,) = c.ok("FETCH 1 BINARY.PEEK[]")
    assert r == b"* 1 FETCH (BINARY[] {%d}\r\n%s)" % (len(BINARY_MESSAGE), BINARY_MESSAGE), r
    c.close()


def test_binary_append_literal8_roundtrip(server):
    """RFC 3516 §4.4: APPEND takes a literal8; the server may re-encode but
    loses no data, and plain FETCH BODY[] must stay within RFC 3501 (no NUL
    in a literal)."""
    c = connect(server)
    body = b"Subject: nul\r\n\r\na\x00b\r\n"
    _, tagged = c.command(b"APPEND INBOX ~{%d+}\r\n" % len(body) + body)
    assert re.match(rb"t\d+ OK", tagged), tagged
    select(c)
    (r,) = c.ok("FETCH 1 BODY.PEEK[]")
    m = re.match(rb"\* 1 FETCH \(BODY\[\] (~?)\{(\d+)\}\r\n", r)
    assert m, r
    data = r[m.end():m.end() + int(m.group(2))]
    assert b"\x00" not in data or m.group(1) == b"~", f"NUL inside a plain literal: {r!r}"
    c.close()
