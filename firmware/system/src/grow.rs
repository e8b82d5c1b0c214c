//! First boot on a card or disk bigger than the image: the data partition
//! (the last one, MBR) grows to the end of the disk, and its ext4 with it,
//! online, before pochta opens the store. Nothing here runs unless
//! `[system] grow_data` is on (the appliance): on someone's laptop the
//! disk holding a data folder is theirs. (No test calls [`grow_data`] on
//! this machine's disks for the same reason; the QEMU test does it.)
//!
//! The steps, each checked first: the partition holding the data folder is
//! the disk's last; its MBR entry (not a GPT, not a logical partition) gets
//! the new size; the kernel is told with `BLKPG_RESIZE_PARTITION` (the
//! partition is mounted, so re-reading the table would be refused); ext4
//! grows with `EXT4_IOC_RESIZE_FS`, as `resize2fs` does online.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Less room than this after the partition is not worth a resize.
const MIN_GROWTH_SECTORS: u64 = 32 * 2048;
/// Partitions end on a 1 MiB boundary (2048 sectors of 512 bytes).
const ALIGN_SECTORS: u64 = 2048;

nix::ioctl_write_ptr!(ext4_ioc_resize_fs, b'f', 16, u64);
nix::ioctl_write_ptr_bad!(blkpg, nix::request_code_none!(0x12, 105), BlkpgIoctlArg);

/// `BLKPG_RESIZE_PARTITION` (linux/blkpg.h).
const BLKPG_RESIZE_PARTITION: nix::libc::c_int = 3;

#[repr(C)]
struct BlkpgIoctlArg {
    op: nix::libc::c_int,
    flags: nix::libc::c_int,
    datalen: nix::libc::c_int,
    data: *mut BlkpgPartition,
}

#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: nix::libc::c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// What a grow did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grown {
    /// The partition, e.g. `/dev/mmcblk0p4`.
    pub partition: PathBuf,
    /// Its size before and after, in bytes.
    pub before: u64,
    pub after: u64,
}

/// One partition as sysfs describes it (`/sys/class/block/<name>`), sizes
/// in 512-byte sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    name: String,
    number: u32,
    start: u64,
    size: u64,
}

/// Grows the data partition of `data` to the end of its disk when there is
/// room; `Ok(None)` when there is nothing to do.
pub fn grow_data(data: &Path) -> Result<Option<Grown>, String> {
    let dev = std::fs::metadata(data)
        .map_err(|e| format!("cannot stat {}: {e}", data.display()))?
        .dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}"))
        .map_err(|_| "the data folder is not on a block device partition".to_owned())?;
    let Some(part) = read_part(&sys) else {
        return Ok(None); // a whole disk or no partition: nothing to grow
    };
    let disk_dir = sys.parent().ok_or("no disk above the partition")?;
    let disk_name = disk_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("no disk name")?
        .to_owned();
    let disk_sectors = read_u64(&disk_dir.join("size")).ok_or("cannot read the disk's size")?;
    let siblings: Vec<Part> = std::fs::read_dir(disk_dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter_map(|e| read_part(&e.path()))
        .collect();
    let Some(new_size) = planned_size(&part, &siblings, disk_sectors) else {
        return Ok(None);
    };
    let disk_dev = PathBuf::from(format!("/dev/{disk_name}"));
    let mut disk = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk_dev)
        .map_err(|e| format!("cannot open {}: {e}", disk_dev.display()))?;
    let mut mbr = [0u8; 512];
    disk.read_exact(&mut mbr)
        .map_err(|e| format!("cannot read the partition table: {e}"))?;
    let entry = mbr_entry(&mbr, part.number, part.start, part.size)?;
    let size32 = u32::try_from(new_size).map_err(|_| "over 2 TiB: MBR cannot say it")?;
    mbr[entry + 12..entry + 16].copy_from_slice(&size32.to_le_bytes());
    disk.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    disk.write_all(&mbr)
        .and_then(|()| disk.sync_all())
        .map_err(|e| format!("cannot write the partition table: {e}"))?;
    tell_kernel(&disk, &part, new_size)?;
    resize_ext4(data, new_size * 512)?;
    Ok(Some(Grown {
        partition: PathBuf::from(format!("/dev/{}", part.name)),
        before: part.size * 512,
        after: new_size * 512,
    }))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn read_part(dir: &Path) -> Option<Part> {
    Some(Part {
        name: dir.file_name()?.to_str()?.to_owned(),
        number: read_u64(&dir.join("partition"))? as u32,
        start: read_u64(&dir.join("start"))?,
        size: read_u64(&dir.join("size"))?,
    })
}

/// The partition's new size in sectors, when it is the last one on the disk
/// and at least [`MIN_GROWTH_SECTORS`] would be gained.
fn planned_size(part: &Part, all: &[Part], disk_sectors: u64) -> Option<u64> {
    let end = part.start + part.size;
    if all.iter().any(|p| p.name != part.name && p.start >= end) {
        return None;
    }
    // The last 1 MiB boundary, and never the disk's last sectors (a GPT
    // backup would live there on another disk).
    let new_end = (disk_sectors / ALIGN_SECTORS) * ALIGN_SECTORS;
    let new_size = new_end.checked_sub(part.start)?;
    (new_size >= part.size + MIN_GROWTH_SECTORS).then_some(new_size)
}

