//! Folders and the messages in them, as IMAP and POP3 see them: listing,
//! creating, renaming and deleting folders; flags, expunge, copy and move;
//! and the changes since a mod-sequence, so that every session can be told
//! what others did (RFC 9051 §7.4, RFC 7162).
//!
//! Every change to a message takes the folder's next mod-sequence; every
//! expunged UID is remembered with the mod-sequence of its removal.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

use crate::directory::AccountId;
use crate::{now, BlobId, Store, StoreError, SPECIAL_FOLDERS};

/// Row id of a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FolderId(pub i64);

/// A folder and its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Folder {
    /// Row id.
    pub id: FolderId,
    /// Owner.
    pub account: AccountId,
    /// Full name, `/` separated.
    pub name: String,
    /// RFC 6154 attribute such as `\Sent`.
    pub special_use: Option<String>,
    /// RFC 9051 §2.3.1.1.
    pub uidvalidity: u32,
    /// The UID the next message will get.
    pub uidnext: u32,
    /// RFC 7162 HIGHESTMODSEQ.
    pub highestmodseq: u64,
    /// In the LSUB/LIST (SUBSCRIBED) set.
    pub subscribed: bool,
    /// Only a name above other folders: deleted while it had children, it
    /// holds no messages and cannot be selected (IMAP `\Noselect`).
    pub noselect: bool,
}

/// Counts for STATUS and POP3 STAT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderCounts {
    /// Messages.
    pub messages: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Sum of message sizes.
    pub size: u64,
    /// Messages flagged `\Deleted`.
    pub deleted: u32,
    /// Sum of their sizes.
    pub deleted_size: u64,
}

/// A message's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// IMAP UID.
    pub uid: u32,
    /// Mod-sequence of its last change.
    pub modseq: u64,
    /// Size in bytes.
    pub size: u64,
    /// Its body.
    pub blob: BlobId,
    /// Arrival time, seconds since the epoch.
    pub internaldate: i64,
    /// Flags and keywords, sorted, e.g. `["$Forwarded", "\\Seen"]`.
    pub flags: Vec<String>,
}

impl Message {
    /// Whether it carries a flag (case-insensitive, RFC 9051 §2.3.2).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

/// What changed in a folder since a mod-sequence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The folder's mod-sequence now.
    pub highestmodseq: u64,
    /// Its next UID now.
    pub uidnext: u32,
    /// Messages added or changed since, by UID.
    pub changed: Vec<Message>,
    /// UIDs expunged since, ascending.
    pub expunged: Vec<u32>,
}

/// How STORE changes flags (RFC 9051 §6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    /// `+FLAGS`
    Add,
    /// `-FLAGS`
    Remove,
    /// `FLAGS`
    Replace,
}

/// Result of COPY or MOVE (RFC 4315 COPYUID).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// UIDVALIDITY of the destination.
    pub uidvalidity: u32,
    /// (source UID, destination UID), by source UID.
    pub uids: Vec<(u32, u32)>,
}

/// Hook called after a change to an account's folders, so that sessions in
/// other tasks can look (IDLE). Must return quickly.
pub type ChangeHook = std::sync::Arc<dyn Fn(AccountId) + Send + Sync>;

impl Folder {
    /// The folder, or why it holds no messages (a `\Noselect` name).
    pub fn selectable(self) -> Result<Folder, StoreError> {
        if self.noselect {
            return Err(StoreError::Invalid(format!(
                "{} only holds other folders (\\Noselect); CREATE it to use it again",
                self.name
            )));
        }
        Ok(self)
    }
}

const FOLDER_COLUMNS: &str =
    "id, account_id, name, special_use, uidvalidity, uidnext, highestmodseq,
     EXISTS(SELECT 1 FROM subscriptions s WHERE s.account_id = mailboxes.account_id AND s.name = mailboxes.name),
     noselect";

fn folder_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Folder> {
    Ok(Folder {
        id: FolderId(r.get(0)?),
        account: AccountId(r.get(1)?),
        name: r.get(2)?,
        special_use: r.get(3)?,
        uidvalidity: r.get::<_, i64>(4)? as u32,
        uidnext: r.get::<_, i64>(5)? as u32,
        highestmodseq: r.get::<_, i64>(6)? as u64,
        subscribed: r.get(7)?,
        noselect: r.get(8)?,
    })
}

