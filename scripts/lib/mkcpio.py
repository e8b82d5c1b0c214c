#!/usr/bin/env python3
"""Writes a newc cpio archive (the initramfs format, Linux
Documentation/driver-api/early-userspace/buffer-format.rst) of a folder,
without root: every entry is owned by root, timestamps are fixed (the
image's build time, for reproducible images), and device nodes that only
root could create on disk (/dev/console, which the kernel opens before
/init runs) are written straight into the archive.

Usage: mkcpio.py FOLDER MTIME > archive.cpio
"""

import os
import stat
import sys

# (path, mode, major, minor): the kernel needs a console before devtmpfs.
DEVICES = [("dev/console", stat.S_IFCHR | 0o600, 5, 1), ("dev/null", stat.S_IFCHR | 0o666, 1, 3)]


def header(ino, mode, nlink, mtime, size, rdev, name):
    fields = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    return b"070701" + b"".join(b"%08X" % f for f in fields) + name + b"\0"


def pad(n):
    return b"\0" * (-n % 4)


def entries(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            yield rel
        for f in sorted(filenames):
            yield os.path.normpath(os.path.join(rel, f))


def main():
    root, mtime = sys.argv[1], int(sys.argv[2])
    out = sys.stdout.buffer
    ino = 1
    names = set()
    for rel in entries(root):
        path = os.path.join(root, rel)
        st = os.lstat(path)
        name = rel.encode()
        names.add(rel)
        perm = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            data = os.readlink(path).encode()
            mode = stat.S_IFLNK | 0o777
        elif stat.S_ISDIR(st.st_mode):
            data = b""
            mode = stat.S_IFDIR | perm
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                data = f.read()
            mode = stat.S_IFREG | perm
        else:
            sys.exit(f"mkcpio: {path}: not a file, folder or link")
        h = header(ino, mode, 2 if stat.S_ISDIR(mode) else 1, mtime, len(data), (0, 0), name)
        out.write(h + pad(len(h)) + data + pad(len(data)))
        ino += 1
    if "dev" not in names:
        sys.exit("mkcpio: the folder has no dev/")
    for rel, mode, major, minor in DEVICES:
        h = header(ino, mode, 1, mtime, 0, (major, minor), rel.encode())
        out.write(h + pad(len(h)))
        ino += 1
    h = header(0, 0, 1, 0, 0, (0, 0), b"TRAILER!!!")
    out.write(h + pad(len(h)))


if __name__ == "__main__":
    main()
