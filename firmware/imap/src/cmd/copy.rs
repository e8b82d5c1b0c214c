//! COPY, MOVE (RFC 6851) and their UID forms, with COPYUID (RFC 4315).

use imap_codec::imap_types::sequence::SequenceSet;

use super::{blocking, refresh, store_error};
use crate::session::{Flow, Session, State};

/// `1:3,7` for a sorted list of UIDs.
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

pub(crate) async fn copy(
    s: &mut Session,
    tag: &str,
    set: &SequenceSet,
    target: &str,
    by_uid: bool,
    move_them: bool,
) -> Flow {
    let verb = if move_them { "MOVE" } else { "COPY" };
    let State::Selected(login, selected) = &s.state else {
        unreachable!("dispatch checked the state");
    };
    if move_them && selected.read_only {
        s.no(tag, Some("READ-ONLY"), "Mailbox is read-only");
        return Flow::Continue;
    }
    let pairs = match selected.resolve(set, by_uid) {
        Ok(p) => p,
        Err(_) => {
            s.bad(tag, "Invalid sequence set");
            return Flow::Continue;
        }
    };
    let (account, from) = (login.account, selected.folder.id);
    let uids: Vec<u32> = pairs.iter().map(|(_, u)| *u).collect();
    let target_name = target.to_string();
    let result = blocking(s, move |store| {
        let Some(to) = store.folder(account, &target_name)? else {
            return Ok(None);
        };
        let to = to.selectable()?;
        store.copy_messages(from, &uids, to.id, move_them).map(Some)
    })
    .await;
    let copied = match result {
        Ok(Some(c)) => c,
        Ok(None) => {
            s.no(tag, Some("TRYCREATE"), "No such mailbox");
            return Flow::Continue;
        }
        Err(e) => {
            store_error(s, tag, &e);
            return Flow::Continue;
        }
    };
    let code = if copied.uids.is_empty() {
        None
    } else {
        let src: Vec<u32> = copied.uids.iter().map(|(a, _)| *a).collect();
        let dst: Vec<u32> = copied.uids.iter().map(|(_, b)| *b).collect();
        Some(format!(
            "COPYUID {} {} {}",
            copied.uidvalidity,
            uid_set(&src),
            uid_set(&dst)
        ))
    };
    if move_them {
        // RFC 6851 §4.3: COPYUID in an untagged OK, then the EXPUNGEs.
        if let Some(c) = &code {
            s.conn.push(&format!("* OK [{c}] Moved\r\n"));
        }
        let moved: Vec<u32> = copied.uids.iter().map(|(a, _)| *a).collect();
        if let State::Selected(_, selected) = &mut s.state {
            let mut out = Vec::new();
            selected.forget(&moved, &mut out);
            s.send(&out);
        }
        refresh(s, true).await;
        s.ok(tag, None, &format!("{verb} completed"));
    } else {
        refresh(s, by_uid).await;
        s.ok(tag, code.as_deref(), &format!("{verb} completed"));
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    #[test]
    fn uid_sets() {
        assert_eq!(super::uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(super::uid_set(&[4]), "4");
        assert_eq!(super::uid_set(&[]), "");
    }
}