const MESSAGE_COLUMNS: &str = "uid, modseq, size, blob, internaldate, flags";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        uid: r.get::<_, i64>(0)? as u32,
        modseq: r.get::<_, i64>(1)? as u64,
        size: r.get::<_, i64>(2)? as u64,
        blob: BlobId(r.get(3)?),
        internaldate: r.get(4)?,
        flags: split_flags(&r.get::<_, String>(5)?),
    })
}

pub(crate) fn split_flags(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect()
}

/// Canonical stored form: unique (case-insensitively), sorted, space-joined.
pub(crate) fn join_flags<S: AsRef<str>>(flags: &[S]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for f in flags {
        let f = f.as_ref();
        if !f.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(f)) {
            out.push(f);
        }
    }
    out.sort_unstable();
    out.join(" ")
}

/// Folder names: non-empty, no control characters, no empty hierarchy
/// levels, no `.` or `..` levels, wildcards refused (RFC 9051 §5.1).
pub fn check_folder_name(name: &str) -> Result<(), StoreError> {
    let bad = |why: &str| Err(StoreError::Invalid(format!("folder name {name:?}: {why}")));
    if name.is_empty() || name.len() > 512 {
        return bad("must be 1 to 512 bytes");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("control characters are not allowed");
    }
    if name.contains(['%', '*']) {
        return bad("wildcards % and * are not allowed");
    }
    if name
        .split('/')
        .any(|level| level.is_empty() || level == "." || level == "..")
    {
        return bad("empty, '.' and '..' levels are not allowed");
    }
    Ok(())
}

/// INBOX is case-insensitive (RFC 9051 §5.1); other names are exact.
pub(crate) fn canonical_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".into()
    } else {
        name.to_string()
    }
}

fn next_modseq(tx: &Connection, folder: FolderId) -> Result<u64, StoreError> {
    let m: i64 = tx.query_row(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?1 RETURNING highestmodseq",
        [folder.0],
        |r| r.get(0),
    )?;
    Ok(m as u64)
}

