"""Aliases, groups, catch-alls and quotas: mail lands in the right mailboxes, and only there."""

from __future__ import annotations

import smtplib

import pytest

from harness import (
    assert_stored_as_sent,
    check_reply,
    make_message,
    password_for,
    unique_id,
)

EX = "example.test"
OTHER = "other.test"
ACCOUNTS = [f"{u}@{EX}" for u in ("alice", "bob", "carol", "dave", "eve")] + [f"frank@{OTHER}"]
ALICE, BOB, CAROL, DAVE, EVE = ACCOUNTS[:5]
FRANK = ACCOUNTS[5]


@pytest.fixture
def routed(pochta):
    pochta.add_domain(EX)
    pochta.add_domain(OTHER)
    for a in ACCOUNTS:
        pochta.add_account(a, password_for(a))
    pochta.add_alias(f"info@{EX}", ALICE)
    pochta.add_alias(f"team@{EX}", BOB, CAROL, DAVE)
    pochta.add_alias(f"@{OTHER}", EVE)
    pochta.start()
    return pochta


def counts(p) -> dict[str, int]:
    return {a: len(p.mailbox(a)) for a in ACCOUNTS}


def send_mx(p, rcpt: str) -> tuple[str, bytes]:
    marker = unique_id("route")
    msg = make_message(to=rcpt, subject=marker, message_id=f"<{marker}@e2e.test>")
    p.deliver_mx(rcpt, msg)
    return marker, msg


def expect_only(p, marker: str, msg: bytes, owners: list[str]):
    """Each of `owners` has exactly one copy of the message; nobody else has any."""
    for owner in owners:
        assert_stored_as_sent(p.find_message(owner, marker.encode()), msg)
    for a in ACCOUNTS:
        if a in owners:
            continue
        hits = [m for m in p.messages(a) if marker.encode() in m]
        assert not hits, f"message for {owners} also landed in {a}"


def test_alias_list(routed):
    out = routed.cli("alias list").stdout
    for name in (f"info@{EX}", f"team@{EX}", f"@{OTHER}", ALICE, BOB, CAROL, DAVE, EVE):
        assert name in out, f"`alias list` does not mention {name}:\n{out}"


def test_alias_delivers_to_target_only(routed):
    marker, msg = send_mx(routed, f"info@{EX}")
    expect_only(routed, marker, msg, [ALICE])
    assert sum(counts(routed).values()) == 1


def test_group_delivers_to_each_member_once(routed):
    marker, msg = send_mx(routed, f"team@{EX}")
    expect_only(routed, marker, msg, [BOB, CAROL, DAVE])
    assert counts(routed) == {ALICE: 0, BOB: 1, CAROL: 1, DAVE: 1, EVE: 0, FRANK: 0}


def test_catch_all(routed):
    marker, msg = send_mx(routed, f"anything-{unique_id('x')}@{OTHER}")
    expect_only(routed, marker, msg, [EVE])
    # An existing account wins over the catch-all.
    marker2, msg2 = send_mx(routed, FRANK)
    expect_only(routed, marker2, msg2, [FRANK])
    assert counts(routed) == {ALICE: 0, BOB: 0, CAROL: 0, DAVE: 0, EVE: 1, FRANK: 1}


def test_no_catch_all_without_one(routed):
    with routed.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<x@elsewhere.invalid>"), 250, what="MAIL")
        check_reply(c.cmd(f"RCPT TO:<nobody@{EX}>"), 550, "5.1.1",
                    what="unknown user in a domain without a catch-all")


def test_alias_remove(routed):
    routed.cli("alias remove", f"info@{EX}")
    assert f"info@{EX}" not in routed.cli("alias list").stdout
    with routed.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<x@elsewhere.invalid>"), 250, what="MAIL")
        check_reply(c.cmd(f"RCPT TO:<info@{EX}>"), 550, "5.1.1", what="RCPT to a removed alias")
    assert sum(counts(routed).values()) == 0


