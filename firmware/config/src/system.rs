//! `[system]`: how the box looks after itself (the `pochta-system` crate):
//! the hardware watchdog, the clock, disk space limits, alerts, mDNS and
//! the backup schedule.
//! Every part is off by default, as on a development machine; the
//! appliance's `/etc/pochta/pochta.toml` turns them on.

use std::path::PathBuf;

use serde::Deserialize;

/// `[system]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct System {
    /// The hardware watchdog device (`/dev/watchdog` on the appliance).
    /// Absent: no watchdog.
    pub watchdog: Option<PathBuf>,
    /// Seconds without a feed before the watchdog resets the box. Asked of
    /// the driver and read back: the Raspberry Pi's tops out near 15.
    pub watchdog_timeout_secs: u32,
    /// SNTP servers as `host` or `host:port`. Empty: the clock is left alone
    /// and only reported.
    pub ntp: Vec<String>,
    /// Set the system clock from the NTP servers (needs root, or
    /// CAP_SYS_TIME). Off: the offset is only measured and shown.
    pub set_clock: bool,
    /// Percent of the data folder's disk in use at which a warning is raised.
    pub disk_warning_percent: u8,
    /// Percent in use at which new mail is refused (`452 4.3.1` on SMTP,
    /// `NO [LIMIT]` on IMAP APPEND), before the store meets a full disk.
    pub disk_refuse_percent: u8,
    /// The mDNS host name, without `.local` (the appliance answers
    /// `pochta.local`). Absent: no mDNS.
    pub mdns: Option<String>,
    /// An address outside the box that also gets every alert (through the
    /// outbound queue). The postmaster's mailbox on the box always does.
    pub alert_email: Option<String>,
    /// A weekly summary mail to the postmaster ("all well" is news too).
    pub weekly_summary: bool,
    /// Seconds between rounds of health checks.
    pub health_interval_secs: u64,
    /// At start, grow the data folder's partition (the disk's last, MBR)
    /// and its ext4 to the end of the disk: a card bigger than the image.
    /// The appliance only: it repartitions the disk.
    pub grow_data: bool,
    /// Back up daily at the hour set with the backup settings (`pochta
    /// backup schedule`, the admin page's Backup page), and test-restore
    /// weekly. Off: only `pochta backup now` backs up.
    pub backup_schedule: bool,
}

impl Default for System {
    fn default() -> Self {
        System {
            watchdog: None,
            watchdog_timeout_secs: 15,
            ntp: Vec::new(),
            set_clock: false,
            disk_warning_percent: 80,
            disk_refuse_percent: 95,
            mdns: None,
            alert_email: None,
            weekly_summary: true,
            health_interval_secs: 15,
            grow_data: false,
            backup_schedule: true,
        }
    }
}

/// The first thing wrong with `[system]`: the key and what to do.
pub(crate) fn validate(s: &System) -> Result<(), (&'static str, String)> {
    if !(1..=600).contains(&s.watchdog_timeout_secs) {
        return Err(("system.watchdog_timeout_secs", "must be 1 to 600".into()));
    }
    if !(1..=100).contains(&s.disk_refuse_percent) {
        return Err(("system.disk_refuse_percent", "must be 1 to 100".into()));
    }
    if s.disk_warning_percent == 0 || s.disk_warning_percent > s.disk_refuse_percent {
        return Err((
            "system.disk_warning_percent",
            format!(
                "must be 1 to disk_refuse_percent ({})",
                s.disk_refuse_percent
            ),
        ));
    }
    if !(1..=3600).contains(&s.health_interval_secs) {
        return Err(("system.health_interval_secs", "must be 1 to 3600".into()));
    }
    if let Some(name) = &s.mdns {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err((
                "system.mdns",
                "must be one DNS label such as \"pochta\" (it is answered as pochta.local)".into(),
            ));
        }
    }
    for server in &s.ntp {
        if server.is_empty() || server.contains(char::is_whitespace) {
            return Err((
                "system.ntp",
                format!("{server:?} is not a host name or host:port"),
            ));
        }
    }
    if let Some(to) = &s.alert_email {
        if !to.contains('@') {
            return Err(("system.alert_email", "must be a mail address".into()));
        }
    }
    Ok(())
}
