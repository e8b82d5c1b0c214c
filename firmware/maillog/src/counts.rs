//! Today's events counted as they are written, for the dashboard's
//! "messages today in / out / rejected".
//!
//! Why here: the mail log is already the one place every accepted,
//! rejected, relayed and delivered message passes through, in every
//! protocol, so counting in [`crate::MailLog`] needs no new calls in the
//! protocols and cannot disagree with the log the operator reads. Why not
//! the store: a counter table would cost a write transaction per event on
//! the hot path, for numbers that the log file already holds.
//!
//! A restart must not zero the day: [`DayCounts::seed`] reads today's lines
//! back from the end of the file when the log is opened (they are appended
//! in time order, so the reading stops at the first line of an earlier
//! day), bounded by [`SEED_BUDGET`]. The day is the UTC day of the log's
//! timestamps; counts start again at zero when it changes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::read::{Backwards, Entry};

/// Most bytes of the log read back at start to seed the counts (about a
/// million lines): a busier day starts its counts partly from zero, with a
/// warning, rather than holding up the start.
pub const SEED_BUDGET: u64 = 256 * 1024 * 1024;

/// Counts of events on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Today {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Lines by event (`accepted`, `rejected`, `delivered`, `ALERT
    /// send_limit_reached`, …).
    pub events: BTreeMap<String, u64>,
    /// Local deliveries (`delivered` to a folder) and relays to other
    /// servers (`delivered` with a `relay`) are both `delivered` lines;
    /// these two tell them apart.
    pub delivered_local: u64,
    /// See [`Today::delivered_local`].
    pub relayed: u64,
}

impl Today {
    /// The count of an event.
    pub fn event(&self, name: &str) -> u64 {
        self.events.get(name).copied().unwrap_or(0)
    }

    fn add(&mut self, event: &str, relay: bool) {
        *self.events.entry(event.to_owned()).or_insert(0) += 1;
        if event == "delivered" {
            if relay {
                self.relayed += 1;
            } else {
                self.delivered_local += 1;
            }
        }
    }
}

/// Today's counts behind a lock.
#[derive(Debug, Default)]
pub struct DayCounts(Mutex<Today>);

impl DayCounts {
    /// Counts an event written on `date`.
    pub fn note(&self, date: &str, event: &str, relay: bool) {
        let mut today = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if today.date != date {
            *today = Today {
                date: date.to_owned(),
                ..Today::default()
            };
        }
        today.add(event, relay);
    }

    /// The counts of `date` (empty when nothing was written that day).
    pub fn on(&self, date: &str) -> Today {
        let today = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if today.date == date {
            today.clone()
        } else {
            Today {
                date: date.to_owned(),
                ..Today::default()
            }
        }
    }

    /// Counts the lines of `date` at the end of the log file.
    pub fn seed(&self, path: &Path, date: &str) {
        let mut lines = match Backwards::open(path, SEED_BUDGET) {
            Ok(Some(lines)) => lines,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the mail log back: today's counts start at zero");
                return;
            }
        };
        let mut today = Today {
            date: date.to_owned(),
            ..Today::default()
        };
        for line in lines.by_ref() {
            let Some((day, event)) = Entry::date_and_event(&line) else {
                continue;
            };
            match day {
                d if d == date => today.add(event, line.contains(" relay=")),
                // A clock set back wrote later days first; they are not today.
                d if d > date => continue,
                _ => break,
            }
        }
        if lines.stopped_early() {
            tracing::warn!(
                "the mail log holds more of today than is read back at start: today's counts are partial"
            );
        }
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = today;
    }
}