impl Store {
    /// Installs the hook called after every change to an account's folders.
    pub fn set_change_hook(&self, hook: ChangeHook) {
        *self.inner.hook.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    pub(crate) fn changed(&self, account: AccountId) {
        crate::notify(&self.inner.hook, account);
    }

    /// All folders of an account, by name.
    pub fn folders(&self, account: AccountId) -> Result<Vec<Folder>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {FOLDER_COLUMNS} FROM mailboxes WHERE account_id = ?1 ORDER BY name"
        ))?;
        let rows = stmt.query_map([account.0], folder_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One folder by name.
    pub fn folder(&self, account: AccountId, name: &str) -> Result<Option<Folder>, StoreError> {
        let conn = self.conn()?;
        folder_by_name(&conn, account, &canonical_name(name))
    }

    /// Message count, unseen count and total size.
    pub fn folder_counts(&self, folder: FolderId) -> Result<FolderCounts, StoreError> {
        let conn = self.conn()?;
        // Flags are matched case-insensitively (RFC 9051 §2.3.2).
        let row = conn.query_row(
            "SELECT count(*),
                    coalesce(sum(instr(' ' || lower(flags) || ' ', ' \\seen ') = 0), 0),
                    coalesce(sum(size), 0),
                    coalesce(sum(instr(' ' || lower(flags) || ' ', ' \\deleted ') > 0), 0),
                    coalesce(sum(CASE WHEN instr(' ' || lower(flags) || ' ', ' \\deleted ') > 0
                                 THEN size ELSE 0 END), 0)
             FROM messages WHERE mailbox_id = ?1",
            [folder.0],
            |r| {
                Ok(FolderCounts {
                    messages: r.get::<_, i64>(0)? as u32,
                    unseen: r.get::<_, i64>(1)? as u32,
                    size: r.get::<_, i64>(2)? as u64,
                    deleted: r.get::<_, i64>(3)? as u32,
                    deleted_size: r.get::<_, i64>(4)? as u64,
                })
            },
        )?;
        Ok(row)
    }

    /// Creates a folder (RFC 9051 §6.3.4). Parents are implied by the name.
    /// Creating a `\Noselect` name makes it a folder again, with a new
    /// UIDVALIDITY.
    pub fn create_folder(&self, account: AccountId, name: &str) -> Result<Folder, StoreError> {
        check_folder_name(name)?;
        let name = canonical_name(name);
        let conn = self.conn()?;
        match folder_by_name(&conn, account, &name)? {
            Some(f) if f.noselect => {
                conn.execute(
                    "UPDATE mailboxes SET noselect = 0, uidvalidity = ?2 WHERE id = ?1",
                    params![f.id.0, next_uidvalidity(&conn)?],
                )?;
            }
            Some(_) => return Err(StoreError::Exists(format!("folder {name}"))),
            None => {
                let uidvalidity = next_uidvalidity(&conn)?;
                conn.execute(
                    "INSERT INTO mailboxes(account_id, name, uidvalidity) VALUES (?1, ?2, ?3)",
                    params![account.0, name, uidvalidity],
                )?;
            }
        }
        folder_by_name(&conn, account, &name)?
            .ok_or_else(|| StoreError::NotFound(format!("folder {name}")))
    }

    /// Deletes a folder and its messages. INBOX and the special-use folders
    /// created with the account stay. A folder with children keeps its name
    /// as `\Noselect` (RFC 9051 §6.3.5); deleting such a name while it still
    /// has children is refused.
    pub fn delete_folder(&self, account: AccountId, name: &str) -> Result<(), StoreError> {
        let name = canonical_name(name);
        if SPECIAL_FOLDERS.iter().any(|(n, _)| *n == name) {
            return Err(StoreError::Invalid(format!(
                "folder {name} cannot be deleted"
            )));
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let folder = folder_by_name(&tx, account, &name)?
            .ok_or_else(|| StoreError::NotFound(format!("folder {name}")))?;
        let has_children: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM mailboxes WHERE account_id = ?1 AND substr(name, 1, ?3) = ?2)",
            params![account.0, format!("{name}/"), name.len() as i64 + 1],
            |r| r.get(0),
        )?;
        if has_children && folder.noselect {
            return Err(StoreError::Invalid(format!(
                "{name} has folders below it: delete those first"
            )));
        }
        let uids: Vec<u32> = all_uids(&tx, folder.id)?;
        remove_uids(&tx, &folder, &uids)?;
        if has_children {
            tx.execute(
                "UPDATE mailboxes SET noselect = 1, uidvalidity = ?2 WHERE id = ?1",
                params![folder.id.0, next_uidvalidity(&tx)?],
            )?;
        } else {
            tx.execute("DELETE FROM mailboxes WHERE id = ?1", [folder.id.0])?;
        }
        tx.commit()?;
        drop(conn);
        self.changed(account);
        Ok(())
    }

    /// Renames a folder and its children (RFC 9051 §6.3.6). Renaming INBOX
    /// moves its messages to a new folder and leaves INBOX empty.
    pub fn rename_folder(
        &self,
        account: AccountId,
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        check_folder_name(to)?;
        let (from, to) = (canonical_name(from), canonical_name(to));
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let folder = folder_by_name(&tx, account, &from)?
            .ok_or_else(|| StoreError::NotFound(format!("folder {from}")))?;
        if folder_by_name(&tx, account, &to)?.is_some() {
            return Err(StoreError::Exists(format!("folder {to}")));
        }
        if from == "INBOX" {
            drop(tx);
            drop(conn);
            let target = self.create_folder(account, &to)?;
            let uids: Vec<u32> = self
                .folder_messages(folder.id)?
                .iter()
                .map(|m| m.uid)
                .collect();
            self.copy_messages(folder.id, &uids, target.id, true)?;
            return Ok(());
        }
        let children: Vec<(i64, String)> = {
            let mut stmt = tx
                .prepare("SELECT id, name FROM mailboxes WHERE account_id = ?1 AND name LIKE ?2")?;
            let like = format!("{}/%", from.replace('%', "\\%").replace('_', "\\_"));
            let rows = stmt.query_map(params![account.0, like], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        tx.execute(
            "UPDATE mailboxes SET name = ?2, uidvalidity = ?3 WHERE id = ?1",
            params![folder.id.0, to, next_uidvalidity(&tx)?],
        )?;
        for (id, name) in children {
            let new = format!("{to}{}", &name[from.len()..]);
            tx.execute(
                "UPDATE mailboxes SET name = ?2 WHERE id = ?1",
                params![id, new],
            )?;
            rename_subscription(&tx, account, &name, &new)?;
        }
        rename_subscription(&tx, account, &from, &to)?;
        tx.commit()?;
        Ok(())
    }

    /// Adds to or removes from the subscription list. Subscribing needs an
    /// existing folder; a subscription outlives its folder (RFC 9051
    /// §6.3.9), so unsubscribing works on any subscribed name.
    pub fn subscribe(&self, account: AccountId, name: &str, on: bool) -> Result<(), StoreError> {
        let name = canonical_name(name);
        let conn = self.conn()?;
        if on {
            if folder_by_name(&conn, account, &name)?.is_none() {
                return Err(StoreError::NotFound(format!("folder {name}")));
            }
            conn.execute(
                "INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES (?1, ?2)",
                params![account.0, name],
            )?;
        } else {
            let n = conn.execute(
                "DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2",
                params![account.0, name],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("subscription {name}")));
            }
        }
        Ok(())
    }

    /// Every subscribed name, whether or not the folder exists, sorted.
    pub fn subscriptions(&self, account: AccountId) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT name FROM subscriptions WHERE account_id = ?1 ORDER BY name")?;
        let rows = stmt.query_map([account.0], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// All messages of a folder, by UID.
    pub fn folder_messages(&self, folder: FolderId) -> Result<Vec<Message>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?1 ORDER BY uid"
        ))?;
        let rows = stmt.query_map([folder.0], message_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What changed since `modseq`: new and changed messages, expunged UIDs.
    pub fn changes_since(&self, folder: FolderId, modseq: u64) -> Result<Changes, StoreError> {
        let conn = self.conn()?;
        let (uidnext, highestmodseq): (i64, i64) = conn
            .query_row(
                "SELECT uidnext, highestmodseq FROM mailboxes WHERE id = ?1",
                [folder.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound("folder (deleted)".into()))?;
        let mut changes = Changes {
            highestmodseq: highestmodseq as u64,
            uidnext: uidnext as u32,
            ..Changes::default()
        };
        if changes.highestmodseq <= modseq {
            return Ok(changes);
        }
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid"
        ))?;
        let rows = stmt.query_map(params![folder.0, modseq as i64], message_row)?;
        changes.changed = rows.collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare_cached(
            "SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
        )?;
        let rows = stmt.query_map(params![folder.0, modseq as i64], |r| r.get::<_, i64>(0))?;
        changes.expunged = rows
            .map(|r| r.map(|u| u as u32))
            .collect::<Result<_, _>>()?;
        Ok(changes)
    }

    /// Changes flags of the given UIDs (missing ones are skipped). With
    /// `unchanged_since` (RFC 7162 §3.1.3), messages changed after it are
    /// left alone and returned in the second list. Returns the messages as
    /// they are now.
    pub fn set_flags(
        &self,
        folder: FolderId,
        uids: &[u32],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<(Vec<Message>, Vec<u32>), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let account = folder_account(&tx, folder)?;
        let mut updated = Vec::new();
        let mut refused = Vec::new();
        {
            let mut get = tx.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?1 AND uid = ?2"
            ))?;
            let mut set = tx.prepare_cached(
                "UPDATE messages SET flags = ?3, modseq = ?4 WHERE mailbox_id = ?1 AND uid = ?2",
            )?;
            for &uid in uids {
                let Some(mut m) = get
                    .query_row(params![folder.0, uid], message_row)
                    .optional()?
                else {
                    continue;
                };
                if unchanged_since.is_some_and(|since| m.modseq > since) {
                    refused.push(uid);
                    continue;
                }
                let new: Vec<String> = match op {
                    FlagOp::Replace => flags.to_vec(),
                    FlagOp::Add => m.flags.iter().chain(flags).cloned().collect(),
                    FlagOp::Remove => m
                        .flags
                        .iter()
                        .filter(|f| !flags.iter().any(|g| g.eq_ignore_ascii_case(f)))
                        .cloned()
                        .collect(),
                };
                let joined = join_flags(&new);
                if joined == join_flags(&m.flags) {
                    updated.push(m);
                    continue;
                }
                let modseq = next_modseq(&tx, folder)?;
                set.execute(params![folder.0, uid, joined, modseq as i64])?;
                m.flags = split_flags(&joined);
                m.modseq = modseq;
                updated.push(m);
            }
        }
        tx.commit()?;
        drop(conn);
        self.changed(account);
        Ok((updated, refused))
    }

    /// Removes the messages flagged `\Deleted` (all, or only among `uids`,
    /// RFC 4315 UID EXPUNGE). Returns the UIDs removed.
    pub fn expunge(&self, folder: FolderId, uids: Option<&[u32]>) -> Result<Vec<u32>, StoreError> {
        let deleted: Vec<u32> = self
            .folder_messages(folder)?
            .into_iter()
            .filter(|m| m.has_flag("\\Deleted") && uids.is_none_or(|u| u.contains(&m.uid)))
            .map(|m| m.uid)
            .collect();
        self.remove_messages(folder, &deleted)
    }

    /// Removes the given messages whatever their flags (POP3 DELE + QUIT).
    /// Returns the UIDs that were there and are now gone.
    pub fn remove_messages(&self, folder: FolderId, uids: &[u32]) -> Result<Vec<u32>, StoreError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let f = folder_by_id(&tx, folder)?;
        let removed = remove_uids(&tx, &f, uids)?;
        tx.commit()?;
        drop(conn);
        self.changed(f.account);
        Ok(removed)
    }

    /// Copies (or moves, RFC 6851) messages to another folder of the same
    /// account; the copies get new UIDs there and keep their flags. Quota is
    /// checked for copies (a move does not grow the account).
    pub fn copy_messages(
        &self,
        from: FolderId,
        uids: &[u32],
        to: FolderId,
        move_them: bool,
    ) -> Result<Copied, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let src = folder_by_id(&tx, from)?;
        let dst = folder_by_id(&tx, to)?;
        if src.account != dst.account {
            return Err(StoreError::Invalid("folders of different accounts".into()));
        }
        let mut wanted: Vec<u32> = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let messages: Vec<Message> = {
            let mut get = tx.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?1 AND uid = ?2"
            ))?;
            let mut out = Vec::new();
            for uid in &wanted {
                if let Some(m) = get
                    .query_row(params![from.0, uid], message_row)
                    .optional()?
                {
                    out.push(m);
                }
            }
            out
        };
        if !move_them {
            let size: u64 = messages.iter().map(|m| m.size).sum();
            let (quota, used): (i64, i64) = tx.query_row(
                "SELECT quota_bytes, used_bytes FROM accounts WHERE id = ?1",
                [src.account.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if quota > 0 && used as u64 + size > quota as u64 {
                return Err(StoreError::OverQuota);
            }
        }
        let mut copied = Copied {
            uidvalidity: dst.uidvalidity,
            uids: Vec::new(),
        };
        for m in &messages {
            let uid = insert_message(&tx, &dst, m)?;
            copied.uids.push((m.uid, uid));
        }
        if move_them {
            let moved: Vec<u32> = messages.iter().map(|m| m.uid).collect();
            remove_uids(&tx, &src, &moved)?;
        }
        tx.commit()?;
        drop(conn);
        self.changed(src.account);
        Ok(copied)
    }
}

