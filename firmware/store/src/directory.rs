//! Domains, accounts and aliases, and how a recipient address resolves to
//! mailboxes: account, alias, group, catch-all, or a remote address.

use std::collections::{HashSet, VecDeque};

use argon2::password_hash::PasswordHasher;
use argon2::Argon2;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::{now, Store, StoreError, SPECIAL_FOLDERS};

/// Row id of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct AccountId(pub i64);

/// An account as the directory lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    /// Row id.
    #[serde(skip)]
    pub id: AccountId,
    /// Its address, lower case.
    pub address: String,
    /// Quota in bytes; 0 is unlimited.
    pub quota_bytes: u64,
    /// Disabled accounts cannot log in; they still receive mail (see
    /// `account_settings`).
    pub disabled: bool,
    /// Bytes stored over all folders.
    pub bytes: u64,
    /// Messages stored over all folders.
    pub messages: u64,
}

/// Where a recipient address leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Local mailboxes (after alias, group and catch-all expansion) and
    /// remote addresses that aliases point to.
    Deliver {
        /// Accounts whose INBOX gets the message.
        accounts: Vec<(AccountId, String)>,
        /// Addresses outside the local domains (through aliases).
        remote: Vec<String>,
    },
    /// The domain is not one of ours: relaying.
    NotLocal,
    /// A local domain with no such address.
    Unknown,
}

/// Whether a catch-all counts when resolving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchAll {
    /// For delivery: unknown addresses of a domain go to its catch-all.
    Use,
    /// For "may this user send as that address": only explicit aliases count.
    Ignore,
}

const MAX_ALIAS_DEPTH: usize = 10;

/// Normalises an address for lookups: trimmed, lower case. `None` when it is
/// not an address ([`crate::parse_address`] says why).
pub fn normalize_address(address: &str) -> Option<String> {
    crate::policy::parse_address(address).ok()
}

pub(crate) fn normalize_domain(domain: &str) -> Result<String, StoreError> {
    crate::policy::parse_domain(domain).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// [`crate::parse_address`] as a store error naming what was typed: the
/// one sentence the CLI, the page and the API all show.
pub fn check_address(address: &str) -> Result<String, StoreError> {
    crate::policy::parse_address(address)
        .map_err(|e| StoreError::Invalid(format!("{:?} is not an address: {e}", address.trim())))
}

/// [`crate::check_password`] as a store error.
fn check_password_strength(password: &str, user: &str) -> Result<(), StoreError> {
    crate::policy::check_password(password, user).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("cannot hash password: {e}")))
}

impl Store {
    /// Adds a local domain.
    pub fn add_domain(&self, domain: &str) -> Result<String, StoreError> {
        let d = normalize_domain(domain)?;
        let conn = self.conn()?;
        let n = conn.execute(
            "INSERT OR IGNORE INTO domains(name, created) VALUES (?1, ?2)",
            params![d, now()],
        )?;
        if n == 0 {
            return Err(StoreError::Exists(format!("domain {d}")));
        }
        Ok(d)
    }

