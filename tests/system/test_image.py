"""The built images without booting them: the partition table as
`sfdisk --json` reads it, the filesystems and labels the boot scripts look
for, each slot's boot files; and the static aarch64 binary running under
qemu-user (a quick smoke test of the CLI).

Images that were not built are skipped (CI builds qemu-aarch64 and
rpi4-64); the binary must exist.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from vm import REPO_ROOT

SECTOR = 512
MIB = 1024 * 1024
BINARY = REPO_ROOT / "out" / "firmware" / "pochta"

# Label, type in the MBR, filesystem, boot files every slot must have.
LAYOUT = [
    ("POCHTA", "c", "vfat"),
    ("BOOT-A", "c", "vfat"),
    ("BOOT-B", "c", "vfat"),
    ("pochta-data", "83", "ext4"),
]
SLOT_FILES = {
    "qemu-aarch64": {"vmlinuz", "initrd.img", "cmdline.txt", "config.txt"},
    "rpi4-64": {"vmlinuz", "initrd.img", "cmdline.txt", "config.txt", "start4.elf",
                "fixup4.dat", "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4-io.dtb"},
}


def image_for(board: str):
    img = REPO_ROOT / "out" / f"pochta-{board}.img"
    if not img.is_file():
        pytest.skip(f"{img.name} not built (scripts/build-image {board})")
    return img


def run(*args: str, **kw) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120, **kw).stdout


def probe(img, offset: int) -> dict[str, str]:
    out = run("blkid", "-p", "-O", str(offset), "-o", "export", str(img))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def fat_files(img, offset: int) -> set[str]:
    # mtools addresses a partition inside an image as FILE@@OFFSET.
    out = run("mdir", "-b", "-i", f"{img}@@{offset}", "::/", env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return {line.rsplit("/", 1)[-1] for line in out.split()}


@pytest.mark.parametrize("board", ["qemu-aarch64", "rpi4-64"])
def test_partition_table(board):
    img = image_for(board)
    table = json.loads(run("sfdisk", "--json", str(img)))["partitiontable"]
    assert table["label"] == "dos", "the Raspberry Pi boot ROM wants an MBR"
    parts = table["partitions"]
    assert [p["type"] for p in parts] == [t for _, t, _ in LAYOUT], parts
    assert parts[0].get("bootable"), "the boot selector is not marked bootable"
    end = 0
    for p in parts:
        # Aligned to 4 MiB, a common SD card erase block.
        assert p["start"] * SECTOR % (4 * MIB) == 0, p
        assert p["start"] >= end, f"partitions overlap: {parts}"
        end = p["start"] + p["size"]
    assert end * SECTOR <= img.stat().st_size, "the last partition runs past the image"
    # Slots A and B are the same size: an update can fill either.
    assert parts[1]["size"] == parts[2]["size"]
    assert parts[1]["size"] * SECTOR >= 96 * MIB, "a slot has no room for kernel and initramfs"

    for p, (label, _, fstype) in zip(parts, LAYOUT):
        fs = probe(img, p["start"] * SECTOR)
        assert (fs.get("LABEL"), fs.get("TYPE")) == (label, fstype), fs

    sel = parts[0]["start"] * SECTOR
    assert fat_files(img, sel) == {"autoboot.txt"}
    autoboot = run("mtype", "-i", f"{img}@@{sel}", "::/autoboot.txt")
    assert "tryboot_a_b=1" in autoboot and "boot_partition=2" in autoboot, autoboot
    for slot, name in [(parts[1], "a"), (parts[2], "b")]:
        off = slot["start"] * SECTOR
        assert SLOT_FILES[board] <= fat_files(img, off), f"slot {name}: {fat_files(img, off)}"
        cmdline = run("mtype", "-i", f"{img}@@{off}", "::/cmdline.txt")
        assert f"pochta.slot={name}" in cmdline and "rdinit=/init" in cmdline, cmdline


def test_binary_is_static_aarch64():
    if not BINARY.is_file():
        pytest.fail("out/firmware/pochta is missing: run scripts/build-firmware", pytrace=False)
    desc = run("file", "-b", str(BINARY))
    assert "ARM aarch64" in desc and "statically linked" in desc and ", stripped" in desc, desc
    assert BINARY.stat().st_size < 20 * MIB


def test_cli_under_qemu_user(tmp_path):
    if not BINARY.is_file():
        pytest.fail("out/firmware/pochta is missing: run scripts/build-firmware", pytrace=False)
    qemu = "qemu-aarch64-static"
    assert "pochta 0." in run(qemu, str(BINARY), "--version")
    data = str(tmp_path / "data")
    run(qemu, str(BINARY), "--data", data, "init")
    run(qemu, str(BINARY), "--data", data, "domain", "add", "example.test")
    assert run(qemu, str(BINARY), "--data", data, "domain", "list").split() == ["example.test"]
    out = subprocess.run([qemu, str(BINARY), "--data", data, "account", "add", "--password-stdin",
                          "anna@example.test"], input="a long office passphrase 7\n",
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out
    status = json.loads(run(qemu, str(BINARY), "--data", data, "status", "--json"))
    assert "anna@example.test" in json.dumps(status), status


def test_manual_pages_and_completions_in_the_image():
    """`pochta man` and `pochta completions`, made by build-firmware from the
    binary itself, are in the image's root filesystem."""
    initrd = REPO_ROOT / "out" / "qemu-aarch64" / "initrd.img"
    if not initrd.is_file():
        pytest.skip("out/qemu-aarch64 not built (scripts/build-image qemu-aarch64)")
    listing = subprocess.run(f"gzip -dc '{initrd}' | cpio -t --quiet", shell=True, check=True,
                             capture_output=True, text=True, timeout=120).stdout.split()
    names = {n.removeprefix("./") for n in listing}
    for path in ["usr/share/man/man1/pochta.1", "usr/share/man/man1/pochta-account-remove.1",
                 "usr/share/bash-completion/completions/pochta",
                 "usr/share/zsh/vendor-completions/_pochta",
                 "usr/share/fish/vendor_completions.d/pochta.fish"]:
        assert path in names, f"{path} is not in the image"
