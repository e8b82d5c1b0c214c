//! Per-account sending limits: how many recipients an account may submit in
//! a rolling 24 hours, counted durably so that a restart does not reset them
//! (a stolen password must not burn the domain's reputation).
//!
//! Counts are written by the committer in the same transaction as the
//! message ([`crate::Delivery::counted_recipients`]), so a recipient counts
//! exactly when its message was accepted.

use rusqlite::{params, Connection, OptionalExtension};

use crate::directory::AccountId;
use crate::{now, Store, StoreError};

/// The rolling window.
pub const SEND_WINDOW_SECS: i64 = 24 * 60 * 60;

impl Store {
    /// The account's own limit, if one was set (otherwise the configured
    /// default applies).
    pub fn send_limit(&self, account: AccountId) -> Result<Option<u32>, StoreError> {
        let conn = self.conn()?;
        let n: Option<i64> = conn
            .query_row(
                "SELECT recipients_per_day FROM send_limits WHERE account_id = ?1",
                [account.0],
                |r| r.get(0),
            )
            .optional()?;
        Ok(n.map(|n| n.clamp(0, u32::MAX as i64) as u32))
    }

    /// Sets (`Some`) or clears (`None`, back to the default) an account's limit.
    pub fn set_send_limit(&self, address: &str, limit: Option<u32>) -> Result<(), StoreError> {
        let id = self.account(address)?.id;
        let conn = self.conn()?;
        match limit {
            Some(n) => conn.execute(
                "INSERT INTO send_limits(account_id, recipients_per_day) VALUES (?1, ?2)
                 ON CONFLICT(account_id) DO UPDATE SET recipients_per_day = ?2",
                params![id.0, n],
            )?,
            None => conn.execute("DELETE FROM send_limits WHERE account_id = ?1", [id.0])?,
        };
        Ok(())
    }

    /// Recipients the account submitted in the last 24 hours.
    pub fn recipients_sent(&self, account: AccountId) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        let n: i64 = conn.query_row(
            "SELECT coalesce(sum(count), 0) FROM sent_recipients WHERE account_id = ?1 AND at > ?2",
            params![account.0, now() - SEND_WINDOW_SECS],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }
}

/// Records submitted recipients inside the committer's transaction and
/// forgets counts that left the window.
pub(crate) fn record(conn: &Connection, account: AccountId, count: u32) -> Result<(), StoreError> {
    let at = now();
    conn.execute(
        "DELETE FROM sent_recipients WHERE account_id = ?1 AND at <= ?2",
        params![account.0, at - SEND_WINDOW_SECS],
    )?;
    conn.execute(
        "INSERT INTO sent_recipients(account_id, at, count) VALUES (?1, ?2, ?3)",
        params![account.0, at, count],
    )?;
    Ok(())
}
