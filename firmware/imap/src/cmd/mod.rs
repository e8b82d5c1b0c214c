//! One file per command group. Each handler takes the session and the
//! parsed arguments, writes untagged data and exactly one tagged reply.

pub(crate) mod append;
pub(crate) mod auth;
pub(crate) mod copy;
pub(crate) mod expunge;
pub(crate) mod fetch;
pub(crate) mod idle;
pub(crate) mod list;
pub(crate) mod mailbox;
pub(crate) mod quota;
pub(crate) mod search;
pub(crate) mod sort;
pub(crate) mod store;

use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use pochta_store::{Store, StoreError};

use crate::session::{Session, State};

/// A mailbox name as the store keeps it: UTF-8, INBOX upper case. An
/// IMAP4rev1 session sends modified UTF-7 (RFC 3501 §5.1.3), an IMAP4rev2
/// session UTF-8 (RFC 9051 §5.1); `None` when the name is neither.
pub(crate) fn name(mailbox: &Mailbox<'_>, utf8: bool) -> Option<String> {
    match mailbox {
        Mailbox::Inbox => Some("INBOX".into()),
        Mailbox::Other(other) if utf8 => String::from_utf8(other.as_ref().to_vec()).ok(),
        Mailbox::Other(other) => crate::utf7::decode(other.as_ref()),
    }
}

/// The reply to a mailbox name [`name`] refused.
pub(crate) fn bad_name(s: &mut Session, tag: &str) -> crate::session::Flow {
    let why = if s.rev2 {
        "Mailbox name is not valid UTF-8"
    } else {
        "Mailbox name is not valid modified UTF-7 (RFC 3501 §5.1.3); ENABLE IMAP4rev2 for UTF-8 names"
    };
    s.no(tag, Some("CANNOT"), why);
    crate::session::Flow::Continue
}

/// A LIST reference or pattern in the store's UTF-8, as [`name`] decodes
/// names; a pattern that does not decode is matched as it is (and so
/// matches nothing the store holds in another spelling).
pub(crate) fn pattern_text(bytes: &[u8], utf8: bool) -> String {
    let decoded = if utf8 {
        String::from_utf8(bytes.to_vec()).ok()
    } else {
        crate::utf7::decode(bytes)
    };
    decoded.unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Turns CONDSTORE on because a command used it (RFC 7162 §3.1): with a
/// mailbox selected the client learns its HIGHESTMODSEQ at once.
pub(crate) fn enable_condstore(s: &mut Session) {
    if s.condstore {
        return;
    }
    s.condstore = true;
    if let State::Selected(_, selected) = &mut s.state {
        selected.condstore = true;
        let line = format!(
            "* OK [HIGHESTMODSEQ {}] Highest\r\n",
            selected.folder.highestmodseq
        );
        s.conn.push(&line);
    }
}

/// Charsets SEARCH, SORT and THREAD accept (RFC 3501 §6.4.4: US-ASCII
/// always; UTF-8 because that is what strings are compared in).
pub(crate) fn known_charset(name: &str) -> bool {
    ["UTF-8", "US-ASCII"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(name))
}

pub(crate) fn bad_charset(s: &mut Session, tag: &str) -> crate::session::Flow {
    s.no(
        tag,
        Some("BADCHARSET (UTF-8 US-ASCII)"),
        "Unsupported charset",
    );
    crate::session::Flow::Continue
}

/// Whether `n` is in a sequence set, `*` standing for `star`.
pub(crate) fn in_set(
    set: &imap_codec::imap_types::sequence::SequenceSet,
    n: u32,
    star: u32,
) -> bool {
    use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
    let v = |x: &SeqOrUid| match x {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => star,
    };
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(a) => v(a) == n,
        Sequence::Range(a, b) => (v(a).min(v(b))..=v(a).max(v(b))).contains(&n),
    })
}

/// `\Seen $Work` for a FLAGS list.
pub(crate) fn flag_list(flags: &[String]) -> String {
    flags.join(" ")
}

/// Flags from a command, as stored. `\Recent` is the server's own and is
/// never stored (RFC 3501 §2.3.2).
pub(crate) fn flags_from(flags: &[Flag<'_>]) -> Vec<String> {
    const SYSTEM: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];
    flags
        .iter()
        .map(|f| f.to_string())
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        // System flags in their canonical spelling, so that `\SEEN` counts
        // as seen everywhere.
        .map(|f| {
            SYSTEM
                .iter()
                .find(|s| s.eq_ignore_ascii_case(&f))
                .map_or(f, |s| s.to_string())
        })
        .collect()
}

/// Runs a store call off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    s: &Session,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = s.ctx.store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(session = %s.id, error = %e, "store task failed");
            Err(StoreError::Closed)
        }
    }
}

/// Brings the selected folder's view up to date and queues the untagged
/// updates. Expunges are announced only where RFC 9051 §7.5.1 allows.
pub(crate) async fn refresh(s: &mut Session, allow_expunge: bool) {
    let State::Selected(_, selected) = &mut s.state else {
        return;
    };
    let mut out = Vec::new();
    let store = s.ctx.store.clone();
    // A short SQLite read; done inline to keep the view and the reply in step.
    if let Err(e) = selected.refresh(&store, allow_expunge, &mut out) {
        tracing::warn!(session = %s.id, error = %e, "refresh failed");
        if matches!(e, StoreError::NotFound(_)) {
            // The folder was deleted under us.
            s.conn
                .push("* BYE [UNAVAILABLE] The selected mailbox was deleted\r\n");
            s.state = State::Logout;
        }
    }
    s.send(&out);
}

/// The tagged reply for a store error.
pub(crate) fn store_error(s: &mut Session, tag: &str, e: &StoreError) {
    match e {
        StoreError::NotFound(what) => s.no(tag, Some("NONEXISTENT"), &format!("No such {what}")),
        StoreError::Exists(what) => s.no(
            tag,
            Some("ALREADYEXISTS"),
            &format!("{what} exists already"),
        ),
        StoreError::Invalid(why) => s.no(tag, Some("CANNOT"), why),
        StoreError::OverQuota => s.no(tag, Some("OVERQUOTA"), "Quota exceeded"),
        // RFC 5530 §3 LIMIT: not this user's quota but the server's disk.
        StoreError::DiskFull { used_percent } => s.no(
            tag,
            Some("LIMIT"),
            &format!(
                "The mail server's disk is {used_percent} % full: new messages cannot be stored until the owner frees space"
            ),
        ),
        other => {
            tracing::error!(session = %s.id, error = %other, "store error");
            s.no(tag, Some("SERVERBUG"), "Internal error, try again later");
        }
    }
}
