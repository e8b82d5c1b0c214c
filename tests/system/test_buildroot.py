"""What can be checked of the Buildroot tree (board/buildroot) without
Buildroot and without internet: the BR2_EXTERNAL layout, every path the
defconfigs name, the scripts' syntax, and that post-image.sh, given a
Buildroot-like BINARIES_DIR, makes an image with the same layout as
scripts/build-image (both use board/BOARD/genimage.cfg)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from vm import REPO_ROOT

BR = REPO_ROOT / "board" / "buildroot"


def test_external_tree_layout():
    assert re.search(r"^name: POCHTA$", (BR / "external.desc").read_text(), re.M)
    assert "package/pochta/Config.in" in (BR / "Config.in").read_text()
    assert "package/*/*.mk" in (BR / "external.mk").read_text()
    mk = (BR / "package" / "pochta" / "pochta.mk").read_text()
    assert "$(eval $(generic-package))" in mk and "/usr/bin/pochta" in mk


@pytest.mark.parametrize("defconfig", ["pochta_rpi4_64_defconfig", "pochta_rpi5_defconfig"])
def test_defconfig_paths_exist(defconfig):
    text = (BR / "configs" / defconfig).read_text()
    paths = re.findall(r"\$\(BR2_EXTERNAL_POCHTA_PATH\)(/[^\" ]+)", text)
    assert len(paths) >= 4, paths
    for p in paths:
        assert (BR / p.lstrip("/")).resolve().exists(), f"{defconfig} names {p}, which does not exist"
    board = re.search(r'BR2_ROOTFS_POST_SCRIPT_ARGS="([^"]+)"', text).group(1)
    for f in ["genimage.cfg", "config.txt", "cmdline-a.txt", "cmdline-b.txt", "autoboot.txt", "linux.fragment"]:
        assert (REPO_ROOT / "board" / board / f).is_file(), f"board/{board}/{f}"
    # Every line is a comment, empty, or a BR2_ option.
    for line in text.splitlines():
        assert not line or line.startswith("#") or re.match(r"BR2_[A-Za-z0-9_]+=", line), line


def test_scripts_syntax():
    for script in sorted((BR / "scripts").glob("*.sh")):
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
        if shutil.which("shellcheck"):
            subprocess.run(["shellcheck", str(script)], check=True, timeout=60)


def test_post_image_makes_the_build_image_layout(tmp_path):
    """post-image.sh on Buildroot's file names, filled with the files
    scripts/build-image staged for rpi4-64."""
    staged = REPO_ROOT / "out" / "build" / "rpi4-64" / "input"
    built = REPO_ROOT / "out" / "pochta-rpi4-64.img"
    if not (staged.is_dir() and built.is_file()):
        pytest.skip("scripts/build-image rpi4-64 has not run")
    binaries = tmp_path / "images"
    (binaries / "rpi-firmware").mkdir(parents=True)
    shutil.copy(staged / "vmlinuz", binaries / "Image")
    shutil.copy(staged / "initrd.img", binaries / "rootfs.cpio.gz")
    for f in ["start4.elf", "fixup4.dat"]:
        shutil.copy(staged / f, binaries / "rpi-firmware" / f)
    for f in staged.glob("*.dtb"):
        shutil.copy(f, binaries / f.name)
    subprocess.run([str(BR / "scripts" / "post-image.sh"), str(binaries), "rpi4-64"],
                   check=True, timeout=300, capture_output=True)
    out = binaries / "pochta-rpi4-64.img"

    def layout(img):
        table = json.loads(subprocess.run(["sfdisk", "--json", str(img)], check=True,
                                          capture_output=True, text=True, timeout=60).stdout)
        return [(p["start"], p["size"], p["type"]) for p in table["partitiontable"]["partitions"]]

    assert layout(out) == layout(built)
    config = subprocess.run(["mtype", "-i", f"{out}@@{40960 * 512}", "::/config.txt"],
                            check=True, capture_output=True, text=True, timeout=60).stdout
    assert "upstream_kernel" not in config, "the Raspberry Pi kernel's build kept upstream_kernel=1"
