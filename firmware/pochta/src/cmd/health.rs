//! `pochta health`: the running server's health checks, as its last round
//! left them in `run/health.json`. Exits 1 when something is failing (or no
//! server runs, or its checks stopped), so that scripts and monitoring can
//! use it as it is.

use std::path::Path;

use pochta_system::{Check, Report, State};
use serde::Serialize;

use crate::datadir;

/// `pochta health --json`.
#[derive(Serialize)]
struct Health {
    /// `ok`, `warning` or `failing`: the worst check.
    state: State,
    /// The server's pid, when one runs.
    pid: Option<u32>,
    #[serde(flatten)]
    report: Report,
}

/// Prints the health; `Ok(true)` when something is failing.
pub fn health(data: &Path, json: bool) -> Result<bool, String> {
    datadir::open_existing(data)?;
    let pid = datadir::served_by(data);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut report = match (pid, pochta_system::read_report(data)) {
        (Some(_), Some(report)) => report,
        (Some(_), None) => Report {
            checked_at: now,
            checks: vec![made_up(
                "server",
                "Pochta",
                State::Warning,
                "pochta serve is starting: no health round has finished yet",
                "Ask again in a few seconds",
                now,
            )],
            ..Report::default()
        },
        (None, _) => Report {
            checked_at: now,
            checks: vec![made_up(
                "server",
                "Pochta",
                State::Failing,
                "pochta serve is not running on this data folder: no mail is received or served",
                "Start it (on the appliance: restart the box; elsewhere: pochta serve, or systemctl start pochta)",
                now,
            )],
            ..Report::default()
        },
    };
    // A round that stopped coming is a hang the checks cannot report
    // themselves.
    let stale_after = (report.interval_secs as i64) * 3 + 30;
    if pid.is_some() && report.interval_secs > 0 && now - report.checked_at > stale_after {
        report.checks.insert(
            0,
            made_up(
                "rounds",
                "Health checks",
                State::Failing,
                &format!(
                    "The last round of checks ended {} ago: part of Pochta has stopped",
                    pochta_config::format_duration(now - report.checked_at)
                ),
                "Restart Pochta (the watchdog, when armed, restarts the box by itself)",
                report.checked_at,
            ),
        );
    }
    let state = report.worst();
    if json {
        let out = Health { state, pid, report };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        print_text(&report, state, now);
    }
    Ok(state == State::Failing)
}

fn made_up(id: &str, title: &str, state: State, reason: &str, fix: &str, since: i64) -> Check {
    Check {
        id: id.into(),
        title: title.into(),
        state,
        since,
        reason: reason.into(),
        fix: fix.into(),
    }
}

fn print_text(report: &Report, state: State, now: i64) {
    let width = report
        .checks
        .iter()
        .map(|c| c.title.chars().count())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        let since = if c.state == State::Ok {
            String::new()
        } else {
            format!(" (for {})", pochta_config::format_duration(now - c.since))
        };
        println!(
            "{:<8} {:<width$}  {}{since}",
            c.state.word(),
            c.title,
            c.reason
        );
        if !c.fix.is_empty() && c.state != State::Ok {
            println!("{:<8} {:<width$}  what to do: {}", "", "", c.fix);
        }
    }
    if report.interval_secs > 0 {
        println!(
            "\n{}: checked {} ago, in {} ms",
            state.word(),
            pochta_config::format_duration(now - report.checked_at),
            report.round_ms
        );
    } else {
        println!("\n{}", state.word());
    }
}