/// A UIDVALIDITY greater than every one handed out before (RFC 9051
/// §2.3.1.1: a name deleted and created again, or renamed away and created
/// again, must not reuse a (UIDVALIDITY, UID) pair). It follows the clock,
/// as Dovecot and Cyrus do, but never repeats within a second.
pub(crate) fn next_uidvalidity(conn: &Connection) -> Result<i64, StoreError> {
    let last: i64 = conn
        .query_row(
            "SELECT max(coalesce((SELECT CAST(value AS INTEGER) FROM settings WHERE key = 'last_uidvalidity'), 0),
                        coalesce((SELECT max(uidvalidity) FROM mailboxes), 0))",
            [],
            |r| r.get(0),
        )?;
    let next = (now() & 0xffff_ffff).max(last + 1);
    conn.execute(
        "INSERT OR REPLACE INTO settings(key, value) VALUES ('last_uidvalidity', ?1)",
        [next.to_string()],
    )?;
    Ok(next)
}

pub(crate) fn folder_by_name(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> Result<Option<Folder>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {FOLDER_COLUMNS} FROM mailboxes WHERE account_id = ?1 AND name = ?2"),
            params![account.0, name],
            folder_row,
        )
        .optional()?)
}

/// A renamed folder keeps its subscription (as Dovecot does).
fn rename_subscription(
    tx: &Connection,
    account: AccountId,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    let moved = tx.execute(
        "DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2",
        params![account.0, from],
    )?;
    if moved > 0 {
        tx.execute(
            "INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES (?1, ?2)",
            params![account.0, to],
        )?;
    }
    Ok(())
}

