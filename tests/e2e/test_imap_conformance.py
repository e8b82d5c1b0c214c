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
- CREATE (trailing delimiter, parents, INBOX, existing names), DELETE
  (RFC example: a parent with children; INBOX; the selected mailbox; a
  deleted parent listed \\Noselect by LIST %), RENAME (RFC example with
  children; INBOX moves its messages and stays; superiors created; onto an
  existing name), SUBSCRIBE/UNSUBSCRIBE/LSUB (kept after DELETE)
- mailbox names: INBOX case-insensitive, quoted names with spaces,
  modified UTF-7 names round-trip, `%` and `*` refused
- LIST: `LIST "" ""` gives the delimiter, `%` stops at the delimiter, `*`
  does not, a reference with a trailing delimiter, no match is just OK
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
  the sequence numbers; CLOSE expunges silently, not after EXAMINE
- COPY: the RFC example, flags and INTERNALDATE kept, [TRYCREATE]
- SEARCH: every flag key, KEYWORD/UNKEYWORD, NEW/OLD/RECENT, LARGER/SMALLER,
  BEFORE/ON/SINCE, SENTBEFORE/SENTON/SENTSINCE, FROM/TO/CC/BCC/SUBJECT
  (case-insensitive substrings), HEADER (with an empty value), BODY, TEXT,
  UID and sequence sets, OR, NOT, parenthesised lists, the RFC examples;
  CHARSET UTF-8 with a literal; an unknown CHARSET gets NO [BADCHARSET];
  bad keys and dates get BAD
- literals: synchronizing `{n}` gets `+` in LOGIN and APPEND

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

Extensions that arrived later (RFC 5161 ENABLE, RFC 7162 CONDSTORE and
QRESYNC, RFC 9208 QUOTA, RFC 7889 APPENDLIMIT, ...) have their own script
files; see the files' headers.
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
    "check-needs-selected-state":
        "CHECK before login and in authenticated state answers OK (it is a "
        "selected-state command, RFC 3501 §6.4.1)",
    "delete-leaves-noselect-parent":
        "after DELETE foo with foo/bar left, LIST \"\" % omits foo; RFC 3501 "
        "§6.3.8 and the §6.3.4 example want * LIST (\\Noselect) \"/\" foo",
    "rename-creates-superiors":
        "RENAME owatagu x/y/z creates no x or x/y (RFC 3501 §6.3.5 SHOULD), so "
        "LIST \"\" % does not show x at all",
    "subscription-survives-delete":
        "DELETE removes the name from the subscription list (RFC 3501 §6.3.6: "
        "MUST NOT unilaterally remove it)",
    "search-bad-charset":
        "SEARCH CHARSET X-NO-SUCH-CHARSET answers results and OK instead of "
        "NO [BADCHARSET] (RFC 3501 §6.4.4)",
    "enclosed-message-header-text":
        "BODY[3.HEADER], BODY[3.TEXT] and BODY[3.HEADER.FIELDS (...)] of a "
        "message/rfc822 part return the outer message's header and text "
        "(RFC 3501 §6.4.5)",
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
