//! Numbered schema migrations, applied in order at open; `PRAGMA user_version`
//! records how many have run. Never edit a released migration: add one.

use rusqlite::Connection;

use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: directory, mailboxes, messages, outbound queue.
    r#"
    CREATE TABLE domains(
        name TEXT PRIMARY KEY,
        created INTEGER NOT NULL
    );
    CREATE TABLE accounts(
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        domain TEXT NOT NULL REFERENCES domains(name),
        password TEXT NOT NULL,
        quota_bytes INTEGER NOT NULL DEFAULT 0,
        disabled INTEGER NOT NULL DEFAULT 0,
        used_bytes INTEGER NOT NULL DEFAULT 0,
        message_count INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL
    );
    CREATE TABLE aliases(
        address TEXT NOT NULL,
        target TEXT NOT NULL,
        PRIMARY KEY(address, target)
    );
    CREATE TABLE mailboxes(
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        special_use TEXT,
        uidvalidity INTEGER NOT NULL,
        uidnext INTEGER NOT NULL DEFAULT 1,
        highestmodseq INTEGER NOT NULL DEFAULT 1,
        subscribed INTEGER NOT NULL DEFAULT 1,
        UNIQUE(account_id, name)
    );
    CREATE TABLE messages(
        id INTEGER PRIMARY KEY,
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        blob TEXT NOT NULL,
        size INTEGER NOT NULL,
        internaldate INTEGER NOT NULL,
        flags TEXT NOT NULL DEFAULT '',
        UNIQUE(mailbox_id, uid)
    );
    CREATE INDEX messages_blob ON messages(blob);
    CREATE TABLE queue(
        id INTEGER PRIMARY KEY,
        blob TEXT NOT NULL,
        size INTEGER NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        orcpt TEXT,
        notify TEXT,
        ret TEXT,
        envid TEXT,
        account_id INTEGER,
        created INTEGER NOT NULL,
        next_attempt INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX queue_next ON queue(next_attempt);
    CREATE TABLE settings(
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 2: what IMAP needs to tell sessions about changes (RFC 7162 VANISHED,
    // CONDSTORE): expunged UIDs with their mod-sequence, changes by modseq.
    r#"
    CREATE TABLE expunged(
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY(mailbox_id, uid)
    );
    CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
    "#,
    // 3: full-text index for SEARCH (index.rs): trigram FTS5, contentless
    // (the text is not stored twice), keyed by body.
    r#"
    CREATE TABLE indexed_blobs(
        id INTEGER PRIMARY KEY,
        blob TEXT NOT NULL UNIQUE
    );
    CREATE VIRTUAL TABLE message_text USING fts5(
        headers, body, content='', contentless_delete=1, tokenize='trigram'
    );
    "#,
    // 4: subscriptions by name, so that deleting a folder does not drop its
    // subscription (RFC 9051 §6.3.9); mailboxes.subscribed is no longer used.
    r#"
    CREATE TABLE subscriptions(
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        PRIMARY KEY(account_id, name)
    );
    INSERT INTO subscriptions(account_id, name)
        SELECT account_id, name FROM mailboxes WHERE subscribed = 1;
    "#,
    // 5: a deleted folder that still has children stays as a name that
    // holds no messages (IMAP \Noselect, RFC 9051 §6.3.5).
    r#"
    ALTER TABLE mailboxes ADD COLUMN noselect INTEGER NOT NULL DEFAULT 0;
    "#,
    // 6: what FETCH reports of a body's structure (IMAP ENVELOPE, BODY and
    // BODYSTRUCTURE, as wire bytes), keyed by body like the index and filled
    // by the indexer from the same parse (structure.rs). `version` names the
    // renderer that wrote a row; rows of another version are made again.
    // NULL forms: the file could not be read; FETCH reads it itself.
    r#"
    CREATE TABLE blob_structure(
        blob TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        envelope BLOB,
        body BLOB,
        bodystructure BLOB
    );
    "#,
    // 7: DKIM signing keys per domain (dkim.rs), and per-account sending limits
    // with the durable count of recipients submitted (limits.rs).
    r#"
    CREATE TABLE dkim_keys(
        domain TEXT NOT NULL REFERENCES domains(name) ON DELETE CASCADE,
        selector TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        private_key BLOB NOT NULL,
        public_key BLOB NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY(domain, selector)
    );
    CREATE TABLE send_limits(
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        recipients_per_day INTEGER NOT NULL
    );
    CREATE TABLE sent_recipients(
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        count INTEGER NOT NULL
    );
    CREATE INDEX sent_recipients_by_account ON sent_recipients(account_id, at);
    "#,
    // 8: outbound queue worker (queue.rs): a lease so that a row is worked on
    // by one delivery at a time and a restart takes over rows in flight;
    // whether the sender was told of the delay.
    r#"
    ALTER TABLE queue ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;
    "#,
    // 9: administrators of the web admin page (admins.rs): argon2id password,
    // TOTP secret (base32) and whether its enrolment was confirmed.
    r#"
    CREATE TABLE admins(
        name TEXT PRIMARY KEY,
        password TEXT NOT NULL,
        totp_secret TEXT NOT NULL,
        totp_enabled INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL
    );
    "#,
    // 10: accounts on the admin page (account_settings.rs, app_passwords.rs,
    // login.rs): a per-account TOTP secret (base32) and whether its
    // enrolment was confirmed (then mail clients need app passwords);
    // offboarding of a disabled account (forward a copy, auto-reply) with
    // the last auto-reply per sender (RFC 3834 §2: not more than one per
    // sender in a period); app passwords as SHA-256 of the secret.
    r#"
    ALTER TABLE accounts ADD COLUMN totp_secret TEXT;
    ALTER TABLE accounts ADD COLUMN totp_enabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN forward_to TEXT;
    ALTER TABLE accounts ADD COLUMN auto_reply TEXT;
    CREATE TABLE app_passwords(
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        last_used INTEGER,
        last_used_from TEXT
    );
    CREATE INDEX app_passwords_by_account ON app_passwords(account_id);
    CREATE TABLE auto_replies(
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        sent INTEGER NOT NULL,
        PRIMARY KEY(account_id, sender)
    );
    "#,
    // 11: administrators' recovery codes (used instead of a TOTP code, once
    // each) and API tokens for scripts (admin_keys.rs). Both are random and
    // stored as SHA-256 only.
    r#"
    CREATE TABLE admin_recovery_codes(
        admin TEXT NOT NULL REFERENCES admins(name) ON DELETE CASCADE,
        hash TEXT NOT NULL,
        used INTEGER,
        PRIMARY KEY(admin, hash)
    );
    CREATE TABLE api_tokens(
        id INTEGER PRIMARY KEY,
        admin TEXT NOT NULL REFERENCES admins(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        last_used INTEGER
    );
    "#,
    // 12: the admin page's login sessions, so that a restart logs nobody
    // out (admin_sessions.rs). The cookie's token is stored as SHA-256
    // only: a copy of the card cannot be replayed as a cookie.
    r#"
    CREATE TABLE admin_sessions(
        hash TEXT PRIMARY KEY,
        admin TEXT NOT NULL REFERENCES admins(name) ON DELETE CASCADE,
        totp_enabled INTEGER NOT NULL,
        last_used INTEGER NOT NULL
    );
    "#,
];

/// Brings the database up to the newest schema.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current as usize > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew {
            found: current as usize,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    let newest = MIGRATIONS.len();
    match current {
        0 => tracing::info!(version = newest, "store created"),
        c if (c as usize) < newest => {
            tracing::info!(from = c, to = newest, "store schema migrated")
        }
        _ => {}
    }
    Ok(())
}