def test_mixed_recipients_one_transaction(routed):
    """Alias, group member list and catch-all in one envelope: each mailbox gets its copy."""
    marker = unique_id("mixed")
    msg = make_message(to=f"info@{EX}", subject=marker, message_id=f"<{marker}@e2e.test>")
    with routed.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<x@elsewhere.invalid>"), 250, what="MAIL")
        for r in (f"info@{EX}", f"team@{EX}", f"whoever@{OTHER}"):
            check_reply(c.cmd(f"RCPT TO:<{r}>"), 250, what=f"RCPT {r}")
        check_reply(c.data(msg), 250, what="DATA")
    expect_only(routed, marker, msg, [ALICE, BOB, CAROL, DAVE, EVE])


# ---------------------------------------------------------------------------
# Quota


@pytest.fixture
def small(pochta):
    pochta.add_domain(EX)
    pochta.add_account(f"small@{EX}", "Tiny-box-quota-7", quota="20K")
    pochta.add_account(ALICE, "Plum-orchard-58")
    pochta.start()
    return pochta


def raw_send(p, rcpt: str, msg: bytes):
    """MAIL without SIZE, so the quota can only be judged at the end of DATA."""
    with p.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<x@elsewhere.invalid>"), 250, what="MAIL")
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        if r.code != 250:
            return r
        return c.data(msg)


def test_over_quota_refused(small):
    rcpt = f"small@{EX}"
    big = make_message(to=rcpt, subject="big", body=(b"q" * 78 + b"\r\n") * 500)  # 40 KB
    r = raw_send(small, rcpt, big)
    check_reply(r, 552, "5.2.2", what="40 KB message to an account with a 20K quota")
    assert small.mailbox(rcpt) == []

    # A small message still fits.
    marker = unique_id("fits")
    ok = make_message(to=rcpt, subject=marker, message_id=f"<{marker}@e2e.test>")
    check_reply(raw_send(small, rcpt, ok), 250, what="small message under quota")
    assert_stored_as_sent(small.find_message(rcpt, marker.encode()), ok)

    # smtplib declares SIZE=; the refusal may then come at MAIL, RCPT or DATA.
    s = small.smtp("smtp")
    try:
        with pytest.raises((smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError,
                            smtplib.SMTPSenderRefused)) as e:
            s.sendmail("x@elsewhere.invalid", [rcpt], big)
        exc = e.value
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code = exc.recipients[rcpt][0]
        else:
            code = exc.smtp_code
        assert code == 552, f"over-quota message with SIZE declared: expected 552, got {exc!r}"
    finally:
        s.close()

    # Other accounts are not affected by small's quota.
    marker = unique_id("alice-big")
    big_alice = make_message(to=ALICE, subject=marker, message_id=f"<{marker}@e2e.test>",
                             body=(b"q" * 78 + b"\r\n") * 500)
    check_reply(raw_send(small, ALICE, big_alice), 250, what="40 KB message to an account without quota")
    assert len(small.mailbox(rcpt)) == 1


def test_quota_fills_up(small):
    rcpt = f"small@{EX}"
    accepted = 0
    last = None
    for i in range(6):
        msg = make_message(to=rcpt, subject=f"fill {i}", body=(b"f" * 78 + b"\r\n") * 100)  # ~8 KB
        last = raw_send(small, rcpt, msg)
        if last.code != 250:
            break
        accepted += 1
    check_reply(last, 552, "5.2.2", what=f"message {accepted + 1} of ~8 KB into a 20K quota")
    assert 1 <= accepted <= 3, f"{accepted} messages of ~8 KB accepted into a 20K quota"
    assert len(small.mailbox(rcpt)) == accepted
    acct = [a for a in small.status()["accounts"] if a["address"] == rcpt]
    assert acct and acct[0]["messages"] == accepted, f"status for {rcpt}: {acct}"