/// The byte offset of the MBR entry of primary partition `number`, after
/// checking that it is the one sysfs describes (RFC-less, but the layout is
/// fixed: four 16-byte entries at 446, LBA start at +8, size at +12, the
/// signature 0x55AA at 510).
fn mbr_entry(mbr: &[u8; 512], number: u32, start: u64, size: u64) -> Result<usize, String> {
    if mbr[510..512] != [0x55, 0xaa] {
        return Err("no MBR partition table on the disk".into());
    }
    if !(1..=4).contains(&number) {
        return Err(format!("partition {number} is not a primary MBR partition"));
    }
    let at = 446 + 16 * (number as usize - 1);
    let kind = mbr[at + 4];
    if kind == 0xee {
        return Err("the disk has a GPT, which this does not grow".into());
    }
    let le = |o: usize| u32::from_le_bytes([mbr[o], mbr[o + 1], mbr[o + 2], mbr[o + 3]]) as u64;
    if le(at + 8) != start || le(at + 12) != size {
        return Err(format!(
            "the partition table does not match the kernel's view of partition {number}"
        ));
    }
    Ok(at)
}

fn tell_kernel(disk: &File, part: &Part, new_size: u64) -> Result<(), String> {
    let mut p = BlkpgPartition {
        start: (part.start * 512) as i64,
        length: (new_size * 512) as i64,
        pno: part.number as nix::libc::c_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as nix::libc::c_int,
        data: &mut p,
    };
    // SAFETY: `disk` is an open block device; `arg` points at a live
    // blkpg_partition of the size it says, as BLKPG expects.
    unsafe { blkpg(disk.as_raw_fd(), &arg) }
        .map(|_| ())
        .map_err(|e| format!("the kernel did not take the new partition size: {e}"))
}

fn resize_ext4(data: &Path, bytes: u64) -> Result<(), String> {
    let st = nix::sys::statvfs::statvfs(data).map_err(|e| e.to_string())?;
    let block = st.fragment_size() as u64;
    if block == 0 {
        return Err("the filesystem reports a block size of 0".into());
    }
    let blocks = bytes / block;
    let dir = File::open(data).map_err(|e| e.to_string())?;
    // SAFETY: an open directory of the mounted ext4; the pointer is to a
    // live u64, the new block count EXT4_IOC_RESIZE_FS expects.
    unsafe { ext4_ioc_resize_fs(dir.as_raw_fd(), &blocks) }
        .map(|_| ())
        .map_err(|e| format!("ext4 did not grow (online resize): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, number: u32, start: u64, size: u64) -> Part {
        Part {
            name: name.into(),
            number,
            start,
            size,
        }
    }

    #[test]
    fn only_the_last_partition_grows_and_only_by_enough() {
        // The image's layout: 4 MiB gap, 16 MiB, 128 MiB, 128 MiB, 256 MiB data.
        let data = part("vda4", 4, 565_248, 524_288);
        let all = vec![
            part("vda1", 1, 8192, 32_768),
            part("vda2", 2, 40_960, 262_144),
            part("vda3", 3, 303_104, 262_144),
            data.clone(),
        ];
        let image_end = 565_248 + 524_288;
        assert_eq!(planned_size(&data, &all, image_end), None);
        // A card of 8 GB (15_523_840 sectors): to the last MiB boundary.
        assert_eq!(
            planned_size(&data, &all, 15_523_840),
            Some(15_523_840 - 565_248)
        );
        // A sector short of a boundary rounds down.
        assert_eq!(
            planned_size(&data, &all, image_end + 4096 + 2047 + 65_536),
            Some(524_288 + 4096 + 65_536)
        );
        // Another partition after it: left alone.
        assert_eq!(planned_size(&all[2], &all, 15_523_840), None);
    }

    #[test]
    fn the_mbr_entry_must_match_what_the_kernel_says() {
        let mut mbr = [0u8; 512];
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        let at = 446 + 48;
        mbr[at + 4] = 0x83;
        mbr[at + 8..at + 12].copy_from_slice(&565_248u32.to_le_bytes());
        mbr[at + 12..at + 16].copy_from_slice(&524_288u32.to_le_bytes());
        assert_eq!(mbr_entry(&mbr, 4, 565_248, 524_288), Ok(at));
        assert!(mbr_entry(&mbr, 4, 565_248, 1)
            .unwrap_err()
            .contains("does not match"));
        assert!(mbr_entry(&mbr, 5, 0, 0).unwrap_err().contains("primary"));
        mbr[at + 4] = 0xee;
        assert!(mbr_entry(&mbr, 4, 565_248, 524_288)
            .unwrap_err()
            .contains("GPT"));
        mbr[511] = 0;
        assert!(mbr_entry(&mbr, 4, 565_248, 524_288)
            .unwrap_err()
            .contains("no MBR"));
    }
}
