"""Open relay through address tricks, unauthenticated on the MX port:
source routes (RFC 5321 §3.6.1, §4.1.1.3: the route is ignored, the
mailbox decides), the percent hack, `!` paths, a second `@` and quoted
local parts. None may put a message in the outbound queue (which the
harness config holds, so anything accepted for outside delivery would stay
there to be seen); a recipient that is really local may be delivered
locally, and is then checked to have landed in a local mailbox.
"""

from __future__ import annotations

import pytest

from harness import ALICE, BOB, DOMAIN, check_reply, make_message, unique_id

OUTSIDE = "other.test"

# (RCPT path as sent, the local mailbox it may reach, or None when the only
# right answer is a refusal).
TRICKS = [
    (f"<@evil.test:victim@{OUTSIDE}>", None),
    (f"<@{DOMAIN}:victim@{OUTSIDE}>", None),
    (f"<@{DOMAIN},@evil.test:victim@{OUTSIDE}>", None),
    (f"<victim%{OUTSIDE}@{DOMAIN}>", "catch-all"),
    (f"<victim%{OUTSIDE}%evil.test@{DOMAIN}>", "catch-all"),
    (f"<victim@{OUTSIDE}@{DOMAIN}>", None),
    (f'<"victim@{OUTSIDE}"@{DOMAIN}>', "catch-all"),
    (f'<"victim%{OUTSIDE}"@{DOMAIN}>', "catch-all"),
    (f"<{DOMAIN}!victim>", None),
    (f"<{OUTSIDE}!victim@{DOMAIN}>", "catch-all"),
    (f"<victim@{OUTSIDE}.>", None),
    ("<victim@[192.0.2.1]>", None),
    (f"<victim@{OUTSIDE}>", None),
    # A source route to one of ours is fine: the mailbox is local.
    (f"<@evil.test:{ALICE}>", ALICE),
    (f"<@{OUTSIDE},@evil.test:{ALICE}>", ALICE),
]


@pytest.fixture(params=[False, True], ids=["no-catch-all", "catch-all"])
def mx(request, pochta):
    pochta.setup_basic()
    if request.param:
        pochta.add_alias(f"@{DOMAIN}", BOB)
    pochta.start()
    pochta.catch_all = request.param
    return pochta


def try_relay(server, path: str) -> tuple[int, str, bytes]:
    """MAIL, RCPT TO:`path`, and DATA when accepted; (RCPT code, text, marker)."""
    marker = unique_id("relay")
    msg = make_message(sender="spammer@elsewhere.invalid", to=f"victim@{OUTSIDE}", subject=marker,
                       message_id=f"<{marker}@e2e.test>")
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<spammer@elsewhere.invalid>"), 250, what="MAIL")
        r = c.cmd(f"RCPT TO:{path}")
        if r.code == 250:
            c.data(msg)
        c.cmd("QUIT")
    return r.code, r.text, marker.encode()


def test_no_relay_through_address_tricks(mx):
    problems = []
    delivered = {}
    seen = 0
    for path, local in TRICKS:
        code, text, marker = try_relay(mx, path)
        queue = mx.queue()
        if len(queue) > seen:
            problems.append(f"RCPT TO:{path} ({code} {text}) queued for outside delivery: {queue[seen:]}")
            seen = len(queue)
        if code == 250:
            target = local if local != "catch-all" else (BOB if mx.catch_all else None)
            if target is None:
                problems.append(f"RCPT TO:{path} accepted ({code} {text}) with no local mailbox behind it")
            else:
                delivered[path] = (target, marker)
        elif not 500 <= code < 600:
            problems.append(f"RCPT TO:{path} got {code} {text}, expected a refusal (5xx) or local delivery")
    for path, (target, marker) in delivered.items():
        try:
            mx.find_message(target, marker)
        except AssertionError:
            problems.append(f"RCPT TO:{path} accepted but not delivered to {target}")
    assert not problems, "\n".join(problems)
    assert mx.queue() == [], f"the outbound queue holds mail after relay attempts: {mx.queue()}"
    assert "queued" not in mx.mail_log_text().split(), mx.mail_log_text()
    mx.assert_still_serves()