fn folder_by_id(conn: &Connection, id: FolderId) -> Result<Folder, StoreError> {
    conn.query_row(
        &format!("SELECT {FOLDER_COLUMNS} FROM mailboxes WHERE id = ?1"),
        [id.0],
        folder_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound("folder (deleted)".into()))
}

fn folder_account(conn: &Connection, id: FolderId) -> Result<AccountId, StoreError> {
    Ok(folder_by_id(conn, id)?.account)
}

fn all_uids(conn: &Connection, folder: FolderId) -> Result<Vec<u32>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid")?;
    let rows = stmt.query_map([folder.0], |r| r.get::<_, i64>(0))?;
    Ok(rows
        .map(|r| r.map(|u| u as u32))
        .collect::<Result<_, _>>()?)
}

/// Inserts a message row with the folder's next UID and mod-sequence, and
/// counts it against the account. Returns the new UID.
pub(crate) fn insert_message(
    tx: &Connection,
    folder: &Folder,
    m: &Message,
) -> Result<u32, StoreError> {
    let (uid, modseq): (i64, i64) = tx.query_row(
        "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
         WHERE id = ?1 RETURNING uidnext - 1, highestmodseq",
        [folder.id.0],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    tx.execute(
        "INSERT INTO messages(mailbox_id, uid, modseq, blob, size, internaldate, flags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            folder.id.0,
            uid,
            modseq,
            m.blob.0,
            m.size as i64,
            m.internaldate,
            join_flags(&m.flags)
        ],
    )?;
    tx.execute(
        "UPDATE accounts SET used_bytes = used_bytes + ?2, message_count = message_count + 1 WHERE id = ?1",
        params![folder.account.0, m.size as i64],
    )?;
    Ok(uid as u32)
}

/// Deletes message rows, remembers the UIDs as expunged and uncounts them.
fn remove_uids(
    tx: &Transaction<'_>,
    folder: &Folder,
    uids: &[u32],
) -> Result<Vec<u32>, StoreError> {
    let mut removed = Vec::new();
    let mut size_removed = 0i64;
    {
        let mut del = tx.prepare_cached(
            "DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2 RETURNING size",
        )?;
        let mut remember = tx.prepare_cached(
            "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)",
        )?;
        for &uid in uids {
            let size: Option<i64> = del
                .query_row(params![folder.id.0, uid], |r| r.get(0))
                .optional()?;
            let Some(size) = size else { continue };
            let modseq = next_modseq(tx, folder.id)?;
            remember.execute(params![folder.id.0, uid, modseq as i64])?;
            size_removed += size;
            removed.push(uid);
        }
    }
    tx.execute(
        "UPDATE accounts SET used_bytes = max(0, used_bytes - ?2), message_count = max(0, message_count - ?3)
         WHERE id = ?1",
        params![folder.account.0, size_removed, removed.len() as i64],
    )?;
    Ok(removed)
}
