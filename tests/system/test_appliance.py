"""The appliance image booted under QEMU (TCG): first boot prints the setup
code, the admin API sets up a domain and an account through the forwarded
port, mail goes in over submission (STARTTLS + AUTH) and comes back over
IMAPS, then the power is cut (QEMU killed) and after the next boot the
message is still there.

Measurements (boot time to pochta's ready line, image and binary size,
pochta's resident memory in the VM) are printed, never asserted beyond
generous bounds.
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import ssl
import subprocess
import time
import uuid

from admin_http import AdminClient, totp
from vm import REPO_ROOT, SERVER_PID, VM

ADMIN = "root"
ADMIN_PW = "correct horse battery staple"
DOMAIN = "example.test"
ANNA = "anna@example.test"
ANNA_PW = "a long office passphrase 7"

# Software emulation of a 2-core arm64 on a shared 2-core host; the first
# boot also makes the TLS certificate and the schema.
BOOT_TIMEOUT = 300


def tls() -> ssl.SSLContext:
    """The box's certificate is self-signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def boot(vms, disk, tmp_path, name) -> tuple[VM, float]:
    vm = VM(disk, tmp_path, name)
    vms.append(vm)
    vm.wait_for(r"pochta ready: \{", BOOT_TIMEOUT)
    seconds = time.monotonic() - vm.started
    vm.wait_for(r"Pochta \S+ is ready\.", 60)
    return vm, seconds


def pochta_rss_kib(vm: VM) -> int:
    out = vm.shell(f"grep VmRSS /proc/{SERVER_PID}/status")
    m = re.search(r"VmRSS:\s+(\d+) kB", out)
    assert m, out
    return int(m.group(1))


def set_up_through_admin_api(vm: VM, code: str):
    c = AdminClient(("127.0.0.1", vm.ports["http"]))
    r = c.post("/api/setup", {"setup_code": code, "user": ADMIN, "password": ADMIN_PW})
    assert r.status == 201, r
    r = c.post("/api/totp/confirm", {"code": totp(r.json["totp_secret"])})
    assert r.status == 200, r
    r = c.post("/api/domains", {"name": DOMAIN})
    assert r.status == 201, r
    r = c.post("/api/accounts", {"address": ANNA, "password": ANNA_PW})
    assert r.status == 201, r


def submit(vm: VM, message_id: str):
    msg = (f"From: <{ANNA}>\r\nTo: <{ANNA}>\r\nSubject: through the box\r\n"
           f"Message-ID: {message_id}\r\n\r\nDelivered under QEMU.\r\n")
    with smtplib.SMTP("127.0.0.1", vm.ports["submission"], timeout=120) as s:
        s.ehlo("client.test")
        s.starttls(context=tls())
        s.ehlo("client.test")
        s.login(ANNA, ANNA_PW)
        refused = s.sendmail(ANNA, [ANNA], msg.encode())
        assert refused == {}, refused


def inbox_message_ids(vm: VM) -> list[str]:
    imap = imaplib.IMAP4_SSL("127.0.0.1", vm.ports["imaps"], ssl_context=tls(), timeout=120)
    try:
        imap.login(ANNA, ANNA_PW)
        typ, _ = imap.select("INBOX", readonly=True)
        assert typ == "OK"
        typ, data = imap.uid("SEARCH", None, "ALL")
        assert typ == "OK", data
        ids = []
        for uid in data[0].split():
            typ, parts = imap.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            assert typ == "OK", parts
            ids.append(parts[0][1].decode().split(":", 1)[1].strip())
        return ids
    finally:
        imap.logout()


def wait_for_delivery(vm: VM, message_id: str, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = inbox_message_ids(vm)
        if message_id in ids or time.monotonic() > deadline:
            return ids
        time.sleep(1)


def test_mail_in_and_out_survives_a_power_cut(vms, disk, tmp_path):
    vm, first_boot = boot(vms, disk, tmp_path, "boot1")
    code = vm.wait_for(r"Setup code:\s+([0-9A-Z]{10})", 30).group(1)
    # The same code on the console's log line and in the banner.
    assert re.search(rf"setup_code={code}", vm.text()), "the log line and the banner disagree"
    assert "LAN address: 10.0.2.15" in vm.text()
    rss_after_boot = pochta_rss_kib(vm)
    # The root filesystem is read-only; /data is ext4 on partition 4.
    mounts = vm.shell("cat /proc/mounts")
    assert re.search(r"^rootfs / rootfs ro[ ,]", mounts, re.M), mounts
    assert re.search(r"^/dev/vda4 /data ext4 rw", mounts, re.M), mounts
    assert "SETUP.TXT" in vm.shell("ls /boot"), "no SETUP.TXT on the boot partition"
    # As a laptop would read it from the card: partition 1 starts at 4 MiB.
    setup_txt = subprocess.run(["mtype", "-i", f"{disk}@@{4 * 1024 * 1024}", "::/SETUP.TXT"],
                               capture_output=True, text=True, timeout=60)
    assert f"Pochta setup code: {code}" in setup_txt.stdout, setup_txt

    set_up_through_admin_api(vm, code)
    # The console's shell runs the CLI on the box's data folder.
    # (pochta's own log shares the console: look for the line, not all lines.)
    assert DOMAIN in vm.shell("pochta domain list").splitlines()
    message_id = f"<{uuid.uuid4().hex}@system.test>"
    submit(vm, message_id)
    ids = wait_for_delivery(vm, message_id)
    assert message_id in ids, ids
    rss_after_mail = pochta_rss_kib(vm)

    vm.power_cut()

    vm2, second_boot = boot(vms, disk, tmp_path, "boot2")
    assert "Setup code:" not in vm2.text(), "a new setup code although an administrator exists"
    assert message_id in inbox_message_ids(vm2), "the message did not survive the power cut"

    image = REPO_ROOT / "out" / "pochta-qemu-aarch64.img"
    binary = REPO_ROOT / "out" / "firmware" / "pochta"
    print(f"\nboot to pochta ready: first {first_boot:.1f} s, after the power cut {second_boot:.1f} s"
          f"\nimage: {image.stat().st_size} bytes ({image.stat().st_blocks * 512} allocated)"
          f"\npochta binary: {binary.stat().st_size} bytes"
          f"\npochta RSS in the VM: {rss_after_boot} KiB after boot, {rss_after_mail} KiB after setup and mail")
    assert first_boot < BOOT_TIMEOUT and rss_after_boot < 200 * 1024
