//! Landlock (Linux 5.13+): the filesystem as the process may use it from
//! now on, for it and every thread and child it starts later. Best-effort:
//! a kernel without Landlock leaves the process unconfined, and says so.

use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, LandlockStatus, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, ABI,
};

/// The newest Landlock ABI whose rights are asked for (rights of newer
/// kernels are not asked for; older kernels give what they have).
const ABI_ASKED: ABI = ABI::V5;

/// What may be done where.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Folders (and what is below them) that may be written: files made,
    /// changed, renamed and removed.
    pub writable: Vec<PathBuf>,
    /// Whether programs may be run (read-only everywhere else either way).
    pub execute: bool,
}

/// How far the kernel confines the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confinement {
    /// Every right asked for is enforced.
    Full,
    /// Enforced, with the rights of an older kernel.
    Partial,
    /// Not confined; why.
    None(String),
}

impl Confinement {
    /// A word for logs and `run/serve.json`.
    pub fn name(&self) -> &'static str {
        match self {
            Confinement::Full => "full",
            Confinement::Partial => "partial",
            Confinement::None(_) => "none",
        }
    }
}

/// Sets `no_new_privs` and confines the calling thread (and so every thread
/// and process it starts afterwards) to `policy`. Call it before starting
/// threads: those already running stay unconfined.
pub fn confine(policy: &Policy) -> Result<Confinement, String> {
    crate::caps::set_no_new_privs()?;
    let read = if policy.execute {
        AccessFs::from_read(ABI_ASKED)
    } else {
        AccessFs::ReadFile | AccessFs::ReadDir
    };
    let writable: Vec<&Path> = policy
        .writable
        .iter()
        .map(PathBuf::as_path)
        .filter(|p| p.exists())
        .collect();
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_ASKED))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], read)))
        .and_then(|r| r.add_rules(path_beneath_rules(&writable, AccessFs::from_all(ABI_ASKED))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("cannot apply the Landlock rules: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Confinement::Full,
        RulesetStatus::PartiallyEnforced => Confinement::Partial,
        RulesetStatus::NotEnforced => Confinement::None(match status.landlock {
            LandlockStatus::NotEnabled => {
                "this kernel has Landlock but it is not enabled (add landlock to lsm= on its command line)".into()
            }
            LandlockStatus::NotImplemented => "this kernel has no Landlock (Linux 5.13+ with CONFIG_SECURITY_LANDLOCK)".into(),
            LandlockStatus::Available { .. } => "Landlock refused the rules".into(),
        }),
    })
}
