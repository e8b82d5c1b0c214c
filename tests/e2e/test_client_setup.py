"""Client setup against a real `pochta serve`: Thunderbird's autoconfig XML
and Outlook's autodiscover parsed with xml.etree and checked against the
ports the server actually listens on, then used as they are by imaplib,
poplib and smtplib; the Apple .mobileconfig parsed with plistlib; the
per-account settings as JSON and as a page; sessions and the LAN-only
policy (these client files are the one exception)."""

from __future__ import annotations

import html
import http.client
import imaplib
import plistlib
import poplib
import smtplib
import xml.etree.ElementTree as ET

from admin_http import SECURITY_HEADERS, AdminClient, logged_in
from harness import ALICE, ALICE_PW, DOMAIN, parse_addr, tls_context

WELL_KNOWN = "/.well-known/autoconfig/mail/config-v1.1.xml"
OUTLOOK_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"""
NS = {
    "a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
    "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a",
}


def start(pochta, **admin):
    """example.test with alice and bob; the mail host name is `localhost`
    so that what the setup files name can be connected to as it is."""
    pochta.setup_basic()
    pochta.configure(hostname="localhost", **({"admin": admin} if admin else {}))
    pochta.start()


def port(pochta, service: str) -> int:
    return parse_addr(pochta.info[service][0])[1]


def security_headers(r) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, f"{name}: {r.headers.get(name)!r}"


def servers_of(config: ET.Element) -> list[dict]:
    out = []
    for element in config.find("emailProvider"):
        if element.tag not in ("incomingServer", "outgoingServer"):
            continue
        out.append({
            "type": element.get("type"),
            **{child.tag: child.text for child in element},
        })
    return out


def test_autoconfig_names_the_running_servers_and_works(pochta):
    start(pochta)
    c = AdminClient(pochta.addr("admin"))
    r = c.get(f"{WELL_KNOWN}?emailaddress=alice%40example.test")
    assert r.status == 200, r
    assert r.headers["Content-Type"] == "application/xml; charset=utf-8"
    security_headers(r)
    root = ET.fromstring(r.body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider.get("id") == DOMAIN and provider.findtext("domain") == DOMAIN

    servers = servers_of(root)
    expected = [
        ("imap", port(pochta, "imaps"), "SSL"),
        ("imap", port(pochta, "imap"), "STARTTLS"),
        ("pop3", port(pochta, "pop3s"), "SSL"),
        ("pop3", port(pochta, "pop3"), "STARTTLS"),
        ("smtp", port(pochta, "submissions"), "SSL"),
        ("smtp", port(pochta, "submission"), "STARTTLS"),
    ]
    assert [(s["type"], int(s["port"]), s["socketType"]) for s in servers] == expected, servers
    for s in servers:
        assert s["hostname"] == "localhost", s
        assert s["username"] == "%EMAILADDRESS%", s
        assert s["authentication"] == "password-cleartext", s
    assert int(servers[0]["port"]) != port(pochta, "smtp"), "the MX port offered to clients"

    # The autoconfig.<domain> host form, without the address.
    conn = http.client.HTTPConnection(*c.addr, timeout=30)
    try:
        conn.request("GET", "/mail/config-v1.1.xml", headers={"Host": f"autoconfig.{DOMAIN}:80"})
        r2 = conn.getresponse()
        assert r2.status == 200, r2.read()
        assert servers_of(ET.fromstring(r2.read())) == servers
    finally:
        conn.close()
    r3 = c.get("/mail/config-v1.1.xml?emailaddress=bob@EXAMPLE.test")
    assert r3.status == 200 and servers_of(ET.fromstring(r3.body)) == servers

    # Every server the answer names takes alice's login as it says.
    for s in servers:
        host, p, user = s["hostname"], int(s["port"]), s["username"].replace("%EMAILADDRESS%", ALICE)
        ssl_on_connect = s["socketType"] == "SSL"
        if s["type"] == "imap":
            if ssl_on_connect:
                conn = imaplib.IMAP4_SSL(host, p, ssl_context=tls_context(), timeout=15)
            else:
                conn = imaplib.IMAP4(host, p, timeout=15)
                conn.starttls(ssl_context=tls_context())
            assert conn.login(user, ALICE_PW)[0] == "OK"
            conn.logout()
        elif s["type"] == "pop3":
            if ssl_on_connect:
                conn = poplib.POP3_SSL(host, p, context=tls_context(), timeout=15)
            else:
                conn = poplib.POP3(host, p, timeout=15)
                conn.stls(context=tls_context())
            conn.user(user)
            assert conn.pass_(ALICE_PW).startswith(b"+OK")
            conn.quit()
        else:
            if ssl_on_connect:
                conn = smtplib.SMTP_SSL(host, p, context=tls_context(), timeout=15)
            else:
                conn = smtplib.SMTP(host, p, timeout=15)
                conn.starttls(context=tls_context())
            assert conn.login(user, ALICE_PW)[0] == 235
            conn.quit()


def test_autoconfig_lists_only_configured_ports(pochta):
    pochta.setup_basic()
    pochta.configure(listen={"pop3": [], "pop3s": [], "imap": [], "submissions": []})
    pochta.start()
    r = AdminClient(pochta.addr("admin")).get(f"{WELL_KNOWN}?emailaddress={ALICE}")
    assert r.status == 200, r
    got = [(s["type"], int(s["port"]), s["socketType"]) for s in servers_of(ET.fromstring(r.body))]
    assert got == [("imap", port(pochta, "imaps"), "SSL"),
                   ("smtp", port(pochta, "submission"), "STARTTLS")], got


def test_autoconfig_refuses_unknown_domains(pochta):
    start(pochta)
    c = AdminClient(pochta.addr("admin"))
    for query in ["?emailaddress=someone%40other.test", "?emailaddress=", "?emailaddress=x@test"]:
        r = c.get(WELL_KNOWN + query)
        assert r.status == 404 and "does not handle mail" in r.json["error"], (query, r)
        security_headers(r)
    r = c.get(WELL_KNOWN)
    assert r.status == 400 and "emailaddress" in r.json["error"], r
    r = c.post(WELL_KNOWN, {})
    assert r.status == 405 and r.headers["Allow"] == "GET", r


def autodiscover(c: AdminClient, body: bytes, path: str = "/autodiscover/autodiscover.xml"):
    return c.request("POST", path, body, content_type="text/xml; charset=utf-8", csrf=False)


def test_autodiscover_answers_outlook(pochta):
    start(pochta)
    c = AdminClient(pochta.addr("admin"))
    for path in ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"]:
        r = autodiscover(c, OUTLOOK_REQUEST.format(address=ALICE).encode(), path)
        assert r.status == 200, (path, r)
        assert r.headers["Content-Type"] == "application/xml; charset=utf-8"
        security_headers(r)
        root = ET.fromstring(r.body)
        assert root.tag == f"{{{NS['a']}}}Autodiscover"
        account = root.find("o:Response/o:Account", NS)
        assert account.findtext("o:AccountType", namespaces=NS) == "email"
        assert account.findtext("o:Action", namespaces=NS) == "settings"
        protocols = {p.findtext("o:Type", namespaces=NS): p for p in account.findall("o:Protocol", NS)}
        assert set(protocols) == {"IMAP", "SMTP"}, protocols
        for kind, service in [("IMAP", "imaps"), ("SMTP", "submissions")]:
            p = protocols[kind]
            field = lambda name: p.findtext(f"o:{name}", namespaces=NS)  # noqa: E731
            assert field("Server") == "localhost"
            assert int(field("Port")) == port(pochta, service)
            assert field("SSL") == "on" and field("SPA") == "off"
            assert field("Encryption") == "SSL"
            assert field("LoginName") == ALICE
    # Outlook's answer works too: IMAP over TLS on the port it names.
    conn = imaplib.IMAP4_SSL("localhost", port(pochta, "imaps"), ssl_context=tls_context(), timeout=15)
    assert conn.login(ALICE, ALICE_PW)[0] == "OK"
    conn.logout()

    # An address that does not exist gets the same settings (no account
    # enumeration); a domain the box does not serve does not.
    r = autodiscover(c, OUTLOOK_REQUEST.format(address="nobody@example.test").encode())
    assert r.status == 200 and b"<LoginName>nobody@example.test</LoginName>" in r.body, r
    r = autodiscover(c, OUTLOOK_REQUEST.format(address="x@other.test").encode())
    assert r.status == 404, r


def test_autodiscover_refuses_bad_requests(pochta):
    start(pochta)
    c = AdminClient(pochta.addr("admin"))
    cases = [
        (b"<Autodiscover><Request><EMailAddress>a@example.test</Request></Autodiscover>", "bad XML"),
        (b"not xml", "root element"),
        (b"", "root element"),
        (b"<Autodiscover><Request/></Autodiscover>", "EMailAddress"),
        (b"<Autodiscover><Request><EMailAddress>a@example.test</EMailAddress>", "ends before"),
    ]
    for body, expected in cases:
        r = autodiscover(c, body)
        assert r.status == 400, (body, r)
        assert "not an autodiscover request" in r.json["error"] and expected in r.json["error"], (body, r)
        security_headers(r)
    mobile = OUTLOOK_REQUEST.format(address=ALICE).replace(
        "outlook/responseschema/2006a", "mobilesync/responseschema/2006")
    r = autodiscover(c, mobile.encode())
    assert r.status == 400 and "response schema" in r.json["error"], r
    r = c.get("/autodiscover/autodiscover.xml")
    assert r.status == 405 and r.headers["Allow"] == "POST", r


def test_client_files_answer_beyond_the_lan(pochta):
    # Without loopback in the policy 127.0.0.1 stands for the internet:
    # the admin page refuses it, the client setup files do not.
    start(pochta, allow_loopback=False)
    c = AdminClient(pochta.addr("admin"))
    assert c.get("/api/setup").status == 403
    assert c.get(f"/api/accounts/{ALICE}/setup").status == 403
    assert c.get(f"/api/accounts/{ALICE}/mobileconfig").status == 403
    r = c.get(f"{WELL_KNOWN}?emailaddress={ALICE}")
    assert r.status == 200, r
    r = autodiscover(c, OUTLOOK_REQUEST.format(address=ALICE).encode())
    assert r.status == 200, r


def test_mobileconfig_and_setup_need_a_session(pochta):
    start(pochta)
    anon = AdminClient(pochta.addr("admin"))
    for path in [f"/api/accounts/{ALICE}/mobileconfig", f"/api/accounts/{ALICE}/setup"]:
        r = anon.get(path)
        assert r.status == 401 and "log in" in r.json["error"], (path, r)
        security_headers(r)
    r = anon.get(f"/accounts/{ALICE}/setup")
    assert r.status == 303, r

    c = logged_in(pochta)
    r = c.request("POST", f"/api/accounts/{ALICE}/mobileconfig", {})
    assert r.status == 405, r
    assert c.get("/api/accounts/nobody%40example.test/mobileconfig").status == 404
    assert c.get("/api/accounts/not-an-address/setup").status == 400


def test_mobileconfig_is_an_apple_profile(pochta):
    start(pochta)
    c = logged_in(pochta)
    r = c.get("/api/accounts/alice%40example.test/mobileconfig")
    assert r.status == 200, r
    assert r.headers["Content-Type"] == "application/x-apple-aspen-config"
    assert r.headers["Content-Disposition"] == 'attachment; filename="alice@example.test.mobileconfig"'
    security_headers(r)
    profile = plistlib.loads(r.body)
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadVersion"] == 1
    assert profile["PayloadDisplayName"] and profile["PayloadIdentifier"]
    (mail,) = profile["PayloadContent"]
    expected = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": ALICE,
        "IncomingMailServerHostName": "localhost",
        "IncomingMailServerPortNumber": port(pochta, "imaps"),
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": ALICE,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": "localhost",
        "OutgoingMailServerPortNumber": port(pochta, "submissions"),
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": ALICE,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
    }
    for key, value in expected.items():
        assert mail.get(key) == value, (key, mail.get(key))
    assert mail["PayloadDisplayName"]
    assert "IncomingPassword" not in mail and "OutgoingPassword" not in mail
    assert ALICE_PW.encode() not in r.body
    assert mail["PayloadUUID"] != profile["PayloadUUID"]

    # Stable per account: a second download replaces the first profile.
    again = plistlib.loads(c.get(f"/api/accounts/{ALICE}/mobileconfig").body)
    assert again["PayloadUUID"] == profile["PayloadUUID"]
    assert again["PayloadContent"][0]["PayloadUUID"] == mail["PayloadUUID"]
    assert again["PayloadIdentifier"] == profile["PayloadIdentifier"]
    bob = plistlib.loads(c.get("/api/accounts/bob@example.test/mobileconfig").body)
    assert bob["PayloadUUID"] != profile["PayloadUUID"]


def test_setup_json_and_page(pochta):
    start(pochta)
    c = logged_in(pochta)
    r = c.get(f"/api/accounts/{ALICE}/setup")
    assert r.status == 200, r
    s = r.json
    assert s["address"] == ALICE and s["username"] == ALICE and s["host"] == "localhost"
    assert s["imap"] == [{"port": port(pochta, "imaps"), "security": "TLS"},
                         {"port": port(pochta, "imap"), "security": "STARTTLS"}]
    assert s["pop3"] == [{"port": port(pochta, "pop3s"), "security": "TLS"},
                         {"port": port(pochta, "pop3"), "security": "STARTTLS"}]
    assert s["smtp"] == [{"port": port(pochta, "submissions"), "security": "TLS"},
                         {"port": port(pochta, "submission"), "security": "STARTTLS"}]
    assert s["mobileconfig"] == f"/api/accounts/{ALICE}/mobileconfig"

    page = c.get(f"/accounts/{ALICE}/setup")
    assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8", page
    security_headers(page)
    text = html.unescape(page.body.decode())
    assert "<script" not in text and " style=" not in text
    for service in ["imaps", "imap", "pop3s", "pop3", "submissions", "submission"]:
        assert f"<td>{port(pochta, service)}</td>" in text, service
    assert "SSL/TLS" in text and "STARTTLS" in text
    assert f'readonly value="{ALICE}"' in text and 'readonly value="localhost"' in text
    assert f'href="/api/accounts/{ALICE}/mobileconfig"' in text
    # The link works from the page's session.
    assert c.get(f"/api/accounts/{ALICE}/mobileconfig").status == 200
    missing = c.get("/accounts/nobody@example.test/setup")
    assert missing.status == 404 and "No such account nobody@example.test." in missing.body.decode()