    /// The local domains, sorted.
    pub fn domains(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT name FROM domains ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a domain that has no accounts left.
    pub fn remove_domain(&self, domain: &str) -> Result<(), StoreError> {
        let d = normalize_domain(domain)?;
        let conn = self.conn()?;
        let accounts: i64 = conn.query_row(
            "SELECT count(*) FROM accounts WHERE domain = ?1",
            [&d],
            |r| r.get(0),
        )?;
        if accounts > 0 {
            return Err(StoreError::Invalid(format!(
                "domain {d} still has {accounts} account(s): remove them first"
            )));
        }
        let n = conn.execute("DELETE FROM domains WHERE name = ?1", [&d])?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("domain {d}")));
        }
        conn.execute(
            "DELETE FROM aliases WHERE address = ?1 OR address LIKE ?2",
            params![format!("@{d}"), format!("%@{d}")],
        )?;
        Ok(())
    }

    /// Creates an account with its special-use folders (RFC 6154).
    pub fn add_account(
        &self,
        address: &str,
        password: &str,
        quota_bytes: u64,
    ) -> Result<AccountId, StoreError> {
        let a = check_address(address)?;
        check_password_strength(password, &a)?;
        let hash = hash_password(password)?;
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let domain = domain_of(&a).to_owned();
        let known: bool = row_exists(&tx, "SELECT 1 FROM domains WHERE name = ?1", &domain)?;
        if !known {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        let n = tx.execute(
            "INSERT OR IGNORE INTO accounts(address, domain, password, quota_bytes, created)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a, domain, hash, quota_bytes as i64, now()],
        )?;
        if n == 0 {
            return Err(StoreError::Exists(format!("account {a}")));
        }
        let id = AccountId(tx.last_insert_rowid());
        let uidvalidity = crate::folder::next_uidvalidity(&tx)?;
        for (name, special) in SPECIAL_FOLDERS {
            tx.execute(
                "INSERT INTO mailboxes(account_id, name, special_use, uidvalidity)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id.0, name, special, uidvalidity],
            )?;
            tx.execute(
                "INSERT INTO subscriptions(account_id, name) VALUES (?1, ?2)",
                params![id.0, name],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// All accounts with their usage, sorted by address.
    pub fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, address, quota_bytes, disabled, used_bytes, message_count
             FROM accounts ORDER BY address",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Account {
                id: AccountId(r.get(0)?),
                address: r.get(1)?,
                quota_bytes: r.get::<_, i64>(2)? as u64,
                disabled: r.get(3)?,
                bytes: r.get::<_, i64>(4)? as u64,
                messages: r.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One account by address.
    pub fn account(&self, address: &str) -> Result<Account, StoreError> {
        let a = normalize_address(address).unwrap_or_default();
        self.accounts()?
            .into_iter()
            .find(|acc| acc.address == a)
            .ok_or_else(|| StoreError::NotFound(format!("account {address}")))
    }

    /// Disables or re-enables an account. Its mail is kept either way.
    pub fn set_account_disabled(&self, address: &str, disabled: bool) -> Result<(), StoreError> {
        self.update_account(address, "disabled", disabled as i64)
    }

    /// Sets an account's quota in bytes (0 = unlimited).
    pub fn set_quota(&self, address: &str, quota_bytes: u64) -> Result<(), StoreError> {
        self.update_account(address, "quota_bytes", quota_bytes as i64)
    }

    fn update_account(&self, address: &str, column: &str, value: i64) -> Result<(), StoreError> {
        let a = normalize_address(address).unwrap_or_default();
        let conn = self.conn()?;
        // `column` is one of our own literals, never user input.
        let n = conn.execute(
            &format!("UPDATE accounts SET {column} = ?1 WHERE address = ?2"),
            params![value, a],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("account {address}")));
        }
        Ok(())
    }

    /// Replaces an account's password.
    pub fn set_password(&self, address: &str, password: &str) -> Result<(), StoreError> {
        let a = normalize_address(address).unwrap_or_default();
        check_password_strength(password, &a)?;
        let hash = hash_password(password)?;
        let n = self.conn()?.execute(
            "UPDATE accounts SET password = ?1 WHERE address = ?2",
            params![hash, a],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("account {address}")));
        }
        Ok(())
    }

    /// Removes an account, its folders and messages. Bodies still referenced
    /// elsewhere (the queue, other mailboxes) stay.
    pub fn remove_account(&self, address: &str) -> Result<(), StoreError> {
        let a = normalize_address(address).unwrap_or_default();
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let id: Option<i64> = tx
            .query_row("SELECT id FROM accounts WHERE address = ?1", [&a], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(id) = id else {
            return Err(StoreError::NotFound(format!("account {address}")));
        };
        tx.execute(
            "DELETE FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?1)",
            [id],
        )?;
        tx.execute("DELETE FROM mailboxes WHERE account_id = ?1", [id])?;
        tx.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// Adds an alias (one target), a group (several) or, for `@domain`, a
    /// catch-all. Targets may be local or remote addresses.
    pub fn add_alias(&self, address: &str, targets: &[String]) -> Result<(), StoreError> {
        let source = address.trim().to_lowercase();
        let domain = match source.strip_prefix('@') {
            Some(d) => normalize_domain(d)?,
            None => {
                let a = check_address(&source)?;
                domain_of(&a).to_owned()
            }
        };
        if targets.is_empty() {
            return Err(StoreError::Invalid(
                "an alias needs at least one target".into(),
            ));
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let known: bool = row_exists(&tx, "SELECT 1 FROM domains WHERE name = ?1", &domain)?;
        if !known {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        let is_account: bool =
            row_exists(&tx, "SELECT 1 FROM accounts WHERE address = ?1", &source)?;
        if is_account {
            return Err(StoreError::Invalid(format!(
                "{source} is an account: an alias needs an address of its own"
            )));
        }
        for t in targets {
            let t = check_address(t).map_err(|e| StoreError::Invalid(format!("target {e}")))?;
            tx.execute(
                "INSERT OR IGNORE INTO aliases(address, target) VALUES (?1, ?2)",
                params![source, t],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every alias with its targets, sorted.
    pub fn aliases(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare("SELECT address, target FROM aliases ORDER BY address, target")?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (a, t) = row?;
            match out.last_mut() {
                Some((last, targets)) if *last == a => targets.push(t),
                _ => out.push((a, vec![t])),
            }
        }
        Ok(out)
    }

    /// Removes an alias, group or catch-all.
    pub fn remove_alias(&self, address: &str) -> Result<(), StoreError> {
        let n = self.conn()?.execute(
            "DELETE FROM aliases WHERE address = ?1",
            [address.trim().to_lowercase()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("alias {address}")));
        }
        Ok(())
    }

    /// Resolves a recipient address (RFC 5321 forward-path).
    pub fn resolve(&self, address: &str, catch_all: CatchAll) -> Result<Resolution, StoreError> {
        let Some(a) = normalize_address(address) else {
            return Ok(Resolution::Unknown);
        };
        let conn = self.conn()?;
        resolve(&conn, &a, catch_all)
    }

    /// May `account` use `address` as its envelope sender: its own address
    /// or an alias or group that leads to it. Catch-alls do not count.
    pub fn may_send_as(&self, account: AccountId, address: &str) -> Result<bool, StoreError> {
        Ok(match self.resolve(address, CatchAll::Ignore)? {
            Resolution::Deliver { accounts, .. } => accounts.iter().any(|(id, _)| *id == account),
            _ => false,
        })
    }
}

/// Whether a one-key query finds a row.
fn row_exists(conn: &Connection, sql: &str, key: &str) -> rusqlite::Result<bool> {
    Ok(conn.query_row(sql, [key], |_| Ok(())).optional()?.is_some())
}

fn resolve(
    conn: &Connection,
    address: &str,
    catch_all: CatchAll,
) -> Result<Resolution, StoreError> {
    let is_local = |domain: &str| -> Result<bool, StoreError> {
        Ok(row_exists(
            conn,
            "SELECT 1 FROM domains WHERE name = ?1",
            domain,
        )?)
    };
    if !is_local(domain_of(address))? {
        return Ok(Resolution::NotLocal);
    }
    let mut accounts = Vec::new();
    let mut remote = Vec::new();
    let mut seen = HashSet::new();
    let mut todo = VecDeque::from([(address.to_owned(), 0usize)]);
    let mut account_stmt = conn.prepare_cached(
        "SELECT id, CASE WHEN disabled THEN forward_to END FROM accounts WHERE address = ?1",
    )?;
    let mut alias_stmt = conn.prepare_cached("SELECT target FROM aliases WHERE address = ?1")?;
    while let Some((addr, depth)) = todo.pop_front() {
        if !seen.insert(addr.clone()) || depth > MAX_ALIAS_DEPTH {
            continue;
        }
        let domain = domain_of(&addr).to_owned();
        if !is_local(&domain)? {
            remote.push(addr);
            continue;
        }
        let account: Option<(i64, Option<String>)> = account_stmt
            .query_row([&addr], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((id, forward)) = account {
            // A disabled account (someone who left) still gets its mail,
            // so nothing is lost; its forward to a colleague is followed
            // like an alias target.
            accounts.push((AccountId(id), addr));
            if let Some(forward) = forward {
                todo.push_back((forward, depth + 1));
            }
            continue;
        }
        let mut targets: Vec<String> = alias_stmt
            .query_map([&addr], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if targets.is_empty() && catch_all == CatchAll::Use && depth == 0 {
            targets = alias_stmt
                .query_map([format!("@{domain}")], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
        }
        for t in targets {
            todo.push_back((t, depth + 1));
        }
    }
    if accounts.is_empty() && remote.is_empty() {
        return Ok(Resolution::Unknown);
    }
    Ok(Resolution::Deliver { accounts, remote })
}
