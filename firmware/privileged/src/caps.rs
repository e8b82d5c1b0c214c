//! Capabilities and `no_new_privs`, through the raw `prctl`/`capset` calls
//! (capabilities(7)), and what `/proc/self/status` says about them.

use nix::libc;

/// `CAP_SYS_TIME` (linux/capability.h): setting the system clock.
pub const CAP_SYS_TIME: u32 = 25;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The highest capability this kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// `PR_SET_NO_NEW_PRIVS`: no `execve` of this process or its children can
/// gain privileges (setuid bits and file capabilities are ignored).
pub fn set_no_new_privs() -> Result<(), String> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if r != 0 {
        return Err(format!(
            "cannot set no_new_privs: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Empties the bounding set but for `keep` (needs `CAP_SETPCAP`, so before
/// giving that up), and the ambient set.
pub fn limit_bounding_set(keep: &[u32]) -> Result<(), String> {
    for cap in 0..=last_cap() {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            // EINVAL: a capability this kernel does not have.
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(format!(
                    "cannot drop capability {cap} from the bounding set: {e}"
                ));
            }
        }
    }
    // SAFETY: as above.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Ok(())
}

/// Sets the effective and permitted sets of this thread to exactly `keep`
/// (and the inheritable set to nothing).
pub fn keep_only(keep: &[u32]) -> Result<(), String> {
    let mut data = [CapData::default(); 2];
    for &cap in keep {
        let word = &mut data[(cap / 32) as usize];
        word.effective |= 1 << (cap % 32);
        word.permitted |= 1 << (cap % 32);
    }
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset reads one header and two data structs of the layout
    // linux/capability.h gives for version 3; both live on this stack.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(format!(
            "cannot set capabilities: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// What the kernel says about a process's privileges (`/proc/PID/status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Privileges {
    /// Real, effective, saved and filesystem user ids.
    pub uids: [u32; 4],
    /// Real, effective, saved and filesystem group ids.
    pub gids: [u32; 4],
    /// Effective capabilities.
    pub cap_eff: u64,
    /// Permitted capabilities.
    pub cap_prm: u64,
    /// `no_new_privs` is set.
    pub no_new_privs: bool,
}

impl Privileges {
    /// This process's.
    pub fn current() -> Result<Privileges, String> {
        let text = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
        Ok(Privileges::parse(&text))
    }

    /// Reads the fields of a `/proc/PID/status` text (missing ones stay 0).
    pub fn parse(status: &str) -> Privileges {
        let mut p = Privileges::default();
        for line in status.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            let ids = || -> [u32; 4] {
                let mut ids = [0; 4];
                for (slot, n) in ids.iter_mut().zip(value.split_whitespace()) {
                    *slot = n.parse().unwrap_or(0);
                }
                ids
            };
            match key {
                "Uid" => p.uids = ids(),
                "Gid" => p.gids = ids(),
                "CapEff" => p.cap_eff = u64::from_str_radix(value, 16).unwrap_or(u64::MAX),
                "CapPrm" => p.cap_prm = u64::from_str_radix(value, 16).unwrap_or(u64::MAX),
                "NoNewPrivs" => p.no_new_privs = value == "1",
                _ => {}
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let text = "Name:\tpochta\nUid:\t998\t998\t998\t998\nGid:\t997\t997\t997\t997\n\
                    CapPrm:\t0000000000000000\nCapEff:\t0000000002000000\nNoNewPrivs:\t1\n";
        let p = Privileges::parse(text);
        assert_eq!(p.uids, [998; 4]);
        assert_eq!(p.gids, [997; 4]);
        assert_eq!(p.cap_eff, 1 << CAP_SYS_TIME);
        assert_eq!(p.cap_prm, 0);
        assert!(p.no_new_privs);
    }
}
