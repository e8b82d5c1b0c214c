"""First boot on a card bigger than the image (issue 12): the data
partition and its ext4 grow to the end of the disk before pochta uses
them; the next boot leaves them as they are."""

from __future__ import annotations

import json
import re
import subprocess

from test_appliance import BOOT_TIMEOUT
from vm import VM

READY = r"pochta ready: \{"
EXTRA_MIB = 1024


def data_partition(disk) -> dict:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True,
                                      check=True, timeout=60).stdout)
    return table["partitiontable"]["partitions"][3]


def data_size_kib(vm: VM) -> int:
    # pochta's log shares the console: find df's line among them.
    out = vm.shell("df -k /data | tail -n 1")
    m = re.search(r"^/dev/\S+\s+(\d+)\s", out, re.M)
    assert m, out
    return int(m.group(1))


def test_the_data_partition_grows_to_the_disk_once(vms, disk, tmp_path):
    before = data_partition(disk)
    image_bytes = disk.stat().st_size
    # The card is 1 GiB bigger than the image (sparse: no space used here).
    with open(disk, "r+b") as f:
        f.truncate(image_bytes + EXTRA_MIB * 1024 * 1024)

    vm = VM(disk, tmp_path, "grow1")
    vms.append(vm)
    vm.wait_for(READY, BOOT_TIMEOUT)
    assert re.search(r"the data partition grew from \S+ \S+ to \S+ \S+", vm.text()), vm.text()[-3000:]
    size = data_size_kib(vm)
    # df's size leaves out ext4's own metadata (a few percent).
    grown = (before["size"] * 512) + EXTRA_MIB * 1024 * 1024
    assert size * 1024 > grown * 0.9, (size, before)
    # Stop pochta and make /data read-only, so that e2fsck can look at it.
    vm.shell("touch /run/pochta/stopped; kill -TERM $(pidof pochta); sleep 3; sync; "
             "mount -o remount,ro /data && echo remounted")
    vm.power_cut()

    after = data_partition(disk)
    assert after["start"] == before["start"]
    end = after["start"] + after["size"]
    total = disk.stat().st_size // 512
    assert total - 2048 < end <= total, (after, total)
    # The grown ext4 is whole: e2fsck on a copy of the partition.
    part = tmp_path / "data.ext4"
    subprocess.run(["dd", f"if={disk}", f"of={part}", "bs=1M", "iflag=skip_bytes,count_bytes",
                    f"skip={after['start'] * 512}", f"count={after['size'] * 512}", "conv=sparse",
                    "status=none"], check=True, timeout=300)
    fsck = subprocess.run(["e2fsck", "-fn", str(part)], capture_output=True, text=True, timeout=300)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    part.unlink()

    vm2 = VM(disk, tmp_path, "grow2")
    vms.append(vm2)
    vm2.wait_for(READY, BOOT_TIMEOUT)
    assert "the data partition grew" not in vm2.text()
    assert data_size_kib(vm2) == size
    print(f"\nfirst boot: data partition {before['size'] * 512 // 2**20} MiB -> "
          f"{after['size'] * 512 // 2**20} MiB; ext4 {size // 1024} MiB")
